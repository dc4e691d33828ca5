"""Content features: catalog attributes from the catalog's versions (fct_content_profile), popularity and age from
the daily snapshot in fct_content_features_daily.

Counters are named content_* because a feature service (ranker_v1) needs names unique across its views.
"""

from datetime import timedelta

from conventions import OWNER, WINDOWS, feature
from data_sources import content_features_source, content_profile_source
from entities import content
from feast import FeatureView, Field
from feast.types import Float64, Int64, String, UnixTimestamp


def _windowed(days: int) -> list[Field]:
    span = "that day" if days == 1 else f"the trailing {days} days (the day itself included)"
    return [
        feature(f"content_impressions_{days}d", Int64, f"Times the item was shown over {span}."),
        feature(f"content_clicks_{days}d", Int64, f"Click events on the item over {span}."),
        feature(
            f"content_ctr_smoothed_{days}d",
            Float64,
            f"Clicks / impressions over {span}, shrunk toward the platform CTR of the same window "
            "(20 pseudo-impressions): a new item starts at the platform mean.",
        ),
    ]


# A catalog record stays true until the catalog says otherwise: a label from last year is still the label, so the
# view never expires (Feast: a TTL of 0). Its rows are the record's versions, each from the moment it became valid:
# an item is known from its first record on, the day it is published included (docs/decisions.md, Feature store).
content_profile_fv = FeatureView(
    name="content_profile",
    entities=[content],
    ttl=timedelta(0),
    schema=[
        feature("category", String, "Category in the catalog record valid at the time (null before one arrives)."),
        feature("format", String, "article, video or podcast."),
        feature("published_at", UnixTimestamp, "When the item was published (UTC)."),
    ],
    source=content_profile_source,
    online=True,
    description="What the item is: category, format and publication time, as the catalog record valid at the time.",
    owner=OWNER,
    tags={"owner": OWNER, "source": "dbt:fct_content_profile"},
)

# Popularity is a daily count like the user's: stale after two days.
content_popularity_fv = FeatureView(
    name="content_popularity",
    entities=[content],
    ttl=timedelta(days=2),
    schema=[
        *(field for days in WINDOWS for field in _windowed(days)),
        feature("popularity_rank_7d", Int64, "Rank among all items by 7-day clicks, then impressions (1 = top)."),
        feature("age_days", Float64, "Days from publication to the end of the day (see content_age_hours)."),
    ],
    source=content_features_source,
    online=True,
    description="How often the item was shown and clicked over the last 1, 7 and 28 days, its rank that day, and its "
    "age at the end of the day.",
    owner=OWNER,
    tags={"owner": OWNER, "source": "dbt:fct_content_features_daily"},
)

"""User features: trailing activity and category affinity, from the daily snapshot in fct_user_features_daily."""

from datetime import timedelta

from conventions import OWNER, WINDOWS, feature
from data_sources import user_features_source
from entities import user
from feast import FeatureView, Field
from feast.types import Array, Float64, Int64, String


def _windowed(days: int) -> list[Field]:
    span = "that day" if days == 1 else f"the trailing {days} days (the day itself included)"
    return [
        feature(f"impressions_{days}d", Int64, f"Impressions the user saw over {span}."),
        feature(f"clicks_{days}d", Int64, f"Click events by the user over {span}."),
        feature(
            f"ctr_smoothed_{days}d",
            Float64,
            f"Clicks / impressions over {span}, shrunk toward the platform CTR of the same window "
            "(20 pseudo-impressions).",
        ),
        feature(f"sessions_{days}d", Int64, f"Sessions started over {span}."),
        feature(f"mean_session_seconds_{days}d", Float64, f"Mean session duration over {span}; null without one."),
        feature(f"dwell_seconds_{days}d", Float64, f"Seconds spent on viewed content over {span}."),
        feature(f"conversions_{days}d", Int64, f"Conversions over {span}."),
    ]


# Values are as of the end of each day and a new row arrives daily: older than two days means the daily run has
# stopped, and a model is better served a null than a count that silently stopped sliding.
user_engagement_fv = FeatureView(
    name="user_engagement",
    entities=[user],
    ttl=timedelta(days=2),
    schema=[
        *(field for days in WINDOWS for field in _windowed(days)),
        feature("days_since_last_visit", Int64, "Days since the user's last day with any event (0: active that day)."),
    ],
    source=user_features_source,
    online=True,
    description="What the user did over the last 1, 7 and 28 days, as of the end of the previous day.",
    owner=OWNER,
    tags={"owner": OWNER, "source": "dbt:fct_user_features_daily"},
)

# Taste moves slowly: a 28-day click mix a few days old still describes the user, so it may be up to a week old.
user_category_affinity_fv = FeatureView(
    name="user_category_affinity",
    entities=[user],
    ttl=timedelta(days=7),
    schema=[
        feature(
            "affinity_categories",
            Array(String),
            "Categories the user clicked over the last 28 days, most clicked first (empty without clicks).",
        ),
        feature(
            "affinity_shares",
            Array(Float64),
            "Share of the user's last-28-day clicks per category, aligned with affinity_categories.",
        ),
    ],
    source=user_features_source,
    online=True,
    description="Share of the user's recent clicks per content category (as the content was labelled when clicked).",
    owner=OWNER,
    tags={"owner": OWNER, "source": "dbt:fct_user_features_daily"},
)

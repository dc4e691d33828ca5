"""Recent activity: what a user did in the last 30 minutes, kept fresh by the stream (`tailor stream consume`).

The consumer pushes rows through ``recent_activity_push`` as events arrive, so a click is online within seconds.
The batch source is the dbt mart ``fct_user_recent_activity`` (the same values at every moment they change), which
gives training sets the value a model would have seen online and lets `feast materialize` backfill the store.
"""

from datetime import timedelta

from conventions import OWNER, feature
from data_sources import mart_source
from entities import user
from feast import FeatureView, PushSource
from feast.types import Array, Float64, Int64, String

recent_activity_source = mart_source(
    "recent_activity_source",
    "fct_user_recent_activity",
    "dbt mart fct_user_recent_activity: the 30-minute window per user at each moment it changes.",
)

recent_activity_push = PushSource(
    name="recent_activity_push",
    batch_source=recent_activity_source,
    description="Rows pushed by `tailor stream consume` (Redis Stream consumer), online only.",
    owner=OWNER,
)


recent_activity_fv = FeatureView(
    name="recent_activity",
    entities=[user],
    # A row describes the 30 minutes before its timestamp; 30 minutes later all of it has expired, so an older
    # row says nothing (null = no recent activity).
    ttl=timedelta(minutes=30),
    schema=[
        feature("impressions_30m", Int64, "Impressions shown to the user in the last 30 minutes."),
        feature("clicks_30m", Int64, "Clicks by the user in the last 30 minutes."),
        feature("views_30m", Int64, "Content views by the user in the last 30 minutes."),
        feature("conversions_30m", Int64, "Conversions by the user in the last 30 minutes."),
        feature("dwell_seconds_30m", Float64, "Seconds spent on viewed content in the last 30 minutes."),
        feature(
            "clicked_categories_30m",
            Array(String),
            "Categories of content clicked in the last 30 minutes, each once, most recent click first.",
        ),
        feature("last_clicked_category", String, "Category of the most recently clicked content (last 30 minutes)."),
        feature(
            "clicked_items_30m",
            Array(String),
            "Content clicked in the last 30 minutes (items the catalog knows), each once, most recent click first: "
            "the service leaves them off the next pages.",
        ),
    ],
    source=recent_activity_push,
    online=True,
    description="The user's activity in the 30 minutes before the row's timestamp, streamed within seconds.",
    owner=OWNER,
    tags={"owner": OWNER, "freshness": "streaming"},
)

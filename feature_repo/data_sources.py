"""Where the features come from: the daily feature marts dbt publishes as Parquet under ``<TAILOR_HOME>/marts/``.

Paths are absolute: Feast resolves a relative FileSource path against the current directory, not this folder.
"""

import os
from pathlib import Path

from feast import FileSource


def published_marts_dir() -> Path:
    home = os.environ.get("TAILOR_HOME")
    if not home:
        raise RuntimeError(
            "TAILOR_HOME is not set. The feature store lives under it (registry, online store, the marts it reads): "
            "export it before running feast here, e.g. `export TAILOR_HOME=$(cd .. && pwd)/data`."
        )
    return Path(home).expanduser().resolve() / "marts"


user_features_source = FileSource(
    name="user_features_source",
    path=str(published_marts_dir() / "fct_user_features_daily.parquet"),
    timestamp_field="event_timestamp",
    description="dbt mart fct_user_features_daily: one row per user and day, values as of the end of the day.",
    owner="personalization",
)

content_features_source = FileSource(
    name="content_features_source",
    path=str(published_marts_dir() / "fct_content_features_daily.parquet"),
    timestamp_field="event_timestamp",
    description="dbt mart fct_content_features_daily: one row per catalog item and day, as of the end of the day.",
    owner="personalization",
)

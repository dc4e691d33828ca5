"""Where the features come from: the daily feature marts dbt builds, read by the engine ``TAILOR_ENGINE`` names.

- duckdb (default): ``FileSource``s over the Parquet files dbt publishes under ``<TAILOR_HOME>/marts/``, read by
  Feast's DuckDB offline store (feature_store.yaml).
- spark: ``SparkSource``s over the folders of Spark's tables (``<TAILOR_HOME>/spark/warehouse/marts.db/<table>``,
  Parquet parts), read by Feast's Spark offline store (feature_store.spark.yaml).

The feature views are the same on both: only the source (and the offline store of the yaml) follows the engine.
Paths are absolute: Feast resolves a relative path against the current directory, not this folder.
"""

import os
from pathlib import Path

from conventions import OWNER
from feast import FileSource
from feast.data_source import DataSource

from tailor.settings import engine_from_env


def _home() -> Path:
    home = os.environ.get("TAILOR_HOME")
    if not home:
        raise RuntimeError(
            "TAILOR_HOME is not set. The feature store lives under it (registry, online store, the marts it reads): "
            "export it before running feast here, e.g. `export TAILOR_HOME=$(cd .. && pwd)/data`."
        )
    return Path(home).expanduser().resolve()


def published_marts_dir() -> Path:
    """``<TAILOR_HOME>/marts``: the Parquet files DuckDB's dbt run publishes, and files Tailor's assets write."""
    return _home() / "marts"


def spark_marts_dir() -> Path:
    """``<TAILOR_HOME>/spark/warehouse/marts.db``: one folder of Parquet parts per table of Spark's marts schema
    (the spark target's ``spark.sql.warehouse.dir`` in dbt_project/profiles.yml; Settings.spark_marts_dir)."""
    return _home() / "spark" / "warehouse" / "marts.db"


def parquet_source(name: str, path: Path, timestamp_field: str, description: str) -> DataSource:
    """A Parquet file or folder as the engine's Feast source: FileSource (duckdb) or SparkSource (spark)."""
    if engine_from_env() == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        return SparkSource(
            name=name,
            path=str(path),
            file_format="parquet",
            timestamp_field=timestamp_field,
            description=description,
            owner=OWNER,
        )
    return FileSource(name=name, path=str(path), timestamp_field=timestamp_field, description=description, owner=OWNER)


def mart_source(name: str, mart: str, description: str, timestamp_field: str = "event_timestamp") -> DataSource:
    """A dbt mart as the engine built it: its published Parquet file (duckdb) or Spark's table folder (spark)."""
    if engine_from_env() == "spark":
        return parquet_source(name, spark_marts_dir() / mart, timestamp_field, description)
    return parquet_source(name, published_marts_dir() / f"{mart}.parquet", timestamp_field, description)


user_features_source = mart_source(
    "user_features_source",
    "fct_user_features_daily",
    "dbt mart fct_user_features_daily: one row per user and day, values as of the end of the day.",
)

content_features_source = mart_source(
    "content_features_source",
    "fct_content_features_daily",
    "dbt mart fct_content_features_daily: one row per catalog item and day, as of the end of the day.",
)

content_profile_source = mart_source(
    "content_profile_source",
    "fct_content_profile",
    "dbt mart fct_content_profile: one row per version of a catalog item, stamped when the version became valid.",
)

"""Feast on Spark: TAILOR_ENGINE=spark reads the feature marts with Feast's Spark offline store (local mode), and the
point-in-time training set it builds equals the one DuckDB's offline store builds from the same marts.

One small simulated history is built with dbt on DuckDB. The Spark home holds the same feature marts as Spark table
folders (``<home>/spark/warehouse/marts.db/<table>/part-*.parquet``, where the spark dbt target writes them); the
feature marts do not build on Spark yet (docs/scaling_out.md), so for now those folders hold DuckDB's published
files. Everything after them is the Spark path: `feast apply` of feature_repo/ with SparkSources, Feast's Spark
offline store doing the point-in-time join (a real SparkSession, local[2]), the training set written by the same
code as `tailor run`, and the online store loaded from Spark.

Needs the optional `spark` extra; without it the tests are skipped, except under TAILOR_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.features.health import consistency, freshness
from ml.features.materialize import materialize_features
from ml.features.repo import apply_feature_repo
from ml.features.training import plan_training_set, write_training_set
from simulator import SimulationConfig, simulate
from tailor.feature_store import FEAST_YAML_ENV, open_store
from tailor.ingest import ingest_paths
from tailor.settings import SPARK_INSTALL_HINT, Settings, get_settings
from tests.conftest import run_dbt
from tests.redis_server import services_required

pytestmark = [pytest.mark.integration, pytest.mark.spark]

CONFIG = SimulationConfig(users=50, days=5, seed=23)
#: The marts feature_repo/ reads; the Spark home holds them as Spark table folders.
FEATURE_MARTS = ("fct_user_features_daily", "fct_content_features_daily", "fct_user_recent_activity")
NO_UNIT_TESTS = ("--exclude-resource-type", "unit_test", "--indirect-selection", "cautious")
BATCH_VIEWS = {"user_engagement", "user_category_affinity", "content_profile", "content_popularity"}


@dataclass(frozen=True)
class Homes:
    duckdb: Settings
    spark: Settings


def _spark_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("pyspark", "dbt.adapters.spark"))


def _as_spark_tables(built: Settings, spark: Settings) -> None:
    """The DuckDB home's feature marts as Spark table folders in the Spark home, and the impressions the spine
    reads (published Parquet, as on DuckDB)."""
    for mart in FEATURE_MARTS:
        folder = spark.spark_marts_dir / mart
        folder.mkdir(parents=True)
        shutil.copy(built.marts_dir / f"{mart}.parquet", folder / "part-00000.parquet")
        (folder / "_SUCCESS").touch()  # as Spark leaves it: not Parquet, must be skipped by every reader
    spark.marts_dir.mkdir(parents=True)
    shutil.copy(built.marts_dir / "fct_impressions.parquet", spark.marts_dir / "fct_impressions.parquet")


def _stop_spark() -> None:
    """Stop the SparkSession Feast started in this process (its JVM holds ~1 GB)."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homes]:
    if not _spark_installed():
        message = f"the spark extra is not installed: run `{SPARK_INSTALL_HINT}`"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("spark_feast")
    simulate(CONFIG, root / "generated")
    duck = replace(get_settings(root / "duckdb"), engine="duckdb")
    spark = replace(get_settings(root / "spark"), engine="spark")
    ingest_paths(sorted(p for p in (root / "generated").rglob("*.jsonl") if "_truth" not in p.parts), duck)
    # What the feature repo and the spine read, with their data tests.
    run_dbt(duck, "build", "--select", *(f"+{name}" for name in (*FEATURE_MARTS, "fct_impressions")), *NO_UNIT_TESTS)
    _as_spark_tables(duck, spark)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(FEAST_YAML_ENV, raising=False)  # each home's engine picks its yaml
        patch.delenv("TAILOR_ENGINE", raising=False)
        for home in (duck, spark):
            apply_feature_repo(home)
        try:
            yield Homes(duck, spark)
        finally:
            _stop_spark()


def _differences(expected: pd.DataFrame, actual: pd.DataFrame) -> list[str]:
    """Columns whose values differ (floats beyond 1e-9 relative, any other value, a null on one side only)."""
    found = []
    for column in expected.columns:
        a, b = expected[column], actual[column]
        if pd.api.types.is_float_dtype(a):
            x, y = a.astype(float), b.astype(float)
            same = ((x - y).abs() <= 1e-9 * (1.0 + x.abs())) | (x.isna() & y.isna())
        else:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        if not same.all():
            i = int((~same).to_numpy().argmax())
            found.append(f"{column}: {int((~same).sum())} rows differ, e.g. {a[i]!r} vs {b[i]!r}")
    return found


def test_the_engine_selects_feasts_offline_store_and_the_sources(homes: Homes) -> None:
    """The same views, read from Spark's table folders by the Spark offline store, or from the published files by
    DuckDB's: only the source and the offline store differ."""
    duck, spark = open_store(homes.duckdb), open_store(homes.spark)
    assert duck.config.offline_store.type == "duckdb" and spark.config.offline_store.type == "spark"
    on_duck = {v.name: v for v in duck.list_feature_views()}
    on_spark = {v.name: v for v in spark.list_feature_views()}
    assert set(on_spark) == set(on_duck) >= BATCH_VIEWS
    for name in BATCH_VIEWS:
        d, s = on_duck[name], on_spark[name]
        assert [(f.name, f.dtype) for f in s.features] == [(f.name, f.dtype) for f in d.features]
        assert s.ttl == d.ttl
        assert type(d.batch_source).__name__ == "FileSource" and type(s.batch_source).__name__ == "SparkSource"
        assert Path(d.batch_source.path).parent == homes.duckdb.marts_dir
        assert Path(s.batch_source.path).parent == homes.spark.spark_marts_dir


def test_the_training_set_from_sparks_offline_store_equals_duckdbs(homes: Homes) -> None:
    """Same impressions, labels and features (floats to 1e-9 relative), same Arrow schema; and the join did real
    work: most rows after the first day have user and item features."""
    built = {
        engine: write_training_set(home, open_store(home), full=True)
        for engine, home in (("duckdb", homes.duckdb), ("spark", homes.spark))
    }
    files = {engine: pq.read_table(summary.path) for engine, summary in built.items()}
    assert files["spark"].schema == files["duckdb"].schema
    expected = files["duckdb"].to_pandas().sort_values("impression_id").reset_index(drop=True)
    actual = files["spark"].to_pandas().sort_values("impression_id").reset_index(drop=True)
    assert len(expected) == built["duckdb"].rows > 1000
    assert len(actual) == len(expected) and (actual["impression_id"] == expected["impression_id"]).all()
    assert _differences(expected, actual) == []
    later = expected["event_timestamp"] >= expected["event_timestamp"].min().normalize() + pd.Timedelta(days=1)
    for column in ("clicks_7d", "content_clicks_7d", "category", "content_age_hours"):
        assert expected.loc[later, column].notna().mean() > 0.5, column
    assert expected["ctr_smoothed_28d"].nunique() > 10


def test_nothing_new_on_spark_means_nothing_to_build(homes: Homes) -> None:
    """The training set's day keys read Spark's table folders (DuckDB over the Parquet parts, no Spark job): a
    second run finds nothing to do; a changed feature row makes the impression days that can reach it rebuild, and
    only those (a user row stamped at the start of the last day is reached by that day's impressions alone: the
    newest rows, stamped after the last impression, by none)."""
    write_training_set(homes.spark, open_store(homes.spark))
    assert plan_training_set(homes.spark).up_to_date
    part = homes.spark.spark_marts_dir / "fct_user_features_daily" / "part-00000.parquet"
    original = part.read_bytes()
    try:
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            stamps = con.execute(
                f"select distinct event_timestamp from read_parquet('{part}') order by 1 desc limit 2"
            ).fetchall()
            reached = stamps[1][0]  # midnight at the start of the last impression day
            con.execute(
                f"copy (select * replace (case when event_timestamp = ? then clicks_7d + 1 else clicks_7d end "
                f"as clicks_7d) from read_parquet('{part}')) to '{part}.new' (format parquet)",
                [reached],
            )
        Path(f"{part}.new").replace(part)
        plan = plan_training_set(homes.spark)
        assert plan.build == (reached.date(),) and len(plan.keep) == len(plan.days) - 1 > 0
    finally:
        part.write_bytes(original)
    assert plan_training_set(homes.spark).up_to_date


def test_the_online_store_loads_from_spark_and_matches_its_tables(homes: Homes) -> None:
    """`feast materialize` through the Spark offline store fills the online store; the two checks `tailor run`
    applies (freshness; 50 entities per view equal to their newest row in Spark's tables) pass."""
    store = open_store(homes.spark)
    done = materialize_features(store, homes.spark)
    assert {v.view for v in done} == BATCH_VIEWS and all(v.entities > 0 for v in done)
    assert all(r.fresh for r in freshness(store)), freshness(store)
    results = consistency(store)
    assert {r.view for r in results} == BATCH_VIEWS and all(r.entities_checked > 0 for r in results)
    assert [m for r in results for m in r.mismatches] == []

"""`TAILOR_ENGINE=spark tailor run` end to end, and Feast's Spark offline store against DuckDB's.

One small simulated history goes through the real `tailor run` with TAILOR_ENGINE=spark: landing, the whole dbt
project on Spark (local mode), Spark's marts published as Parquet, `feast apply` with SparkSources over Spark's
table folders, the online store materialized from Spark and its two checks, the point-in-time training set through
Feast's Spark offline store, the candidate generators and the batch pages (the history is too short for a ranker,
which says so). The same files are built with dbt on DuckDB into a second home, whose training set comes from
DuckDB's offline store: the two training sets are equal, row for row and value for value.

Needs the optional `spark` extra; without it the tests are skipped, except under TAILOR_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.features.health import consistency, freshness
from ml.features.repo import apply_feature_repo
from ml.features.sources import view_parquet
from ml.features.training import plan_training_set, training_set_path, write_training_set
from simulator import SimulationConfig, simulate
from tailor.feature_store import FEAST_YAML_ENV, open_store
from tailor.ingest import ingest_paths
from tailor.settings import SPARK_INSTALL_HINT, Settings, get_settings
from tests.conftest import run_dbt, tailor_cli
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
    #: `tailor run --json` on the Spark home.
    run: dict[str, Any]


def _spark_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("pyspark", "dbt.adapters.spark"))


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homes]:
    if not _spark_installed():
        message = f"the spark extra is not installed: run `{SPARK_INSTALL_HINT}`"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("spark_feast")
    generated = root / "generated"
    simulate(CONFIG, generated)
    duck = replace(get_settings(root / "duckdb"), engine="duckdb")
    spark = replace(get_settings(root / "spark"), engine="spark")
    shutil.copytree(generated, spark.inbox)
    ran = tailor_cli(spark.home, "run", "--json", env={"TAILOR_ENGINE": "spark"})
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    ingest_paths(sorted(p for p in generated.rglob("*.jsonl") if "_truth" not in p.parts), duck)
    # What the feature repo and the spine read, with their data tests.
    run_dbt(duck, "build", "--select", *(f"+{name}" for name in (*FEATURE_MARTS, "fct_impressions")), *NO_UNIT_TESTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(FEAST_YAML_ENV, raising=False)  # each home's engine picks its yaml
        patch.delenv("TAILOR_ENGINE", raising=False)
        apply_feature_repo(duck)
        try:
            yield Homes(duck, spark, json.loads(ran.stdout))
        finally:
            _stop_spark()


def _stop_spark() -> None:
    """Stop a SparkSession Feast started in this process (its JVM holds ~1 GB)."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def _published(settings: Settings, name: str) -> pd.DataFrame:
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute("select * from read_parquet(?)", [str(settings.marts_dir / f"{name}.parquet")]).df()


def _comparable(value: Any) -> Any:
    """Arrays (the affinity lists) as tuples, so that equality compares them element by element."""
    return tuple(value) if hasattr(value, "__len__") and not isinstance(value, str) else value


def _differences(expected: pd.DataFrame, actual: pd.DataFrame) -> list[str]:
    """Columns whose values differ (floats beyond 1e-9 relative, any other value, a null on one side only)."""
    found = []
    for column in expected.columns:
        a, b = expected[column], actual[column]
        if pd.api.types.is_float_dtype(a):
            x, y = a.astype(float), b.astype(float)
            same = ((x - y).abs() <= 1e-9 * (1.0 + x.abs())) | (x.isna() & y.isna())
        else:
            x, y = a.map(_comparable), b.map(_comparable)
            same = (x.astype(object) == y.astype(object)) | (a.isna() & b.isna())
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
        assert Path(view_parquet(d)[0]).parent == homes.duckdb.marts_dir
        assert Path(view_parquet(s)[0]).parent == homes.spark.spark_marts_dir


def test_tailor_run_on_spark_runs_every_step(homes: Homes) -> None:
    """Every asset and check of the graph ran on Spark: nothing failed, the feature assets and models said what they
    did, and the marts were published where every later step reads them."""
    run = homes.run["run"]
    assert run["success"] and run["failed_steps"] == [] and run["failed_checks"] == []
    assert run["reconciliation_checked"] and run["checks_evaluated"] > 50
    assert run["models"]["ml/ranking_training_set"].startswith("built")
    assert run["models"]["ml/candidates"].startswith("fitted") and run["models"]["ml/recommendations"].startswith(
        "built"
    )
    assert "not trained" in run["models"]["ml/ranker"]  # 5 days: too short for its windows, and it says so
    assert homes.run["events"]["balanced"]
    assert set(homes.run["marts"]) >= {*FEATURE_MARTS, "fct_impressions", "fct_experiment_stats", "dim_users"}
    assert not homes.spark.warehouse.exists()  # no DuckDB file on the Spark path
    assert homes.run["engine"] == "spark" and Path(homes.run["warehouse"]) == homes.spark.spark_dir / "warehouse"


@pytest.mark.parametrize(
    ("mart", "key"),
    [
        ("fct_impressions", ("impression_id",)),
        ("fct_user_features_daily", ("user_id", "feature_date")),
        ("fct_content_features_daily", ("content_id", "feature_date")),
    ],
)
def test_the_marts_spark_published_equal_duckdbs(homes: Homes, mart: str, key: tuple[str, ...]) -> None:
    """Same columns and types, same rows and values (the landing times aside: the homes landed at different
    moments)."""
    duck, spark = _published(homes.duckdb, mart), _published(homes.spark, mart)
    assert dict(spark.dtypes) == dict(duck.dtypes)
    columns = sorted(c for c in duck.columns if "ingested_at" not in c)
    duck = duck[columns].sort_values(list(key)).reset_index(drop=True)
    spark = spark[columns].sort_values(list(key)).reset_index(drop=True)
    assert len(spark) == len(duck) > 100
    assert _differences(duck, spark) == []


def test_the_training_set_from_sparks_offline_store_equals_duckdbs(homes: Homes) -> None:
    """The training set `tailor run` built on Spark and the one DuckDB's offline store builds from the same files:
    same Arrow schema, impressions, labels and features (floats to 1e-9 relative); and the join did real work."""
    spark_file = pq.read_table(training_set_path(homes.spark))
    duck_file = pq.read_table(write_training_set(homes.duckdb, open_store(homes.duckdb), full=True).path)
    assert spark_file.schema == duck_file.schema
    expected = duck_file.to_pandas().sort_values("impression_id").reset_index(drop=True)
    actual = spark_file.to_pandas().sort_values("impression_id").reset_index(drop=True)
    assert len(expected) > 1000
    assert len(actual) == len(expected) and (actual["impression_id"] == expected["impression_id"]).all()
    assert _differences(expected, actual) == []
    later = expected["event_timestamp"] >= expected["event_timestamp"].min().normalize() + pd.Timedelta(days=1)
    for column in ("clicks_7d", "content_clicks_7d", "category", "content_age_hours"):
        assert expected.loc[later, column].notna().mean() > 0.5, column
    assert expected["ctr_smoothed_28d"].nunique() > 10


def test_nothing_new_on_spark_means_nothing_to_build(homes: Homes, tmp_path: Path) -> None:
    """The training set's day keys read Spark's table folders (DuckDB over the Parquet parts, no Spark job): after
    the run nothing is left to build; a changed feature row makes the impression days that can reach it rebuild,
    and only those (a user row stamped at the start of the last day is reached by that day's impressions alone)."""
    assert plan_training_set(homes.spark).up_to_date
    table = homes.spark.spark_marts_dir / "fct_user_features_daily"
    backup = tmp_path / "backup"
    shutil.copytree(table, backup)
    try:
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            scan = f"read_parquet('{table}/**/*.parquet', hive_partitioning = true)"
            stamps = con.execute(f"select distinct event_timestamp from {scan} order by 1 desc limit 2").fetchall()
            reached = stamps[1][0]  # midnight at the start of the last impression day: the row of the day before
            day = (reached - timedelta(days=1)).date()
            partition = table / f"feature_date={day}"
            parts = sorted(partition.glob("*.parquet"))
            assert parts, f"no partition folder {partition}"
            con.execute(
                f"copy (select * replace (clicks_7d + 1 as clicks_7d) from read_parquet({[str(p) for p in parts]})) "
                f"to '{tmp_path / 'changed.parquet'}' (format parquet)"
            )
        for part in parts:
            part.unlink()
        shutil.copy(tmp_path / "changed.parquet", partition / "part-00000-changed.parquet")
        plan = plan_training_set(homes.spark)
        assert plan.build == (reached.date(),) and len(plan.keep) == len(plan.days) - 1 > 0
    finally:
        shutil.rmtree(table)
        shutil.copytree(backup, table)
    assert plan_training_set(homes.spark).up_to_date


def test_the_online_store_loaded_from_spark_matches_its_tables(homes: Homes) -> None:
    """The run materialized the online store through the Spark offline store; the two checks `tailor run` applies
    (freshness; 50 entities per view equal to their newest row in Spark's tables, read without Spark) pass when
    called again here."""
    store = open_store(homes.spark)
    assert store.config.offline_store.type == "spark"
    assert all(r.fresh and r.offline_newest is not None for r in freshness(store))
    results = consistency(store)
    assert {r.view for r in results} == BATCH_VIEWS and all(r.entities_checked > 0 for r in results)
    assert [m for r in results for m in r.mismatches] == []

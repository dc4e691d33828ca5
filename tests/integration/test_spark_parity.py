"""Spark (local mode) against DuckDB: the same marts, row for row, and `TAILOR_ENGINE=spark tailor run` end to end.

One small simulated history (with experiments running in it) arrives in two deliveries, into one Spark home and one
DuckDB home, the only two homes of this module (a Spark build costs minutes on 2 cores, so nothing is built twice):

1. The first delivery goes through the real `TAILOR_ENGINE=spark tailor run --json`: landing, the whole dbt project on
   Spark (a `dbt build`: models, seeds and every data test), Spark's marts published as Parquet, `feast apply` with
   SparkSources over Spark's table folders, the online store materialized through Feast's Spark offline store and its
   two checks, the point-in-time training set through that store, the candidate generators and the batch pages (the
   history is too short for a ranker, which says so). The DuckDB home gets the very batches the run landed (same
   batch ids, same landing times) and the same `dbt build`; its training set comes from DuckDB's offline store.
2. The late delivery (the newest event files) is landed in both homes at one landing time and the project is run
   again on both (`dbt run`, incremental: DuckDB deletes and re-inserts the lookback days, Spark overwrites their
   partitions), so late data, dedup across runs, sessions and feature windows that span the deliveries are compared.

After each delivery every table is compared by its key: same rows, same values (floats to 1e-9 relative, arrays
element by element), same column names. The Feast checks read the state the run left, so they come before the second
delivery in this file (pytest runs a module's tests in order; `before_second` refuses to run them after it).

The Spark tables are read from their Parquet files with DuckDB: no second Spark process (Derby, the metastore, allows
one). Needs the optional `spark` extra (`python3 -m uv sync --frozen --extra spark`; `make test` installs it); without
it the tests are skipped, except under TAILOR_REQUIRE_SERVICES=1 (CI), where that is a failure. docs/scaling_out.md
says what differs between the engines.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
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
from tailor.settings import DBT_PROJECT_DIR, SPARK_INSTALL_HINT, Settings, get_settings
from tests.conftest import DBT, PER_BUILD_COLUMNS, run_dbt, tailor_cli
from tests.redis_server import services_required

pytestmark = [pytest.mark.integration, pytest.mark.spark]

#: Every table the project builds, and each one's key. Views (staging users/content, int_*_versions and
#: *_current, int_global_ctr_daily) have no files to read without a second Spark process: they are compared
#: through the tables built from them (the dims, fct_rejected_rows, the feature marts' smoothed CTR).
TABLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("staging", "stg_landing__events"): ("batch_id", "line_number"),
    ("marts", "fct_events"): ("event_id",),
    ("marts", "fct_sessions"): ("session_id",),
    ("marts", "fct_impressions"): ("impression_id",),
    ("marts", "fct_daily_user_engagement"): ("user_id", "activity_date"),
    ("marts", "fct_user_content_interactions"): ("user_id", "content_id"),
    ("marts", "fct_rejected_rows"): ("source", "batch_id", "line_number"),
    ("marts", "fct_batch_fates"): ("batch_id",),
    ("marts", "dim_users"): ("user_id",),
    ("marts", "dim_content"): ("content_id",),
    ("marts", "dim_users_history"): ("user_id", "valid_from"),
    ("marts", "dim_content_history"): ("content_id", "valid_from"),
    ("marts", "fct_user_features_daily"): ("user_id", "feature_date"),
    ("marts", "fct_content_features_daily"): ("content_id", "feature_date"),
    ("marts", "fct_content_profile"): ("content_id", "event_timestamp"),
    ("marts", "fct_user_recent_activity"): ("user_id", "event_timestamp"),
    ("intermediate", "int_experiment_unit_days"): ("experiment_id", "user_id", "activity_date"),
    ("marts", "fct_experiment_units"): ("experiment_id", "user_id"),
    ("marts", "dim_experiments"): ("experiment_id", "variant"),
    ("marts", "fct_experiment_stats"): ("experiment_id", "variant", "metric"),
    ("marts", "fct_experiment_daily_stats"): ("experiment_id", "variant", "metric", "as_of_date"),
    ("marts", "fct_experiment_novelty_stats"): ("experiment_id", "variant", "metric", "days_since_exposure"),
}
#: Six days (event files 2026-01-05 to 01-13: six days, then the late arrivals' tails). The first delivery (five
#: days) spans enough days for a training set whose later days carry 7-day features, and the ranker's windows stay
#: out of reach (it says so); the second brings a whole day and the late tails, so it recomputes feature rows.
CONFIG = SimulationConfig(users=60, days=6, seed=11)
#: Event files (one per delivery day) held back for the second, incremental delivery.
LATE_FILES = 4
#: DuckDB's first build: what `tailor run` builds on Spark (orchestration/lib/dbt.py), snapshots included on DuckDB.
#: dbt unit tests are DuckDB-only (their SQL fixtures are DuckDB's; dbt_project.yml disables them on Spark, as it does
#: the snapshots): test_warehouse.py runs them.
FIRST_BUILD = ("build", "--exclude-resource-type", "unit_test")
#: The late delivery: the incremental runs only (each Spark data test costs about a second; they ran above).
INCREMENTAL_BUILD = ("run",)
#: The marts feature_repo/ reads; the Spark home holds them as Spark table folders.
FEATURE_MARTS = (
    "fct_user_features_daily",
    "fct_content_features_daily",
    "fct_content_profile",
    "fct_user_recent_activity",
)
BATCH_VIEWS = {"user_engagement", "user_category_affinity", "content_profile", "content_popularity"}

Tables = dict[tuple[str, str], pd.DataFrame]


@dataclass
class Homes:
    duckdb: Settings
    spark: Settings
    #: `tailor run --json` on the Spark home (the first delivery).
    run: dict[str, Any]
    #: The late event files, landed by the `second_delivery` fixture.
    late: list[Path]
    #: Every table of both engines after each delivery: {delivery: {engine: {(schema, name): frame}}}.
    tables: dict[str, dict[str, Tables]] = field(default_factory=dict)
    #: Wall seconds of each step (for the report; not asserted).
    seconds: dict[str, float] = field(default_factory=dict)
    #: What that `tailor run` printed on stderr.
    run_stderr: str = ""

    def before_second(self) -> Homes:
        """These homes, as the first delivery left them. Raises AssertionError once the second delivery ran."""
        assert "second" not in self.tables, "this test reads the state of the first delivery: run the module in order"
        return self


def _spark_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("pyspark", "dbt.adapters.spark"))


def _late_files(root: Path) -> list[Path]:
    """The newest event files of the simulated history (relative to ``root``): the second delivery."""
    events = sorted((p.relative_to(root) for p in (root / "events").glob("*.jsonl")), key=lambda p: p.name)
    return events[-LATE_FILES:]


def _duckdb_table(settings: Settings, schema: str, name: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(f"select * from {schema}.{name}").df()
    finally:
        con.close()


def _spark_table(settings: Settings, schema: str, name: str) -> pd.DataFrame:
    """A Spark managed table read from its Parquet files (partition columns from the folder names)."""
    folder = settings.spark_dir / "warehouse" / f"{schema}.db" / name
    assert folder.is_dir(), f"Spark did not write {schema}.{name} under {folder}"
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(f"select * from read_parquet('{folder}/**/*.parquet', hive_partitioning = true)").df()
    finally:
        con.close()


def _all_tables(duck: Settings, spark: Settings) -> dict[str, Tables]:
    return {
        "duckdb": {table: _duckdb_table(duck, *table) for table in TABLES},
        "spark": {table: _spark_table(spark, *table) for table in TABLES},
    }


def _dbt_env(settings: Settings) -> dict[str, str]:
    """What tests.conftest.run_dbt gives dbt: the home's engine, its own target and log folders."""
    scratch = settings.home / "dbt"
    return {
        **os.environ,
        **settings.dbt_env(),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(scratch / "target"),
        "DBT_LOG_PATH": str(scratch / "logs"),
    }


def _stop_spark() -> None:
    """Stop a SparkSession Feast started in this process (its JVM holds ~1 GB)."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def _add_control_characters(root: Path) -> None:
    """Four events the simulator never writes, appended to the first event file: an id holding a NUL and a label
    holding a C1 control, so both engines name the character and its place in the reject detail, and an event type
    holding one, which both engines echo with U+FFFD in its place; and an id escaping half a surrogate pair."""
    first = sorted((root / "events").glob("*.jsonl"))[0]
    template = next(json.loads(line) for line in first.read_text().splitlines() if '"impression"' in line)
    odd = [
        {**template, "event_id": "e-nul", "user_id": "u\u0000x"},
        {**template, "event_id": "e-c1", "surface": "h\u00e9\U0001f600\u0085"},
        {**template, "event_id": "e-type", "event_type": "impre\u0001ssion"},  # echoed with U+FFFD for it
        {**template, "event_id": "e-half", "user_id": "u\ud800x"},  # half a surrogate pair: invalid JSON, said so
    ]
    with first.open("a") as out:
        out.writelines(json.dumps(event) + "\n" for event in odd)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homes]:
    """Both homes after the first delivery: `tailor run` on Spark, the same batches and `dbt build` on DuckDB."""
    if not _spark_installed():
        message = f"the spark extra is not installed: run `{SPARK_INSTALL_HINT}`"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("spark")
    generated = root / "generated"
    simulate(CONFIG, generated)
    _add_control_characters(generated)
    late = _late_files(generated)
    duck = replace(get_settings(root / "duckdb"), engine="duckdb")
    spark = replace(get_settings(root / "spark"), engine="spark")
    # The whole simulation (its truth too, as `tailor generate` writes it) but the late files.
    held_back = {str(generated / p) for p in late}
    shutil.copytree(
        generated, spark.inbox, ignore=lambda folder, names: [n for n in names if f"{folder}/{n}" in held_back]
    )
    start = time.perf_counter()
    ran = tailor_cli(spark.home, "run", "--json", env={"TAILOR_ENGINE": "spark"})
    seconds = {"spark tailor run": time.perf_counter() - start}
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    # The very batches the run landed (ids and landing times), so that every column can be compared.
    shutil.copytree(spark.landing, duck.landing)
    for folder in (duck.warehouse_dir, duck.marts_dir):
        folder.mkdir(parents=True)
    start = time.perf_counter()
    run_dbt(duck, *FIRST_BUILD)
    seconds["duckdb build"] = time.perf_counter() - start
    state = Homes(
        duck, spark, json.loads(ran.stdout), [generated / p for p in late], seconds=seconds, run_stderr=ran.stderr
    )
    state.tables["first"] = _all_tables(duck, spark)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(FEAST_YAML_ENV, raising=False)  # each home's engine picks its yaml
        patch.delenv("TAILOR_ENGINE", raising=False)
        apply_feature_repo(duck)
        try:
            yield state
        finally:
            _stop_spark()


@pytest.fixture(scope="module")
def second_delivery(homes: Homes) -> Homes:
    """Both homes after the late delivery: landed at one time in both, then an incremental `dbt run` on each (Spark
    in its own process while DuckDB runs)."""
    _stop_spark()  # Feast's JVM, if a test started one: memory for dbt's
    now = datetime.now(UTC)  # one landing time for both homes: ingested_at is compared too
    for home in (homes.duckdb, homes.spark):
        ingest_paths(homes.late, home, now=now)
    start = time.perf_counter()
    log = homes.spark.home / "spark-dbt.log"
    with log.open("w") as out:
        spark_dbt = subprocess.Popen(
            [DBT, *INCREMENTAL_BUILD],
            cwd=DBT_PROJECT_DIR,
            env=_dbt_env(homes.spark),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            run_dbt(homes.duckdb, *INCREMENTAL_BUILD)
            homes.seconds["duckdb incremental"] = time.perf_counter() - start
        finally:
            code = spark_dbt.wait(timeout=1200)
    homes.seconds["spark incremental"] = time.perf_counter() - start
    assert code == 0, f"dbt run on Spark failed:\n{log.read_text()[-6000:]}"
    homes.tables["second"] = _all_tables(homes.duckdb, homes.spark)
    return homes


def _comparable(value: Any) -> Any:
    """Arrays as tuples (pandas holds a list column as numpy arrays on one engine, lists on the other)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return tuple(value) if isinstance(value, list) else value


def _normalized(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """Columns by name (without `PER_BUILD_COLUMNS`), times as naive UTC microseconds, arrays as tuples, rows in key
    order."""
    out = frame[sorted(set(frame.columns) - PER_BUILD_COLUMNS)].copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            out[column] = values.astype("datetime64[us]")
        elif values.dtype == object and values.map(lambda v: hasattr(v, "isoformat")).any():
            out[column] = pd.to_datetime(values).astype("datetime64[us]")
        elif values.dtype == object:
            out[column] = values.map(_comparable)
    return out.sort_values(list(key)).reset_index(drop=True)


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= 1e-9 * (1.0 + abs(x))


def _same(a: Any, b: Any) -> bool:
    """Equal values; floats (also inside arrays) to 1e-9 relative; null equals null."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple) or isinstance(b, tuple):
        return False
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return pd.isna(a) and pd.isna(b)
    if isinstance(a, float) or isinstance(b, float):
        return _close(float(a), float(b))
    return bool(a == b)


def _differences(duck: pd.DataFrame, spark: pd.DataFrame, key: tuple[str, ...]) -> list[str]:
    """What differs between the two tables (empty: equal), column by column, with a first example each."""
    found = []
    for column in duck.columns:
        a, b = duck[column], spark[column]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            x, y = a.astype(float), b.astype(float)
            same = ((x - y).abs() <= 1e-9 * (1.0 + x.abs())) | (x.isna() & y.isna())
        elif a.dtype == object or b.dtype == object:
            same = pd.Series([_same(p, q) for p, q in zip(a, b, strict=True)], index=a.index)
        else:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        if not same.all():
            i = int((~same).to_numpy().argmax())
            where = dict(zip(key, duck.loc[i, list(key)], strict=True))
            found.append(f"{column}: {int((~same).sum())} rows differ, e.g. at {where}: {a[i]!r} vs {b[i]!r}")
    return found


def _published(settings: Settings, name: str) -> pd.DataFrame:
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute("select * from read_parquet(?)", [str(settings.marts_dir / f"{name}.parquet")]).df()


def _assert_equal_tables(duck: pd.DataFrame, spark: pd.DataFrame, key: tuple[str, ...], what: str) -> None:
    duck, spark = _normalized(duck, key), _normalized(spark, key)
    assert set(spark.columns) == set(duck.columns), f"{what}: columns differ"
    assert len(duck) > 0
    assert len(spark) == len(duck), f"{what}: {len(spark)} rows on Spark, {len(duck)} on DuckDB"
    assert not duck.duplicated(list(key)).any(), f"{what}: the key {key} is not unique"
    assert _differences(duck, spark, key) == [], f"{what} differs between the engines"


# The first delivery: `tailor run` on Spark, and the Feast checks of the state it left.


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
    assert "not trained" in run["models"]["ml/ranker"]  # too few days for its windows, and it says so
    assert homes.run["events"]["balanced"]
    assert set(homes.run["marts"]) >= {*FEATURE_MARTS, "fct_impressions", "fct_experiment_stats", "dim_users"}
    assert not homes.spark.warehouse.exists()  # no DuckDB file on the Spark path
    assert homes.run["engine"] == "spark" and Path(homes.run["warehouse"]) == homes.spark.spark_dir / "warehouse"
    # The JVMs' own log went to the run's log file, not to stderr: no line in either of Spark's console layouts
    # ("26/11/30 06:51:45 WARN Utils: ...", or {"ts": ...} when structured logging is on).
    log4j = re.compile(r'^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) |\{"ts":)')
    assert [line for line in homes.run_stderr.splitlines() if log4j.match(line)] == []
    assert (homes.spark.home / "logs" / "spark.log").is_file()
    print(f"seconds: {homes.seconds}")


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


@pytest.mark.parametrize(
    ("mart", "key"),
    [
        ("fct_impressions", ("impression_id",)),
        ("fct_user_features_daily", ("user_id", "feature_date")),
        ("fct_content_features_daily", ("content_id", "feature_date")),
        ("fct_content_profile", ("content_id", "event_timestamp")),
    ],
)
def test_the_marts_spark_published_equal_duckdbs(homes: Homes, mart: str, key: tuple[str, ...]) -> None:
    """What `tailor run` published from Spark's tables and what DuckDB's post-hooks published: same columns and
    types, same rows and values (the landing times included: both homes hold the same batches)."""
    homes.before_second()
    duck, spark = _published(homes.duckdb, mart), _published(homes.spark, mart)
    assert dict(spark.dtypes) == dict(duck.dtypes)
    assert len(duck) > 100
    _assert_equal_tables(duck, spark, key, f"the published {mart}")


def test_the_training_set_from_sparks_offline_store_equals_duckdbs(homes: Homes) -> None:
    """The training set `tailor run` built on Spark and the one DuckDB's offline store builds from the same batches:
    same Arrow schema, impressions, labels and features (floats to 1e-9 relative); and the join did real work."""
    homes.before_second()
    spark_file = pq.read_table(training_set_path(homes.spark))
    duck_file = pq.read_table(write_training_set(homes.duckdb, open_store(homes.duckdb), full=True).path)
    assert spark_file.schema == duck_file.schema
    expected = duck_file.to_pandas().sort_values("impression_id").reset_index(drop=True)
    actual = spark_file.to_pandas().sort_values("impression_id").reset_index(drop=True)
    assert len(expected) > 1000
    assert len(actual) == len(expected) and (actual["impression_id"] == expected["impression_id"]).all()
    _assert_equal_tables(expected, actual, ("impression_id",), "the training set")
    later = expected["event_timestamp"] >= expected["event_timestamp"].min().normalize() + pd.Timedelta(days=1)
    for column in ("clicks_7d", "content_clicks_7d", "category", "content_age_hours"):
        assert expected.loc[later, column].notna().mean() > 0.5, column
    assert expected["ctr_smoothed_28d"].nunique() > 10


def test_nothing_new_on_spark_means_nothing_to_build(homes: Homes, tmp_path: Path) -> None:
    """The training set's day keys read Spark's table folders (DuckDB over the Parquet parts, no Spark job): after
    the run nothing is left to build; a changed feature row makes the impression days that can reach it rebuild,
    and only those (a user row stamped at the start of the last day is reached by that day's impressions alone)."""
    spark = homes.before_second().spark
    assert plan_training_set(spark).up_to_date
    table = spark.spark_marts_dir / "fct_user_features_daily"
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
        plan = plan_training_set(spark)
        assert plan.build == (reached.date(),) and len(plan.keep) == len(plan.days) - 1 > 0
    finally:
        shutil.rmtree(table)
        shutil.copytree(backup, table)
    assert plan_training_set(spark).up_to_date


def test_the_online_store_loaded_from_spark_matches_its_tables(homes: Homes) -> None:
    """The run materialized the online store through the Spark offline store; the two checks `tailor run` applies
    (freshness; 50 entities per view equal to their newest row in Spark's tables, read without Spark) pass when
    called again here."""
    store = open_store(homes.before_second().spark)
    assert store.config.offline_store.type == "spark"
    assert all(r.fresh and r.offline_newest is not None for r in freshness(store))
    results = consistency(store)
    assert {r.view for r in results} == BATCH_VIEWS and all(r.entities_checked > 0 for r in results)
    assert [m for r in results for m in r.mismatches] == []


@pytest.mark.parametrize(("schema", "name"), list(TABLES), ids=[name for _, name in TABLES])
def test_tables_are_equal_after_the_first_delivery(homes: Homes, schema: str, name: str) -> None:
    tables = homes.tables["first"]
    _assert_equal_tables(
        tables["duckdb"][(schema, name)], tables["spark"][(schema, name)], TABLES[(schema, name)], name
    )


# The second delivery: incremental on both engines.


@pytest.mark.parametrize(("schema", "name"), list(TABLES), ids=[name for _, name in TABLES])
def test_tables_are_equal_after_the_second_delivery(second_delivery: Homes, schema: str, name: str) -> None:
    tables = second_delivery.tables["second"]
    _assert_equal_tables(
        tables["duckdb"][(schema, name)], tables["spark"][(schema, name)], TABLES[(schema, name)], name
    )


def test_the_compared_history_has_what_the_port_must_get_right(second_delivery: Homes) -> None:
    """The comparison means something only if the history holds every fate, several reasons to quarantine, events
    delivered late into a later run, sessions of several events, experiments with analysed units in every arm,
    clicks that make category lists, and feature rows the second delivery recomputed from its events: otherwise
    equal tables prove little."""
    homes = second_delivery
    tables = homes.tables["second"]["duckdb"]
    staged = tables[("staging", "stg_landing__events")]
    assert set(staged["fate"]) == {"accepted", "duplicate", "quarantined"}
    assert staged["reject_reason"].nunique() >= 3
    details = set(staged["reject_detail"].dropna())
    nul = "user_id must not hold a control character (U+0000-U+001F, U+007F-U+009F), got U+0000 at character 2"
    assert nul in details
    assert any(d.startswith("surface must not hold") and d.endswith("got U+0085 at character 4") for d in details)
    assert "event_type must be one of impression, click, view, conversion, exposure, got impre\ufffdssion" in details
    assert any(d.startswith("not valid JSON: an escape of half a surrogate pair") for d in details)
    assert staged["batch_id"].nunique() > LATE_FILES
    sessions = tables[("marts", "fct_sessions")]
    assert (sessions["events"] > 1).sum() > 10
    assert (sessions["duration_seconds"] > 0).any() and (sessions["revenue_usd"] > 0).any()
    events = tables[("marts", "fct_events")]
    late_ingest = events["ingested_at"].max()
    assert (events["ingested_at"] == late_ingest).sum() > 0 and (events["ingested_at"] < late_ingest).sum() > 0
    stats = tables[("marts", "fct_experiment_stats")]
    arms = stats.groupby("experiment_id")["variant"].nunique()
    assert (arms >= 2).sum() >= 2 and (stats["n"] > 0).all() and (stats["covariate_sum"].fillna(0) > 0).any()
    assert (tables[("marts", "dim_experiments")]["units_analysed"] > 0).sum() >= 4
    users = tables[("marts", "fct_user_features_daily")]
    assert users["affinity_categories"].map(len).gt(1).any()
    recent = tables[("marts", "fct_user_recent_activity")]
    assert recent["clicked_categories_30m"].map(len).gt(1).any()
    assert recent["clicked_items_30m"].map(len).gt(1).any()  # two categories in a window: two items at least
    for name in ("fct_user_features_daily", "fct_content_features_daily", "fct_user_recent_activity"):
        before, after = homes.tables["first"]["duckdb"][("marts", name)], tables[("marts", name)]
        newer = after["last_ingested_at"] > before["last_ingested_at"].max()
        assert newer.sum() > 10, f"{name}: the second delivery recomputed no rows with its events"
    print(f"seconds: {homes.seconds}")


def _cells(*values: Any) -> pd.Series:
    """A column of arrays (one value per row)."""
    return pd.Series(list(values), dtype=object)


def test_the_comparison_sees_one_changed_value() -> None:
    """The comparator itself: a float beyond the tolerance, a changed text, a time a microsecond apart, or an array
    with one element changed differ; a float within it, or arrays as lists versus numpy arrays, do not."""
    key = ("id",)
    base = pd.DataFrame(
        {
            "id": [1, 2],
            "x": [1.0, 2.0],
            "s": ["a", None],
            "t": pd.to_datetime(["2026-01-01 00:00:00", "2026-01-02 00:00:00"]),
            "a": _cells(["news", "tech"], []),
            "f": _cells([0.25, 0.75], []),
        }
    )
    as_numpy = base.assign(
        a=_cells(*map(np.array, base["a"])), f=_cells(*(np.array(v, dtype=float) for v in base["f"]))
    )
    assert _differences(_normalized(base, key), _normalized(as_numpy, key), key) == []
    close = base.assign(x=[1.0 + 1e-12, 2.0], f=_cells([0.25 + 1e-13, 0.75], []))
    assert _differences(_normalized(base, key), _normalized(close, key), key) == []
    changed = base.assign(
        x=[1.0, 2.0001],
        s=["a", "b"],
        t=base["t"] + pd.to_timedelta([0, 1], unit="us"),
        a=_cells(["tech", "news"], []),
        f=_cells([0.25, 0.7501], []),
    ).iloc[::-1]  # row order must not matter
    found = _differences(_normalized(base, key), _normalized(changed, key), key)
    assert [line.split(":")[0] for line in found] == ["a", "f", "s", "t", "x"]

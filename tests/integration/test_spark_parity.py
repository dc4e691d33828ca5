"""The same dbt project on DuckDB and on Apache Spark (local mode) gives the same marts, row for row.

One small simulated history (with experiments running in it) is landed in two deliveries; after each, the whole
project is built with dbt on both engines (TAILOR_ENGINE=duckdb and =spark, the same model files): after the first
a `dbt build` (models, seeds, snapshots where the engine has them, and every data test), after the second an
incremental `dbt run`. After each delivery every table is compared by its key: same rows, same values (floats to
1e-9 relative, arrays element by element), same column names. The second run is incremental on both (DuckDB deletes
and re-inserts the lookback days, Spark overwrites their partitions), so late data, dedup across runs, sessions and
feature windows that span the two deliveries are compared too.

Both Spark invocations run in one Python process (dbt's programmatic runner), so the SparkSession (the JVM, ~25 s to
start) is paid once; the DuckDB builds run meanwhile. The Spark tables are read from their Parquet files with DuckDB:
no second Spark process (Derby, the metastore, allows one). Needs the optional `spark` extra
(`python3 -m uv sync --frozen --extra spark`; `make test` installs it); without it the test is skipped, except under
TAILOR_REQUIRE_SERVICES=1 (CI), where that is a failure. docs/scaling_out.md says what differs between the engines.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from simulator import SimulationConfig, simulate
from tailor.ingest import ingest_paths
from tailor.settings import DBT_PROJECT_DIR, SPARK_INSTALL_HINT, Settings, get_settings
from tests.conftest import run_dbt
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
    ("marts", "fct_user_recent_activity"): ("user_id", "event_timestamp"),
    ("intermediate", "int_experiment_unit_days"): ("experiment_id", "user_id", "activity_date"),
    ("marts", "fct_experiment_units"): ("experiment_id", "user_id"),
    ("marts", "dim_experiments"): ("experiment_id", "variant"),
    ("marts", "fct_experiment_stats"): ("experiment_id", "variant", "metric"),
    ("marts", "fct_experiment_daily_stats"): ("experiment_id", "variant", "metric", "as_of_date"),
    ("marts", "fct_experiment_novelty_stats"): ("experiment_id", "variant", "metric", "days_since_exposure"),
}
DELIVERIES = ("first", "second")
#: The first delivery: `dbt build` of the whole project, so every data test runs on both engines. dbt unit tests
#: are DuckDB-only (their SQL fixtures are DuckDB's; dbt_project.yml disables them on Spark, as it does the
#: snapshots): test_warehouse.py runs them.
FIRST_BUILD = ("build", "--exclude-resource-type", "unit_test")
#: The late delivery: the incremental runs only (each Spark data test costs about a second; they ran above).
INCREMENTAL_BUILD = ("run",)
#: Event files (one per delivery day) held back for the second, incremental build.
LATE_FILES = 2

#: A dbt session in one process: reads one JSON list of dbt arguments per stdin line, runs it with dbt's programmatic
#: runner and writes {"success", "seconds"} as one JSON line to the file descriptor given as its argument. dbt-spark's
#: `session` method reuses the process's SparkSession, so the JVM starts once for every invocation.
_DBT_SESSION = """
import json, os, sys, time
from dbt.cli.main import dbtRunner
results = os.fdopen(int(sys.argv[1]), "w", buffering=1)
for line in sys.stdin:
    start = time.perf_counter()
    outcome = dbtRunner().invoke(json.loads(line))
    results.write(json.dumps({"success": bool(outcome.success), "seconds": time.perf_counter() - start}) + "\\n")
"""


class SparkDbt:
    """dbt on Spark in one long-lived subprocess (`_DBT_SESSION`); its output goes to `log`."""

    def __init__(self, settings: Settings, log: Path) -> None:
        scratch = settings.home / "dbt"
        env = {
            **os.environ,
            **settings.dbt_env(),
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_TARGET_PATH": str(scratch / "target"),
            "DBT_LOG_PATH": str(scratch / "logs"),
        }
        self.log = log
        self._log_file = log.open("w")
        read, write = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-c", _DBT_SESSION, str(write)],
            cwd=DBT_PROJECT_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(write,),
            text=True,
        )
        os.close(write)
        self._results: IO[str] = os.fdopen(read)

    def start(self, args: tuple[str, ...]) -> None:
        """Start `dbt <args>` (returns at once; `wait` for it)."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(list(args)) + "\n")
        self._process.stdin.flush()

    def wait(self) -> float:
        """Wall seconds of the started invocation. Raises AssertionError with the log's tail if it failed."""
        line = self._results.readline()
        result = json.loads(line) if line else {"success": False, "seconds": math.nan}
        if not result["success"]:
            raise AssertionError(f"dbt on Spark failed:\n{self.log.read_text()[-6000:]}")
        return float(result["seconds"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._results.close()
        self._log_file.close()


@dataclass(frozen=True)
class Homes:
    duckdb: Settings
    spark: Settings
    #: Every table of both engines after each delivery: {delivery: {engine: {(schema, name): frame}}}.
    tables: dict[str, dict[str, dict[tuple[str, str], pd.DataFrame]]]
    #: Wall seconds of each engine's builds, [first, incremental] (for the report; not asserted).
    seconds: dict[str, list[float]]


def _spark_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("pyspark", "dbt.adapters.spark"))


def _generated(root: Path) -> tuple[list[Path], list[Path]]:
    """The simulated files, split into the first delivery and the late one (the newest event files)."""
    simulate(SimulationConfig(users=60, days=5, seed=11), root)
    files = sorted(p for p in root.rglob("*.jsonl") if "_truth" not in p.parts)
    events = sorted((p for p in files if p.parent.name == "events"), key=lambda p: p.name)
    late = events[-LATE_FILES:]
    return [p for p in files if p not in late], late


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


def _all_tables(duck: Settings, spark: Settings) -> dict[str, dict[tuple[str, str], pd.DataFrame]]:
    return {
        "duckdb": {table: _duckdb_table(duck, *table) for table in TABLES},
        "spark": {table: _spark_table(spark, *table) for table in TABLES},
    }


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homes]:
    if not _spark_installed():
        message = f"the spark extra is not installed: run `{SPARK_INSTALL_HINT}`"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("spark_parity")
    first, late = _generated(root / "generated")
    duck = replace(get_settings(root / "duckdb"), engine="duckdb")
    spark = replace(get_settings(root / "spark"), engine="spark")
    seconds: dict[str, list[float]] = {"duckdb": [], "spark": []}
    tables = {}
    spark_dbt = SparkDbt(spark, root / "spark-dbt.log")
    try:
        for delivery, batch, args in (("first", first, FIRST_BUILD), ("second", late, INCREMENTAL_BUILD)):
            now = datetime.now(UTC)  # one landing time for both homes: ingested_at is compared too
            for home in (duck, spark):
                ingest_paths(batch, home, now=now)
            spark_dbt.start(args)  # Spark works while DuckDB builds
            start = time.perf_counter()
            run_dbt(duck, *args)
            seconds["duckdb"].append(time.perf_counter() - start)
            seconds["spark"].append(spark_dbt.wait())
            tables[delivery] = _all_tables(duck, spark)
    finally:
        spark_dbt.close()
    yield Homes(duck, spark, tables, seconds)


def _comparable(value: Any) -> Any:
    """Arrays as tuples (pandas holds a list column as numpy arrays on one engine, lists on the other)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return tuple(value) if isinstance(value, list) else value


def _normalized(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """Columns by name, times as naive UTC microseconds, arrays as tuples, rows in key order."""
    out = frame[sorted(frame.columns)].copy()
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


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize(("schema", "name"), list(TABLES), ids=[name for _, name in TABLES])
def test_tables_are_equal_on_duckdb_and_spark(homes: Homes, schema: str, name: str, delivery: str) -> None:
    key = TABLES[(schema, name)]
    duck = _normalized(homes.tables[delivery]["duckdb"][(schema, name)], key)
    spark = _normalized(homes.tables[delivery]["spark"][(schema, name)], key)
    assert set(spark.columns) == set(duck.columns), f"{name}: columns differ"
    assert len(duck) > 0
    assert len(spark) == len(duck), f"{name}: {len(spark)} rows on Spark, {len(duck)} on DuckDB"
    assert not duck.duplicated(list(key)).any(), f"{name}: the key {key} is not unique"
    assert _differences(duck, spark, key) == [], f"{name} differs between the engines after the {delivery} delivery"


def test_the_compared_history_has_what_the_port_must_get_right(homes: Homes) -> None:
    """The comparison means something only if the history holds every fate, several reasons to quarantine, events
    delivered late into a later run, sessions of several events, experiments with analysed units in every arm,
    clicks that make category lists, and feature rows the second delivery recomputed from its events: otherwise
    equal tables prove little."""
    tables = homes.tables["second"]["duckdb"]
    staged = tables[("staging", "stg_landing__events")]
    assert set(staged["fate"]) == {"accepted", "duplicate", "quarantined"}
    assert staged["reject_reason"].nunique() >= 3
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
    for name in ("fct_user_features_daily", "fct_content_features_daily", "fct_user_recent_activity"):
        before, after = homes.tables["first"]["duckdb"][("marts", name)], tables[("marts", name)]
        newer = after["last_ingested_at"] > before["last_ingested_at"].max()
        assert newer.sum() > 10, f"{name}: the second delivery recomputed no rows with its events"
    print(f"build seconds (first, incremental): {homes.seconds}")


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

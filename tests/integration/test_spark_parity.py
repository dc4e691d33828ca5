"""The same dbt models on DuckDB and on Apache Spark (local mode) give the same marts, row for row.

One small simulated history is landed in two deliveries; after each, the ported part of the warehouse is built with
plain dbt on both engines (TAILOR_ENGINE=duckdb and =spark, the same model files: `dbt build` with the data tests
first, then an incremental `dbt run`), and every table is compared by its key: same rows, same values (floats to
1e-9 relative), same column names. The second run is incremental on both (DuckDB deletes and re-inserts the lookback
days, Spark overwrites their partitions), so late data, dedup across runs and sessions that span the two deliveries
are compared too.

The Spark tables are read from their Parquet files with DuckDB: no second Spark process (Derby, the metastore,
allows one). Needs the optional `spark` extra (`python3 -m uv sync --frozen --extra spark`; `make test` installs it);
without it the test is skipped, except under TAILOR_REQUIRE_SERVICES=1 (CI), where that is a failure.
docs/scaling_out.md lists which models are ported; PORTED below is the selection built here.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from simulator import SimulationConfig, simulate
from tailor.ingest import ingest_paths
from tailor.settings import SPARK_INSTALL_HINT, Settings, get_settings
from tests.conftest import run_dbt
from tests.redis_server import services_required

pytestmark = [pytest.mark.integration, pytest.mark.spark]

#: The models that build on Spark today, and each one's key (docs/scaling_out.md has the rest).
PORTED: dict[tuple[str, str], tuple[str, ...]] = {
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
}
#: Views, built on both and compared through the tables above (dims: the accepted rows, fct_rejected_rows: the
#: rejected ones): a view has no files to read without a second Spark process.
VIEWS = (
    "stg_landing__users",
    "stg_landing__content",
    "int_user_versions",
    "int_users_current",
    "int_content_versions",
    "int_content_current",
)
SEEDS = ("fx_rates",)
SELECTION = ("--select", *SEEDS, *VIEWS, *(name for _, name in PORTED))
#: The first delivery: `dbt build`, so the selection's data tests run on both engines too (cautious: not those that
#: also read a model outside it). Unit tests are left out: their SQL fixtures are DuckDB's (e.g. `null::varchar`).
FIRST_BUILD = ("build", *SELECTION, "--exclude-resource-type", "unit_test", "--indirect-selection", "cautious")
#: The late delivery: the incremental runs only (each Spark data test costs about a second; they ran above).
INCREMENTAL_BUILD = ("run", *SELECTION)
#: Event files (one per delivery day) held back for the second, incremental build.
LATE_FILES = 2


@dataclass(frozen=True)
class Homes:
    duckdb: Settings
    spark: Settings
    #: Wall seconds of each engine's builds, [first, incremental] (for the report; not asserted).
    seconds: dict[str, list[float]]


def _spark_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("pyspark", "dbt.adapters.spark"))


def _build(settings: Settings, args: tuple[str, ...], seconds: dict[str, list[float]]) -> None:
    """dbt on the ported selection; run_dbt passes settings.dbt_env() (so TAILOR_ENGINE) to dbt."""
    start = time.perf_counter()
    run_dbt(settings, *args)
    seconds[settings.engine].append(time.perf_counter() - start)


def _generated(root: Path) -> tuple[list[Path], list[Path]]:
    """The simulated files, split into the first delivery and the late one (the newest event files)."""
    simulate(SimulationConfig(users=60, days=5, seed=11), root)
    files = sorted(p for p in root.rglob("*.jsonl") if "_truth" not in p.parts)
    events = sorted((p for p in files if p.parent.name == "events"), key=lambda p: p.name)
    late = events[-LATE_FILES:]
    return [p for p in files if p not in late], late


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
    for batch, args in ((first, FIRST_BUILD), (late, INCREMENTAL_BUILD)):
        now = datetime.now(UTC)  # one landing time for both homes: ingested_at is compared too
        for home in (duck, spark):
            ingest_paths(batch, home, now=now)
            _build(home, args, seconds)
    yield Homes(duck, spark, seconds)


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


def _normalized(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """Columns by name, times as naive UTC microseconds, dates as dates, rows in key order."""
    out = frame[sorted(frame.columns)].copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            out[column] = values.astype("datetime64[us]")
        elif values.dtype == object and values.map(lambda v: hasattr(v, "isoformat")).any():
            out[column] = pd.to_datetime(values).astype("datetime64[us]")
    return out.sort_values(list(key)).reset_index(drop=True)


def _differences(duck: pd.DataFrame, spark: pd.DataFrame, key: tuple[str, ...]) -> list[str]:
    """What differs between the two tables (empty: equal), column by column, with a first example each."""
    found = []
    for column in duck.columns:
        a, b = duck[column], spark[column]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            x, y = a.astype(float), b.astype(float)
            same = ((x - y).abs() <= 1e-9 * (1.0 + x.abs())) | (x.isna() & y.isna())
        else:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        if not same.all():
            i = int((~same).to_numpy().argmax())
            where = dict(zip(key, duck.loc[i, list(key)], strict=True))
            found.append(f"{column}: {int((~same).sum())} rows differ, e.g. at {where}: {a[i]!r} vs {b[i]!r}")
    return found


@pytest.mark.parametrize(("schema", "name"), list(PORTED), ids=[name for _, name in PORTED])
def test_marts_are_equal_on_duckdb_and_spark(homes: Homes, schema: str, name: str) -> None:
    key = PORTED[(schema, name)]
    duck = _normalized(_duckdb_table(homes.duckdb, schema, name), key)
    spark = _normalized(_spark_table(homes.spark, schema, name), key)
    assert set(spark.columns) == set(duck.columns), f"{name}: columns differ"
    assert len(duck) > 0
    assert len(spark) == len(duck), f"{name}: {len(spark)} rows on Spark, {len(duck)} on DuckDB"
    assert not duck.duplicated(list(key)).any(), f"{name}: the key {key} is not unique"
    assert _differences(duck, spark, key) == [], f"{name} differs between the engines"


def test_the_compared_history_has_what_the_port_must_get_right(homes: Homes) -> None:
    """The comparison means something only if the history holds every fate, several reasons to quarantine, events
    delivered late into a later run, and sessions of several events: otherwise equal tables prove little."""
    staged = _duckdb_table(homes.duckdb, "staging", "stg_landing__events")
    assert set(staged["fate"]) == {"accepted", "duplicate", "quarantined"}
    assert staged["reject_reason"].nunique() >= 3
    assert staged["batch_id"].nunique() > LATE_FILES
    sessions = _duckdb_table(homes.duckdb, "marts", "fct_sessions")
    assert (sessions["events"] > 1).sum() > 10
    assert (sessions["duration_seconds"] > 0).any() and (sessions["revenue_usd"] > 0).any()
    events = _duckdb_table(homes.duckdb, "marts", "fct_events")
    late_ingest = events["ingested_at"].max()
    assert (events["ingested_at"] == late_ingest).sum() > 0 and (events["ingested_at"] < late_ingest).sum() > 0
    print(f"build seconds (first, incremental): {homes.seconds}")


def test_the_comparison_sees_one_changed_value() -> None:
    """The comparator itself: a float beyond the tolerance, a changed text, or a time a microsecond apart differ;
    a float within it does not."""
    key = ("id",)
    base = pd.DataFrame(
        {
            "id": [1, 2],
            "x": [1.0, 2.0],
            "s": ["a", None],
            "t": pd.to_datetime(["2026-01-01 00:00:00", "2026-01-02 00:00:00"]),
        }
    )
    assert _differences(_normalized(base, key), _normalized(base.copy(), key), key) == []
    close = base.assign(x=[1.0 + 1e-12, 2.0])
    assert _differences(_normalized(base, key), _normalized(close, key), key) == []
    changed = base.assign(x=[1.0, 2.0001], s=["a", "b"], t=base["t"] + pd.to_timedelta([0, 1], unit="us")).iloc[
        ::-1
    ]  # row order must not matter
    found = _differences(_normalized(base, key), _normalized(changed, key), key)
    assert [line.split(":")[0] for line in found] == ["s", "t", "x"]

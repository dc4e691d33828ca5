"""Benchmark: the feature store (issue 3), on SQLite and Redis online stores.

On one generated history (simulator -> `tailor ingest` -> `dbt build`, as bench_pipeline.py does it), measures:
  1. materialization: rows/s of `store.materialize` per batch view (the call the Dagster asset makes, a backfill of
     the whole history into an emptied store) next to a raw bulk write of the very rows Feast wrote (SQLite: the
     same upsert, `executemany` in one transaction per table of the same shape; Redis: one pipelined HSET per key
     with the same fields, into another database of the same server); cProfile of one pass when below the goal;
  2. online retrieval p50/p99, 1 and 100 entity rows: `get_online_features(...).to_dict()` in-process and
     `POST /get-online-features` to `feast serve` on a loopback port, next to a raw key lookup of the same rows
     (SQLite: one SELECT per table of the rows Feast reads; Redis: one pipeline of HGETALL of the same keys). The
     methods run interleaved, call by call, so they see the same machine load;
  3. the ranking training set (`write_training_set`: every impression, point-in-time features) for >= N impressions,
     in a child process (its time and peak memory are its own).

    .venv/bin/python bench/bench_feature_store.py --impressions 1000000
    .venv/bin/python bench/bench_feature_store.py --impressions 2000 --iterations-1 20 --iterations-100 5 \\
        --repeats 1 --out /tmp/feature_store.json                       # a smoke run, 1-2 minutes
    .venv/bin/python bench/bench_feature_store.py --home /tmp/fs-home   # builds once, reuses it on later runs
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import os
import platform
import pstats
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # the tests package: its redis-server helper
sys.path.insert(0, str(BENCH_DIR))  # bench_pipeline's helpers

from bench_pipeline import BIN, dbt_env, land_and_build, simulate_history  # noqa: E402

from tailor.settings import FEATURE_REPO_DIR, Settings, disable_telemetry, get_settings  # noqa: E402
from tests.process_group import start_group, stop_group  # noqa: E402
from tests.redis_server import RedisServer, redis_server_binary  # noqa: E402

SERVICE = "ranker_v1"
RAW_GOAL = 0.30  # issue 3: materialization at >= 30% of a raw bulk write
#: What the feature store reads (the Feast sources, the training spine), the events count and the dimensions the
#: impressions' tests check against: the bench builds these and their parents only, so that models it does not use
#: cannot fail or slow its setup.
FEATURE_STORE_MARTS = (
    "fct_user_features_daily",
    "fct_content_features_daily",
    "fct_content_profile",
    "fct_user_recent_activity",
    "fct_impressions",
    "fct_batch_fates",
    "dim_users",
    "dim_content",
)
#: Simulated events per impression (about 1.2 at the default config), with headroom; checked after the build.
EVENTS_PER_IMPRESSION = 1.4


# --- machine and history -------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in _lscpu().splitlines() if line.startswith("Model name")), "unknown"
    )
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "shared": "2 cores shared with other work (tests, simulations) during the run: see load averages",
    }


def _lscpu() -> str:
    return subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def build_history(home: Path, impressions: int, seed: int) -> dict[str, Any]:
    """Simulate, land and `dbt build` a history with at least ``impressions`` impressions (skipped when built)."""
    settings = get_settings(home)
    info: dict[str, Any] = {"home": str(home)}
    if not (settings.marts_dir / "fct_impressions.parquet").exists():
        work = home.parent / f"{home.name}-build"
        generated = work / "generated"
        _, simulate_s = simulate_history(int(impressions * EVENTS_PER_IMPRESSION), seed, generated)
        info["simulate_s"] = round(simulate_s, 1)
        select = [f"+{model}" for model in FEATURE_STORE_MARTS]
        land_s, build_s = land_and_build(generated, dbt_env(settings, work), select)
        info["land_s"], info["dbt_build_s"] = round(land_s, 1), round(build_s, 1)
        shutil.rmtree(generated)
    marts = settings.marts_dir
    with duckdb.connect() as con:
        row = con.execute(
            f"""select (select sum(received) from read_parquet('{marts}/fct_batch_fates.parquet')),
                (select count(*) from read_parquet('{marts}/fct_impressions.parquet')),
                (select count(distinct user_id) from read_parquet('{marts}/fct_user_features_daily.parquet')),
                (select count(*) from read_parquet('{marts}/fct_user_features_daily.parquet')),
                (select count(distinct content_id) from read_parquet('{marts}/fct_content_features_daily.parquet')),
                (select count(*) from read_parquet('{marts}/fct_content_features_daily.parquet'))"""
        ).fetchall()[0]
    keys = ["events_received", "impressions", "users", "user_feature_rows", "content_items", "content_feature_rows"]
    info.update(zip(keys, (int(v) for v in row), strict=True))
    if info["impressions"] < impressions:
        raise SystemExit(
            f"{home} holds {info['impressions']:,} impressions, fewer than --impressions {impressions:,}: "
            "use another --home (or none) to generate a bigger history."
        )
    return info


# --- the online store under test -----------------------------------------------------------------------------------


@dataclass
class Backend:
    """One online store: its feature_store yaml, and for Redis the server (database 0 Feast's, 1 the raw copy)."""

    name: str
    yaml_path: Path
    redis_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    def redis(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis_port or 0, db=db)


@contextlib.contextmanager
def backend(name: str, scratch: Path) -> Iterator[Backend]:
    """Select the store the way a user does (Feast's FEAST_FS_YAML_FILE_PATH, TAILOR_FEAST_REDIS), for this process
    and the `feast` processes it starts; restore the environment afterwards."""
    if name == "sqlite":
        with _environ({"FEAST_FS_YAML_FILE_PATH": None}):
            yield Backend(name, FEATURE_REPO_DIR / "feature_store.yaml")
        return
    binary = redis_server_binary()
    if binary is None:
        raise SystemExit("redis-server is not installed: `apt-get install -y redis-server` (as root), or --skip-redis")
    yaml_path = FEATURE_REPO_DIR / "feature_store.redis.yaml"
    with RedisServer(binary, scratch / "redis") as server:
        env = {"FEAST_FS_YAML_FILE_PATH": str(yaml_path), "TAILOR_FEAST_REDIS": f"127.0.0.1:{server.port}"}
        with _environ(env):
            yield Backend(name, yaml_path, server.port, env)


@contextlib.contextmanager
def _environ(values: Mapping[str, str | None]) -> Iterator[None]:
    before = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        _set_env(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            _set_env(key, value)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _sqlite_tables(store: Any) -> dict[str, str]:
    """Feast's SQLite table per batch view (`<project>_<view>`)."""
    from ml.features.materialize import batch_views

    return {view.name: f"{store.project}_{view.name}" for view in batch_views(store)}


def clear_online(store: Any, where: Backend) -> None:
    """Empty the online store, so every pass writes into the same empty store."""
    if where.name == "redis":
        where.redis().flushdb()
        return
    with sqlite3.connect(str(store.config.online_store.path)) as con:
        for table in _sqlite_tables(store).values():
            con.execute(f'delete from "{table}"')


# --- 1. materialization ------------------------------------------------------------------------------------------


def backfill_windows(store: Any) -> dict[str, tuple[datetime, datetime]]:
    """Per batch view, the whole history: the window the Dagster asset's first run materializes (plan())."""
    from ml.features.materialize import batch_views, source_bounds

    windows = {}
    for view in batch_views(store):
        bounds = source_bounds(view)
        assert bounds is not None, f"{view.name}: its mart is empty"
        windows[view.name] = bounds
    return windows


def materialize_pass(store: Any, windows: dict[str, tuple[datetime, datetime]]) -> dict[str, float]:
    """Seconds per batch view for one `store.materialize` of its window."""
    seconds = {}
    for name, (start, end) in windows.items():
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints a progress line per view
            began = time.perf_counter()
            store.materialize(start_date=start, end_date=end, feature_views=[name])
            seconds[name] = time.perf_counter() - began
    return seconds


def view_rows(store: Any) -> dict[str, dict[str, int]]:
    """Per batch view: entity rows Feast writes (one per entity: its newest row) and source rows it reads."""
    from feast import FileSource

    from ml.features.materialize import batch_views

    out = {}
    with duckdb.connect() as con:
        for view in batch_views(store):
            source = view.batch_source
            assert isinstance(source, FileSource)
            keys = ", ".join(f'"{c.name}"' for c in view.entity_columns)
            entities, rows = con.execute(
                f"select count(distinct ({keys})), count(*) from read_parquet(?)", [source.path]
            ).fetchall()[0]
            out[view.name] = {"entity_rows": int(entities), "source_rows": int(rows)}
    return out


#: The columns Feast's SQLite store writes (no vector or numeric copies unless configured: they are not here).
FEAST_SQLITE_COLUMNS = ("entity_key", "feature_name", "value", "value_text", "event_ts", "created_ts")


class RawSqliteWriter:
    """The rows Feast wrote, copied once, and written again with plain sqlite3 into tables of the same shape."""

    def __init__(self, store: Any, folder: Path) -> None:
        path = str(store.config.online_store.path)
        self.tables = _sqlite_tables(store)
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.sql: dict[str, str] = {}
        self.target = sqlite3.connect(str(folder / "raw_online.db"), detect_types=sqlite3.PARSE_DECLTYPES)
        # The same types as Feast's connection reads and writes (datetimes through sqlite3's default adapter).
        with sqlite3.connect(path, detect_types=sqlite3.PARSE_DECLTYPES) as source:
            for table in self.tables.values():
                ddls = source.execute("select sql from sqlite_master where tbl_name = ? and sql is not null", [table])
                for (ddl,) in ddls.fetchall():  # the table and its entity_key index
                    self.target.execute(ddl)
                existing = {row[1] for row in source.execute(f'pragma table_info("{table}")').fetchall()}
                columns = [c for c in FEAST_SQLITE_COLUMNS if c in existing]
                self.rows[table] = source.execute(f'select {", ".join(columns)} from "{table}"').fetchall()
                updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("entity_key", "feature_name"))
                self.sql[table] = (
                    f'insert into "{table}" ({", ".join(columns)}) values ({", ".join("?" * len(columns))}) '
                    f"on conflict(entity_key, feature_name) do update set {updates}"
                )
        self.target.commit()

    def entity_rows(self) -> int:
        return sum(len({row[0] for row in rows}) for rows in self.rows.values())

    def values(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def write(self) -> float:
        for table in self.rows:
            self.target.execute(f'delete from "{table}"')
        self.target.commit()
        began = time.perf_counter()
        for table, rows in self.rows.items():
            with self.target:  # one transaction per table, as Feast writes one batch per view
                self.target.executemany(self.sql[table], rows)
        return time.perf_counter() - began


class RawRedisWriter:
    """Every hash Feast wrote (key -> fields), copied once, and written with one pipeline of HSET into database 1."""

    def __init__(self, where: Backend) -> None:
        source = where.redis(0)
        keys = list(source.scan_iter(count=1000))
        pipe = source.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        self.hashes: dict[bytes, dict[bytes, bytes]] = dict(zip(keys, pipe.execute(), strict=True))
        self.target = where.redis(1)

    def values(self) -> int:
        return sum(len(fields) for fields in self.hashes.values())

    def write(self) -> float:
        self.target.flushdb()
        began = time.perf_counter()
        with self.target.pipeline(transaction=False) as pipe:
            for key, fields in self.hashes.items():
                pipe.hset(key, mapping=fields)
            pipe.execute()
        return time.perf_counter() - began


def bench_materialization(store: Any, where: Backend, scratch: Path, repeats: int, profile: bool) -> dict[str, Any]:
    rows = view_rows(store)
    windows = backfill_windows(store)
    entity_rows = sum(v["entity_rows"] for v in rows.values())
    feast_passes: list[dict[str, float]] = []
    raw_writer: RawSqliteWriter | RawRedisWriter | None = None
    raw_times: list[float] = []
    for _ in range(repeats):
        clear_online(store, where)
        feast_passes.append(materialize_pass(store, windows))
        if raw_writer is None:  # the rows Feast just wrote are the ones the raw write repeats
            raw_writer = RawSqliteWriter(store, scratch) if where.name == "sqlite" else RawRedisWriter(where)
        raw_times.append(raw_writer.write())
    assert raw_writer is not None
    checks = _check_written(store, where, rows, raw_writer)
    totals = [sum(p.values()) for p in feast_passes]
    feast_s, raw_s = float(np.median(totals)), float(np.median(raw_times))
    result: dict[str, Any] = {
        "views": {
            name: {**rows[name], "feast_s_median": round(float(np.median([p[name] for p in feast_passes])), 3)}
            for name in rows
        },
        "entity_rows": entity_rows,
        "values_written": raw_writer.values(),
        "repeats": repeats,
        "feast_s": [round(t, 3) for t in totals],
        "raw_s": [round(t, 3) for t in raw_times],
        "feast_rows_per_s": round(entity_rows / feast_s),
        "raw_rows_per_s": round(entity_rows / raw_s),
        "ratio_feast_to_raw": round(raw_s / feast_s, 4),
        "goal": RAW_GOAL,
        "checks": checks,
        "load_avg": load(),
    }
    if where.name == "redis":
        result["skip_dedup"] = skip_dedup_variant(store, where, windows, repeats, entity_rows, raw_s)
    if profile or raw_s / feast_s < RAW_GOAL:
        clear_online(store, where)
        result["profile"] = profile_pass(store, windows)
    return result


def skip_dedup_variant(
    store: Any,
    where: Backend,
    windows: dict[str, tuple[datetime, datetime]],
    repeats: int,
    entity_rows: int,
    raw_s: float,
) -> dict[str, Any]:
    """The same passes with Feast's Redis option `skip_dedup: true` (one pipeline, no read of the stored timestamps
    first): a lever for backfills into an empty store, where there is nothing newer to protect."""
    config = store.config.online_store
    config.skip_dedup = True
    try:
        totals = []
        for _ in range(repeats):
            clear_online(store, where)
            totals.append(sum(materialize_pass(store, windows).values()))
    finally:
        config.skip_dedup = False
    keys = int(where.redis(0).dbsize())
    feast_s = float(np.median(totals))
    return {
        "feast_s": [round(t, 3) for t in totals],
        "feast_rows_per_s": round(entity_rows / feast_s),
        "ratio_feast_to_raw": round(raw_s / feast_s, 4),
        "keys_written": keys,
    }


def _check_written(
    store: Any, where: Backend, rows: dict[str, dict[str, int]], raw: RawSqliteWriter | RawRedisWriter
) -> dict[str, Any]:
    """Feast wrote one row per entity of every view (and the raw copy holds the same), else the rates mean nothing."""
    if isinstance(raw, RawSqliteWriter):
        written = {view: len({r[0] for r in raw.rows[table]}) for view, table in raw.tables.items()}
        expected = {view: rows[view]["entity_rows"] for view in written}
        copied = {t: raw.target.execute(f'select count(*) from "{t}"').fetchall()[0][0] for t in raw.tables.values()}
        assert written == expected, f"Feast wrote {written}, the marts have {expected} entities"
        assert copied == {t: len(r) for t, r in raw.rows.items()}, "the raw copy differs from Feast's rows"
        return {"entities_per_view_match_marts": True, "raw_copy_rows_match": True}
    users = max(v["entity_rows"] for k, v in rows.items() if k.startswith("user"))
    items = max(v["entity_rows"] for k, v in rows.items() if k.startswith("content"))
    keys = len(raw.hashes)
    assert keys == users + items, f"Feast wrote {keys} keys, the marts have {users} users + {items} items"
    assert int(raw.target.dbsize()) == keys, "the raw copy has other keys than Feast's"
    return {"keys_match_marts": True, "raw_copy_keys_match": True, "keys": keys}


_SQLITE_EXECUTE = ("~", 0, "<method 'execute' of 'sqlite3.Connection' objects>")  # a C method's cProfile key


def _phases(store: Any) -> dict[str, tuple[str, int, str]]:
    """Feast's functions for each stage of a materialization, as cProfile keys (file, first line, name)."""
    import redis
    from feast import utils
    from feast.infra.compute_engines.local import nodes
    from feast.infra.key_encoding_utils import serialize_entity_key

    def key(function: Any) -> tuple[str, int, str]:
        code = function.__code__
        return code.co_filename, code.co_firstlineno, code.co_name

    online = type(store._get_provider().online_store)
    return {
        "read source (DuckDB query -> Arrow)": key(nodes.LocalSourceReadNode.execute),
        "filter (window, TTL)": key(nodes.LocalFilterNode.execute),
        "dedup (newest row per entity)": key(nodes.LocalDedupNode.execute),
        "schema validation": key(nodes.LocalValidationNode.execute),
        "convert Arrow -> protobuf rows": key(utils._convert_arrow_to_proto),
        "online_write_batch": key(online.online_write_batch),
        "  of which serialize_entity_key": key(serialize_entity_key),
        "  of which sqlite3 execute (one call per value)": _SQLITE_EXECUTE,
        "  of which redis pipeline round trips": key(redis.client.Pipeline.execute),
    }


def profile_pass(store: Any, windows: dict[str, tuple[datetime, datetime]]) -> dict[str, Any]:
    """cProfile one materialization pass: cumulative seconds per stage, and the functions with the most own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    seconds = materialize_pass(store, windows)
    profiler.disable()
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(seconds.values())
    stages = {name: round(table[k][3], 3) if k in table else 0.0 for name, k in _phases(store).items()}
    top_level = sum(v for name, v in stages.items() if not name.startswith(" "))
    stages["rest (planning, registry, job set-up)"] = round(total - top_level, 3)
    top = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    return {
        "profiled_pass_s": round(total, 3),
        "note": "profiler overhead inflates Python-heavy stages; compare shares, not seconds",
        "stages_cumulative_s": stages,
        "top_own_time": [
            {"function": f"{Path(k[0]).name}:{k[1]}:{k[2]}", "calls": v[1], "own_s": round(v[2], 3)} for k, v in top
        ],
    }


# --- 2. online retrieval ------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request: the same entities for every method."""

    rows: list[dict[str, Any]]  # Feast entity rows with request_at
    stored_rows: list[dict[str, Any]]  # the same without request_at (no on-demand view to feed)
    sqlite_keys: dict[str, list[bytes]]  # per Feast table: serialized entity keys
    redis_keys: list[bytes]
    body: bytes  # the HTTP request


@dataclass
class Plan:
    """What ranker_v1 reads: its stored features and every view a request touches (ODFV sources included)."""

    service: Any
    stored_refs: list[str]
    read_views: dict[str, str]  # view -> join key


def service_plan(store: Any) -> Plan:
    service = store.get_feature_service(SERVICE)
    views = {v.name: v for v in store.list_feature_views()}
    keys = {e.name: e.join_key for e in store.list_entities()}
    read: dict[str, str] = {}
    stored_refs = []
    for projection in service.feature_view_projections:
        if projection.name in views:
            read[projection.name] = keys[views[projection.name].entities[0]]
            stored_refs += [f"{projection.name}:{f.name}" for f in projection.features]
        else:
            odfv = store.get_on_demand_feature_view(projection.name)
            for source in odfv.source_feature_view_projections.values():
                read[source.name] = keys[views[source.name].entities[0]]
    return Plan(service, stored_refs, read)


def make_samples(
    store: Any, settings: Settings, plan: Plan, n_entities: int, count: int, seed: int, features: Any
) -> list[Sample]:
    """Random (user, item) pairs among the entities of the newest feature day, request time = that day's end."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    marts = settings.marts_dir
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        pools = {}
        for key, mart in (("user_id", "fct_user_features_daily"), ("content_id", "fct_content_features_daily")):
            path = f"{marts}/{mart}.parquet"
            pools[key] = [
                r[0]
                for r in con.execute(
                    f"select {key} from read_parquet(?) where event_timestamp = "
                    f"(select max(event_timestamp) from read_parquet(?)) order by 1",
                    [path, path],
                ).fetchall()
            ]
        newest = con.execute(
            f"select max(event_timestamp) from read_parquet('{marts}/fct_user_features_daily.parquet')"
        )
        request_at = newest.fetchall()[0][0].astimezone(UTC)
    rng = np.random.default_rng(seed)
    version = store.config.entity_key_serialization_version
    tables = {view: f"{store.project}_{view}" for view in plan.read_views}

    def proto(key: str, value: str) -> Any:
        return EntityKey(join_keys=[key], entity_values=[Value(string_val=value)])

    samples = []
    for _ in range(count):
        picked = {
            key: list(rng.choice(pool, size=n_entities, replace=len(pool) < n_entities)) for key, pool in pools.items()
        }
        rows = [
            {"user_id": str(u), "content_id": str(c), "request_at": request_at}
            for u, c in zip(picked["user_id"], picked["content_id"], strict=True)
        ]
        distinct = {key: sorted(set(map(str, ids))) for key, ids in picked.items()}
        sqlite_keys = {
            tables[view]: [serialize_entity_key(proto(key, v), version) for v in distinct[key]]
            for view, key in plan.read_views.items()
        }
        redis_keys = [_redis_key(store.project, proto(k, v), version) for k, ids in distinct.items() for v in ids]
        entities = {k: [r[k] for r in rows] for k in ("user_id", "content_id")}
        if "feature_service" in features:  # only the service's on-demand view reads the request time
            entities["request_at"] = [request_at.isoformat() for _ in rows]
        body = {"entities": entities, **features}
        stored_rows = [{k: v for k, v in r.items() if k != "request_at"} for r in rows]
        samples.append(Sample(rows, stored_rows, sqlite_keys, redis_keys, json.dumps(body).encode()))
    return samples


class FeastServer:
    """`feast serve` on a loopback port, in a process group of its own (its worker stops with it:
    `tests.process_group`)."""

    def __init__(self, settings: Settings, port: int, log: Path) -> None:
        from tailor.feature_store import feast_env

        self.port = port
        self.log = log
        env = {**os.environ, **feast_env(settings)}
        self.process = start_group(self.command(port), log, env, cwd=FEATURE_REPO_DIR)
        deadline = time.monotonic() + 120
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"feast serve did not come up; its log:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    @staticmethod
    def command(port: int) -> list[str]:
        return [str(BIN / "feast"), "serve", "-h", "127.0.0.1", "-p", str(port), "--no-access-log"]

    def _healthy(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def post(self, body: bytes) -> tuple[int, bytes]:
        """One request on a kept-alive connection: status and body."""
        for attempt in (1, 2):
            try:
                self.connection.request("POST", "/get-online-features", body, {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server drops the kept-alive connection after an error answer: reconnect once.
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        stop_group(self.process, grace_s=30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_reader(store: Any, where: Backend, views: Sequence[str]) -> Callable[[Sample], Any]:
    """The raw key lookup of a sample's rows in ``views``, in the same store: bytes as stored, nothing decoded."""
    if where.name == "redis":
        client = where.redis(0)

        def redis_lookup(sample: Sample) -> Any:
            # A user's views share one hash, an item's too: the same keys serve every view set.
            pipe = client.pipeline(transaction=False)
            for key in sample.redis_keys:
                pipe.hgetall(key)
            return pipe.execute()

        return redis_lookup
    con = sqlite3.connect(str(store.config.online_store.path), check_same_thread=False)
    tables = [f"{store.project}_{view}" for view in views]
    select = 'select entity_key, feature_name, value, event_ts from "{}" where entity_key in ({})'

    def sqlite_lookup(sample: Sample) -> Any:
        out = {}
        for table in tables:
            keys = sample.sqlite_keys[table]
            out[table] = con.execute(select.format(table, ",".join("?" * len(keys))), keys).fetchall()
        return out

    return sqlite_lookup


def time_interleaved(methods: dict[str, Callable[[Sample], Any]], samples: list[Sample], warmup: int) -> dict[str, Any]:
    """Call every method on every sample, rotating the order call by call; milliseconds after the warm-up."""
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, sample in enumerate(samples):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            began = time.perf_counter_ns()
            methods[name](sample)
            elapsed = (time.perf_counter_ns() - began) / 1e6
            if i >= warmup:
                times[name].append(elapsed)
    return {name: _summary(values) for name, values in times.items()}


def _summary(ms: list[float]) -> dict[str, Any]:
    a = np.asarray(ms)
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "mean_ms": round(float(a.mean()), 3),
        "max_ms": round(float(a.max()), 3),
        # Which timed calls were slowest (index from 0 after the warm-up): spikes at regular intervals have a cause.
        "slowest_calls": {int(i): round(float(a[i]), 1) for i in np.argsort(a)[::-1][:3]},
    }


def bench_online(
    store: Any, settings: Settings, where: Backend, scratch: Path, args: argparse.Namespace
) -> dict[str, Any]:
    plan = service_plan(store)
    stored_views = [v for v in plan.read_views if any(r.startswith(f"{v}:") for r in plan.stored_refs)]

    def service_call(sample: Sample) -> Any:
        return store.get_online_features(features=plan.service, entity_rows=sample.rows).to_dict()

    def stored_call(sample: Sample) -> Any:
        return store.get_online_features(features=plan.stored_refs, entity_rows=sample.stored_rows).to_dict()

    result: dict[str, Any] = {
        "stored_features": len(plan.stored_refs),
        "views_read": {SERVICE: sorted(plan.read_views), "stored": sorted(stored_views)},
    }
    server = None if args.skip_serve else FeastServer(settings, _free_port(), scratch / f"feast-serve-{where.name}.log")
    try:
        http = _http_features(server, store, settings, plan, args.seed) if server else None
        if http:
            result["http_serves"] = http["note"]
        for n, iterations in ((1, args.iterations_1), (100, args.iterations_100)):
            warmup = max(10, iterations // 10)
            methods: dict[str, Callable[[Sample], Any]] = {
                f"feast_inprocess_{SERVICE}": service_call,
                f"raw_{SERVICE}": raw_reader(store, where, list(plan.read_views)),
                "feast_inprocess_stored": stored_call,
                "raw_stored": raw_reader(store, where, stored_views),
            }
            pairs = {
                f"inprocess_{SERVICE}": (f"feast_inprocess_{SERVICE}", f"raw_{SERVICE}"),
                "inprocess_stored": ("feast_inprocess_stored", "raw_stored"),
            }
            if server and http:
                methods["feast_http"] = _http_call(server)
                pairs["http"] = ("feast_http", f"raw_{SERVICE}" if http["service"] else "raw_stored")
            body = http["body"] if http else {"feature_service": SERVICE}
            samples = make_samples(store, settings, plan, n, warmup + iterations, args.seed + n, body)
            checks = _check_online(methods, samples[-1], where)
            began_load = load()
            timings = time_interleaved(methods, samples, warmup)
            result[f"{n}_entities"] = {
                "timings": timings,
                "ratio_feast_to_raw": {
                    label: {q: round(timings[f][f"{q}_ms"] / timings[r][f"{q}_ms"], 1) for q in ("p50", "p99")}
                    | {"feast": f, "raw": r}
                    for label, (f, r) in pairs.items()
                },
                "checks": checks,
                "load_avg_before_after": [began_load, load()],
            }
    finally:
        if server:
            server.stop()
    return result


def _http_call(server: FeastServer) -> Callable[[Sample], Any]:
    def call(sample: Sample) -> Any:
        status, body = server.post(sample.body)
        if status != 200:
            raise RuntimeError(f"feast serve answered {status}: {body[:500]!r}")
        return json.loads(body)

    return call


def _http_features(server: FeastServer, store: Any, settings: Settings, plan: Plan, seed: int) -> dict[str, Any]:
    """The feature service over HTTP if the server can compute it; else its stored features (and why)."""
    probe = make_samples(store, settings, plan, 1, 1, seed, {"feature_service": SERVICE})[0]
    status, body = server.post(probe.body)
    if status == 200:
        return {"body": {"feature_service": SERVICE}, "service": True, "note": f"feature service {SERVICE}"}
    return {
        "body": {"features": plan.stored_refs},
        "service": False,
        "note": f"{SERVICE}'s stored features only: the service itself failed over HTTP with {status} "
        f"{body.decode(errors='replace')[:300]} (request_at arrives as a JSON string, not a datetime)",
    }


def _check_online(methods: dict[str, Callable[[Sample], Any]], sample: Sample, where: Backend) -> dict[str, Any]:
    """Every method finds every entity of the sample, and HTTP returns the in-process values; else the timings
    would compare misses."""
    n = len(sample.rows)
    served = methods[f"feast_inprocess_{SERVICE}"](sample)
    for feature in ("clicks_28d", "category", "content_clicks_7d", "content_age_hours"):
        missing = sum(v is None for v in served[feature])
        assert missing == 0, f"{feature}: {missing} of {n} rows are null in the online store"
    raw = methods[f"raw_{SERVICE}"](sample)
    if where.name == "redis":
        assert all(raw), "a raw HGETALL found no hash"
    else:
        for table, rows in raw.items():
            assert {r[0] for r in rows} == set(sample.sqlite_keys[table]), f"{table}: raw SELECT missed keys"
    checks: dict[str, Any] = {"entities_found": n}
    if "feast_http" in methods:
        answer = methods["feast_http"](sample)
        names = answer["metadata"]["feature_names"]
        for feature in ("clicks_28d", "category", "content_ctr_smoothed_7d"):
            values = answer["results"][names.index(feature)]["values"]
            assert values == served[feature], f"HTTP {feature} {values[:3]} != in-process {served[feature][:3]}"
        checks["http_equals_inprocess"] = True
    return checks


# --- 3. training set ------------------------------------------------------------------------------------------------


def bench_training(settings: Settings) -> dict[str, Any]:
    """Run write_training_set in a child process (SQLite registry; the offline store is DuckDB either way)."""
    env = {k: v for k, v in os.environ.items() if k != "FEAST_FS_YAML_FILE_PATH"}
    began_load = load()
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--training-child", str(settings.home)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"training-set child failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["child_wall_s"] = round(time.perf_counter() - began, 1)
    result["load_avg_before_after"] = [began_load, load()]
    return result


def training_child(home: Path) -> None:
    """In the child: open the store, read the spine alone once, then build and write the full training set."""
    began = time.perf_counter()
    from ml.features import open_store, write_training_set
    from ml.features.training import TrainingWindow, iter_spine

    settings = get_settings(home)
    store = open_store(settings)
    opened = time.perf_counter()
    spine_rows = sum(len(chunk) for chunk in iter_spine(settings))
    spine_s = time.perf_counter() - opened
    start = time.perf_counter()
    # Every impression of the history, as this benchmark has always measured: the pipeline's default window (the
    # newest 21 days, busy days sampled) would measure a different, smaller set.
    summary = write_training_set(settings, store, window=TrainingWindow(days=100_000, max_impressions_per_day=None))
    build_s = time.perf_counter() - start
    columns = len(pq.read_schema(summary.path))
    # The day in progress (the newest impression before 23:00 UTC) waits (ml.data_days.complete_days): every other
    # impression is a row. Counted from the mart, so the rows can be checked against it.
    with duckdb.connect() as con:
        window_impressions, every = con.execute(
            f"""select count(*) filter (where cast(occurred_at as date) in (select unnest(?::date[]))), count(*)
                from read_parquet('{settings.marts_dir}/fct_impressions.parquet')""",
            [list(summary.window_days)],
        ).fetchone() or (0, 0)
        waiting = every - window_impressions
    out = {
        "rows": summary.rows,
        "window_impressions": int(window_impressions),
        "impressions_waiting": int(waiting),
        "window_days": len(summary.window_days),
        "positives": summary.positives,
        "features": summary.features,
        "columns": columns,
        "rows_without_user_features": summary.rows_without_user_features,
        "import_and_open_s": round(opened - began, 2),
        "spine_read_alone_s": round(spine_s, 2),
        "write_training_set_s": round(build_s, 2),
        "rows_per_s": round(summary.rows / build_s),
        "file_mb": round(summary.path.stat().st_size / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "spine_rows": spine_rows,
    }
    print(json.dumps(out))


# --- main -----------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from ml.features import open_store
    from ml.features.repo import apply_feature_repo

    home = args.home or scratch / "home"
    out: dict[str, Any] = {
        "benchmark": "feature_store",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/bench_feature_store.py", *sys.argv[1:]]),
        "machine": machine(),
        "load_avg_at_start": load(),
    }
    out["history"] = build_history(Path(home), args.impressions, args.seed)
    print(json.dumps({"history": out["history"]}), flush=True)
    settings = get_settings(home)
    out["backends"] = {}
    for name in ("sqlite", "redis"):
        if name == "redis" and args.skip_redis:
            continue
        with backend(name, scratch) as where:
            apply_feature_repo(settings, force=True)
            store = open_store(settings, where.yaml_path)
            section: dict[str, Any] = {}
            section["materialization"] = bench_materialization(store, where, scratch, args.repeats, args.profile)
            print(json.dumps({name: {"materialization": section["materialization"]}}), flush=True)
            if not args.skip_online:
                section["online"] = bench_online(open_store(settings, where.yaml_path), settings, where, scratch, args)
                print(json.dumps({name: {"online": section["online"]}}), flush=True)
            out["backends"][name] = section
    if not args.skip_training:
        out["training_set"] = bench_training(settings)
        print(json.dumps({"training_set": out["training_set"]}), flush=True)
    out["load_avg_at_end"] = load()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impressions", type=int, default=1_000_000, help="at least this many in the history")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--home", type=Path, default=None, help="Tailor home to build once and reuse (default: temp)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--skip-redis", action="store_true", help="SQLite only (no redis-server needed)")
    parser.add_argument("--skip-serve", action="store_true", help="no `feast serve` (in-process and raw only)")
    parser.add_argument("--skip-online", action="store_true", help="no retrieval latency")
    parser.add_argument("--skip-training", action="store_true", help="no training-set build")
    parser.add_argument("--iterations-1", type=int, default=2000, help="timed requests of 1 entity row per method")
    parser.add_argument("--iterations-100", type=int, default=300, help="timed requests of 100 entity rows")
    parser.add_argument("--repeats", type=int, default=3, help="materialization passes per store (median)")
    parser.add_argument("--profile", action="store_true", help="cProfile a materialization pass even above goal")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "feature_store.json")
    parser.add_argument("--training-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workdir is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.workdir.mkdir(parents=True, exist_ok=True)
    disable_telemetry()
    if args.training_child:
        training_child(args.training_child)
        return
    if args.home:
        args.home = args.home.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="tailor-bench-fs-", dir=args.workdir))
    try:
        out = run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

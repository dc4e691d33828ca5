"""Load the newest feature values from the published marts into the online store, after each warehouse build.

The feature marts are daily snapshots with a row for every entity on every day up to the newest one, so what the
online store needs is each entity's row of the newest day. The first run backfills: it materializes the whole
history (Feast keeps the latest row per entity). Later runs are incremental from where Feast's registry says the
last run ended, moved back by ``OVERLAP``: dbt recomputes its last few days on every run (late events), and a run
that only corrected the newest day must still rewrite it. `materialize_incremental` cannot do that (it starts at
the previous end, or at the wall clock minus the TTL on a first run, which misses a history in the past).

Nothing changed, nothing to do: after each materialization the content digests of the marts it read and the
apply marker's time are saved (``<home>/feast/.materialized-<yaml>.json``); `online_store_plan` compares them with
the marts as they are now without importing Feast, and the caller skips the run when they match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ml.features.digests import DIGEST_VERSION, file_digest
from ml.features.repo import apply_marker, store_files
from ml.features.sources import parquet_path, parquet_scan, view_parquet
from tailor.feature_store import feature_store_yaml
from tailor.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

#: Must cover the days dbt recomputes on every run (var lookback_days = 3 in dbt_project.yml), with room to spare.
OVERLAP = timedelta(days=7)


@dataclass(frozen=True)
class ViewMaterialization:
    view: str
    mode: str  # "backfill" (first run) or "incremental"
    start: datetime
    end: datetime
    entities: int  # entities with a row in [start, end]: each gets its newest row written


@dataclass(frozen=True)
class OnlineStorePlan:
    """Whether the online store already holds what the marts say; ``version`` identifies the inputs."""

    up_to_date: bool
    reason: str
    version: str
    sources: tuple[str, ...]


#: A view tagged with this is written to the online store by the asset it names (e.g. cached recommendations,
#: written by ml/recommendations right after it computes them), so materialization leaves it alone.
WRITTEN_BY_TAG = "written_by"


def batch_views(store: FeatureStore) -> list[FeatureView]:
    """Views fed from the Parquet marts (a FileSource on DuckDB, a SparkSource over a table folder on Spark); views
    with a stream (push) source are fed by `tailor stream` instead, and views tagged `WRITTEN_BY_TAG` by the asset
    that computes them."""
    return sorted(
        (
            v
            for v in store.list_feature_views()
            if v.stream_source is None and parquet_path(v.batch_source) is not None and WRITTEN_BY_TAG not in v.tags
        ),
        key=lambda v: v.name,
    )


def source_bounds(view: FeatureView) -> tuple[datetime, datetime] | None:
    """Oldest and newest event_timestamp in the view's Parquet source (UTC), or None when it is empty."""
    path, column = view_parquet(view)
    scan, parameter = parquet_scan(path)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        row = con.execute(f'select min("{column}"), max("{column}") from {scan}', [parameter]).fetchall()
    low, high = row[0]
    return None if low is None else (_utc(low), _utc(high))


def plan(view: FeatureView, bounds: tuple[datetime, datetime]) -> tuple[str, datetime, datetime]:
    """The window to materialize: everything on a first run, else from the last end minus OVERLAP."""
    oldest, newest = bounds
    last_end = view.most_recent_end_time
    if last_end is None:
        return "backfill", oldest, newest
    start = min(_utc(last_end), newest) - OVERLAP
    return "incremental", max(start, oldest), newest


def online_store_plan(settings: Settings) -> OnlineStorePlan:
    """Compare the marts the last materialization read, and the registry's apply, with what they are now.

    No Feast: reads the saved state, digests the marts it names (a scan each) and looks at the files the
    configuration names. Not up to date when there is no state, a mart or the apply changed, or a store file is
    gone (a person deleted it: the next apply recreates it empty).
    """
    state_path = _state_path(settings)
    try:
        state = json.loads(state_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return OnlineStorePlan(False, "never materialized", "", ())
    sources = tuple(state.get("sources", ()))
    registry, sqlite_file = store_files(settings)
    if not registry.exists() or (sqlite_file is not None and not sqlite_file.exists()):
        return OnlineStorePlan(False, "the registry or the online store file is gone", "", sources)
    if not all(Path(s).exists() for s in sources):
        return OnlineStorePlan(False, "a mart it reads is gone", "", sources)
    version = inputs_version(settings, sources)
    if state.get("version") != version:
        return OnlineStorePlan(False, "the marts or the feature definitions changed", version, sources)
    return OnlineStorePlan(True, "up to date", version, sources)


def inputs_version(settings: Settings, sources: tuple[str, ...]) -> str:
    """A digest of the sources' rows, the digest method and the last apply (its marker's time)."""
    marker = apply_marker(settings)
    applied = marker.stat().st_mtime_ns if marker.exists() else 0
    parts = [DIGEST_VERSION, str(applied), *(f"{s}={file_digest(Path(s))}" for s in sorted(sources))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def materialize_features(store: FeatureStore, settings: Settings | None = None) -> list[ViewMaterialization]:
    """Materialize every batch view (see module docstring). Views whose mart is empty are skipped.

    With ``settings``, what was read is saved for `online_store_plan` (after every view succeeded).
    """
    views = batch_views(store)
    sources = tuple(sorted({view_parquet(v)[0] for v in views}))
    version = inputs_version(settings, sources) if settings is not None else ""
    done: list[ViewMaterialization] = []
    for view in views:
        bounds = source_bounds(view)
        if bounds is None:
            continue
        mode, start, end = plan(view, bounds)
        if mode == "incremental":
            _let_redis_rewrite(store, view, start, end)
        store.materialize(start_date=start, end_date=end, feature_views=[view.name])
        done.append(ViewMaterialization(view.name, mode, start, end, _entities_in(view, start, end)))
    if settings is not None:
        path = _state_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": version, "sources": list(sources)}))
    return done


def last_materialized_version(settings: Settings) -> str | None:
    """The inputs' version the last recorded materialization read (see online_store_plan), or None."""
    try:
        version = json.loads(_state_path(settings).read_text()).get("version")
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return str(version) if version else None


def _state_path(settings: Settings) -> Path:
    return settings.feast_dir / f".materialized-{feature_store_yaml(settings.engine).stem}.json"


def _let_redis_rewrite(store: FeatureStore, view: FeatureView, start: datetime, end: datetime) -> None:
    """Make a Redis online store take the window's rows again, also those whose event time it already holds.

    Feast's Redis store skips a row whose event time is not newer than the one it keeps for the entity and view
    (`RedisOnlineStore.online_write_batch`; feast-dev/feast#2795, closed as won't fix). dbt recomputes the newest
    days on every run, so a day that late events corrected kept its old values online while SQLite showed the new
    ones (found when a test delivered late events for the newest feature day). Before an incremental run this
    deletes the view's stored time (the hash field ``_ts:<view>``) of every entity with a row in the window; the
    features' values and the other views' fields of the same key (the stream's recent activity) stay, and the
    materialization then writes each entity's newest row. Other online stores replace rows as they are written.
    """
    config = store.config.online_store
    if getattr(config, "type", None) != "redis":
        return
    from feast.infra.online_stores.helpers import _redis_key
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    names = [column.name for column in view.entity_columns]
    path, column = view_parquet(view)
    scan, parameter = parquet_scan(path)
    keys = ", ".join(f'"{name}"' for name in names)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        sql = f'select distinct {keys} from {scan} where "{column}" between ? and ?'
        entities = con.execute(sql, [parameter, start, end]).fetchall()
    values = [
        python_values_to_proto_values([row[i] for row in entities], c.dtype.to_value_type())
        for i, c in enumerate(view.entity_columns)
    ]
    version = store.config.entity_key_serialization_version
    client = RedisOnlineStore()._get_client(config)
    field = f"_ts:{view.name}"
    with client.pipeline(transaction=False) as pipe:
        for row in range(len(entities)):
            entity = EntityKey(join_keys=names, entity_values=[v[row] for v in values])
            pipe.hdel(_redis_key(store.project, entity, entity_key_serialization_version=version), field)
            if row % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()


def _entities_in(view: FeatureView, start: datetime, end: datetime) -> int:
    keys = ", ".join(f'"{column.name}"' for column in view.entity_columns)
    path, column = view_parquet(view)
    scan, parameter = parquet_scan(path)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        sql = f'select count(distinct ({keys})) from {scan} where "{column}" between ? and ?'
        return int(con.execute(sql, [parameter, start, end]).fetchall()[0][0])


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

"""Load the newest feature values from the published marts into the online store, after each warehouse build.

The feature marts are daily snapshots with a row for every entity on every day up to the newest one, so what the
online store needs is each entity's row of the newest day. The first run backfills: it materializes the whole
history (Feast keeps the latest row per entity). Later runs are incremental from where Feast's registry says the
last run ended, moved back by ``OVERLAP``: dbt recomputes its last few days on every run (late events), and a run
that only corrected the newest day must still rewrite it. `materialize_incremental` cannot do that (it starts at
the previous end, or at the wall clock minus the TTL on a first run, which misses a history in the past).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
from feast import FeatureStore, FeatureView, FileSource

#: Must cover the days dbt recomputes on every run (var lookback_days = 3 in dbt_project.yml), with room to spare.
OVERLAP = timedelta(days=7)


@dataclass(frozen=True)
class ViewMaterialization:
    view: str
    mode: str  # "backfill" (first run) or "incremental"
    start: datetime
    end: datetime
    entities: int  # entities with a row in [start, end]: each gets its newest row written


def batch_views(store: FeatureStore) -> list[FeatureView]:
    """Views fed from the Parquet marts; views with a stream (push) source are fed by `tailor stream` instead."""
    return sorted(
        (v for v in store.list_feature_views() if v.stream_source is None and isinstance(v.batch_source, FileSource)),
        key=lambda v: v.name,
    )


def source_bounds(view: FeatureView) -> tuple[datetime, datetime] | None:
    """Oldest and newest event_timestamp in the view's Parquet source (UTC), or None when it is empty."""
    source = view.batch_source
    assert isinstance(source, FileSource)
    column = source.timestamp_field
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        row = con.execute(f'select min("{column}"), max("{column}") from read_parquet(?)', [source.path]).fetchall()
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


def materialize_features(store: FeatureStore) -> list[ViewMaterialization]:
    """Materialize every batch view (see module docstring). Views whose mart is empty are skipped."""
    done: list[ViewMaterialization] = []
    for view in batch_views(store):
        bounds = source_bounds(view)
        if bounds is None:
            continue
        mode, start, end = plan(view, bounds)
        store.materialize(start_date=start, end_date=end, feature_views=[view.name])
        done.append(ViewMaterialization(view.name, mode, start, end, _entities_in(view, start, end)))
    return done


def _entities_in(view: FeatureView, start: datetime, end: datetime) -> int:
    source = view.batch_source
    assert isinstance(source, FileSource)
    keys = ", ".join(f'"{column.name}"' for column in view.entity_columns)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        sql = f'select count(distinct ({keys})) from read_parquet(?) where "{source.timestamp_field}" between ? and ?'
        return int(con.execute(sql, [source.path, start, end]).fetchall()[0][0])


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

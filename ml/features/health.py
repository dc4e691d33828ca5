"""Is the online store serving what the marts say? Freshness and online/offline consistency, per batch view.

Both read the online store through Feast (what a model would get) and the offline truth straight from the
published Parquet with DuckDB (not through Feast), so a bug in either path shows up as a difference.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd
from feast import FeatureStore, FeatureView

from ml.features.materialize import batch_views, source_bounds
from ml.features.sources import parquet_scan, view_parquet


@dataclass(frozen=True)
class Freshness:
    view: str
    offline_newest: datetime | None  # newest event_timestamp in the mart
    online_newest: datetime | None  # newest event_timestamp among sampled entities online

    @property
    def fresh(self) -> bool:
        return self.offline_newest is None or (
            self.online_newest is not None and self.online_newest >= self.offline_newest
        )


@dataclass(frozen=True)
class Consistency:
    view: str
    entities_checked: int
    mismatches: list[str] = field(default_factory=list)  # "<entity>: <feature> online=... offline=..."

    @property
    def consistent(self) -> bool:
        return not self.mismatches


def _sample(view: FeatureView, size: int, at: datetime | None = None) -> pd.DataFrame:
    """Each sampled entity's newest row in the mart (a fixed pseudo-random sample: the same ids every run).

    ``at`` limits the sample to entities with a row at that timestamp (the newest day).
    """
    path, timestamp_field = view_parquet(view)
    scan, parameter = parquet_scan(path)
    keys = [column.name for column in view.entity_columns]
    columns = ", ".join(f'"{name}"' for name in [*keys, *(f.name for f in view.features)])
    key_list = ", ".join(f'"{k}"' for k in keys)
    ts = f'"{timestamp_field}"'
    at_filter = f"where {ts} = ?" if at is not None else ""
    sql = f"""
        with newest as (
            select {columns}, {ts} as event_timestamp
            from {scan}
            qualify row_number() over (partition by {key_list} order by {ts} desc) = 1
        )
        select * from newest {at_filter.replace(ts, "event_timestamp")}
        order by hash({key_list}), {key_list}
        limit {int(size)}
    """
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        params: list[Any] = [parameter] + ([at] if at is not None else [])
        return con.execute(sql, params).df()


def _online(store: FeatureStore, view: FeatureView, rows: pd.DataFrame) -> pd.DataFrame:
    keys = [column.name for column in view.entity_columns]
    entity_rows = [{str(k): v for k, v in row.items()} for row in rows[keys].to_dict("records")]
    refs = [f"{view.name}:{f.name}" for f in view.features]
    return store.get_online_features(features=refs, entity_rows=entity_rows).to_df(include_event_timestamps=True)


def freshness(store: FeatureStore, sample_size: int = 200) -> list[Freshness]:
    """Per batch view: does the online store hold rows as new as the newest ones in the mart?"""
    results: list[Freshness] = []
    for view in batch_views(store):
        bounds = source_bounds(view)
        if bounds is None:
            results.append(Freshness(view.name, None, None))
            continue
        newest = bounds[1]
        rows = _sample(view, sample_size, at=newest)
        online = _online(store, view, rows)
        stamps = online[[c for c in online.columns if c.endswith("__ts")]].max(axis=1)
        seconds = stamps.max()
        online_newest = None if pd.isna(seconds) or seconds <= 0 else datetime.fromtimestamp(int(seconds), tz=UTC)
        results.append(Freshness(view.name, newest, online_newest))
    return results


def consistency(store: FeatureStore, sample_size: int = 50) -> list[Consistency]:
    """Per batch view: for a sample of entities, do the online values equal their newest row in the mart?"""
    results: list[Consistency] = []
    for view in batch_views(store):
        offline = _sample(view, sample_size)
        if offline.empty:
            results.append(Consistency(view.name, 0))
            continue
        online = _online(store, view, offline)
        keys = [column.name for column in view.entity_columns]
        mismatches: list[str] = []
        for (_, want), (_, got) in zip(offline.iterrows(), online.iterrows(), strict=True):
            entity = "/".join(str(want[k]) for k in keys)
            for feature in (f.name for f in view.features):
                if not _same(got[feature], want[feature]):
                    mismatches.append(f"{entity}: {feature} online={got[feature]!r} offline={want[feature]!r}")
        results.append(Consistency(view.name, len(offline), mismatches))
    return results


def _same(online: Any, offline: Any) -> bool:
    """Equal as a model would see them: nulls equal nulls, floats to 1e-9, lists element by element."""
    if _is_list(online) or _is_list(offline):
        a = [] if _missing(online) else list(online)
        b = [] if _missing(offline) else list(offline)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if _missing(online) or _missing(offline):
        return _missing(online) and _missing(offline)
    if isinstance(offline, datetime) or isinstance(online, datetime):
        return _as_utc(online) == _as_utc(offline)
    if isinstance(offline, numbers.Real) and isinstance(online, numbers.Real):
        return math.isclose(float(online), float(offline), rel_tol=1e-9, abs_tol=1e-12)
    return bool(online == offline)


def _as_utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple) or (hasattr(value, "__len__") and hasattr(value, "dtype"))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays
        return False

"""The ranking training set: every impression with its click label, joined to features as of the impression time.

The spine comes from the published ``fct_impressions`` mart; Feast's point-in-time join attaches, for each
impression, the newest feature row whose ``event_timestamp`` is at or before the impression (and within the view's
TTL). Feature rows are as of the end of a day, so an impression sees the previous day's values, never the outcome
of itself or of anything later. A user or item without feature history by then gets nulls.

The full set is built in chunks of impressions and streamed to one Parquet file, so memory stays bounded however
long the history is (each row's join is independent of the others).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureService, FeatureStore
from feast.types import from_feast_to_pyarrow_type

from tailor.settings import Settings

TRAINING_SET_FILE = "ranking_training_set.parquet"
#: Impressions per get_historical_features call when writing the full set (bounded memory, few calls).
CHUNK_ROWS = 250_000
_SPINE_SCHEMA = pa.schema(
    [
        ("impression_id", pa.string()),
        ("user_id", pa.string()),
        ("content_id", pa.string()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("request_at", pa.timestamp("us", tz="UTC")),  # the request time the on-demand features use
        ("position", pa.int32()),
        ("clicked", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class TrainingSetSummary:
    """What a build wrote, for logs and asset metadata."""

    path: Path
    rows: int
    positives: int
    features: int
    first_impression: datetime | None
    last_impression: datetime | None
    rows_without_user_features: int


def iter_spine(
    settings: Settings, chunk_rows: int = CHUNK_ROWS, start: datetime | None = None, end: datetime | None = None
) -> Iterator[pd.DataFrame]:
    """Impressions from the published mart, oldest first, in chunks: keys, impression time (UTC), position, label.

    Args:
        settings: The Tailor home whose ``marts/fct_impressions.parquet`` is read.
        chunk_rows: Rows per chunk.
        start: Keep impressions at or after this time (naive = UTC).
        end: Keep impressions before this time (naive = UTC).
    """
    path = settings.marts_dir / "fct_impressions.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build the warehouse first (`tailor run` or `dbt build`)")
    where, params = ["true"], []
    for bound, op in ((start, ">="), (end, "<")):
        if bound is not None:
            where.append(f"occurred_at {op} ?")
            params.append(_naive_utc(bound))
    # The mart's timestamps are UTC without a zone: say so here, so no library takes them for local time.
    sql = f"""
        select impression_id, user_id, content_id,
            timezone('UTC', occurred_at) as event_timestamp, timezone('UTC', occurred_at) as request_at,
            position, is_clicked as clicked
        from read_parquet(?)
        where {" and ".join(where)}
        order by occurred_at, impression_id
    """
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        batches = con.sql(sql, params=[str(path), *params]).to_arrow_reader(chunk_rows)
        for batch in batches:
            yield pa.Table.from_batches([batch]).cast(_SPINE_SCHEMA).to_pandas()


def impressions_spine(settings: Settings, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """The whole spine as one frame (see iter_spine); for notebooks and tests on small histories."""
    chunks = list(iter_spine(settings, start=start, end=end))
    return pd.concat(chunks, ignore_index=True) if chunks else _SPINE_SCHEMA.empty_table().to_pandas()


def build_training_set(store: FeatureStore, spine: pd.DataFrame, service: str = "ranker_v1") -> pd.DataFrame:
    """The spine with the service's features as of each row's ``event_timestamp``, in the spine's order.

    Inputs the on-demand features read but the service does not list (e.g. the affinity lists) are dropped.
    """
    missing = [c for c in ("user_id", "content_id", "event_timestamp", "request_at") if c not in spine.columns]
    if missing:
        raise ValueError(f"the spine lacks {missing}: build it with impressions_spine() or add those columns")
    feature_service = store.get_feature_service(service)
    order = spine.assign(_row=range(len(spine)))
    joined = store.get_historical_features(entity_df=order, features=feature_service).to_df()
    joined = joined.sort_values("_row").reset_index(drop=True)
    return joined[[*spine.columns, *_feature_types(feature_service)]]


def write_training_set(
    settings: Settings, store: FeatureStore, service: str = "ranker_v1", chunk_rows: int = CHUNK_ROWS
) -> TrainingSetSummary:
    """Build the training set for every published impression and write it to ``<home>/training/``."""
    feature_service = store.get_feature_service(service)
    types = _feature_types(feature_service)
    schema = pa.schema([*_SPINE_SCHEMA, *(pa.field(name, dtype) for name, dtype in types.items())])
    settings.training_dir.mkdir(parents=True, exist_ok=True)
    path = settings.training_dir / TRAINING_SET_FILE
    partial = path.with_suffix(".parquet.partial")
    rows = positives = without_user = 0
    first: datetime | None = None
    last: datetime | None = None
    with pq.ParquetWriter(partial, schema) as writer:
        for spine in iter_spine(settings, chunk_rows):
            frame = build_training_set(store, spine, service)
            writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
            rows += len(frame)
            positives += int(frame["clicked"].sum())
            if "days_since_last_visit" in frame:
                without_user += int(frame["days_since_last_visit"].isna().sum())
            first = first or _first(spine["event_timestamp"])
            last = _last(spine["event_timestamp"])
        if rows == 0:
            writer.write_table(schema.empty_table())
    partial.replace(path)  # readers never see half a file
    return TrainingSetSummary(path, rows, positives, len(types), first, last, without_user)


def _feature_types(service: FeatureService) -> dict[str, Any]:
    """The service's features in order, with their Arrow types."""
    return {f.name: from_feast_to_pyarrow_type(f.dtype) for p in service.feature_view_projections for f in p.features}


def _first(times: pd.Series) -> datetime | None:
    return times.min().to_pydatetime() if len(times) else None


def _last(times: pd.Series) -> datetime | None:
    return times.max().to_pydatetime() if len(times) else None


def _naive_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)

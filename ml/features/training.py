"""The ranking training set: recent impressions with their click labels, joined to features as of the impression time.

The spine comes from the published ``fct_impressions`` mart; Feast's point-in-time join attaches, for each
impression, the newest feature row whose ``event_timestamp`` is at or before the impression (and within the view's
TTL). Feature rows are as of the end of a day, so an impression sees the previous day's values, never the outcome
of itself or of anything later. A user or item without feature history by then gets nulls.

What is built, and when (docs/decisions.md, "Training data: a window, built by the day"):
- The window: the newest ``settings.training_window_days`` complete UTC days with impressions (the day in progress
  waits until it holds an impression from 23:00 UTC: `ml.data_days.complete_days`), each day at most
  ``settings.training_max_impressions_per_day`` impressions, sampled by whole request with a fixed hash (so a
  request is in or out whatever else arrives; see `iter_spine`).
- A day's rows depend on nothing but that day's impressions and the feature rows the join can reach from that day
  (``event_timestamp`` from the day minus the longest TTL through the day). Each day gets a key from the content
  digests of exactly those inputs (`ml.features.digests`). A run builds through Feast only the days whose key is
  new or changed (late events, a click that relabels an impression, feature days dbt recomputed), copies every
  other day from the previous file, and drops the days that left the window; the result equals a full rebuild row
  for row. When no key changed, nothing is read beyond the digests and Feast is not even imported.
- The file is written beside the old one and renamed over it, then the keys are saved (``<file>.state.json``): a
  run killed in between leaves keys older than the file, which at worst rebuilds a day for nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.data_days import COMPLETE_FROM_HOUR, complete_days, newest_days
from ml.features.digests import DIGEST_VERSION, daily_digests
from ml.features.repo import definitions_fingerprint
from ml.features.sources import view_parquet
from ml.history import history_end
from tailor.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

TRAINING_SET_FILE = "ranking_training_set.parquet"
STATE_SUFFIX = ".state.json"
#: Bumped when the way rows are built changes: every day is rebuilt once.
FORMAT_VERSION = 1
#: Impressions per get_historical_features call (bounded memory, few calls: each call has a fixed cost).
CHUNK_ROWS = 250_000
#: The spine columns whose values make a training row (plus request_id, which decides the sample).
IMPRESSION_COLUMNS = ("impression_id", "request_id", "user_id", "content_id", "occurred_at", "position", "is_clicked")
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
class TrainingWindow:
    """Which impressions the training set holds: the newest ``days`` UTC days, each sampled to about
    ``max_impressions_per_day`` impressions (None: every impression)."""

    days: int
    max_impressions_per_day: int | None = None

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"the training window must hold at least 1 day, got {self.days}")
        if self.max_impressions_per_day is not None and self.max_impressions_per_day < 1:
            raise ValueError(f"max_impressions_per_day must be at least 1 or None, got {self.max_impressions_per_day}")

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingWindow:
        return cls(settings.training_window_days, settings.training_max_impressions_per_day)


@dataclass(frozen=True)
class FeatureSource:
    """A Parquet file the service's views read, and how far back from an impression's day a join can reach into it
    (whole days; None: no TTL, every earlier day)."""

    path: str
    timestamp_field: str
    lookback_days: int | None


@dataclass(frozen=True)
class TrainingSetSummary:
    """What the training set holds after a run, and what the run did, for logs and asset metadata."""

    path: Path
    rows: int
    positives: int
    features: int
    first_impression: datetime | None
    last_impression: datetime | None
    rows_without_user_features: int
    action: str = "built"  # "built" (every day), "updated" (some days), "up to date" (nothing to do)
    days_built: tuple[date, ...] = ()
    days_kept: int = 0
    days_dropped: int = 0
    rows_built: int = 0
    window: TrainingWindow | None = None
    window_days: tuple[date, ...] = ()
    #: Identifies the content: equal versions, equal files (a Dagster data version).
    version: str = ""
    #: Seconds spent building days through Feast, and copying kept days from the previous file.
    build_s: float = 0.0
    copy_s: float = 0.0


@dataclass(frozen=True)
class TrainingSetPlan:
    """What a run must do. ``keys`` is empty when the inputs could not be keyed without Feast (a first build)."""

    window: TrainingWindow
    days: tuple[date, ...]  # window days that hold impressions, oldest first
    build: tuple[date, ...]
    keep: tuple[date, ...]
    drop: tuple[date, ...]
    reason: str
    keys: dict[date, str] = field(default_factory=dict)
    #: False when the plan could not key the days without Feast (a first build): build is then every day.
    keyed: bool = True
    #: True when the file is written from nothing (first build, full rebuild, changed definitions): then it is
    #: written even when the window holds no complete day yet, so the state exists and later steps read zero rows.
    from_scratch: bool = False
    #: The day in progress, when the history has one: its impressions wait until it is complete (`_window_days`).
    waiting: date | None = None

    @property
    def up_to_date(self) -> bool:
        return self.keyed and not self.from_scratch and not self.build and not self.drop

    @property
    def waiting_note(self) -> str:
        """``; 2026-02-02 waits: ...`` when a day in progress holds impressions the set leaves out (a trial read
        "no impression or feature changed" after landing that day's impressions), else empty."""
        if self.waiting is None:
            return ""
        return (
            f"; the impressions of {self.waiting} wait: the newest day of data joins once it holds an impression "
            f"from {COMPLETE_FROM_HOUR}:00 UTC or impressions of a later day arrive (it counts as complete then, "
            "whatever the clock says)"
        )

    @property
    def version(self) -> str:
        """A digest of every day's key: the same whenever the file's content is the same."""
        return _sha(sorted((str(d), k) for d, k in self.keys.items()))


def training_set_path(settings: Settings) -> Path:
    """``<home>/training/ranking_training_set.parquet``."""
    return settings.training_dir / TRAINING_SET_FILE


def _state_path(settings: Settings) -> Path:
    return training_set_path(settings).with_name(TRAINING_SET_FILE + STATE_SUFFIX)


def iter_spine(
    settings: Settings,
    chunk_rows: int = CHUNK_ROWS,
    start: datetime | None = None,
    end: datetime | None = None,
    max_per_day: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Impressions from the published mart, oldest first, in chunks: keys, impression time (UTC), position, label.

    Args:
        settings: The Tailor home whose ``marts/fct_impressions.parquet`` is read.
        chunk_rows: Rows per chunk (the last one may be smaller).
        start: Keep impressions at or after this time (naive = UTC).
        end: Keep impressions before this time (naive = UTC).
        max_per_day: Sample each UTC day to about this many impressions: a day with n > max_per_day impressions
            keeps the requests whose ``md5(request_id)``, read as a little-endian 128-bit number over 2**128, is
            below max_per_day / n (every impression of a kept request, none of the others). n counts the
            selected rows, so give whole days for whole-day counts. None keeps every impression.
    """
    path = settings.marts_dir / "fct_impressions.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build the warehouse first (`tailor run` or `dbt build`)")
    where, params = ["true"], []
    for bound, op in ((start, ">="), (end, "<")):
        if bound is not None:
            where.append(f"occurred_at {op} ?")
            params.append(_naive_utc(bound))
    sample = "true"
    if max_per_day is not None:
        # md5 is the same in every DuckDB version and in Python's hashlib: the sample is reproducible anywhere.
        cap = int(max_per_day)
        sample = f"day_rows <= {cap} or md5_number(request_id)::double < {cap} / day_rows * 2.0 ^ 128"
    # The mart's timestamps are UTC without a zone: say so here, so no library takes them for local time.
    sql = f"""
        with selected as (
            select *, count(*) over (partition by cast(occurred_at as date)) as day_rows
            from read_parquet(?)
            where {" and ".join(where)}
        )
        select impression_id, user_id, content_id,
            timezone('UTC', occurred_at) as event_timestamp, timezone('UTC', occurred_at) as request_at,
            position, is_clicked as clicked
        from selected
        where {sample}
        order by occurred_at, impression_id
    """
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        batches = con.sql(sql, params=[str(path), *params]).to_arrow_reader(chunk_rows)
        pending: list[pa.RecordBatch] = []
        held = 0
        # DuckDB hands out batches of at most ~123k rows whatever is asked: gather them into chunks of chunk_rows.
        for batch in batches:
            pending.append(batch)
            held += batch.num_rows
            if held >= chunk_rows:
                yield pa.Table.from_batches(pending).cast(_SPINE_SCHEMA).to_pandas()
                pending, held = [], 0
        if held:
            yield pa.Table.from_batches(pending).cast(_SPINE_SCHEMA).to_pandas()


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


def service_sources(store: FeatureStore, service: str = "ranker_v1") -> list[FeatureSource]:
    """The Parquet files (DuckDB) or table folders (Spark) the service's stored views read, each with the longest
    reach back of the views on it.

    The on-demand views read stored views (already listed) and the request: they add no source.

    Raises:
        ValueError: a view reads something other than Parquet by path (its changes could not be seen).
    """
    lookback: dict[tuple[str, str], int | None] = {}
    for projection in store.get_feature_service(service).feature_view_projections:
        views = [v for v in store.list_feature_views() if v.name == projection.name]
        if not views:
            continue  # an on-demand view
        view = views[0]
        key = view_parquet(view, " (the training set only tracks Parquet)")
        days = math.ceil(view.ttl / timedelta(days=1)) if view.ttl else None
        known = lookback.get(key, 0)
        lookback[key] = None if days is None or known is None else max(known, days)
    return [FeatureSource(path, field_, days) for (path, field_), days in sorted(lookback.items())]


def plan_training_set(
    settings: Settings,
    service: str = "ranker_v1",
    window: TrainingWindow | None = None,
    sources: Sequence[FeatureSource] | None = None,
    full: bool = False,
) -> TrainingSetPlan:
    """Which days of the window to build, keep and drop (no Feast: it only reads the marts' digests).

    Args:
        settings: the Tailor home.
        service: the feature service whose features the rows carry.
        window: default: the settings' window.
        sources: the service's Parquet sources (see service_sources); default: those the last build recorded.
        full: rebuild every day of the window whatever changed.

    Raises:
        FileNotFoundError: a mart the training set reads is missing.
    """
    window = window or TrainingWindow.from_settings(settings)
    impressions = daily_digests(
        settings.marts_dir / "fct_impressions.parquet", "cast(occurred_at as date)", IMPRESSION_COLUMNS
    )
    days = _window_days(impressions, window, history_end(settings.marts_dir))
    # Only the newest day can be in progress, and a complete newest day is always in the window.
    newest_day = max(impressions, default=None)
    waiting = newest_day if newest_day is not None and newest_day not in days else None
    state = _read_state(settings)
    header = _header(settings, service)
    previous = state if state and state.get("header") == header and training_set_path(settings).exists() else None
    if sources is None:
        recorded = (previous or {}).get("sources")
        sources = [FeatureSource(**s) for s in recorded] if recorded is not None else None
    if sources is None:
        reason = "first build" if state is None else "feature definitions, Feast, DuckDB or the home changed"
        return TrainingSetPlan(
            window, days, build=days, keep=(), drop=(), reason=reason, keyed=False, from_scratch=True, waiting=waiting
        )
    keys = day_keys(days, impressions, sources, window)
    if previous is None or full or [asdict(s) for s in sources] != previous.get("sources"):
        reason = "full rebuild asked" if full else "first build" if state is None else "definitions changed"
        return TrainingSetPlan(
            window, days, build=days, keep=(), drop=(), reason=reason, keys=keys, from_scratch=True, waiting=waiting
        )
    old = {date.fromisoformat(d): v["key"] for d, v in previous["days"].items()}
    build = tuple(d for d in days if old.get(d) != keys[d])
    keep = tuple(d for d in days if old.get(d) == keys[d])
    drop = tuple(sorted(set(old) - set(days)))
    # With a day in progress its impressions did change: the reason says which did not (a re-check trial).
    same = (
        "no impression or feature changed" if waiting is None else "no impression of a complete day or feature changed"
    )
    reason = same if not build and not drop else "new or changed impressions or features"
    return TrainingSetPlan(window, days, build=build, keep=keep, drop=drop, reason=reason, keys=keys, waiting=waiting)


def training_set_summary(settings: Settings, plan: TrainingSetPlan) -> TrainingSetSummary:
    """The summary of the file as the last build left it (for a plan that is up to date: nothing to run)."""
    state = _read_state(settings)
    if state is None:
        raise FileNotFoundError(f"{_state_path(settings)} does not exist: build the training set first")
    return _summary(settings, state, plan, "up to date", (), 0)


def write_training_set(
    settings: Settings,
    store: FeatureStore,
    service: str = "ranker_v1",
    chunk_rows: int = CHUNK_ROWS,
    window: TrainingWindow | None = None,
    full: bool = False,
) -> TrainingSetSummary:
    """Bring ``<home>/training/ranking_training_set.parquet`` up to date with the marts (see the module docstring).

    Args:
        settings: the Tailor home (its training window, unless ``window`` is given).
        store: the feature store (its registry must hold ``service``).
        service: the feature service whose features the rows carry.
        chunk_rows: impressions per `get_historical_features` call.
        window: which impressions; default: the settings' window.
        full: rebuild every day of the window.

    Raises:
        FileNotFoundError: the impressions mart or a feature source is missing (build the warehouse first).
    """
    sources = service_sources(store, service)
    plan = plan_training_set(settings, service, window, sources, full=full)
    if plan.up_to_date:
        return training_set_summary(settings, plan)
    feature_service = store.get_feature_service(service)
    types = _feature_types(feature_service)
    schema = pa.schema([*_SPINE_SCHEMA, *(pa.field(name, dtype) for name, dtype in types.items())])
    path = training_set_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    stats: dict[date, dict[str, Any]] = {}
    rows_built = 0
    seconds = {True: 0.0, False: 0.0}  # building, copying
    with pq.ParquetWriter(partial, schema) as writer:
        for days, build in _runs(plan):
            began = time.perf_counter()
            start, end = _midnight(days[0]), _midnight(days[-1] + timedelta(days=1))
            if build:
                for spine in iter_spine(settings, chunk_rows, start, end, plan.window.max_impressions_per_day):
                    table = pa.Table.from_pandas(
                        build_training_set(store, spine, service), schema=schema, preserve_index=False
                    )
                    writer.write_table(table)
                    _count(stats, table)
                    rows_built += table.num_rows
            else:
                for table in _copy_days(path, schema, start, end):
                    writer.write_table(table)
                    _count(stats, table)
            seconds[build] += time.perf_counter() - began
        if not stats:
            writer.write_table(schema.empty_table())
    partial.replace(path)  # readers never see half a file
    state = {
        "header": _header(settings, service),
        "sources": [asdict(s) for s in sources],
        "window": asdict(plan.window),
        "features": len(types),
        "days": {str(d): {"key": plan.keys[d], **stats.get(d, _empty_day())} for d in plan.days},
    }
    _write_state(settings, state)
    action = "updated" if plan.keep or plan.drop else "built"  # built: every day of the window, from scratch
    summary = _summary(settings, state, plan, action, plan.build, rows_built)
    return replace(summary, build_s=round(seconds[True], 2), copy_s=round(seconds[False], 2))


# --- keys and state ----------------------------------------------------------------------------------------------


def _window_days(impressions: dict[date, str], window: TrainingWindow, newest: datetime | None) -> tuple[date, ...]:
    """The newest ``window.days`` complete days that hold impressions (`ml.data_days`: a gap in the history, e.g.
    one live event months after the rest, does not leave the window with that day alone). The day in progress
    (``newest``, the newest impression, before 23:00 UTC) waits: its clicks may not all be in, and its features
    have no row yet (the marts end on the newest complete day)."""
    return tuple(newest_days(complete_days(impressions, newest), window.days))


def day_keys(
    days: Sequence[date], impressions: dict[date, str], sources: Sequence[FeatureSource], window: TrainingWindow
) -> dict[date, str]:
    """A key per impression day that changes exactly when an input of that day's training rows may have changed.

    A row for an impression at t in day D is made of the impression itself and, per view, the newest feature row
    with ``t - ttl <= event_timestamp <= t``: so of the impressions of D and the feature rows whose
    ``event_timestamp`` falls on the UTC days ``D - lookback_days .. D``. The key digests those (and the sample
    size, which decides which impressions of D are kept), nothing else.

    Args:
        days: the impression days to key.
        impressions: ``daily_digests`` of fct_impressions by UTC day (must hold every day of ``days``).
        sources: the feature sources with their reach (see service_sources).
        window: its ``max_impressions_per_day`` enters every key.

    Returns:
        ``{day: sha256 hex}`` for each day of ``days``.
    """
    per_source = [daily_digests(Path(s.path), f'cast("{s.timestamp_field}" as date)') for s in sources]
    keys: dict[date, str] = {}
    for day in days:
        reached = []
        for source, digests in zip(sources, per_source, strict=True):
            low = day - timedelta(days=source.lookback_days) if source.lookback_days is not None else date.min
            reached.append(sorted((str(d), h) for d, h in digests.items() if low <= d <= day))
        keys[day] = _sha([impressions[day], window.max_impressions_per_day, reached])
    return keys


def _header(settings: Settings, service: str) -> dict[str, Any]:
    """What every day's rows depend on besides their own inputs: a change rebuilds every day."""
    return {
        "format": FORMAT_VERSION,
        "digests": DIGEST_VERSION,
        "service": service,
        "definitions": definitions_fingerprint(),
        "home": str(settings.home),
    }


def _read_state(settings: Settings) -> dict[str, Any] | None:
    path = _state_path(settings)
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # unreadable state: rebuild
    return state


def _write_state(settings: Settings, state: dict[str, Any]) -> None:
    path = _state_path(settings)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=1, default=str))
    partial.replace(path)


def _summary(
    settings: Settings,
    state: dict[str, Any],
    plan: TrainingSetPlan,
    action: str,
    built: tuple[date, ...],
    rows_built: int,
) -> TrainingSetSummary:
    days = state["days"]
    firsts = [v["first"] for v in days.values() if v["first"]]
    lasts = [v["last"] for v in days.values() if v["last"]]
    return TrainingSetSummary(
        path=training_set_path(settings),
        rows=sum(v["rows"] for v in days.values()),
        positives=sum(v["positives"] for v in days.values()),
        features=int(state["features"]),
        first_impression=datetime.fromisoformat(min(firsts)) if firsts else None,
        last_impression=datetime.fromisoformat(max(lasts)) if lasts else None,
        rows_without_user_features=sum(v["without_user_features"] for v in days.values()),
        action=action,
        days_built=built,
        days_kept=len(plan.keep),
        days_dropped=len(plan.drop),
        rows_built=rows_built,
        window=plan.window,
        window_days=plan.days,
        version=plan.version,
    )


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()


# --- writing -----------------------------------------------------------------------------------------------------


def _runs(plan: TrainingSetPlan) -> Iterator[tuple[list[date], bool]]:
    """The window's days in order, grouped into runs of consecutive days to build or to copy."""
    build = set(plan.build)
    run: list[date] = []
    for day in plan.days:
        if run and ((day in build) != (run[-1] in build) or day != run[-1] + timedelta(days=1)):
            yield run, run[-1] in build
            run = []
        run.append(day)
    if run:
        yield run, run[-1] in build


def _copy_days(path: Path, schema: pa.Schema, start: datetime, end: datetime) -> Iterator[pa.Table]:
    """Rows of the previous file with ``start <= event_timestamp < end``, in file order, reading only the row
    groups whose statistics overlap the range."""
    file = pq.ParquetFile(path)
    column = file.schema_arrow.get_field_index("event_timestamp")
    low, high = pa.scalar(start, pa.timestamp("us", tz="UTC")), pa.scalar(end, pa.timestamp("us", tz="UTC"))
    groups = []
    for i in range(file.num_row_groups):
        stats = file.metadata.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max or (stats.max >= start and stats.min < end):
            groups.append(i)
    if not groups:
        return
    for batch in file.iter_batches(row_groups=groups, batch_size=CHUNK_ROWS):
        times = batch.column("event_timestamp")
        keep = pc.and_(pc.greater_equal(times, low), pc.less(times, high))
        table = pa.Table.from_batches([batch]).filter(keep)
        if table.num_rows:
            yield table.cast(schema)


def _count(stats: dict[date, dict[str, Any]], table: pa.Table) -> None:
    """Add a written table's rows to the per-day counts kept in the state."""
    frame = table.select(
        [
            "event_timestamp",
            "clicked",
            *(["days_since_last_visit"] if "days_since_last_visit" in table.column_names else []),
        ]
    ).to_pandas()
    frame["day"] = frame["event_timestamp"].dt.tz_convert("UTC").dt.date
    for day, rows in frame.groupby("day"):
        entry = stats.setdefault(day, _empty_day())
        entry["rows"] += len(rows)
        entry["positives"] += int(rows["clicked"].sum())
        if "days_since_last_visit" in rows:
            entry["without_user_features"] += int(rows["days_since_last_visit"].isna().sum())
        first, last = rows["event_timestamp"].min().isoformat(), rows["event_timestamp"].max().isoformat()
        entry["first"] = min(entry["first"], first) if entry["first"] else first
        entry["last"] = max(entry["last"], last) if entry["last"] else last


def _empty_day() -> dict[str, Any]:
    return {"rows": 0, "positives": 0, "without_user_features": 0, "first": None, "last": None}


def _feature_types(service: FeatureService) -> dict[str, Any]:
    """The service's features in order, with their Arrow types."""
    from feast.types import from_feast_to_pyarrow_type

    return {f.name: from_feast_to_pyarrow_type(f.dtype) for p in service.feature_view_projections for f in p.features}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _naive_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)

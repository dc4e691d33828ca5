"""The ground truth: the model behind the events, its parameters, and every planted fault.

Written under ``_truth/`` (ingestion skips folders starting with ``_``); only evaluation code reads it. It
holds what a recommender or an experiment analysis is trying to recover: per-user tastes, per-item quality,
the exact click probability of every impression, each session's conversion probability, each experiment's
true effect, and the exact counts of duplicates, late events and malformed rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulator.batch import EVENT_TYPES
from simulator.behaviour import DayActivity
from simulator.closed_loop import HOLDOUT_SOURCES, PAGE_KINDS
from simulator.config import MALFORMED_KINDS
from simulator.faults import DUPLICATE, LATE, FaultLog
from simulator.formatting import DAY_MS
from simulator.serving import CachedPages, Serving
from simulator.truth_document import continued_document, truth_document
from simulator.world import World
from simulator.writer import content_ids, event_ids, fixed_strings, request_ids, user_ids

_TS = pa.timestamp("ms", tz="UTC")


@dataclass
class TruthRecorder:
    """Collects the truth while the run goes, then writes it (tables stream day by day)."""

    world: World
    folder: Path
    counts_by_type: np.ndarray = field(default_factory=lambda: np.zeros(len(EVENT_TYPES), dtype=np.int64))
    tallies: np.ndarray | None = None
    logs: list[FaultLog] = field(default_factory=list)
    exposed: np.ndarray | None = None
    exposures: np.ndarray | None = None
    sessions: int = 0
    requests: int = 0
    writers: dict[str, pq.ParquetWriter] = field(default_factory=dict)
    continued_from: int = 0  # first day of a continued run (0: the original run)
    changes: dict[str, Any] = field(default_factory=dict)
    serving: Serving | None = None

    @property
    def continued(self) -> bool:
        return self.continued_from > 0

    @property
    def segment(self) -> str:
        """Date of the first day of a continued run: the suffix of its truth tables."""
        return (self.world.config.start_date + timedelta(days=self.continued_from)).isoformat()

    def table_path(self, name: str) -> Path:
        """Where a streamed truth table goes: ``_truth/<name>.parquet``, or for a continued run
        ``_truth/continued/<name>-<first date>.parquet``."""
        if not self.continued:
            return self.folder / f"{name}.parquet"
        return self.folder / "continued" / f"{name}-{self.segment}.parquet"

    def start(self, serving: Serving | None = None) -> None:
        """Write the static tables (users, content) before the first day (a continued run rewrites them:
        the catalog has grown and profiles have moved on)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.serving = serving
        n_exp = len(self.world.config.experiments) + (serving is not None)
        self.exposed = np.zeros((n_exp, len(self.world.users)), dtype=bool)
        self.exposures = np.zeros(n_exp, dtype=np.int64)
        if self.continued:
            (self.folder / "continued").mkdir(exist_ok=True)
        pq.write_table(users_table(self.world), self.folder / "users.parquet", compression="zstd")
        pq.write_table(content_table(self.world), self.folder / "content.parquet", compression="zstd")

    def add_day(self, activity: DayActivity, log: FaultLog) -> None:
        """Record one day's counts, tallies and exposures (cheap; call in order, day by day)."""
        clean = activity.events
        self.counts_by_type += np.bincount(clean.etype, minlength=len(EVENT_TYPES))
        self.tallies = activity.tallies if self.tallies is None else self.tallies + activity.tallies
        self.logs.append(log)
        self.sessions += len(activity.sessions["session"])
        self.requests += int(activity.sessions["requests"].sum())
        assert self.exposed is not None and self.exposures is not None
        is_exposure = clean.experiment >= 0
        self.exposed[clean.experiment[is_exposure], clean.user[is_exposure]] = True
        self.exposures += np.bincount(clean.experiment[is_exposure], minlength=len(self.exposures))

    def stream_day(self, activity: DayActivity, requests: dict[str, np.ndarray] | None = None) -> None:
        """Append one day to the impressions, sessions, pool (and closed-loop requests) tables (the costly part;
        may run in a worker thread, but one day at a time and in day order)."""
        served = self.serving.pages if self.serving else None
        if activity.impressions:
            table = impressions_table(self.world, activity.impressions)
            if self.continued:
                table = _with_serving_columns(table, activity.impressions, served)
            self._stream("impressions", table)
        self._stream("sessions", sessions_table(activity.sessions))
        self._stream("pool", pool_table(self.world, activity.pool))
        if requests is not None:
            self._stream("requests", requests_table(self.world, requests, served))

    def finish(self, events_written: int, files: dict[str, list[str]]) -> dict[str, Any]:
        """Close the streamed tables, write the faults table and truth.json; return the truth document."""
        for writer in self.writers.values():
            writer.close()
        log = FaultLog.concat(self.logs) if self.logs else None
        if log is not None:
            pq.write_table(faults_table(self.world, log), self.table_path("faults"), compression="zstd")
        if self.continued:
            previous = json.loads((self.folder / "truth.json").read_text())
            doc = continued_document(self, previous, log, events_written, files)
        else:
            doc = truth_document(self, log, events_written, files)
        text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
        (self.folder / "truth.json").write_text(text)
        return doc

    def _stream(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.table_path(name), table.schema, compression="zstd")
        self.writers[name].write_table(table)


def users_table(world: World) -> pa.Table:
    """Latent and observed attributes of every user, with each experiment's arm."""
    c, u = world.config, world.users
    index = np.arange(len(u))
    columns: dict[str, Any] = {
        "user_id": fixed_strings(user_ids(index)),
        "signup_at": pa.array(u.signup_ms, type=_TS),
        "country": _names(world.countries, u.country),
        "plan": _names(world.plans, u.plan),
        "final_country": _names(world.countries, u.final_country),
        "final_plan": _names(world.plans, u.final_plan),
        "activity": u.activity,
    }
    for k, name in enumerate(c.categories):
        columns[f"taste_{name}"] = u.taste[:, k]
    for e, spec in enumerate(c.experiments):
        columns[f"variant_{spec.experiment_id}"] = _names(spec.variants, world.arms[e])
    return pa.table(columns)


def content_table(world: World) -> pa.Table:
    """Every item: true category, the label it was published with, format, publish time, quality."""
    c, cat = world.config, world.catalog
    return pa.table(
        {
            "content_id": fixed_strings(content_ids(np.arange(len(cat)))),
            "category": _names(c.categories, cat.category),
            "label_at_publish": _names(c.categories, cat.label),
            "format": _names(world.formats, cat.format),
            "published_at": pa.array(cat.published_ms, type=_TS),
            "quality": cat.quality,
            "policy_quality_estimate": cat.quality_estimate,
        }
    )


def impressions_table(world: World, imp: dict[str, np.ndarray]) -> pa.Table:
    """Each impression with its exact click probability and its parts (examine, attract, multiplier)."""
    seed = world.config.seed
    return pa.table(
        {
            "event_id": fixed_strings(event_ids(imp["num"], seed)),
            "request_id": fixed_strings(request_ids(imp["request"], seed)),
            "user_id": fixed_strings(user_ids(imp["user"])),
            "content_id": fixed_strings(content_ids(imp["content"])),
            "position": pa.array(imp["position"].astype(np.int16)),
            "surface": _names(world.config.surfaces, imp["surface"]),
            "occurred_at": pa.array(imp["occurred_ms"], type=_TS),
            "pool_day": pa.array(imp["pool_day_ms"], type=_TS).cast(pa.date32()),
            # float64: these are the exact probabilities the clicks were drawn from.
            "examine": _f64(imp["examine"]),
            "attract": _f64(imp["attract"]),
            "attract_without_experiments": _f64(imp["attract_without_experiments"]),
            "experiment_multiplier": _f64(imp["experiment_multiplier"]),
            "p_click": _f64(imp["p_click"]),
            "clicked": pa.array(imp["clicked"].astype(bool)),
        }
    )


def _with_serving_columns(table: pa.Table, imp: dict[str, np.ndarray], pages: CachedPages | None) -> pa.Table:
    """A continued run's impressions also say what served them: policy, model_version, propensity (null for
    the logging policy's slates), as logged on the events."""
    policies = pages.policies if pages else ()
    versions = pages.model_versions if pages else ()
    propensity = imp["propensity"]
    return (
        table.append_column("policy", _optional_names(policies, imp["policy"]))
        .append_column("model_version", _optional_names(versions, imp["model_version"]))
        .append_column("propensity", pa.array(propensity, mask=np.isnan(propensity), type=pa.float64()))
    )


def requests_table(world: World, req: dict[str, np.ndarray], pages: CachedPages | None) -> pa.Table:
    """The closed loop, one row per request of a continued day: what was served and the true expected clicks
    of the served page and of the holdout, oracle, popularity, random and logging pages on the same request."""
    c = world.config
    columns: dict[str, Any] = {
        "request_id": fixed_strings(request_ids(req["request"], c.seed)),
        "session_id": pa.array(req["session"].astype(np.int64)),
        "user_id": fixed_strings(user_ids(req["user"])),
        "surface": _names(c.surfaces, req["surface"]),
        "occurred_at": pa.array(req["occurred_ms"], type=_TS),
        "served_by": _names(["logging", "cached"], req["served"].astype(np.int64)),
        "page_policy": _optional_names(pages.policies if pages else (), req["page_policy"]),
        "variant": pa.array([v or None for v in req["variant"]], type=pa.string()),
        "after_exposure": pa.array(req["after_exposure"].astype(bool)),
        "experiment_multiplier": _f64(req["experiment_multiplier"]),
        "impressions": pa.array(req["impressions"].astype(np.int16)),
        "clicks": pa.array(req["clicks"].astype(np.int32)),
    }
    for kind in PAGE_KINDS:
        columns[f"expected_clicks_{kind}"] = _f64(req[f"expected_clicks_{kind}"])
    columns["holdout_source"] = _names(HOLDOUT_SOURCES, req["holdout_source"])
    columns["holdout_slots"] = pa.array(req["holdout_slots"].astype(np.int16))
    return pa.table(columns)


def _optional_names(names: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Codes as strings, null where the code is -1."""
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    if not names:
        return pa.nulls(len(codes), type=pa.string())
    values = pa.array(list(names), type=pa.string()).take(pa.array(np.where(missing, 0, codes)))
    return pc.if_else(pa.array(missing), pa.scalar(None, type=pa.string()), values)


def pool_table(world: World, pool: dict[str, np.ndarray]) -> pa.Table:
    """Each day's candidate pool: the logged policy's score and P(item at position 1) = softmax(score / T)."""
    top = world.config.policy_pool_top
    return pa.table(
        {
            "day": pa.array(pool["day_ms"], type=_TS).cast(pa.date32()),
            "content_id": fixed_strings(content_ids(pool["content"])),
            "pool_rank": pa.array(pool["pool_rank"].astype(np.int16)),
            "explore": pa.array(pool["pool_rank"] >= top),
            "score": _f64(pool["score"]),
            "propensity_first": _f64(pool["propensity_first"]),
        }
    )


def sessions_table(sessions: dict[str, np.ndarray]) -> pa.Table:
    """Each session with its engagement and exact conversion probability."""
    columns: dict[str, Any] = {
        "session_id": pa.array(sessions["session"].astype(np.int64)),
        "user_id": fixed_strings(user_ids(sessions["user"])),
        "started_at": pa.array(sessions["started_ms"], type=_TS),
        "ended_at": pa.array(sessions["ended_ms"], type=_TS),
        "requests": pa.array(sessions["requests"].astype(np.int32)),
        "clicks": pa.array(sessions["clicks"].astype(np.int32)),
        # Explicit dtypes: a day without sessions must still match the schema of the file.
        "dwell_seconds": _f64(sessions["dwell_seconds"]),
        "p_conversion": _f64(sessions["p_conversion"]),
        "p_conversion_without_experiments": _f64(sessions["p_conversion_without_experiments"]),
        "converted": pa.array(sessions["converted"].astype(bool)),
    }
    for name, values in sessions.items():
        if name.startswith("exposed_"):
            columns[name] = pa.array(values.astype(bool))
    return pa.table(columns)


def _f64(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.float64))


def _names(names: tuple[str, ...] | list[str], codes: np.ndarray) -> pa.Array:
    """Codes as a plain string column (numpy string arrays would pull in pandas)."""
    return pa.array(list(names), type=pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def faults_table(world: World, log: FaultLog) -> pa.Table:
    """Every planted fault: the event_id it concerns, the kind, the copied event (malformed), the times."""
    names = {DUPLICATE: "duplicate", LATE: "late", **{i + 1: k for i, k in enumerate(MALFORMED_KINDS)}}
    seed = world.config.seed
    delivery = (log.received_ms // DAY_MS) * DAY_MS
    return pa.table(
        {
            "event_id": fixed_strings(event_ids(log.num, seed)),
            "fault": _names([names.get(i, "") for i in range(max(names) + 1)], log.code),
            "base_event_id": fixed_strings(event_ids(log.base_num, seed)),
            "occurred_at": pa.array(log.occurred_ms, type=_TS),
            "received_at": pa.array(log.received_ms, type=_TS),
            "delivery_date": pa.array(delivery, type=_TS).cast(pa.date32()),
        }
    )

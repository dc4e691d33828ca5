"""Real-pipeline faults: receive delays, late arrivals, duplicate deliveries and malformed rows.

Faults never damage the clean event stream: a duplicate repeats an event (same event_id and payload), a late
event is a clean event received one to three days later, and a malformed row is a corrupted *copy* of a clean
event under a fresh event_id. So "clean events" = the rows a perfect pipeline keeps, exactly, and the truth
records every planted fault.

Malformed kinds (the warehouse uses the same names for its quarantine reasons):

- ``invalid_json``: the line is cut short (no closing brace).
- ``missing_field``: event_id, user_id, occurred_at or a field the event type requires is absent.
- ``bad_type``: a field of the wrong JSON type (position "top", dwell_seconds "abc", value "12,50",
  variant 1, user_id as a number).
- ``unknown_event_type``: event_type "scroll".
- ``bad_timestamp``: occurred_at "yesterday" or "2026-13-45".
- ``future_timestamp``: occurred_at a year after received_at (well-formed, but impossible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.batch import CLICK, CONVERSION, EXPOSURE, IMPRESSION, VIEW, EventBatch
from simulator.config import MALFORMED_KINDS, PARQUET_IMPOSSIBLE_KINDS, SimulationConfig
from simulator.formatting import DAY_MS, PAD, Field, literal_table, unsigned

INVALID_JSON, MISSING_FIELD, BAD_TYPE, UNKNOWN_EVENT_TYPE, BAD_TIMESTAMP, FUTURE_TIMESTAMP = range(1, 7)
#: Codes of the fault log beyond the malformed kinds.
DUPLICATE, LATE = 10, 11
FUTURE_SHIFT_MS = 365 * DAY_MS

# Fields a missing_field row may lack, per event type (the envelope first, then what the type requires).
_ENVELOPE = ("event_id", "user_id", "occurred_at")
MISSING_OPTIONS: dict[int, tuple[str, ...]] = {
    IMPRESSION: (*_ENVELOPE, "content_id", "position", "surface", "request_id"),
    CLICK: (*_ENVELOPE, "content_id", "request_id"),
    VIEW: (*_ENVELOPE, "content_id", "dwell_seconds"),
    CONVERSION: (*_ENVELOPE, "value", "currency"),
    EXPOSURE: (*_ENVELOPE, "experiment_id", "variant"),
}
# Wrong-typed replacements per event type: (field, JSON literal); None means "the user id as a number".
BAD_TYPE_OPTIONS: dict[int, tuple[tuple[str, bytes | None], ...]] = {
    IMPRESSION: (("position", b'"top"'), ("user_id", None)),
    CLICK: (("user_id", None),),
    VIEW: (("dwell_seconds", b'"abc"'), ("user_id", None)),
    CONVERSION: (("value", b'"12,50"'), ("user_id", None)),
    EXPOSURE: (("variant", b"1"), ("user_id", None)),
}
BAD_TIMESTAMPS: tuple[bytes, ...] = (b'"yesterday"', b'"2026-13-45"')
UNKNOWN_EVENT_TYPE_LITERAL = b'"scroll"'


@dataclass
class FaultLog:
    """One row per planted fault: which event, which fault, and (for malformed rows) which event it copies."""

    num: np.ndarray
    code: np.ndarray
    base_num: np.ndarray
    occurred_ms: np.ndarray
    received_ms: np.ndarray

    @classmethod
    def concat(cls, logs: list[FaultLog]) -> FaultLog:
        return cls(*(np.concatenate([getattr(g, f) for g in logs]) for f in cls.__dataclass_fields__))


def kind_weights(config: SimulationConfig) -> np.ndarray:
    """Probability of each malformed kind; kinds a Parquet file cannot hold get zero there."""
    w = np.asarray(config.malformed_kind_weights, dtype=np.float64).copy()
    if config.format == "parquet":
        for i, kind in enumerate(MALFORMED_KINDS):
            if kind in PARQUET_IMPOSSIBLE_KINDS:
                w[i] = 0
    total = w.sum()
    return w / total if total > 0 else w


def apply_faults(
    clean: EventBatch, config: SimulationConfig, next_num: int, rng: np.random.Generator
) -> tuple[EventBatch, FaultLog, int]:
    """Receive times, late arrivals, duplicates and malformed copies for one day's clean events.

    Args:
        clean: The day's clean events (received_ms is overwritten).
        config: Rates and windows.
        next_num: First unused event counter, for the malformed rows' fresh ids.
        rng: The day's fault stream.

    Returns:
        All rows to deliver (clean, duplicates, malformed), the fault log, and the next unused counter.
    """
    n = len(clean)
    occurred = clean.occurred_ms
    # Every draw is made for every row, so the streams do not depend on which rows end up faulty.
    delay = 50 + rng.exponential(config.receive_delay_mean_seconds * 1000, size=n)
    late_draw, late_u = rng.random(n), rng.random(n)
    dup_draw, dup_exact, dup_u = rng.random(n), rng.random(n), rng.random(n)
    bad_draw = rng.random(n)

    # Late: uniform(late_min, late_max) after occurred_at, conditioned on a later UTC day (a later file).
    received = occurred + delay.astype(np.int64)
    late = late_draw < config.late_rate
    to_midnight = (occurred // DAY_MS + 1) * DAY_MS - occurred
    low = np.maximum(int(config.late_min_hours * 3_600_000), to_midnight + 1)
    high = int(config.late_max_hours * 3_600_000)
    received = np.where(late, occurred + low + (late_u * (high - low)).astype(np.int64), received)
    clean.received_ms = received

    # Duplicates: the same row again; half at once (same received_at), half re-sent up to a day later.
    dup = np.flatnonzero(dup_draw < config.duplicate_rate)
    copies = clean.take(dup)
    resend = dup_exact[dup] >= config.duplicate_exact_share
    extra = 1_000 + (dup_u[dup] * config.duplicate_max_delay_hours * 3_600_000).astype(np.int64)
    copies.received_ms = copies.received_ms + np.where(resend, extra, 0)

    # Malformed: corrupted copies under fresh ids, received with the event they copy.
    bad = np.flatnonzero(bad_draw < config.malformed_rate)
    broken = clean.take(bad)
    broken.num = np.arange(next_num, next_num + len(bad), dtype=np.int64)
    kinds = rng.choice(len(MALFORMED_KINDS), size=len(bad), p=kind_weights(config)) if len(bad) else bad
    broken.fault = (kinds + 1).astype(np.int8)
    broken.fault_arg = rng.integers(0, 1 << 30, size=len(bad), dtype=np.int32)
    broken.fault_cut = rng.uniform(0.3, 0.95, size=len(bad)).astype(np.float32)
    future = broken.fault == FUTURE_TIMESTAMP
    broken.occurred_ms = np.where(future, broken.received_ms + FUTURE_SHIFT_MS, broken.occurred_ms)

    late_idx = np.flatnonzero(late)
    log = FaultLog(
        num=np.concatenate([copies.num, clean.num[late_idx], broken.num]),
        code=np.concatenate(
            [np.full(len(dup), DUPLICATE), np.full(len(late_idx), LATE), broken.fault.astype(np.int64)]
        ).astype(np.int8),
        base_num=np.concatenate([copies.num, clean.num[late_idx], clean.num[bad]]),
        occurred_ms=np.concatenate([copies.occurred_ms, occurred[late_idx], broken.occurred_ms]),
        received_ms=np.concatenate([copies.received_ms, received[late_idx], broken.received_ms]),
    )
    return EventBatch.concat([clean, copies, broken]), log, next_num + len(bad)


def corrupt(etype: int, rows: EventBatch, fields: dict[str, Field]) -> None:
    """Damage the fields of the malformed rows among ``rows`` (all of type ``etype``), in place.

    ``invalid_json`` is applied later, to whole lines (see ``truncate_lines``); ``future_timestamp`` was
    already applied to occurred_ms when the row was planted.
    """
    fault, arg = rows.fault, rows.fault_arg.astype(np.int64)
    missing = np.flatnonzero(fault == MISSING_FIELD)
    options = MISSING_OPTIONS[etype]
    for i, name in enumerate(options):
        fields[name].present[missing[arg[missing] % len(options) == i]] = False

    bad = np.flatnonzero(fault == BAD_TYPE)
    choices = BAD_TYPE_OPTIONS[etype]
    for i, (name, literal) in enumerate(choices):
        where = bad[arg[bad] % len(choices) == i]
        if literal is None:
            _replace(fields[name], where, unsigned(rows.user[where].astype(np.int64) + 1, 7))
        else:
            _replace(fields[name], where, literal_table([literal]).repeat(len(where), axis=0))

    unknown = np.flatnonzero(fault == UNKNOWN_EVENT_TYPE)
    _replace(fields["event_type"], unknown, literal_table([UNKNOWN_EVENT_TYPE_LITERAL]).repeat(len(unknown), 0))

    stamps = np.flatnonzero(fault == BAD_TIMESTAMP)
    table = literal_table(BAD_TIMESTAMPS)
    _replace(fields["occurred_at"], stamps, table[arg[stamps] % len(BAD_TIMESTAMPS)])


def truncate_lines(lines: np.ndarray, rows: EventBatch) -> None:
    """Cut ``invalid_json`` rows short, in place: keep a prefix of the line (never its closing brace)."""
    cut_rows = np.flatnonzero(rows.fault == INVALID_JSON)
    if len(cut_rows) == 0:
        return
    width = lines.shape[1]
    # The last two columns of every line are "}" and the newline; the row keeps its newline.
    cut = (rows.fault_cut[cut_rows] * (width - 2)).astype(np.int64)
    columns = np.arange(width - 1)
    block = lines[cut_rows, : width - 1]
    block[columns[None, :] >= cut[:, None]] = PAD
    lines[cut_rows, : width - 1] = block


def _replace(f: Field, where: np.ndarray, literal: np.ndarray) -> None:
    if len(where) == 0:
        return
    if literal.shape[1] > f.values.shape[1]:
        raise ValueError(f"corrupted literal wider than the {f.name} column")
    f.values[where] = PAD
    f.values[where, : literal.shape[1]] = literal

"""Events as columns of numbers: the simulator's internal event table, before any text exists.

Behaviour appends clean events, faults append copies and corrupted rows, and the writer renders a batch to
JSON Lines or Parquet. Keeping events numeric until the last moment is what makes the simulator fast:
sorting, splitting by delivery day and copying are numpy operations on a few small arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

# Event type codes; the names are the contract's event_type values.
IMPRESSION, CLICK, VIEW, CONVERSION, EXPOSURE = range(5)
EVENT_TYPES: tuple[str, ...] = ("impression", "click", "view", "conversion", "exposure")

#: Fault codes of rows: 0 is a well-formed event; 1.. are the malformed kinds, in MALFORMED_KINDS order.
CLEAN = 0


@dataclass
class EventBatch:
    """A set of event rows as parallel arrays; -1 (or 0 for sizes) where a field does not apply.

    Attributes:
        num: Event counter; the event_id is its scrambled hex form (duplicates repeat it).
        etype: Event type code (IMPRESSION ... EXPOSURE).
        user: User index (0-based; the id is ``u`` + index + 1).
        content: Content index, or -1.
        request: Request counter, or -1 (impressions and clicks).
        position: 1-based slate position (impressions), else 0.
        surface: Surface index, or -1.
        dwell_tenths: Dwell in tenths of a second (views).
        value_cents: Conversion value in cents.
        currency: Currency index, or -1.
        experiment: Experiment index, or -1 (exposures).
        variant: Arm index within the experiment, or -1.
        occurred_ms: Event time, epoch milliseconds UTC.
        received_ms: Collector time, epoch milliseconds UTC.
        policy: Serving policy code of an impression served from cached pages (index into the run's policy
            names), or -1 (the built-in logging policy, whose impressions carry no policy fields).
        model_version: Model version code of such an impression, or -1 (none).
        propensity: Probability that the serving policy put the item in the slot, or NaN (not logged).
        fault: 0 for a well-formed row, else 1 + index of the malformed kind.
        fault_arg: Random number choosing the variety of corruption (which field, which bad value).
        fault_cut: Where an ``invalid_json`` row is truncated, as a share of the line.
    """

    num: np.ndarray
    etype: np.ndarray
    user: np.ndarray
    content: np.ndarray
    request: np.ndarray
    position: np.ndarray
    surface: np.ndarray
    dwell_tenths: np.ndarray
    value_cents: np.ndarray
    currency: np.ndarray
    experiment: np.ndarray
    variant: np.ndarray
    occurred_ms: np.ndarray
    received_ms: np.ndarray
    policy: np.ndarray
    model_version: np.ndarray
    propensity: np.ndarray
    fault: np.ndarray
    fault_arg: np.ndarray
    fault_cut: np.ndarray

    def __len__(self) -> int:
        return len(self.num)

    @classmethod
    def of(
        cls,
        etype: int,
        num: np.ndarray,
        user: np.ndarray,
        occurred_ms: np.ndarray,
        **columns: np.ndarray | int,
    ) -> EventBatch:
        """Rows of one event type; columns not given get their "does not apply" value."""
        n = len(num)
        filled: dict[str, np.ndarray] = {}
        for f in fields(cls):
            dtype, missing = _COLUMNS[f.name]
            filled[f.name] = np.full(n, missing, dtype=dtype)
        filled["etype"][:] = etype
        filled["num"][:] = num
        filled["user"][:] = user
        filled["occurred_ms"][:] = occurred_ms
        filled["received_ms"][:] = occurred_ms
        for name, values in columns.items():
            filled[name][:] = values
        return cls(**filled)

    @classmethod
    def empty(cls) -> EventBatch:
        return cls(**{f.name: np.empty(0, dtype=_COLUMNS[f.name][0]) for f in fields(cls)})

    @classmethod
    def concat(cls, batches: Sequence[EventBatch]) -> EventBatch:
        """Rows of all batches, in order."""
        if not batches:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)})

    def take(self, index: np.ndarray) -> EventBatch:
        """The rows at ``index`` (an integer or boolean array), as a new batch."""
        return EventBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


_COLUMNS: dict[str, tuple[type[np.generic], int | float]] = {
    "num": (np.int64, 0),
    "etype": (np.int8, 0),
    "user": (np.int32, -1),
    "content": (np.int32, -1),
    "request": (np.int64, -1),
    "position": (np.int16, 0),
    "surface": (np.int8, -1),
    "dwell_tenths": (np.int32, 0),
    "value_cents": (np.int64, 0),
    "currency": (np.int8, -1),
    "experiment": (np.int8, -1),
    "variant": (np.int8, -1),
    "occurred_ms": (np.int64, 0),
    "received_ms": (np.int64, 0),
    "policy": (np.int8, -1),
    "model_version": (np.int16, -1),
    "propensity": (np.float64, np.nan),
    "fault": (np.int8, CLEAN),
    "fault_arg": (np.int32, 0),
    "fault_cut": (np.float32, 0.0),
}

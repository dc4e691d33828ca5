"""Check events against the event contract with the warehouse's own SQL, one batch at a time.

The stream must accept exactly what the warehouse accepts, so the row checks are not re-implemented here: a batch
goes through the contract macro (``tailor.contract.classify_sql``) in an in-memory DuckDB, the same checks that
`tailor ingest` and the staging models run. Rejections carry the same stable reason codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from tailor.contract import classify_sql


@dataclass(frozen=True)
class Event:
    """A contract-valid event, typed; times are naive UTC like the warehouse's."""

    event_id: str
    event_type: str
    user_id: str
    occurred_at: datetime
    content_id: str | None
    dwell_seconds: float | None


@dataclass(frozen=True)
class Rejection:
    """Why one input event was refused (``index`` is its 0-based position in the input)."""

    index: int
    event_id: str | None
    reason: str
    detail: str
    #: The event's other problems, in words (`tailor.contract.problems`); the contract's checks name the first.
    also: tuple[str, ...] = ()

    def __str__(self) -> str:
        who = f"event_id {self.event_id}" if self.event_id else "no event_id"
        return f"event {self.index + 1} ({who}): {self.reason}: {self.detail}"


class EventRejected(ValueError):
    """An event breaks the contract; the message says which rule and how to fix it."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(
            f"{rejection}. Fix the producer to follow the event contract (tailor/contract/event.schema.json)."
        )
        self.rejection = rejection


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("a datetime without a time zone (give occurred_at with Z or +hh:mm)")
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__}, which JSON cannot hold")


def to_json(event: Mapping[str, Any] | str) -> str:
    """The JSON text of one event as the stream carries it; a string is taken as already-encoded JSON.

    Raises:
        TypeError: the mapping holds a value JSON cannot encode (the message names it).
    """
    if isinstance(event, str):
        return event
    return json.dumps(dict(event), separators=(",", ":"), default=_json_default)


class ContractChecker:
    """Classifies batches of JSON texts; keep one per thread (it owns a DuckDB connection)."""

    def __init__(self) -> None:
        self._con = duckdb.connect()
        self._con.execute("set TimeZone = 'UTC'")
        # The contract's final rule compares occurred_at with the time we received the event (24 h tolerance).
        self._sql = (
            "select line_number, reject_reason, reject_detail, event_id, event_type, user_id, occurred_at, "
            f"content_id, dwell_seconds from ({classify_sql('events', 'stream_lines')}) order by line_number"
        )

    def check(self, texts: Sequence[str], received_at: Sequence[datetime]) -> list[Event | Rejection]:
        """One result per text, in order.

        Args:
            texts: JSON texts, one event each.
            received_at: when each arrived (aware or naive UTC), the reference for the future-timestamp rule.
        """
        if len(texts) != len(received_at):
            raise ValueError(f"{len(texts)} texts but {len(received_at)} receive times")
        if not texts:
            return []
        lines = pa.table(
            {
                "batch_id": pa.array(["stream"] * len(texts)),
                "source_file": pa.array(["stream"] * len(texts)),
                "line_number": pa.array(range(len(texts)), type=pa.int64()),
                "raw": pa.array(texts, type=pa.string()),
                "ingested_at": pa.array([_naive_utc(t) for t in received_at], type=pa.timestamp("us")),
            }
        )
        self._con.register("stream_lines", lines)
        try:
            rows = self._con.execute(self._sql).fetchall()
        finally:
            self._con.unregister("stream_lines")
        results: list[Event | Rejection] = []
        for index, reason, detail, event_id, event_type, user_id, occurred_at, content_id, dwell in rows:
            if reason is not None:
                results.append(Rejection(int(index), event_id, str(reason), str(detail)))
            else:
                results.append(Event(event_id, event_type, user_id, occurred_at, content_id, dwell))
        return results

    def close(self) -> None:
        self._con.close()


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment

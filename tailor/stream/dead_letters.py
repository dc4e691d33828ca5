"""Dead letters: list them, and replay the ones a fix has made processable.

An entry lands in the dead letters when it breaks the contract (it never will be processable as it stands) or when
it was delivered more than ``max_deliveries`` times without being processed (a poison message). After the cause
is fixed, `tailor stream dead-letters --replay` publishes each event again (checked against the contract again)
and removes it from the dead letters; refused ones stay there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tailor.stream.broker import Broker
from tailor.stream.producer import publish


@dataclass(frozen=True)
class DeadLetter:
    id: str
    source_id: str
    event: str
    reason: str
    detail: str
    deliveries: int
    dead_at: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def dead_letters(broker: Broker, limit: int | None = None) -> list[DeadLetter]:
    """The dead letters, oldest first."""
    page = broker.r.xrange(broker.config.dead_letters, count=limit)
    return [
        DeadLetter(
            id=entry_id,
            source_id=fields.get("source_id", ""),
            event=fields.get("event", ""),
            reason=fields.get("reason", ""),
            detail=fields.get("detail", ""),
            deliveries=int(fields.get("deliveries", 0)),
            dead_at=fields.get("dead_at", ""),
        )
        for entry_id, fields in page
    ]


def replay(broker: Broker) -> tuple[int, list[DeadLetter], list[DeadLetter]]:
    """Publish every dead letter's event again; returns (replayed, still dead, nothing to replay).

    A replayed event has its old event_id, so if it had been counted after all, the window counts it once. A dead
    letter without an event (its entry was trimmed by retention, or had no ``event`` field) has nothing to publish:
    it stays, and is returned apart from the events the contract still refuses.
    """
    letters = dead_letters(broker)
    events = [d for d in letters if d.event]
    report = publish(broker, [d.event for d in events])
    refused = {r.index for r in report.rejected}
    replayed = [d.id for i, d in enumerate(events) if i not in refused]
    if replayed:
        broker.r.xdel(broker.config.dead_letters, *replayed)
    return len(replayed), [d for i, d in enumerate(events) if i in refused], [d for d in letters if not d.event]

"""Publish events to the stream: contract-valid ones are appended, invalid ones are refused with the reason.

One bad event never costs the good ones around it: they are appended and the report lists what was refused.
Publishing an event again (a retry after a timeout) is safe: the consumer counts an event id once per window.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tailor.stream.broker import Broker
from tailor.stream.events import ContractChecker, EventRejected, Rejection, to_json

_CHUNK = 5000
_local = threading.local()


def _checker() -> ContractChecker:
    """One checker per thread, kept: opening DuckDB and rendering the contract SQL costs more than a small check."""
    if not hasattr(_local, "checker"):
        _local.checker = ContractChecker()
    checker: ContractChecker = _local.checker
    return checker


@dataclass
class PublishReport:
    """Ids of the appended entries, in input order, and the refused events."""

    published: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": len(self.published),
            "rejected": [
                {"event": r.index + 1, "event_id": r.event_id, "reason": r.reason, "detail": r.detail}
                for r in self.rejected
            ],
        }


def publish(broker: Broker, events: Iterable[Mapping[str, Any] | str]) -> PublishReport:
    """Check each event against the contract and append the valid ones.

    Args:
        broker: the stream to append to.
        events: event objects, or their JSON texts (e.g. lines of a JSON Lines file).

    Returns:
        What was appended and what was refused (with the contract's reason code and a readable detail).
    """
    report = PublishReport()
    checker = _checker()
    chunk: list[tuple[int, Mapping[str, Any] | str]] = []
    for index, event in enumerate(events):
        chunk.append((index, event))
        if len(chunk) >= _CHUNK:
            _publish_chunk(broker, checker, chunk, report)
            chunk = []
    _publish_chunk(broker, checker, chunk, report)
    return report


def publish_event(broker: Broker, event: Mapping[str, Any] | str) -> str:
    """Append one event and return its entry id.

    Raises:
        EventRejected: the event breaks the contract (nothing was appended).
    """
    report = publish(broker, [event])
    if report.rejected:
        raise EventRejected(report.rejected[0])
    return report.published[0]


def _publish_chunk(
    broker: Broker,
    checker: ContractChecker,
    chunk: list[tuple[int, Mapping[str, Any] | str]],
    report: PublishReport,
) -> None:
    texts: list[tuple[int, str]] = []
    for index, event in chunk:
        try:
            texts.append((index, to_json(event)))
        except TypeError as exc:
            event_id = event.get("event_id") if isinstance(event, Mapping) else None
            detail = f"not encodable as JSON: {exc}"
            report.rejected.append(Rejection(index, str(event_id) if event_id else None, "invalid_json", detail))
    now = datetime.now(UTC)
    results = checker.check([t for _, t in texts], [now] * len(texts))
    good: list[str] = []
    for (index, text), result in zip(texts, results, strict=True):
        if isinstance(result, Rejection):
            report.rejected.append(Rejection(index, result.event_id, result.reason, result.detail))
        else:
            good.append(text)
    report.published += broker.append(good)
    report.rejected.sort(key=lambda r: r.index)

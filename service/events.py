"""POST /events: check events with the contract's rules, land them all or none, then publish them to the stream.

- The body is one event (a JSON object with the contract's fields) or a batch ``{"events": [...]}``.
- Every event is checked with the warehouse's own SQL (`tailor.stream.events.ContractChecker`, the
  ``classify_sql`` that `tailor ingest` and the staging models run). One bad event refuses the whole batch, naming
  each bad event and its reason: nothing of a refused batch is written, so a client can fix and resend it whole.
- A valid batch is landed as one `tailor ingest` transaction (`tailor.ingest.land_files`): one immutable Parquet
  batch, committed by the landing log, so a crash leaves all of it or none. The landing zone is the system of
  record: the warehouse reads it on the next `tailor run`. A batch sent twice (a retry) has the same bytes, hence
  the same batch id, and is not landed twice.
- Then the events are appended to the Redis stream, which feeds the online store's recent activity within
  seconds. If the stream does not answer, the events stay landed and the response says the stream is behind.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.config import ServiceConfig
from service.metrics import Metrics
from tailor.contract.problems import schema_problems
from tailor.ingest.files import IngestError
from tailor.ingest.ingest import land_files
from tailor.ingest.recovery import landing_session
from tailor.settings import Settings
from tailor.stream.broker import Broker
from tailor.stream.config import StreamConfig
from tailor.stream.events import ContractChecker, Rejection, to_json

log = logging.getLogger(__name__)

#: Keys a batch envelope may have.
ENVELOPE_KEYS = frozenset({"events"})


class BadBody(ValueError):
    """The body is not one event or a batch of them; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BatchRefused(ValueError):
    """Events break the contract: the whole batch is refused; ``rejections`` name each bad event."""

    def __init__(self, rejections: list[Rejection], total: int) -> None:
        super().__init__(
            f"{len(rejections)} of {total} events break the event contract (tailor/contract/event.schema.json); "
            "nothing was landed: fix them and send the batch again"
        )
        self.rejections = rejections
        self.total = total


class LandingBusy(RuntimeError):
    """The landing zone stayed locked (a long ingestion) past the wait; nothing was landed, retry later."""


@dataclass
class Intake:
    """What POST /events did with a valid batch."""

    received: int
    batch_id: str
    landed: bool  # False: the same batch was landed before (a retry); nothing new was written
    published: int = 0
    stream_behind: bool = False
    stream_detail: str | None = None
    event_ids: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The answer's status and the metric's outcome: "landed" or "already_ingested" (the landing log's words)."""
        return "landed" if self.landed else "already_ingested"

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "status": self.status,
            "batch_id": self.batch_id,
            "stream": {"published": self.published, "behind": self.stream_behind, "detail": self.stream_detail},
        }


def _json_problem(exc: json.JSONDecodeError) -> str:
    """Where the parser stopped and why, in words a caller can act on: a trailing comma (which JSON, unlike
    JavaScript and Python, does not allow: RFC 8259 section 5) is named as such; Python's "Expecting value: line 1
    column 10 (char 9)" was all a trial got for ``[{...},]``."""
    where = f"line {exc.lineno}, column {exc.colno}"
    before = exc.doc[: exc.pos].rstrip()
    if before.endswith(",") and exc.doc[exc.pos : exc.pos + 1] in ("]", "}"):
        return f"a comma before '{exc.doc[exc.pos]}' at {where}: JSON allows no trailing comma; remove it"
    if exc.pos >= len(exc.doc.rstrip()):
        return f"it ends too soon at {where} ({exc.msg.lower()}): send the whole document"
    return f"{exc.msg.lower()} at {where}"


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose repeated key keeps its first value, as the warehouse reads a landed line (DuckDB's JSON
    functions; docs/contract/README.md): Python's default keeps the last, so a POSTed event and the same line in a
    file were two different events (found by a trial)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def _not_json(literal: str) -> Any:
    """Python's json reads NaN, Infinity and -Infinity; RFC 8259 has no such literals, and an event holding one in
    a field its type ignores would land as a line that is not JSON (a trial)."""
    raise ValueError(f"{literal} is not a JSON value (RFC 8259): send a number, or leave the field out")


def _finite(text: str) -> float:
    """A JSON number as a float; one beyond a double's range (1e999) would be written back as Infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a double's range: send a smaller number")
    return value


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (object, array, string, number, boolean, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {dict: "object", list: "array", str: "string"}
    return names.get(type(value), type(value).__name__)


def parse_body(body: bytes, max_events: int) -> list[Any]:
    """The events of a request body (JSON: one event object, or ``{"events": [...]}``).

    Raises:
        BadBody: not UTF-8 JSON, not an object, unknown envelope keys, no events, or more than ``max_events``.
    """
    if not body.strip():
        raise BadBody('empty body: send one event (a JSON object) or a batch {"events": [...]}')
    try:
        # Decoded here: json.loads(bytes) would guess UTF-16 or UTF-32 from the first bytes and name that codec
        # in its error; the API takes UTF-8 (RFC 8259 8.1), and says so.
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(
            f"the body is not UTF-8 (byte {exc.start:,} is 0x{body[exc.start]:02x}): send the JSON encoded as UTF-8"
        ) from None
    if text.startswith("\ufeff"):
        raise BadBody("the body starts with a byte-order mark: send UTF-8 JSON without one (RFC 8259 8.1)")
    try:
        data = json.loads(text, object_pairs_hook=_first_wins, parse_constant=_not_json, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise BadBody(f"the body is not valid JSON: {_json_problem(exc)}") from None
    except ValueError as exc:  # NaN, Infinity or a float overflow (parse_constant, parse_float)
        raise BadBody(f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # nesting deeper than Python's parser follows: no event is shaped so (a trial's 500)
        raise BadBody("the body's JSON is nested too deeply: send events as flat JSON objects") from None
    if not isinstance(data, dict):
        raise BadBody(
            f'the body is a JSON {json_type(data)}: send one event (a JSON object) or a batch {{"events": [...]}}',
            422,
        )
    if "event_type" in data or "event_id" in data:
        return [data]
    unknown = sorted(set(data) - ENVELOPE_KEYS)
    if unknown or "events" not in data:
        what = f"unknown field(s) {', '.join(repr(k) for k in unknown)}" if unknown else "the object has no fields"
        raise BadBody(
            f'{what}: a batch is {{"events": [...]}} and nothing else; a single event needs event_id and event_type',
            422,
        )
    events = data["events"]
    if not isinstance(events, list) or not events:
        raise BadBody('"events" must be a non-empty JSON array of events', 422)
    if len(events) > max_events:
        raise BadBody(f"{len(events)} events in one request; send at most {max_events} per request", 413)
    return events


class EventIntake:
    """Checks, lands and publishes POSTed events (see the module docstring). Thread-safe."""

    def __init__(self, settings: Settings, config: ServiceConfig, metrics: Metrics) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics
        self._local = threading.local()
        # One landing at a time per process: threads wait here, not polling the landing zone's file lock.
        self._landing = threading.Lock()
        self._broker: Broker | None = None
        self._behind = 0

    @property
    def spool(self) -> Path:
        """Where a batch's JSON Lines file is written before it is landed (removed once landed)."""
        return self.settings.home / "service" / "spool"

    def _checker(self) -> ContractChecker:
        checker: ContractChecker | None = getattr(self._local, "checker", None)
        if checker is None:
            checker = self._local.checker = ContractChecker()
        return checker

    def accept(self, events: list[Any]) -> Intake:
        """Check, land and publish one batch; blocking (run it in a worker thread).

        Raises:
            BatchRefused: an event breaks the contract (nothing landed).
            LandingBusy: the landing zone stayed busy past ``landing_wait_s`` (nothing landed).
        """
        texts: list[str] = []
        rejections: list[Rejection] = []
        for index, event in enumerate(events):
            if not isinstance(event, Mapping):
                detail = f"an event is a JSON object, got {json_type(event)}"
                rejections.append(Rejection(index, None, "invalid_json", detail))
                texts.append("")
                continue
            try:
                texts.append(to_json(event))
            except TypeError as exc:  # pragma: no cover - parsed JSON always encodes again
                rejections.append(Rejection(index, str(event.get("event_id")), "invalid_json", str(exc)))
                texts.append("")
        now = datetime.now(UTC)
        checkable = [(i, t) for i, t in enumerate(texts) if t]
        results = self._checker().check([t for _, t in checkable], [now] * len(checkable))
        for (index, _), result in zip(checkable, results, strict=True):
            if isinstance(result, Rejection):
                also = other_problems(events[index], result.detail)
                rejections.append(Rejection(index, result.event_id, result.reason, result.detail, also))
        if rejections:
            self.metrics.events.labels("rejected").inc(len(events))
            raise BatchRefused(sorted(rejections, key=lambda r: r.index), len(events))
        intake = self._land(texts)
        self.metrics.events.labels(intake.status).inc(len(texts))
        self._publish(texts, intake)
        return intake

    def _land(self, texts: list[str]) -> Intake:
        self.spool.mkdir(parents=True, exist_ok=True)
        received, request = datetime.now(UTC), uuid.uuid4().hex[:8]
        path = self.spool / f"events-{received:%Y%m%dT%H%M%S%f}-{request}.jsonl"
        # The spool file is gone once landed: the batch says which request it was (a dbt warning names it).
        source = f"POST /events at {received:%Y-%m-%dT%H:%M:%S.%fZ} (request {request})"
        path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        try:
            if not self._landing.acquire(timeout=self.config.landing_wait_s):
                raise LandingBusy(f"other requests held the landing zone for {self.config.landing_wait_s:.0f} s")
            try:
                with landing_session(self.settings, timeout=self.config.landing_wait_s):
                    # Every event passed the contract's checks above: the log counts them as accepted.
                    report = land_files(
                        [path],
                        self.settings,
                        kind="events",
                        rows="passed",
                        source_names={path: source},
                    )
            except IngestError as exc:
                raise LandingBusy(str(exc)) from exc
            finally:
                self._landing.release()
        finally:
            path.unlink(missing_ok=True)
        [file] = report.files
        return Intake(received=len(texts), batch_id=file.batch_id, landed=file.status == "landed")

    def _publish(self, texts: list[str], intake: Intake) -> None:
        if not self.config.stream_url:
            intake.stream_detail = "publishing is off (TAILOR_REDIS_URL is empty)"
            return
        try:
            if self._broker is None:
                import redis

                # Short timeouts: a broker that hangs must not hold the request (the events are already landed).
                client = redis.Redis.from_url(
                    self.config.stream_url, decode_responses=True, socket_connect_timeout=1, socket_timeout=2
                )
                self._broker = Broker(client, StreamConfig(stream=self.config.stream))
            intake.published = len(self._broker.append(texts))
            self._behind = 0
        except Exception as exc:  # redis down or refusing: the events are landed, the stream catches up later
            self._behind += len(texts)
            self.metrics.stream_failures.inc()
            intake.stream_behind = True
            landed = "landed" if intake.landed else "already landed before"  # a retry's answer said "landed" (a trial)
            intake.stream_detail = (
                f"{landed}, but the stream at {self.config.stream_url} did not take them ({type(exc).__name__}): "
                "recent-activity features lag until `tailor run` builds the warehouse"
            )
            log.warning("stream publish failed: %s", exc)
        self.metrics.stream_behind.set(self._behind)


def other_problems(event: Mapping[str, Any], detail: str) -> tuple[str, ...]:
    """The problems of a refused ``event`` besides the one the contract's checks gave (``detail``): each field the
    schema finds broken that ``detail`` does not name."""
    found = schema_problems("events", dict(event))
    return tuple(text for name, text in found.items() if not re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", detail))


def rejection_dicts(rejections: list[Rejection]) -> list[dict[str, Any]]:
    """JSON for refused events: 1-based position, event_id, the contract's reason code and a readable detail (the
    first rule broken, as a quarantined row keeps it), and ``problems``: that detail and every other problem of the
    event, so a client fixes them in one go."""
    return [
        {
            "event": r.index + 1,
            "event_id": r.event_id,
            "reason": r.reason,
            "detail": r.detail,
            "problems": [r.detail, *r.also],
        }
        for r in rejections
    ]

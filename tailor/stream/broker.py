"""Redis Streams operations of the streaming path: append, read as a group, acknowledge, dead-letter, recover.

Thin wrappers with the decisions in one place: entries carry one field, ``event`` (the event's JSON text); an
entry id's millisecond part is its arrival time; producers trim entries older than the retention as they append.
The client must be created with ``decode_responses=True`` (see :func:`connect`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from tailor.stream.config import StreamConfig

FIELD = "event"
_PAGE = 10_000
# Renew only our own lease, atomically (a plain GET + PEXPIRE could extend a lease another consumer just took).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Entry:
    """One stream entry. ``text`` is its event's JSON, None when the entry has no ``event`` field: ``trimmed`` when
    retention removed the entry while it was still pending, else an entry some other writer added (``fields`` are
    the names it has, for the dead letter's detail)."""

    id: str
    text: str | None
    trimmed: bool = False
    fields: tuple[str, ...] = ()

    @property
    def arrived_at(self) -> datetime:
        """Arrival time (naive UTC), from the id Redis assigned (milliseconds since the epoch)."""
        return _EPOCH + timedelta(milliseconds=int(self.id.split("-", 1)[0]))


class StreamBusy(RuntimeError):
    """Another consumer holds the group's lease."""


class BrokerUnreachable(RuntimeError):
    """The connection to Redis was lost and could not be made again in the time allowed.

    Args:
        cause: the last error seen (a refused connection, a timeout).
        waited: seconds since the connection was lost (0 when no reconnection was tried).
    """

    def __init__(self, cause: BaseException, waited: float) -> None:
        self.cause, self.waited = cause, waited
        super().__init__(f"lost the connection to Redis ({cause})")


#: Errors that mean "Redis is gone for now" (refused, reset, timed out, still loading its data after a restart).
CONNECTION_LOST: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis went away: the connection failed, or the stream's group no longer exists
    (``NOGROUP``: Redis came back without its data, before the client even noticed it had gone)."""
    return isinstance(exc, CONNECTION_LOST) or (isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP"))


def connect(url: str) -> redis.Redis:
    """A client for ``url`` (``redis://host:port/db``) that answers in str, failing fast when Redis is down.

    A reply that takes over 30 s counts as a lost connection (redis.TimeoutError), so a connection that died
    without a word (a network cut) is noticed instead of blocking forever; blocking reads wait far less.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=30,
        socket_keepalive=True,
        health_check_interval=30,
    )


def id_at(moment: datetime) -> str:
    """The smallest entry id at or after a moment (naive times are UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{max(int(aware.timestamp() * 1000), 0)}-0"


def _entries(raw: Sequence[tuple[str, dict[str, str] | None]]) -> list[Entry]:
    return [
        Entry(entry_id, (fields or {}).get(FIELD), trimmed=fields is None, fields=tuple(sorted(fields or ())))
        for entry_id, fields in raw
    ]


class Broker:
    """The stream, its consumer group and dead letters, as ``config`` names them."""

    def __init__(self, client: redis.Redis, config: StreamConfig) -> None:
        # Any: redis-py annotates every reply as "value or Awaitable" (one stub for the sync and async clients).
        self.r: Any = client
        self.config = config

    # -- producing -------------------------------------------------------------------------------------------

    def append(self, texts: Sequence[str]) -> list[str]:
        """Append events in one pipelined round trip; returns their ids in order.

        Entries older than the retention are trimmed approximately (whole radix-tree nodes, cheap).
        """
        minid = id_at(datetime.now(UTC) - self.config.retention)
        pipe = self.r.pipeline(transaction=False)
        for text in texts:
            pipe.xadd(self.config.stream, {FIELD: text}, minid=minid, approximate=True)
        return [str(i) for i in pipe.execute()]

    # -- the group -------------------------------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the stream and the group (reading from the stream's start) unless they exist."""
        try:
            self.r.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def acquire_lease(self, consumer: str) -> None:
        """Become the group's only consumer. The same consumer name may take over its own lease (a restart).

        Raises:
            StreamBusy: another consumer holds the lease.
        """
        key, ttl = self.config.lease_key, int(self.config.lease.total_seconds() * 1000)
        if self.r.set(key, consumer, nx=True, px=ttl):
            return
        holder = self.r.get(key)
        if holder == consumer and self.r.set(key, consumer, xx=True, px=ttl):
            return
        left = max(int(self.r.pttl(key)), 0) / 1000
        raise StreamBusy(
            f"consumer {holder!r} is already reading {self.config.stream!r} for group {self.config.group!r}. "
            f"Stop it, restart it under its own name (--consumer {holder}), or wait {left:.0f} s for its lease "
            "to expire if it has died. One consumer per group keeps each user's window in one process."
        )

    def renew_lease(self, consumer: str) -> bool:
        ttl = int(self.config.lease.total_seconds() * 1000)
        return bool(self.r.eval(_RENEW, 1, self.config.lease_key, consumer, ttl))

    def release_lease(self, consumer: str) -> None:
        self.r.eval(_RELEASE, 1, self.config.lease_key, consumer)

    def pending(self, consumer: str | None = None) -> list[tuple[str, str, int]]:
        """(id, consumer, deliveries) of every delivered but unacknowledged entry, oldest first."""
        found: list[tuple[str, str, int]] = []
        start = "-"
        while True:
            page = self.r.xpending_range(
                self.config.stream, self.config.group, min=start, max="+", count=_PAGE, consumername=consumer
            )
            found += [(p["message_id"], p["consumer"], int(p["times_delivered"])) for p in page]
            if len(page) < _PAGE:
                return found
            start = "(" + page[-1]["message_id"]

    def claim(self, consumer: str, ids: Sequence[str]) -> None:
        """Take over entries of other (dead) consumers without counting a delivery (JUSTID)."""
        for i in range(0, len(ids), _PAGE):
            self.r.xclaim(self.config.stream, self.config.group, consumer, 0, list(ids[i : i + _PAGE]), justid=True)

    def read_new(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        """Entries never delivered to the group (``>``), waiting up to ``block_ms`` for the first."""
        reply = self.r.xreadgroup(self.config.group, consumer, {self.config.stream: ">"}, count=count, block=block_ms)
        return _entries(reply[0][1]) if reply else []

    def read_pending(self, consumer: str, after: str, count: int) -> list[Entry]:
        """This consumer's own unacknowledged entries with ids after ``after`` (each read counts a delivery)."""
        reply = self.r.xreadgroup(self.config.group, consumer, {self.config.stream: after}, count=count)
        return _entries(reply[0][1]) if reply else []

    def deliveries(self, consumer: str, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        page = self.r.xpending_range(
            self.config.stream, self.config.group, min=ids[0], max=ids[-1], count=len(ids), consumername=consumer
        )
        return {p["message_id"]: int(p["times_delivered"]) for p in page}

    def ack(self, ids: Sequence[str]) -> None:
        if ids:
            self.r.xack(self.config.stream, self.config.group, *ids)

    def dead_letter(self, items: Sequence[tuple[Entry, str, str, int]], consumer: str) -> None:
        """Move entries to the dead letters with (reason, detail, deliveries) and acknowledge them, atomically."""
        if not items:
            return
        now = datetime.now(UTC).isoformat()
        pipe = self.r.pipeline(transaction=True)
        for entry, reason, detail, deliveries in items:
            record = {
                "source_id": entry.id,
                "event": entry.text or "",
                "reason": reason,
                "detail": detail,
                "deliveries": str(deliveries),
                "consumer": consumer,
                "dead_at": now,
            }
            pipe.xadd(self.config.dead_letters, record)
        pipe.xack(self.config.stream, self.config.group, *[item[0].id for item in items])
        pipe.execute()

    # -- rebuilding a consumer's window ----------------------------------------------------------------------

    def last_delivered(self) -> str:
        for group in self.r.xinfo_groups(self.config.stream):
            if group["name"] == self.config.group:
                return str(group["last-delivered-id"])
        raise LookupError(f"group {self.config.group!r} does not exist on {self.config.stream!r}")

    def dead_letter_ids(self, since: str) -> set[str]:
        """Source ids of dead letters taken from entries at or after ``since``."""
        found: set[str] = set()
        start = "-"
        while True:
            page = self.r.xrange(self.config.dead_letters, min=start, max="+", count=_PAGE)
            found.update(fields["source_id"] for _, fields in page if _id_key(fields["source_id"]) >= _id_key(since))
            if len(page) < _PAGE:
                return found
            start = "(" + page[-1][0]

    def acknowledged(self, since: str) -> Iterator[Entry]:
        """Entries from ``since`` that the group has finished with: delivered, acknowledged, not dead letters.

        Exactly the entries whose effect is already in the online store, in stream order (see decisions.md).
        """
        last = self.last_delivered()
        if _id_key(last) < _id_key(since):
            return
        skip = {p[0] for p in self.pending()} | self.dead_letter_ids(since)
        start = since
        while True:
            page = self.r.xrange(self.config.stream, min=start, max=last, count=_PAGE)
            for entry in _entries(page):
                if entry.id not in skip:
                    yield entry
            if len(page) < _PAGE:
                return
            start = "(" + page[-1][0]

    # -- checkpoint and status ------------------------------------------------------------------------------

    def swept_until(self) -> datetime | None:
        """Until when window expiries have been pushed (None before the first run)."""
        value = self.r.hget(self.config.checkpoint_key, "swept_until_ms")
        return None if value is None else datetime.fromtimestamp(int(value) / 1000, tz=UTC).replace(tzinfo=None)

    def set_swept_until(self, moment: datetime) -> None:
        self.r.hset(self.config.checkpoint_key, "swept_until_ms", id_at(moment).split("-")[0])

    def status(self) -> dict[str, Any]:
        """Length, group progress (pending, lag), dead letters and the lease holder, for `tailor stream status`."""
        config = self.config
        result: dict[str, Any] = {
            "stream": config.stream,
            "group": config.group,
            "length": int(self.r.xlen(config.stream)),
            "dead_letters": int(self.r.xlen(config.dead_letters)),
            "consumer": self.r.get(config.lease_key),
            "pending": None,
            "lag": None,
            "last_delivered": None,
        }
        if self.r.exists(config.stream):
            for group in self.r.xinfo_groups(config.stream):
                if group["name"] == config.group:
                    result.update(pending=group["pending"], lag=group["lag"], last_delivered=group["last-delivered-id"])
        return result


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)

"""The consumer: Redis Stream -> per-user 30-minute windows -> Feast online store, acknowledged after the push.

Why it neither loses nor double counts across a crash (the full argument is in docs/decisions.md, "Streaming"):
- An entry is acknowledged only after the rows it changed were pushed, so a crash leaves it pending and it is
  processed again after the restart (at-least-once delivery).
- Rows are absolute values (the whole window as of a moment), so pushing one again is harmless.
- After a restart the windows are rebuilt from exactly the acknowledged entries of the last window's worth of
  stream (pending ones excluded, dead letters excluded), then the pending entries are processed on top: every
  entry is in the window once.
- Re-delivered events (same event_id) inside the window are counted once.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tailor.stream.broker import CONNECTION_LOST, FIELD, Broker, BrokerUnreachable, Entry, connection_lost, id_at
from tailor.stream.catalog import Catalog
from tailor.stream.events import ContractChecker, Event
from tailor.stream.sink import Sink, frame
from tailor.stream.window import Activity, RecentActivity

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_CATALOG_EVERY = 10.0  # seconds between checks for a republished dim_content mart
_CHECKPOINT_EVERY = 1.0  # seconds between writes of the expiry checkpoint
_FIRST_PAUSE, _MAX_PAUSE = 0.5, 30.0  # seconds between attempts to reach Redis again: doubling, capped


class PushFailed(RuntimeError):
    """The online store refused the rows for longer than the push retry allows; nothing read since the last push is
    acknowledged, so those entries stay pending for the next run."""

    def __init__(self, rows: int, cause: BaseException) -> None:
        super().__init__(f"pushing {rows} row(s) to the online store failed: {type(cause).__name__}: {cause}")
        self.rows = rows
        self.cause = cause


class _Resume(Exception):
    """The session must start again from the stream (the lease lapsed): rebuild, recover, go on."""


def _user_of(text: str) -> set[str]:
    """The user_id of an event's JSON text, if it has a readable one."""
    try:
        user = json.loads(text).get("user_id")
    except (ValueError, AttributeError):
        return set()
    return {user} if isinstance(user, str) and user else set()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def utc_now() -> datetime:
    """Naive UTC, like every time inside the window."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class ConsumeStats:
    """What one run did; ``recovered`` entries were pending from before the (re)start."""

    read: int = 0
    counted: int = 0
    ignored: int = 0
    #: Of ``ignored``: older than the window by the clock; already counted (a re-delivery); exposures.
    ignored_too_old: int = 0
    ignored_repeated: int = 0
    ignored_not_counted: int = 0
    dead_lettered: int = 0
    recovered: int = 0
    rebuilt: int = 0
    pushes: int = 0
    rows_pushed: int = 0
    reconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Consumer:
    """One consumer of the group. Use ``run()``; it holds the group's lease until it returns.

    Args:
        broker: the stream and group to read.
        sink: where rows go (a Feast push source in production).
        name: this consumer's name in the group; a restart under the same name takes over its own lease.
        catalog: content categories for clicked items (None: categories stay unknown).
        batch_size: entries per read, and so per push.
        block_ms: how long one read waits for new entries.
        clock: the current time (naive UTC); tests pass their own.
        push_retry: how long a failing push is retried (with backoff) before the consumer gives up. Retrying in
            the process, rather than crashing, keeps an online-store outage from counting deliveries towards
            the dead-letter limit.
        reconnect_for: how long the consumer keeps trying to reach Redis again after losing it (0: not at all;
            None: forever) before ``run`` raises BrokerUnreachable. After reconnecting it resumes exactly as a
            restarted consumer does (lease, rebuild, pending entries).
    """

    def __init__(
        self,
        broker: Broker,
        sink: Sink,
        name: str,
        catalog: Catalog | None = None,
        batch_size: int = 500,
        block_ms: int = 1000,
        clock: Clock = utc_now,
        push_retry: timedelta = timedelta(seconds=60),
        reconnect_for: timedelta | None = timedelta(minutes=5),
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.broker = broker
        self.sink = sink
        self.name = name
        self.catalog = catalog
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.clock = clock
        self.push_retry = push_retry
        self.reconnect_for = reconnect_for
        self.window = RecentActivity(broker.config.window)
        self.stats = ConsumeStats()
        self._checker = ContractChecker()
        self._dirty: set[str] = set()  # users whose online row must be (re)written
        self._last_as_of = datetime.min
        self._next_catalog = 0.0
        self._next_checkpoint = 0.0
        # Reads by this process of entries it has not settled yet (acknowledged or dead-lettered). Reading an entry
        # again after a reconnection counts a delivery in Redis, but this process never died holding it.
        self._reads: Counter[str] = Counter()
        self._lost_at: float | None = None  # when the connection to Redis was lost, until a session runs again
        self._pause = _FIRST_PAUSE  # the next wait before trying Redis again; doubles until a session runs

    # -- the loop --------------------------------------------------------------------------------------------

    def run(
        self,
        until_idle: float | None = None,
        max_entries: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ConsumeStats:
        """Rebuild, recover pending entries, then consume new ones; after a lost connection, the same again.

        Args:
            until_idle: return after this many seconds without new entries (0: as soon as the stream is drained).
            max_entries: return after reading at least this many entries.
            should_stop: polled between batches (the CLI sets it on SIGTERM/SIGINT).

        Raises:
            StreamBusy: another consumer holds the group's lease (at the start, or after a reconnection).
            BrokerUnreachable: Redis could not be reached again within ``reconnect_for``.
        """
        try:
            while True:
                try:
                    self._session(until_idle, max_entries, should_stop)
                    break
                except _Resume as exc:
                    log.warning("%s; taking it back and rebuilding the windows from the stream", exc)
                except Exception as exc:
                    if not connection_lost(exc):
                        raise
                    if self._lost_at is None:
                        self._lost_at = time.monotonic()
                        self._lost(exc)
                    if not self._wait_for_redis(exc, self._lost_at, should_stop):
                        break
        finally:
            self._release_lease()
            self._checker.close()
        return self.stats

    def _session(self, until_idle: float | None, max_entries: int | None, should_stop: Callable[[], bool]) -> None:
        """One connected stretch, begun as a restarted consumer begins: take the lease, rebuild the windows from
        the stream, process the pending entries; then read new ones until told to stop."""
        self.broker.ensure_group()
        self.broker.acquire_lease(self.name)
        self.window = RecentActivity(self.broker.config.window)
        self._dirty = set()
        self._refresh_catalog()
        self._rebuild()
        self._recover()
        if self._lost_at is not None:
            self.stats.reconnects += 1
            waited = time.monotonic() - self._lost_at
            log.info("reconnected to Redis after %.1f s; resumed from the consumer group", waited)
            self._lost_at, self._pause = None, _FIRST_PAUSE
        idle_since = time.monotonic()
        while not should_stop():
            block = None if until_idle == 0 else self.block_ms
            entries = self.broker.read_new(self.name, self.batch_size, block)
            self._process(entries, deliveries=None)
            if entries:
                idle_since = time.monotonic()
            if not self.broker.renew_lease(self.name):
                # It lapsed (Redis was away longer than the lease, or came back without it): another consumer may
                # have read meanwhile, so the windows in memory may be stale. Take it back and rebuild (or StreamBusy).
                raise _Resume(f"consumer {self.name!r} lost its lease on {self.broker.config.stream!r}")
            if max_entries is not None and self.stats.read >= max_entries:
                break
            if until_idle is not None and not entries and time.monotonic() - idle_since >= until_idle:
                break
        self._checkpoint(force=True)

    def _lost(self, exc: BaseException) -> None:
        """Say once what was lost; with no reconnection allowed, give up at once."""
        if self.reconnect_for is not None and self.reconnect_for <= timedelta(0):
            raise BrokerUnreachable(exc, 0.0) from exc
        limit = "forever" if self.reconnect_for is None else f"for up to {self.reconnect_for.total_seconds():.0f} s"
        log.warning("lost the connection to Redis (%s); reconnecting %s", _one_line(exc), limit)

    def _wait_for_redis(self, exc: BaseException, lost_at: float, should_stop: Callable[[], bool]) -> bool:
        """Back off (doubling from 0.5 s to 30 s, kept across failed sessions) until Redis answers a PING; False
        when told to stop first.

        Raises:
            BrokerUnreachable: still no answer ``reconnect_for`` after the connection was lost.
        """
        last = exc
        while True:
            waited = time.monotonic() - lost_at
            if self.reconnect_for is not None and waited + self._pause > self.reconnect_for.total_seconds():
                raise BrokerUnreachable(last, waited) from last
            resume_at = time.monotonic() + self._pause
            self._pause = min(self._pause * 2, _MAX_PAUSE)
            while time.monotonic() < resume_at:
                if should_stop():
                    return False
                time.sleep(min(0.1, max(resume_at - time.monotonic(), 0)))
            try:
                self.broker.r.ping()
                return True
            except CONNECTION_LOST as again:
                last = again
                if self._pause >= _MAX_PAUSE:
                    waited = time.monotonic() - lost_at
                    log.warning("Redis still unreachable after %.0f s (%s)", waited, _one_line(again))

    def _release_lease(self) -> None:
        """Give the group back. Never raises: it runs while another error may be on its way out, and a lease not
        released expires by itself."""
        try:
            self.broker.release_lease(self.name)
        except Exception as exc:
            # Redis being away is already said; a restart under the same name takes the lease back at once.
            level = logging.INFO if connection_lost(exc) else logging.WARNING
            lease = self.broker.config.lease.total_seconds()
            log.log(level, "could not release the lease (%s); it expires in %.0f s", _one_line(exc), lease)

    def _as_of(self) -> datetime:
        # Strictly increasing: Feast's Redis online store skips a row not newer than the one it holds.
        now = max(self.clock(), self._last_as_of + timedelta(microseconds=1))
        self._last_as_of = now
        return now

    # -- one batch -------------------------------------------------------------------------------------------

    def _process(self, entries: Sequence[Entry], deliveries: dict[str, int] | None) -> None:
        """Window the entries, push every changed row, then dead-letter or acknowledge each entry."""
        now = self._as_of()
        self._refresh_catalog()
        dead: list[tuple[Entry, str, str, int]] = []
        usable: list[Entry] = []
        limit = self.broker.config.max_deliveries
        self._reads.update(e.id for e in entries)
        for entry in entries:
            count = self._deliveries(entry.id, (deliveries or {}).get(entry.id, 1))
            if entry.trimmed:
                dead.append((entry, "trimmed", "the entry left the stream (retention) before it was processed", count))
            elif entry.text is None:
                has = ", ".join(repr(name) for name in entry.fields) or "none"
                detail = (
                    f"the entry has no {FIELD!r} field (its fields: {has}): events go in as {FIELD}=<the event's "
                    "JSON>, which `tailor stream publish` and POST /events write"
                )
                dead.append((entry, "no_event_field", detail, count))
            elif count > limit:
                detail = f"delivered {count} times without being processed (limit {limit}); inspect before replaying"
                dead.append((entry, "too_many_deliveries", detail, count))
                # It may have been pushed before the consumer died: rewrite its user's row without it.
                self._dirty.update(_user_of(entry.text))
            else:
                usable.append(entry)
        results = self._checker.check([e.text or "" for e in usable], [e.arrived_at for e in usable])
        for entry, result in zip(usable, results, strict=True):
            if isinstance(result, Event):
                activity = self._activity(result, entry)
                why = self.window.refusal(activity, now)
                if why is None:
                    self.window.add(activity, now)
                    self._dirty.add(result.user_id)
                    self.stats.counted += 1
                else:
                    self.stats.ignored += 1
                    field = f"ignored_{why}"
                    setattr(self.stats, field, getattr(self.stats, field) + 1)
            else:
                count = self._deliveries(entry.id, (deliveries or {}).get(entry.id, 1))
                dead.append((entry, result.reason, result.detail, count))
        self._dirty |= self.window.expire(now)
        if self._dirty:
            self._push(now)
        self.broker.dead_letter(dead, self.name)
        self.broker.ack([e.id for e in usable])
        for entry in entries:
            del self._reads[entry.id]
        self.stats.read += len(entries)
        self.stats.dead_lettered += len(dead)
        for entry, reason, detail, _ in dead:
            log.warning("dead letter %s: %s: %s", entry.id, reason, detail)
        self._checkpoint()

    def _deliveries(self, entry_id: str, counted: int) -> int:
        """The deliveries Redis ``counted``, less this process's own re-reads after a reconnection: it never died
        holding the entry, so losing the connection must not push it towards the dead letters."""
        return counted - max(self._reads[entry_id] - 1, 0)

    def _activity(self, event: Event, entry: Entry) -> Activity:
        # A client clock ahead of ours must not keep an event in the window longer: clamp to the arrival time.
        category = self.catalog.category(event.content_id) if self.catalog and event.event_type == "click" else None
        return Activity(
            event_id=event.event_id,
            user_id=event.user_id,
            event_type=event.event_type,
            event_time=min(event.occurred_at, entry.arrived_at),
            category=category,
            dwell_seconds=event.dwell_seconds,
            content_id=event.content_id if event.event_type == "click" else None,
        )

    def _push(self, as_of: datetime) -> None:
        rows = frame({user: self.window.row(user) for user in self._dirty}, as_of)
        deadline, pause = time.monotonic() + self.push_retry.total_seconds(), 0.5
        while True:
            try:
                self.sink.push(rows)
                break
            except Exception as exc:
                if time.monotonic() + pause > deadline:
                    raise PushFailed(len(rows), exc) from exc
                log.warning("push of %d rows failed (%s); retrying in %.1f s", len(rows), exc, pause)
                self.broker.renew_lease(self.name)  # retrying is not dying: keep the group
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
        self.stats.pushes += 1
        self.stats.rows_pushed += len(rows)
        self._dirty.clear()

    # -- restart -----------------------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Restore the windows from the acknowledged entries; mark every user seen for a push.

        The scan starts one window before the expiry checkpoint, so users whose events expired while no consumer
        ran get their (now smaller) values pushed too; it never reaches further back than the retention.
        """
        config = self.broker.config
        now = self.clock()
        swept = self.broker.swept_until()
        start = (min(swept, now) if swept else now) - config.window
        start = max(start, now - config.retention)
        batch: list[Entry] = []
        for entry in self.broker.acknowledged(since=id_at(start)):
            batch.append(entry)
            if len(batch) >= 5000:
                self._restore(batch, now)
                batch = []
        self._restore(batch, now)
        self.window.expire(now)
        log.info("rebuilt %d events of %d users from the stream", len(self.window), len(self.window.users))

    def _restore(self, entries: Sequence[Entry], now: datetime) -> None:
        usable = [e for e in entries if e.text is not None]
        for entry, result in zip(
            usable, self._checker.check([e.text or "" for e in usable], [e.arrived_at for e in usable]), strict=True
        ):
            if isinstance(result, Event):
                self._dirty.add(result.user_id)
                if self.window.add(self._activity(result, entry), now):
                    self.stats.rebuilt += 1

    def _recover(self) -> None:
        """Process the group's pending entries (a crashed run's) before any new one.

        Entries of other consumer names are claimed without counting a delivery. If any pending entry has already
        been delivered twice, entries are processed one at a time, so a message that crashes the consumer is
        dead-lettered alone instead of taking its batch with it.
        """
        pending = self.broker.pending()
        self.broker.claim(self.name, [i for i, owner, _ in pending if owner != self.name])
        one_by_one = any(self._deliveries(i, n) >= 2 for i, _, n in pending)
        if pending:
            log.info("recovering %d pending entries%s", len(pending), " one at a time" if one_by_one else "")
        after = "0"
        while entries := self.broker.read_pending(self.name, after, 1 if one_by_one else self.batch_size):
            self._process(entries, self.broker.deliveries(self.name, [e.id for e in entries]))
            self.stats.recovered += len(entries)
            after = entries[-1].id
        if self._dirty:
            self._process([], deliveries=None)

    # -- housekeeping --------------------------------------------------------------------------------------------

    def _refresh_catalog(self) -> None:
        if self.catalog is not None and time.monotonic() >= self._next_catalog:
            self.catalog.refresh()
            self._next_catalog = time.monotonic() + _CATALOG_EVERY

    def _checkpoint(self, force: bool = False) -> None:
        """Record that every expiry up to the last push time has been pushed (nothing is dirty here)."""
        if force or time.monotonic() >= self._next_checkpoint:
            if not self._dirty and self._last_as_of > datetime.min:
                self.broker.set_swept_until(self._last_as_of)
            self._next_checkpoint = time.monotonic() + _CHECKPOINT_EVERY

    def describe(self) -> dict[str, Any]:
        return {"consumer": self.name, **self.stats.as_dict()}

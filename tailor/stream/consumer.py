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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tailor.stream.broker import Broker, Entry, StreamBusy, id_at
from tailor.stream.catalog import Catalog
from tailor.stream.events import ContractChecker, Event
from tailor.stream.sink import Sink, frame
from tailor.stream.window import Activity, RecentActivity

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_CATALOG_EVERY = 10.0  # seconds between checks for a republished dim_content mart
_CHECKPOINT_EVERY = 1.0  # seconds between writes of the expiry checkpoint


def _user_of(text: str) -> set[str]:
    """The user_id of an event's JSON text, if it has a readable one."""
    try:
        user = json.loads(text).get("user_id")
    except (ValueError, AttributeError):
        return set()
    return {user} if isinstance(user, str) and user else set()


def utc_now() -> datetime:
    """Naive UTC, like every time inside the window."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class ConsumeStats:
    """What one run did; ``recovered`` entries were pending from before the (re)start."""

    read: int = 0
    counted: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    recovered: int = 0
    rebuilt: int = 0
    pushes: int = 0
    rows_pushed: int = 0

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
        self.window = RecentActivity(broker.config.window)
        self.stats = ConsumeStats()
        self._checker = ContractChecker()
        self._dirty: set[str] = set()  # users whose online row must be (re)written
        self._last_as_of = datetime.min
        self._next_catalog = 0.0
        self._next_checkpoint = 0.0

    # -- the loop --------------------------------------------------------------------------------------------

    def run(
        self,
        until_idle: float | None = None,
        max_entries: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ConsumeStats:
        """Rebuild, recover pending entries, then consume new ones.

        Args:
            until_idle: return after this many seconds without new entries (0: as soon as the stream is drained).
            max_entries: return after reading at least this many entries.
            should_stop: polled between batches (the CLI sets it on SIGTERM/SIGINT).
        """
        self.broker.ensure_group()
        self.broker.acquire_lease(self.name)
        try:
            self._refresh_catalog()
            self._rebuild()
            self._recover()
            idle_since = time.monotonic()
            while not should_stop():
                block = None if until_idle == 0 else self.block_ms
                entries = self.broker.read_new(self.name, self.batch_size, block)
                self._process(entries, deliveries=None)
                if entries:
                    idle_since = time.monotonic()
                if not self.broker.renew_lease(self.name):
                    raise StreamBusy(f"consumer {self.name!r} lost its lease on {self.broker.config.stream!r}")
                if max_entries is not None and self.stats.read >= max_entries:
                    break
                if until_idle is not None and not entries and time.monotonic() - idle_since >= until_idle:
                    break
            self._checkpoint(force=True)
        finally:
            self.broker.release_lease(self.name)
            self._checker.close()
        return self.stats

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
        for entry in entries:
            count = (deliveries or {}).get(entry.id, 1)
            if entry.text is None:
                dead.append((entry, "trimmed", "the entry left the stream (retention) before it was processed", count))
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
                if self.window.add(self._activity(result, entry), now):
                    self._dirty.add(result.user_id)
                    self.stats.counted += 1
                else:
                    self.stats.ignored += 1
            else:
                dead.append((entry, result.reason, result.detail, (deliveries or {}).get(entry.id, 1)))
        self._dirty |= self.window.expire(now)
        if self._dirty:
            self._push(now)
        self.broker.dead_letter(dead, self.name)
        self.broker.ack([e.id for e in usable])
        self.stats.read += len(entries)
        self.stats.dead_lettered += len(dead)
        for entry, reason, detail, _ in dead:
            log.warning("dead letter %s: %s: %s", entry.id, reason, detail)
        self._checkpoint()

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
                    raise
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
        one_by_one = any(n >= 2 for _, _, n in pending)
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

"""Make the landing folder and its log agree again after a crash, before anything else touches them.

Every ingestion (`tailor ingest`, and the inbox step of `tailor run`) holds the landing lock and first calls
`recover_landing`, so whatever a killed process left behind is settled before new files land:

- a transaction whose log lines were all written (committed) but whose batches were not all renamed into place is
  rolled forward: its staged batches are moved into ``landing/<kind>/``;
- staged files of a transaction that never committed (and any other leftover in ``landing/.tmp``) are removed:
  nothing of that call landed, and running it again lands all of it;
- log lines that do not count (a torn last line, a damaged line, the lines of an unfinished transaction) are
  moved out of the log into ``landing/_manifest.dropped.txt``, so the log stays clean for every later reader;
- a batch in the folder that no committed line records (landed by older code killed before its log write, or
  after a damaged line was dropped) gets a "recovered" record rebuilt from the batch itself. The folder is the
  source of truth: dbt reads it, so the log follows it, never the other way round;
- a committed batch missing from the folder (deleted by hand) is reported with what to do.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tailor.contract.rules import KINDS
from tailor.durable import LockTimeout, append_lines, exclusive_lock, fsync_dir, replace_durably, write_atomic
from tailor.ingest.files import IngestError, content_hash
from tailor.ingest.landing import (
    BatchRecord,
    LandingLog,
    append_log,
    batch_path,
    ensure_landing,
    file_signature,
    landed_batches,
    landing_lock_path,
    read_log,
    staged_batch_path,
    staging_dir,
)
from tailor.settings import Settings

logger = logging.getLogger(__name__)

#: How long an ingestion waits for another one to release the landing zone before giving up.
LOCK_TIMEOUT_SECONDS = 600.0
DROPPED_LINES_FILE = "_manifest.dropped.txt"


@dataclass
class Recovery:
    """What `recover_landing` repaired; all empty when the landing zone was consistent."""

    rolled_forward: list[str] = field(default_factory=list)  # batch ids moved into place
    rolled_back: list[str] = field(default_factory=list)  # leftovers removed from landing/.tmp
    adopted: list[str] = field(default_factory=list)  # batch ids given a rebuilt record
    log_lines_dropped: list[str] = field(default_factory=list)  # "line N: why"
    missing: list[str] = field(default_factory=list)  # committed batches not in the folder
    unreadable: list[str] = field(default_factory=list)  # batches that could not be read to rebuild a record

    @property
    def changed(self) -> bool:
        return bool(self.rolled_forward or self.rolled_back or self.adopted or self.log_lines_dropped)

    def messages(self) -> list[str]:
        """One line per kind of repair or problem, for a console or a run log."""
        lines: list[str] = []
        if self.log_lines_dropped:
            lines.append(
                f"landing log: {len(self.log_lines_dropped)} line(s) that an interrupted write left incomplete were "
                f"moved to {DROPPED_LINES_FILE} ({'; '.join(self.log_lines_dropped[:3])})"
            )
        if self.rolled_forward:
            lines.append(
                f"landing: finished an interrupted ingestion, {len(self.rolled_forward)} batch(es) moved into place"
            )
        if self.rolled_back:
            lines.append(
                f"landing: removed {len(self.rolled_back)} leftover(s) of an interrupted ingestion that never "
                "committed; nothing of it had landed, ingest its files again"
            )
        if self.adopted:
            lines.append(
                f"landing: {len(self.adopted)} batch(es) in the folder had no log record (an ingestion was "
                "interrupted before writing it); records were rebuilt from the batches"
            )
        lines.extend(self.missing)
        lines.extend(self.unreadable)
        return lines

    def as_dict(self) -> dict[str, object]:
        return {
            "rolled_forward": len(self.rolled_forward),
            "rolled_back": len(self.rolled_back),
            "adopted": len(self.adopted),
            "log_lines_dropped": len(self.log_lines_dropped),
            "problems": self.missing + self.unreadable,
        }


@contextlib.contextmanager
def landing_session(
    settings: Settings, timeout: float = LOCK_TIMEOUT_SECONDS, on_wait: Callable[[str], None] | None = None
) -> Iterator[Recovery]:
    """Hold the landing lock, create the folders, recover from any crash, and yield what recovery did.

    One process at a time changes the landing zone; another ingestion waits (``on_wait`` is told whom for).

    Raises:
        IngestError: another ingestion held the landing zone for more than ``timeout`` seconds.
    """
    settings.landing.mkdir(parents=True, exist_ok=True)

    def waiting(holder: str) -> None:
        message = f"waiting for {holder}, which is landing files in {settings.landing}"
        (on_wait or logger.warning)(message)

    try:
        with exclusive_lock(landing_lock_path(settings), timeout, on_wait=waiting):
            ensure_landing(settings)
            yield recover_landing(settings)
    except LockTimeout as exc:
        raise IngestError(
            f"the landing zone {settings.landing} is busy: {exc.holder} has been landing files for over "
            f"{exc.waited:.0f} s. Wait for it to finish, then try again."
        ) from exc


def recover_landing(settings: Settings) -> Recovery:
    """Settle what an interrupted ingestion left behind (see the module docstring). Idempotent.

    The caller holds the landing lock (`landing_session`). Each repair is logged as a warning.
    """
    recovery = Recovery()
    log = read_log(settings)
    if log.skipped:
        _drop_lines(settings, log)
        recovery.log_lines_dropped = log.problems()
    _roll_forward(settings, log, recovery)
    _roll_back(settings, log.committed_txns, recovery)
    _adopt_orphans(settings, log, recovery)
    for message in recovery.messages():
        logger.warning(message)
    return recovery


def unfinished_ingestions(settings: Settings) -> int:
    """How many committed ingestions still have batches waiting in landing/.tmp (a crash before they moved).

    Reads nothing when landing/.tmp is empty, so the inbox sensor can ask on every tick. Such batches reach the
    warehouse once the next ingestion or run recovers them.
    """
    staging = staging_dir(settings)
    if not staging.is_dir():
        return 0
    waiting = {p.name for p in staging.iterdir() if p.is_dir()}
    return len(waiting & read_log(settings).committed_txns) if waiting else 0


def _drop_lines(settings: Settings, log: LandingLog) -> None:
    """Rewrite the log with its committed lines only; the others go, with the reason, to the dropped file."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dropped = b"".join(
        f"{stamp}\tline {s.number}\t{s.reason}\t".encode() + s.raw.replace(b"\n", b" ") + b"\n" for s in log.skipped
    )
    append_lines(settings.landing / DROPPED_LINES_FILE, dropped)
    write_atomic(settings.landing_manifest, b"".join(line + b"\n" for line in log.kept_lines))


def _roll_forward(settings: Settings, log: LandingLog, recovery: Recovery) -> None:
    in_folder = landed_batches(settings)
    for record in log.records:
        if record.status != "landed" or not record.txn or record.kind not in KINDS:
            continue
        staged = staged_batch_path(settings, record.txn, record.batch_id)
        final = batch_path(settings, record.kind, record.batch_id)  # type: ignore[arg-type]
        if staged.exists() and record.batch_id not in in_folder:
            replace_durably(staged, final)
            in_folder[record.batch_id] = final
            recovery.rolled_forward.append(record.batch_id)
        elif record.batch_id not in in_folder:
            recovery.missing.append(
                f"landing: {record.kind} batch {record.batch_id} ({record.source_file}) is recorded as landed but "
                f"is not in {final.parent}; the warehouse keeps the rows it already read. To land it again, "
                f"ingest {record.source_file} again"
            )


def _roll_back(settings: Settings, committed: set[str], recovery: Recovery) -> None:
    staging = staging_dir(settings)
    if not staging.is_dir():
        return
    for entry in sorted(staging.iterdir()):
        if entry.is_dir():
            leftovers = list(entry.iterdir())
            shutil.rmtree(entry)
            if entry.name not in committed:  # a committed one was emptied by the roll forward
                recovery.rolled_back.extend(f"{entry.name}/{p.name}" for p in leftovers)
        else:
            entry.unlink()
            recovery.rolled_back.append(entry.name)
    fsync_dir(staging)


def _adopt_orphans(settings: Settings, log: LandingLog, recovery: Recovery) -> None:
    recorded = {r.batch_id for r in log.records if r.status in ("landed", "recovered")}
    orphans = {batch_id: path for batch_id, path in landed_batches(settings).items() if batch_id not in recorded}
    if not orphans:
        return
    records: list[BatchRecord] = []
    con = duckdb.connect()
    try:
        for batch_id, path in sorted(orphans.items()):
            try:
                source, ingested_at, rows = con.execute(
                    "select any_value(source_file), min(ingested_at), count(*) from read_parquet(?)", [str(path)]
                ).fetchall()[0]
            except duckdb.Error as exc:
                recovery.unreadable.append(
                    f"landing: {path} cannot be read ({exc}); dbt will fail on it too. Move it out of "
                    f"{path.parent} and ingest its source file again"
                )
                continue
            records.append(_rebuilt_record(batch_id, path.parent.name, source, ingested_at, int(rows)))
            recovery.adopted.append(batch_id)
    finally:
        con.close()
    append_log(settings, records)


def _rebuilt_record(
    batch_id: str, kind: str, source: str | None, ingested_at: datetime | None, rows: int
) -> BatchRecord:
    """A record for a batch the log does not know; the source's signature only if it still holds the same bytes."""
    size, mtime = -1, -1
    path = Path(source) if source else None
    if path is not None and path.is_file() and content_hash(path)[:24] == batch_id:
        _, size, mtime = file_signature(path)
    stamp = (ingested_at or datetime.now(UTC).replace(tzinfo=None)).isoformat() + "Z"
    return BatchRecord(
        batch_id=batch_id,
        kind=kind,
        source_file=str(path.resolve()) if path is not None else "",
        ingested_at=stamp,
        received=rows,
        accepted=None,
        status="recovered",
        source_size=size,
        source_mtime_ns=mtime,
    )

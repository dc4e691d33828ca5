"""The landing zone: immutable Parquet batches, one per ingested file, and a log of what was landed.

A batch is named by the hash of the file's bytes, so its presence alone says "already ingested". The batches in
``landing/<kind>/`` are what the warehouse reads (dbt's sources glob them): the folder is the source of truth for
the data. The log (``landing/_manifest.jsonl``) records each ingestion as a transaction: it is the commit point
that makes all files of one call land together, the index the inbox uses to tell files it has seen from new ones
(by path, size and mtime, without reading them), and the per-file counts. `tailor.ingest.recovery` keeps the two
in agreement after a crash.

The log is JSON Lines, appended a whole transaction at a time and synced. Each line carries its transaction id and
size; a transaction counts only when all its lines are present and parse, so a crash mid-append commits nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import duckdb

from tailor.contract.rules import KINDS, Kind
from tailor.durable import append_lines, fsync_file, replace_durably
from tailor.settings import Settings

LANDING_COLUMNS = "batch_id varchar, source_file varchar, line_number bigint, raw varchar, ingested_at timestamp"


@dataclass
class BatchRecord:
    """One line of the landing log: a file landed, seen again and skipped, or a batch recovered after a crash.

    ``status`` is "landed", "already_ingested", or "recovered" (a batch found in the folder without a record,
    e.g. landed by a process killed before it wrote the log; its counts are rebuilt from the batch itself). The
    file's size and mtime let the inbox tell files it has not seen from files it has, without reading them
    (-1 when unknown). ``txn`` and ``txn_size`` group the lines one ingestion wrote. ``accepted`` and ``rejected``
    are counted only when the rows were checked at landing (`tailor ingest` does unless told not to, POST /events
    always); where they were not (the inbox of `tailor run`), ``accepted`` is null (None) and the warehouse's
    staging model classifies the rows (logs written before this said 0).
    """

    batch_id: str
    kind: str
    source_file: str
    ingested_at: str
    received: int
    accepted: int | None
    rejected: dict[str, int] = field(default_factory=dict)
    status: str = "landed"
    source_size: int = -1
    source_mtime_ns: int = -1
    txn: str = ""
    txn_size: int = 1


_FIELDS = frozenset(f.name for f in fields(BatchRecord))
_REQUIRED = frozenset(f.name for f in fields(BatchRecord) if f.default is MISSING and f.default_factory is MISSING)


@dataclass(frozen=True)
class SkippedLine:
    """A log line that does not count: its 1-based number, why, and its bytes (kept when the log is repaired)."""

    number: int
    reason: str
    raw: bytes


@dataclass
class LandingLog:
    """The committed records of the log, oldest first, and the lines that were skipped (with the reason).

    Iterating over it yields the committed records.
    """

    records: list[BatchRecord] = field(default_factory=list)
    skipped: list[SkippedLine] = field(default_factory=list)
    kept_lines: list[bytes] = field(default_factory=list)  # the raw lines of committed records, for a rewrite

    def __iter__(self) -> Iterator[BatchRecord]:
        return iter(self.records)

    @property
    def committed_txns(self) -> set[str]:
        return {r.txn for r in self.records if r.txn}

    def problems(self) -> list[str]:
        """One readable line per skipped log line ("line 7: ..."), for a warning or a sensor's skip reason."""
        return [f"line {s.number}: {s.reason}" for s in self.skipped]


def batch_path(settings: Settings, kind: Kind, batch_id: str) -> Path:
    return settings.landing / kind / f"batch-{batch_id}.parquet"


def staging_dir(settings: Settings) -> Path:
    """Where batches are written before their transaction commits (``landing/.tmp``; dbt never reads it)."""
    return settings.landing / ".tmp"


def staged_batch_path(settings: Settings, txn: str, batch_id: str) -> Path:
    return staging_dir(settings) / txn / f"batch-{batch_id}.parquet"


def landed_batches(settings: Settings) -> dict[str, Path]:
    """Every batch in the landing folders, by batch id."""
    found: dict[str, Path] = {}
    for kind in KINDS:
        for path in (settings.landing / kind).glob("batch-*.parquet"):
            found[path.stem.removeprefix("batch-")] = path
    return found


def find_batch(settings: Settings, batch_id: str) -> Path | None:
    """The landed batch with this id, of any kind, if there is one."""
    for kind in KINDS:
        path = batch_path(settings, kind, batch_id)
        if path.exists():
            return path
    return None


def ensure_landing(settings: Settings) -> None:
    """Create the landing folders, each with an empty batch that fixes the schema dbt reads.

    dbt's sources glob ``landing/<kind>/*.parquet``; an empty schema file keeps that glob valid (and the
    warehouse buildable) before the first file of a kind arrives. Call it holding the landing lock.
    """
    for directory in (settings.inbox, settings.marts_dir, settings.warehouse_dir, staging_dir(settings)):
        directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        for kind in KINDS:
            folder = settings.landing / kind
            folder.mkdir(parents=True, exist_ok=True)
            empty = folder / "_empty.parquet"
            if not empty.exists():
                tmp = staging_dir(settings) / f"_empty-{kind}.parquet"
                con.execute(
                    f"copy (select * from (select null::varchar as batch_id, null::varchar as source_file, "
                    f"null::bigint as line_number, null::varchar as raw, null::timestamp as ingested_at) "
                    f"where false) to '{tmp}' (format parquet)"
                )
                fsync_file(tmp)
                replace_durably(tmp, empty)
    finally:
        con.close()


def new_txn() -> str:
    """A fresh transaction id (also the name of its staging folder)."""
    return uuid.uuid4().hex


def append_log(settings: Settings, records: list[BatchRecord], txn: str | None = None) -> str:
    """Commit records as one transaction: all their lines appended in one write and synced. Returns its id.

    Once this returns, the records are durable; a crash during it commits none of them (the reader skips a
    transaction with missing or torn lines).
    """
    if not records:
        return ""
    txn = txn or new_txn()
    lines = [
        json.dumps({**asdict(record), "txn": txn, "txn_size": len(records)}, sort_keys=True) + "\n"
        for record in records
    ]
    settings.landing.mkdir(parents=True, exist_ok=True)
    append_lines(settings.landing_manifest, "".join(lines).encode())
    for record in records:
        record.txn, record.txn_size = txn, len(records)
    return txn


def file_signature(path: Path) -> tuple[str, int, int]:
    """(absolute path, size, mtime): changes when a file is replaced or rewritten."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def read_log(settings: Settings) -> LandingLog:
    """The committed records of the landing log, oldest first; never raises on a damaged line.

    A line that is not complete JSON of a record (a torn last line after a crash, a line damaged on disk), and
    the lines of a transaction that did not finish writing, are skipped and listed in ``skipped``; the landing
    recovery removes them from the file (see `tailor.ingest.recovery`).
    """
    log = LandingLog()
    path = settings.landing_manifest
    if not path.exists():
        return log
    data = path.read_bytes()
    raw_lines = data.split(b"\n")
    torn_tail = raw_lines.pop()  # b"" when the file ends with a newline, as a finished append leaves it
    parsed: list[tuple[int, bytes, BatchRecord]] = []
    for number, line in enumerate(raw_lines, start=1):
        if not line.strip():
            continue
        record, why = _parse(line)
        if record is None:
            log.skipped.append(SkippedLine(number, why, line))
        else:
            parsed.append((number, line, record))
    if torn_tail.strip():
        log.skipped.append(SkippedLine(len(raw_lines) + 1, "incomplete last line (a write was interrupted)", torn_tail))
    seen: dict[str, int] = {}
    for _, _, record in parsed:
        if record.txn:
            seen[record.txn] = seen.get(record.txn, 0) + 1
    for number, line, record in parsed:
        if record.txn and seen[record.txn] != record.txn_size:
            reason = f"part of ingestion {record.txn[:8]}, whose other lines are missing or damaged"
            log.skipped.append(SkippedLine(number, reason, line))
            continue
        log.records.append(record)
        log.kept_lines.append(line)
    log.skipped.sort(key=lambda s: s.number)
    return log


def _parse(line: bytes) -> tuple[BatchRecord | None, str]:
    try:
        data = json.loads(line)
    except ValueError:
        return None, "not valid JSON (a damaged or interrupted write)"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    missing = _REQUIRED - data.keys()
    if missing:
        return None, f"lacks {', '.join(sorted(missing))}"
    try:
        record = BatchRecord(**{k: v for k, v in data.items() if k in _FIELDS})
    except TypeError as exc:
        return None, f"not a landing record ({exc})"
    if not isinstance(record.txn_size, int) or record.txn_size < 1:
        return None, f"bad txn_size {record.txn_size!r}"
    return record, ""


def landing_lock_path(settings: Settings) -> Path:
    return settings.landing / ".lock"

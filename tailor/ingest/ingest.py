"""`tailor ingest`: check files against the contract and land them, all or nothing, even across a crash.

Three phases, holding the landing lock (after recovering from any earlier crash, see `tailor.ingest.recovery`):

1. every file is read, recognised and classified into a staged batch under ``landing/.tmp/<txn>/`` (synced);
   a file that fails the file-level checks stops the call here and the staged batches are removed;
2. the call's log lines are appended in one synced write: the commit point;
3. the staged batches are renamed into ``landing/<kind>/``, where dbt reads them.

A crash before (2) lands nothing (recovery removes the staged batches); a crash after it lands everything
(recovery finishes the renames). A bad file therefore leaves the landing zone (and so the warehouse) as it was.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from tailor.contract.rules import KINDS, Kind, classify_sql
from tailor.durable import fsync_dir, fsync_file
from tailor.ingest.files import IngestError, content_hash, expand, file_format, read_lines, read_parquet_rows
from tailor.ingest.landing import (
    BatchRecord,
    append_log,
    batch_path,
    file_signature,
    find_batch,
    new_txn,
    staged_batch_path,
    staging_dir,
)
from tailor.ingest.recovery import Recovery, landing_session
from tailor.settings import Settings

#: What `land_files` knows of a file's rows: ``check`` them with the contract's row checks now (the landing log then
#: says what the warehouse will quarantine); leave them ``unchecked`` (the scheduled pipeline: dbt applies the same
#: checks minutes later, so each line is parsed once); or they ``passed``: the caller checked every row and rejected
#: none (POST /events refuses a batch with a bad event), so the log counts them all as accepted without a second
#: check (31 ms of a request, measured on the landing alone).
RowCheck = Literal["check", "unchecked", "passed"]

# Keys that identify each kind of file: a row "looks like" a kind when it has all of them.
_SIGNATURES: dict[Kind, tuple[str, ...]] = {
    "events": ("event_type",),
    "users": ("user_id", "plan", "signup_at"),
    "content": ("content_id", "category", "published_at"),
}
_SAMPLE_ROWS = 2000


#: How many rejected lines of a file `tailor ingest` names (the rest: fct_rejected_rows after `tailor run`).
FIRST_REJECTED = 3


@dataclass
class FileReport:
    """What happened to one file."""

    path: str
    kind: str
    batch_id: str
    status: str  # "landed" | "already_ingested"
    received: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rows_checked: bool = True  # False: landed without the row checks (the warehouse applies them anyway)
    #: The first rejected lines (at most `FIRST_REJECTED`): ``{"line", "reason", "detail"}``, in line order; every one
    #: is in the mart fct_rejected_rows after `tailor run`.
    first_rejected: list[dict[str, object]] = field(default_factory=list)


@dataclass
class IngestReport:
    """What one `tailor ingest` call did. Duplicates are counted later, by the warehouse, across all batches."""

    files: list[FileReport] = field(default_factory=list)
    recovery: Recovery = field(default_factory=Recovery)  # what was repaired after an earlier crash

    @property
    def received(self) -> int:
        return sum(f.received for f in self.files if f.status == "landed")

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files if f.status == "landed")

    @property
    def rejected(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            if f.status == "landed":
                total.update(f.rejected)
        return dict(sorted(total.items()))

    @property
    def rows_checked(self) -> bool:
        return all(f.rows_checked for f in self.files if f.status == "landed")

    def as_dict(self) -> dict[str, object]:
        """JSON shape of `tailor ingest --json`; accepted/rejected are null when rows were not checked."""
        checked = self.rows_checked
        return {
            "received": self.received,
            "accepted": self.accepted if checked else None,
            "rejected": sum(self.rejected.values()) if checked else None,
            "rejected_by_reason": self.rejected if checked else None,
            "rows_checked": checked,
            "files": [vars(f) for f in self.files],
            "recovery": self.recovery.as_dict(),
        }


def detect_kind(con: duckdb.DuckDBPyConnection, path: Path, requested: Kind | None) -> Kind:
    """Which contract a file follows, from the keys of its first rows; a file that follows none is refused.

    Raises:
        IngestError: no sampled line is a JSON object, or fewer than half of them carry the keys of ``requested``
            (``--kind``: the message names the keys most rows lack, and the kind they do look like), or, without
            it, of any kind (the message lists what each kind's rows carry).
    """
    keys = sorted({key for signature in _SIGNATURES.values() for key in signature})
    has = {key: f"json_exists(raw, '$.{key}')" for key in keys}
    checks = ", ".join(
        [f"count(*) filter (where {' and '.join(has[k] for k in signature)})" for signature in _SIGNATURES.values()]
        + [f"count(*) filter (where {has[key]})" for key in keys]
    )
    sample = f"(select raw from lines limit {_SAMPLE_ROWS})"
    objects_sql = (
        f"select count(*) filter (where json_valid(raw) and json_type(raw) = 'OBJECT') as objects, {checks} "
        f"from (select case when json_valid(raw) and json_type(raw) = 'OBJECT' then raw end as raw "
        f"from {sample})"
    )
    objects, *row = con.execute(objects_sql).fetchall()[0]
    counts = dict(zip(_SIGNATURES, row[: len(_SIGNATURES)], strict=True))
    per_key = dict(zip(keys, row[len(_SIGNATURES) :], strict=True))
    if objects == 0:
        raise IngestError(
            f"{path}: none of the first {_SAMPLE_ROWS} lines is a JSON object, so this is not a JSON Lines file "
            "of the Tailor contract. See docs/contract/ for the expected shape."
        )
    kind: Kind = requested if requested is not None else max(counts, key=counts.__getitem__)
    if counts[kind] * 2 < objects:
        found = con.execute(
            f"select list_sort(list_distinct(flatten(list(json_keys(raw))))) from {sample} "
            "where json_valid(raw) and json_type(raw) = 'OBJECT'"
        ).fetchall()[0][0]
        fits = [k for k in KINDS if counts[k] * 2 >= objects]
        raise IngestError(_wrong_schema(path, kind, requested, per_key, objects, fits, found))
    return kind


def _wrong_schema(
    path: Path,
    kind: Kind,
    requested: Kind | None,
    per_key: dict[str, int],
    objects: int,
    fits: list[Kind],
    found: list[str],
) -> str:
    """Why a file's rows are not ``kind``, naming only the keys most rows really lack, and what to do.

    With --kind given, "pass --kind" would tell the user to do what they did: the hint is instead the kind the
    rows do look like (or to leave the detection to Tailor). Without it, no kind fits (the best one failed), so
    the message lists what each kind's rows carry.
    """
    shown = ", ".join(found[:20]) + (", ..." if len(found) > 20 else "")
    contract = "Fix the producer to follow the contract (tailor/contract/*.schema.json)"
    if requested is not None:
        signature = _SIGNATURES[kind]
        lacking = [key for key in signature if per_key[key] * 2 < objects]
        # Each key in most rows but rarely all together: say so, rather than name keys the rows have.
        missing = ", ".join(lacking) if lacking else f"{', '.join(signature)} together"
        todo = (
            f"The rows look like {fits[0]}: pass --kind {fits[0]}, or leave --kind out to detect the kind."
            if fits
            else f"{contract}."
        )
        return (
            f"{path}: wrong schema for --kind {kind}: most rows lack {missing} "
            f"({kind} rows carry {', '.join(signature)}). Found keys: {shown}. {todo}"
        )
    needs = "; ".join(f"{k} rows carry {', '.join(keys)}" for k, keys in _SIGNATURES.items())
    return f"{path}: wrong schema: most rows match no kind of the contract ({needs}). Found keys: {shown}. {contract}."


def _prepare(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source: str,
    batch_id: str,
    kind: Kind | None,
    ingested_at: datetime,
    tmp: Path,
    rows: RowCheck,
) -> tuple[FileReport, Kind]:
    """Read, recognise and (if ``rows`` says so) classify one file into a temporary Parquet batch (``source``: its
    `source_file`)."""
    examples: list[dict[str, object]] = []  # the first rejected lines (FileReport.first_rejected)
    lines: pa.Table = read_lines(path) if file_format(path) == "jsonl" else read_parquet_rows(con, path)
    con.register("lines_arrow", lines)
    con.execute(
        "create or replace temp table lines as select ?::varchar as batch_id, ?::varchar as source_file, "
        "line_number::bigint as line_number, raw::varchar as raw, ?::timestamp as ingested_at from lines_arrow",
        [batch_id, source, ingested_at],
    )
    con.unregister("lines_arrow")
    detected = detect_kind(con, path, kind)
    if rows == "check":
        # One pass: each reason's count and its first lines (which lines, said at once: a trial had only the
        # counts until `tailor run`); classifying the file again for the lines doubled the check's cost.
        sql = (
            "select reject_reason, count(*), min_by(struct_pack(line := line_number, detail := reject_detail), "
            f"line_number, {FIRST_REJECTED}) filter (where reject_reason is not null) "
            f"from ({classify_sql(detected, 'lines')}) group by all"
        )
        counts = con.execute(sql).fetchall()
        rejected = {str(reason): int(n) for reason, n, _ in counts if reason is not None}
        accepted = sum(int(n) for reason, n, _ in counts if reason is None)
        received = accepted + sum(rejected.values())
        firsts = [(int(f["line"]), str(r), str(f["detail"] or "")) for r, _, fs in counts if fs for f in fs]
        examples = [{"line": n, "reason": r, "detail": d} for n, r, d in sorted(firsts)[:FIRST_REJECTED]]
    else:
        received, rejected = int(con.execute("select count(*) from lines").fetchall()[0][0]), {}
        accepted = received if rows == "passed" else 0
    # zstd level 1: a third less CPU than the default level 3 for batches a few percent larger (issue 13).
    con.execute(f"copy lines to '{tmp}' (format parquet, compression zstd, compression_level 1)")
    report = FileReport(
        path=str(path),
        kind=detected,
        batch_id=batch_id,
        status="landed",
        received=received,
        accepted=accepted,
        rejected=dict(sorted(rejected.items())),
        rows_checked=rows != "unchecked",
        first_rejected=examples,
    )
    return report, detected


def _problems(check: Callable[[Path], object], files: list[Path]) -> list[str]:
    """The messages of the IngestErrors ``check`` raises over ``files``, in order."""
    found = []
    for path in files:
        try:
            check(path)
        except IngestError as exc:
            found.append(str(exc))
    return found


def _raise_all(problems: list[str]) -> None:
    """Raise one IngestError naming every problem (each message starts with its file), or nothing when none."""
    if len(problems) == 1:
        raise IngestError(problems[0])
    if problems:
        raise IngestError(f"{len(problems)} files cannot be ingested:\n" + "\n".join(f"  {p}" for p in problems))


def ingest_paths(
    paths: Iterable[str | Path],
    settings: Settings,
    kind: Kind | None = None,
    now: datetime | None = None,
    progress: Callable[[Path], None] | None = None,
    check_rows: bool = True,
) -> IngestReport:
    """Validate and land files; re-ingesting a file already landed is a no-op.

    Args:
        paths: files, or folders to search for .jsonl/.parquet files.
        settings: where the landing zone is.
        kind: force the kind of every file ("events", "users", "content") instead of detecting it.
        now: the ingestion time to record (UTC); tests pin it.
        progress: called with each file as it is read.
        check_rows: apply the contract's row checks now to report what the warehouse will quarantine. The
            scheduled pipeline skips this (dbt applies the same checks minutes later) to parse each line once.

    Returns:
        Per file what happened, and in ``recovery`` what was repaired of an earlier, interrupted ingestion.

    Raises:
        IngestError: a file is missing, binary, empty, unreadable or not the contract's shape (nothing landed),
            or another ingestion kept the landing zone busy for too long.
    """
    if kind is not None and kind not in KINDS:
        raise IngestError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    files = expand(paths)
    if not files:
        raise IngestError("no files given. Name event files or folders, e.g. `tailor ingest data/inbox`.")
    _raise_all(_problems(file_format, files))  # refuse unsupported names before reading anything
    with landing_session(settings) as recovery:
        rows: RowCheck = "check" if check_rows else "unchecked"
        report = land_files(files, settings, kind=kind, now=now, progress=progress, rows=rows)
    report.recovery = recovery
    return report


def land_files(
    files: list[Path],
    settings: Settings,
    kind: Kind | None = None,
    now: datetime | None = None,
    progress: Callable[[Path], None] | None = None,
    rows: RowCheck = "check",
    source_names: Mapping[Path, str] | None = None,
) -> IngestReport:
    """Land already-expanded files as one transaction. The caller holds `landing_session`. ``rows``: check the
    files' rows now, leave them to the warehouse, or count them as accepted (`RowCheck`).

    ``source_names`` records a file's origin in words instead of its path (`source_file` in the landing log, the
    batch's rows and the quality marts): the service's spool file is deleted once landed, so its batches say
    which request they came from rather than name a file nobody can open.

    Raises:
        IngestError: as `ingest_paths`; nothing of this call landed.
    """
    # Taken under the lock, so ingestion times follow the order in which calls commit.
    ingested_at = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    stamp = ingested_at.isoformat() + "Z"
    txn = new_txn()
    report = IngestReport()
    staged: list[tuple[Path, Path]] = []
    records: list[BatchRecord] = []
    seen: set[str] = set()
    refused: list[str] = []
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        for path in files:
            if progress:
                progress(path)
            batch_id = content_hash(path)[:24]
            existing = find_batch(settings, batch_id)
            _, size, mtime = file_signature(path)
            # What the log and the batch call the file: a service batch its request, not its spool file (deleted).
            source = (source_names or {}).get(path) or str(path.resolve())
            if existing is not None or batch_id in seen:
                landed_kind = existing.parent.name if existing else "?"
                report.files.append(FileReport(str(path), landed_kind, batch_id, "already_ingested"))
                seen_again = BatchRecord(batch_id, landed_kind, source, stamp, 0, None)
                seen_again.status, seen_again.source_size, seen_again.source_mtime_ns = "already_ingested", size, mtime
                records.append(seen_again)
                continue
            seen.add(batch_id)
            tmp = staged_batch_path(settings, txn, batch_id)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            try:
                file_report, detected = _prepare(con, path, source, batch_id, kind, ingested_at, tmp, rows)
            except IngestError as exc:
                refused.append(str(exc))  # the other files are still checked, so one answer names every bad one
                continue
            fsync_file(tmp)
            staged.append((tmp, batch_path(settings, detected, batch_id)))
            report.files.append(file_report)
            records.append(
                BatchRecord(
                    batch_id=batch_id,
                    kind=detected,
                    source_file=source,
                    ingested_at=stamp,
                    received=file_report.received,
                    accepted=file_report.accepted if file_report.rows_checked else None,
                    rejected=file_report.rejected,
                    source_size=size,
                    source_mtime_ns=mtime,
                )
            )
        _raise_all(refused)
        if staged:
            fsync_dir(staging_dir(settings) / txn)
    except BaseException:
        shutil.rmtree(staging_dir(settings) / txn, ignore_errors=True)
        raise
    finally:
        con.close()
    append_log(settings, records, txn)  # the commit point: from here on, recovery finishes the landing
    for tmp, final in staged:
        tmp.replace(final)
    for folder in {final.parent for _, final in staged}:
        fsync_dir(folder)
    shutil.rmtree(staging_dir(settings) / txn, ignore_errors=True)
    return report

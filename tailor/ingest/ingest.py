"""`tailor ingest`: check files against the contract and land them, all or nothing.

Two phases: every file is read, recognised and classified into a temporary batch first; only when all of them
pass the file-level checks are the batches renamed into the landing zone. A bad file therefore leaves the
landing zone (and so the warehouse) exactly as it was.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from tailor.contract.rules import KINDS, Kind, classify_sql
from tailor.ingest.files import IngestError, content_hash, expand, file_format, read_lines, read_parquet_rows
from tailor.ingest.landing import BatchRecord, append_log, batch_path, ensure_landing, file_signature, find_batch
from tailor.settings import Settings

# Keys that identify each kind of file: a row "looks like" a kind when it has all of them.
_SIGNATURES: dict[Kind, tuple[str, ...]] = {
    "events": ("event_type",),
    "users": ("user_id", "plan", "signup_at"),
    "content": ("content_id", "category", "published_at"),
}
_SAMPLE_ROWS = 2000


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


@dataclass
class IngestReport:
    """What one `tailor ingest` call did. Duplicates are counted later, by the warehouse, across all batches."""

    files: list[FileReport] = field(default_factory=list)

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
        }


def detect_kind(con: duckdb.DuckDBPyConnection, path: Path, requested: Kind | None) -> Kind:
    """Which contract a file follows, from the keys of its first rows; a file that follows none is refused."""
    checks = ", ".join(
        f"count(*) filter (where {' and '.join(f'json_exists(raw, {chr(39)}$.{k}{chr(39)})' for k in keys)}) as {kind}"
        for kind, keys in _SIGNATURES.items()
    )
    sample = f"(select raw from lines limit {_SAMPLE_ROWS})"
    objects_sql = (
        f"select count(*) filter (where json_valid(raw) and json_type(raw) = 'OBJECT') as objects, {checks} "
        f"from (select case when json_valid(raw) and json_type(raw) = 'OBJECT' then raw end as raw "
        f"from {sample})"
    )
    row = con.execute(objects_sql).fetchall()[0]
    objects, counts = row[0], dict(zip(_SIGNATURES, row[1:], strict=True))
    if objects == 0:
        raise IngestError(
            f"{path}: none of the first {_SAMPLE_ROWS} lines is a JSON object, so this is not a JSON Lines file "
            "of the Tailor contract. See docs/contract/ for the expected shape."
        )
    kind: Kind = requested if requested is not None else max(counts, key=counts.__getitem__)
    if counts[kind] * 2 < objects:
        keys = con.execute(
            f"select list_sort(list_distinct(flatten(list(json_keys(raw))))) from {sample} "
            "where json_valid(raw) and json_type(raw) = 'OBJECT'"
        ).fetchall()[0][0]
        wanted = ", ".join(_SIGNATURES[kind])
        raise IngestError(
            f"{path}: wrong schema for {kind}: most rows lack {wanted}. Found keys: {', '.join(keys[:20])}. "
            f"Fix the producer to follow the contract (tailor/contract/*.schema.json), or pass --kind if "
            "the file is of another kind."
        )
    return kind


def _prepare(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    batch_id: str,
    kind: Kind | None,
    ingested_at: datetime,
    tmp: Path,
    check_rows: bool,
) -> tuple[FileReport, Kind]:
    """Read, recognise and (if asked) classify one file into a temporary Parquet batch."""
    lines: pa.Table = read_lines(path) if file_format(path) == "jsonl" else read_parquet_rows(con, path)
    con.register("lines_arrow", lines)
    con.execute(
        "create or replace temp table lines as select ?::varchar as batch_id, ?::varchar as source_file, "
        "line_number::bigint as line_number, raw::varchar as raw, ?::timestamp as ingested_at from lines_arrow",
        [batch_id, str(path), ingested_at],
    )
    con.unregister("lines_arrow")
    detected = detect_kind(con, path, kind)
    if check_rows:
        sql = f"select reject_reason, count(*) from ({classify_sql(detected, 'lines')}) group by all"
        counts = con.execute(sql).fetchall()
        rejected = {str(reason): int(n) for reason, n in counts if reason is not None}
        accepted = sum(int(n) for reason, n in counts if reason is None)
        received = accepted + sum(rejected.values())
    else:
        received, accepted, rejected = int(con.execute("select count(*) from lines").fetchall()[0][0]), 0, {}
    con.execute(f"copy lines to '{tmp}' (format parquet, compression zstd)")
    report = FileReport(
        path=str(path),
        kind=detected,
        batch_id=batch_id,
        status="landed",
        received=received,
        accepted=accepted,
        rejected=dict(sorted(rejected.items())),
        rows_checked=check_rows,
    )
    return report, detected


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

    Raises:
        IngestError: a file is missing, binary, empty, unreadable or not the contract's shape. Nothing landed.
    """
    if kind is not None and kind not in KINDS:
        raise IngestError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    files = expand(paths)
    if not files:
        raise IngestError("no files given. Name event files or folders, e.g. `tailor ingest data/inbox`.")
    for path in files:
        file_format(path)  # refuse unsupported names before reading anything
    ensure_landing(settings)
    ingested_at = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    report = IngestReport()
    staged: list[tuple[Path, Path]] = []
    records: list[BatchRecord] = []
    seen: set[str] = set()
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        for path in files:
            if progress:
                progress(path)
            batch_id = content_hash(path)[:24]
            existing = find_batch(settings, batch_id)
            signature = file_signature(path)
            if existing is not None or batch_id in seen:
                landed_kind = existing.parent.name if existing else "?"
                report.files.append(FileReport(str(path), landed_kind, batch_id, "already_ingested"))
                records.append(
                    BatchRecord(
                        batch_id,
                        landed_kind,
                        signature[0],
                        ingested_at.isoformat() + "Z",
                        0,
                        0,
                        status="already_ingested",
                        source_size=signature[1],
                        source_mtime_ns=signature[2],
                    )
                )
                continue
            seen.add(batch_id)
            tmp = settings.landing / ".tmp" / f"batch-{batch_id}.parquet"
            staged.append((tmp, Path()))
            file_report, detected = _prepare(con, path, batch_id, kind, ingested_at, tmp, check_rows)
            staged[-1] = (tmp, batch_path(settings, detected, batch_id))
            report.files.append(file_report)
            records.append(
                BatchRecord(
                    batch_id=batch_id,
                    kind=detected,
                    source_file=str(path),
                    ingested_at=ingested_at.isoformat() + "Z",
                    received=file_report.received,
                    accepted=file_report.accepted,
                    rejected=file_report.rejected,
                    source_size=signature[1],
                    source_mtime_ns=signature[2],
                )
            )
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    for tmp, final in staged:
        os.replace(tmp, final)
    append_log(settings, records)
    return report

"""The inbox: a folder where producers drop event files for the next run to ingest.

Producers should write a file under a name starting with '.' or '_' and rename it when complete: such names are
never read, so a half-written file is never ingested. A file that fails the file-level checks is moved to
``inbox/_rejected/`` with a note saying why, so one bad file neither blocks later runs nor gets lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from tailor.ingest.files import IngestError, files_in
from tailor.ingest.ingest import IngestReport, ingest_paths
from tailor.ingest.landing import file_signature, read_log
from tailor.settings import Settings


@dataclass
class InboxResult:
    report: IngestReport
    rejected_files: dict[str, str] = field(default_factory=dict)


def inbox_files(settings: Settings) -> list[Path]:
    """Complete files waiting in the inbox, in name order."""
    return files_in(settings.inbox) if settings.inbox.exists() else []


def pending_files(settings: Settings) -> list[Path]:
    """Inbox files not yet landed or seen by an ingestion, judged by path, size and mtime (nothing is read)."""
    seen = {(r.source_file, r.source_size, r.source_mtime_ns) for r in read_log(settings)}
    return [path for path in inbox_files(settings) if file_signature(path) not in seen]


def pending_fingerprint(settings: Settings) -> tuple[str, int]:
    """A key for the set of pending files (changes when one is added or rewritten) and how many there are."""
    digest = hashlib.sha1()
    pending = pending_files(settings)
    for path in pending:
        digest.update("|".join(map(str, file_signature(path))).encode() + b"\n")
    return digest.hexdigest(), len(pending)


def ingest_inbox(settings: Settings) -> InboxResult:
    """Ingest the inbox files no ingestion has seen; set aside, with the reason, any that cannot be ingested."""
    result = InboxResult(report=IngestReport())
    for path in pending_files(settings):
        try:
            # No row checks here: dbt applies them in the same run, so each line is parsed once.
            result.report.files.extend(ingest_paths([path], settings, check_rows=False).files)
        except IngestError as exc:
            rejected_dir = settings.inbox / "_rejected"
            rejected_dir.mkdir(parents=True, exist_ok=True)
            target = rejected_dir / path.name
            path.replace(target)
            target.with_name(target.name + ".error.txt").write_text(str(exc) + "\n")
            result.rejected_files[str(path)] = str(exc)
    return result

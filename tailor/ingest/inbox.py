"""The inbox: a folder where producers drop event files for the next run to ingest.

Producers should write a file under a name starting with '.' or '_' and rename it when complete: such names are
never read, so a half-written file is never ingested. A file that fails the file-level checks, or whose ending
no ingestion reads (a .csv, say), or a symbolic link to nothing, is moved to ``inbox/_rejected/`` with a note
saying why, so one bad file
neither blocks later runs, nor gets lost, nor waits in the inbox unnoticed. A later
rejected file of the same name is kept beside the earlier one (``name.2.jsonl``, ...), never over it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tailor.durable import fsync_dir, replace_durably, write_atomic
from tailor.ingest.files import (
    IngestError,
    dangling_link,
    dangling_links_in,
    files_in,
    unsupported_in,
    unsupported_type,
)
from tailor.ingest.ingest import IngestReport, land_files
from tailor.ingest.landing import file_signature, read_log
from tailor.ingest.recovery import landing_session, unfinished_ingestions
from tailor.settings import Settings

REJECTED_DIR = "_rejected"
NOTE_SUFFIX = ".error.txt"


@dataclass
class InboxResult:
    report: IngestReport
    rejected_files: dict[str, str] = field(default_factory=dict)  # inbox path -> reason
    set_aside_as: dict[str, str] = field(default_factory=dict)  # inbox path -> where it was moved


def inbox_files(settings: Settings) -> list[Path]:
    """Complete files waiting in the inbox, in name order."""
    return files_in(settings.inbox) if settings.inbox.exists() else []


def unsupported_files(settings: Settings) -> list[Path]:
    """Files in the inbox (outside '_'/'.' names) whose ending no ingestion reads: the next run sets them aside."""
    return unsupported_in(settings.inbox) if settings.inbox.exists() else []


def dangling_links(settings: Settings) -> list[Path]:
    """Symbolic links in the inbox whose target does not exist: the next run sets them aside."""
    return dangling_links_in(settings.inbox) if settings.inbox.exists() else []


def pending_files(settings: Settings) -> list[Path]:
    """Inbox files not yet landed or seen by an ingestion, judged by path, size and mtime (nothing is read)."""
    seen = {(r.source_file, r.source_size, r.source_mtime_ns) for r in read_log(settings)}
    return [path for path in inbox_files(settings) if file_signature(path) not in seen]


def pending_fingerprint(settings: Settings) -> tuple[str, int]:
    """A key for the work waiting (changes when a file is added or rewritten) and how many items there are.

    Items are the pending inbox files, the files of an unsupported type (a run sets them aside), and committed
    ingestions whose batches a crash left in landing/.tmp: a run finishes those too.
    """
    digest = hashlib.sha1()
    pending = pending_files(settings) + unsupported_files(settings)
    for path in pending:
        digest.update("|".join(map(str, file_signature(path))).encode() + b"\n")
    links = dangling_links(settings)
    for link in links:
        digest.update(f"dangling:{link}\n".encode())
    pending += links
    unfinished = unfinished_ingestions(settings)
    if unfinished:
        digest.update(f"unfinished:{unfinished}".encode())
    return digest.hexdigest(), len(pending) + unfinished


def ingest_inbox(settings: Settings) -> InboxResult:
    """Ingest the inbox files no ingestion has seen; set aside, with the reason, any that cannot be ingested.

    Recovers the landing zone from an interrupted ingestion first (the report's ``recovery`` says what it did).
    Each file is its own transaction, so a bad file does not hold back the good ones. A file of a type no
    ingestion reads is set aside too (the README promises that of every file that cannot be ingested), rather
    than left in the inbox where nothing would ever say it was not ingested.
    """
    with landing_session(settings) as recovery:
        result = InboxResult(report=IngestReport(recovery=recovery))
        set_aside_first = [(p, unsupported_type(p)) for p in unsupported_files(settings)]
        set_aside_first += [(p, dangling_link(p)) for p in dangling_links(settings)]
        for path, reason in set_aside_first:
            result.rejected_files[str(path)] = reason
            result.set_aside_as[str(path)] = str(set_aside(settings, path, reason))
        for path in pending_files(settings):
            try:
                # No row checks here: dbt applies them in the same run, so each line is parsed once.
                result.report.files.extend(land_files([path], settings, rows="unchecked").files)
            except IngestError as exc:
                result.rejected_files[str(path)] = str(exc)
                result.set_aside_as[str(path)] = str(set_aside(settings, path, str(exc)))
    return result


def set_aside(settings: Settings, path: Path, reason: str) -> Path:
    """Move a refused inbox file to ``inbox/_rejected/`` beside a note with the reason; return its new path.

    The note is written first, under the name the file will take, so a file in ``_rejected`` always has its
    reason. A name already taken (by an earlier file of the same name, or its note) gets a counter.
    """
    rejected_dir = settings.inbox / REJECTED_DIR
    rejected_dir.mkdir(parents=True, exist_ok=True)
    target = _free_name(rejected_dir, path.name)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    retry = (
        f"To retry: fix the file, then move it back into the inbox ({settings.inbox}; where it was: {path}). The "
        "next `tailor run` ingests it (a file set aside was never landed, so nothing of it is ingested twice)."
    )
    note = f"{reason}\n\nfile: {path}\nset aside: {stamp}\n\n{retry}\n"
    write_atomic(target.with_name(target.name + NOTE_SUFFIX), note.encode())
    replace_durably(path, target)
    fsync_dir(path.parent)
    return target


def _free_name(folder: Path, name: str) -> Path:
    """``name`` if neither it nor its note exists in ``folder``, else ``stem.N.suffixes`` with the first free N."""
    stem, dot, suffixes = name.partition(".")
    number = 1
    while True:
        candidate = folder / (name if number == 1 else f"{stem}.{number}{dot}{suffixes}")
        note = candidate.with_name(candidate.name + NOTE_SUFFIX)
        if not candidate.exists() and not candidate.is_symlink() and not note.exists():
            return candidate
        number += 1

"""The landing zone: immutable Parquet batches, one per ingested file, and a log of what was landed.

A batch is named by the hash of the file's bytes, so its presence alone says "already ingested": re-ingesting
the same file is a no-op even if an earlier ingest crashed before writing the log. Batches are written to a
temporary name and renamed into place, so dbt never reads half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from tailor.contract.rules import KINDS, Kind
from tailor.settings import Settings

LANDING_COLUMNS = "batch_id varchar, source_file varchar, line_number bigint, raw varchar, ingested_at timestamp"


@dataclass
class BatchRecord:
    """One line of the landing log: a file landed, or seen again and skipped (status "already_ingested").

    The file's size and mtime let the inbox sensor tell files it has not seen from files it has, without
    reading them.
    """

    batch_id: str
    kind: str
    source_file: str
    ingested_at: str
    received: int
    accepted: int
    rejected: dict[str, int] = field(default_factory=dict)
    status: str = "landed"
    source_size: int = -1
    source_mtime_ns: int = -1


def batch_path(settings: Settings, kind: Kind, batch_id: str) -> Path:
    return settings.landing / kind / f"batch-{batch_id}.parquet"


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
    warehouse buildable) before the first file of a kind arrives.
    """
    for directory in (settings.inbox, settings.marts_dir, settings.warehouse_dir, settings.landing / ".tmp"):
        directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        for kind in KINDS:
            folder = settings.landing / kind
            folder.mkdir(parents=True, exist_ok=True)
            empty = folder / "_empty.parquet"
            if not empty.exists():
                tmp = settings.landing / ".tmp" / f"_empty-{kind}.parquet"
                con.execute(
                    f"copy (select * from (select null::varchar as batch_id, null::varchar as source_file, "
                    f"null::bigint as line_number, null::varchar as raw, null::timestamp as ingested_at) "
                    f"where false) to '{tmp}' (format parquet)"
                )
                os.replace(tmp, empty)
    finally:
        con.close()


def append_log(settings: Settings, records: list[BatchRecord]) -> None:
    with settings.landing_manifest.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(asdict(record), sort_keys=True) + "\n")


def file_signature(path: Path) -> tuple[str, int, int]:
    """(absolute path, size, mtime): changes when a file is replaced or rewritten."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def read_log(settings: Settings) -> Iterator[BatchRecord]:
    """Every batch landed so far, oldest first."""
    if not settings.landing_manifest.exists():
        return
    with settings.landing_manifest.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield BatchRecord(**json.loads(line))

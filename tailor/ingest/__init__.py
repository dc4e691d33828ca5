"""Ingestion: check files against the event contract and land them as immutable Parquet batches."""

from tailor.ingest.files import IngestError
from tailor.ingest.ingest import FileReport, IngestReport, ingest_paths
from tailor.ingest.landing import ensure_landing, read_log
from tailor.ingest.recovery import Recovery, landing_session, recover_landing

__all__ = [
    "FileReport",
    "IngestError",
    "IngestReport",
    "Recovery",
    "ensure_landing",
    "ingest_paths",
    "landing_session",
    "read_log",
    "recover_landing",
]

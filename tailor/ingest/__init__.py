"""Ingestion: check files against the event contract and land them as immutable Parquet batches."""

from tailor.ingest.files import IngestError
from tailor.ingest.ingest import FileReport, IngestReport, ingest_paths
from tailor.ingest.landing import ensure_landing, read_log

__all__ = ["FileReport", "IngestError", "IngestReport", "ensure_landing", "ingest_paths", "read_log"]

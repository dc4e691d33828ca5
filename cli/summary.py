"""What a run produced, read from published files (never from the warehouse file, which a run may hold)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.lib.engine_support import warehouse_of
from tailor.quality import reconcile
from tailor.settings import Settings


def published_marts(settings: Settings) -> dict[str, int]:
    """Row count of every mart published as Parquet, by name.

    DuckDB's COPY writes ``tmp_<name>.parquet`` and renames it when done: such a file is a write in progress, or one
    a stopped dbt left behind (the next build replaces it), never a mart. A file that is not Parquet (yet) is left
    out too: the summary of a run stopped mid-write must not end in a traceback (a trial's SIGTERM during dbt).
    """
    if not settings.marts_dir.exists():
        return {}
    counts: dict[str, int] = {}
    for path in sorted(settings.marts_dir.glob("*.parquet")):
        if path.name.startswith("tmp_"):
            continue
        try:
            counts[path.stem] = pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowInvalid):
            continue
    return counts


def quarantined_by_reason(settings: Settings) -> dict[str, int]:
    """Rows in quarantine (`fct_rejected_rows`, every source) by reject reason, most frequent first (the JSON
    output sorts keys)."""
    path = settings.marts_dir / "fct_rejected_rows.parquet"
    if not path.exists():
        return {}
    counts = pq.read_table(path, columns=["reject_reason"]).column("reject_reason").value_counts().to_pylist()
    pairs = sorted(((str(c["values"]), int(c["counts"])) for c in counts), key=lambda pair: (-pair[1], pair[0]))
    return dict(pairs)


def pipeline_summary(settings: Settings) -> dict[str, Any]:
    """Counts of the event stream, published tables and where everything lives."""
    return {
        "events": reconcile(settings).as_dict(),
        "quarantined_by_reason": quarantined_by_reason(settings),
        "marts": published_marts(settings),
        "engine": settings.engine,
        # DuckDB's file, or Spark's warehouse folder (its tables, one folder each).
        "warehouse": str(warehouse_of(settings, settings.engine)),
        "marts_dir": str(settings.marts_dir),
        "home": str(settings.home),
    }

"""What a run produced, read from published files (never from the warehouse file, which a run may hold)."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from orchestration.lib.engine_support import warehouse_of
from tailor.quality import reconcile
from tailor.settings import Settings


def published_marts(settings: Settings) -> dict[str, int]:
    """Row count of every mart published as Parquet, by name."""
    if not settings.marts_dir.exists():
        return {}
    return {path.stem: pq.ParquetFile(path).metadata.num_rows for path in sorted(settings.marts_dir.glob("*.parquet"))}


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

"""What a run produced, read from published files (never from the warehouse file, which a run may hold)."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from tailor.quality import reconcile
from tailor.settings import Settings


def published_marts(settings: Settings) -> dict[str, int]:
    """Row count of every mart published as Parquet, by name."""
    if not settings.marts_dir.exists():
        return {}
    return {path.stem: pq.ParquetFile(path).metadata.num_rows for path in sorted(settings.marts_dir.glob("*.parquet"))}


def pipeline_summary(settings: Settings) -> dict[str, Any]:
    """Counts of the event stream, published tables and where everything lives."""
    return {
        "events": reconcile(settings).as_dict(),
        "marts": published_marts(settings),
        "warehouse": str(settings.warehouse),
        "marts_dir": str(settings.marts_dir),
        "home": str(settings.home),
    }

"""The reconciliation check against hand-made landing files and fates: a batch landed after the newest batch the
warehouse built is pending (a trial's POSTs to the service during a run failed the run with "rows went missing"),
one landed before it is missing."""

from __future__ import annotations

import duckdb
import pytest

from tailor.quality import reconcile
from tailor.settings import Settings

pytestmark = pytest.mark.unit


def _land(settings: Settings, batch: str, rows: int, at: str) -> None:
    folder = settings.landing / "events"
    folder.mkdir(parents=True, exist_ok=True)
    duckdb.sql(
        f"copy (select '{batch}' as batch_id, 'f.jsonl' as source_file, range + 1 as line_number, '{{}}' as raw, "
        f"timestamp '{at}' as ingested_at from range({rows})) to '{folder / (batch + '.parquet')}' (format parquet)"
    )


def _built(settings: Settings, fates: list[tuple[str, int, str]]) -> None:
    settings.marts_dir.mkdir(parents=True, exist_ok=True)
    values = ", ".join(f"('{b}', 'f.jsonl', timestamp '{at}', {n}, {n}, 0, 0)" for b, n, at in fates)
    duckdb.sql(
        f"copy (select * from (values {values}) t(batch_id, source_file, ingested_at, received, accepted, duplicates, "
        f"quarantined)) to '{settings.marts_dir / 'fct_batch_fates.parquet'}' (format parquet)"
    )


def test_a_batch_landed_after_the_build_is_pending_and_one_before_is_missing(settings: Settings) -> None:
    _land(settings, "b1", 3, "2026-01-05 10:00:00")
    _land(settings, "b2", 2, "2026-01-05 11:00:00")
    _built(settings, [("b1", 3, "2026-01-05 10:00:00"), ("b2", 2, "2026-01-05 11:00:00")])
    assert reconcile(settings).balanced
    _land(settings, "b3", 4, "2026-01-05 11:30:00")  # during the run, after the build read the landing zone
    later = reconcile(settings)
    assert not later.balanced and later.balanced_except_pending
    assert (later.pending_rows, later.pending_batches) == (4, 1)
    _land(settings, "b0", 5, "2026-01-05 10:30:00")  # older than a batch the build took, yet not built: lost
    lost = reconcile(settings)
    assert not lost.balanced_except_pending and (lost.pending_rows, lost.pending_batches) == (4, 1)


def test_a_home_where_nothing_has_landed_reconciles_as_zeros(settings: Settings) -> None:
    """Found by CI: a first `tailor run` stopped by Ctrl-C inside its landing step left no batch, and the summary's
    reconciliation failed on DuckDB's "No files found" with a traceback instead of the run's exit 130."""
    (settings.landing / "events").mkdir(parents=True, exist_ok=True)  # the folder, without a committed batch
    result = reconcile(settings)
    assert (result.received, result.batches_landed, result.pending_rows, result.accepted) == (0, 0, 0, 0)
    assert result.balanced and result.balanced_except_pending

"""The run summary's mart counts when a stopped dbt left a write behind (found by a re-check trial: SIGTERM during
dbt ended in a traceback, `ArrowInvalid: Parquet file size is 0 bytes`, from DuckDB's tmp_fct_impressions.parquet)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli.summary import published_marts
from tailor.settings import Settings

pytestmark = pytest.mark.unit


def test_a_write_in_progress_or_left_behind_is_not_a_mart(settings: Settings) -> None:
    settings.marts_dir.mkdir(parents=True)
    pq.write_table(pa.table({"a": [1, 2, 3]}), settings.marts_dir / "fct_events.parquet")
    (settings.marts_dir / "tmp_fct_impressions.parquet").write_bytes(b"")  # DuckDB's COPY, stopped mid-write
    (settings.marts_dir / "dim_users.parquet").write_bytes(b"PAR1 not yet")  # a file being replaced
    assert published_marts(settings) == {"fct_events": 3}

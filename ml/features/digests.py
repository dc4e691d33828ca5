"""Content digests of the published Parquet marts, per day: what tells a later run that nothing it reads changed.

dbt rewrites every published file on every run (the lookback recomputes the newest days even when nothing new
arrived), so file times and sizes say nothing. A digest here is ``count(*)`` and the sum of DuckDB's ``hash()`` of
each row, per UTC day: independent of row order (a ``delete+insert`` run reorders rows), changed by any value that
changes. DuckDB's ``hash`` may change between DuckDB versions, so callers keep the version next to what they store
(``DIGEST_VERSION``) and treat a new version as "everything changed".

No Feast here: these run on every `tailor run`, also when nothing changed, and must cost a scan, not an import.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import duckdb

from ml.features.sources import parquet_scan

#: Stored next to digests; a different DuckDB may hash differently.
DIGEST_VERSION = f"duckdb-{duckdb.__version__}"


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def daily_digests(path: Path, day_sql: str, columns: Sequence[str] | None = None) -> dict[date, str]:
    """``{day: "rows:hashsum"}`` for a Parquet file, the day of each row given by ``day_sql`` (a DuckDB expression).

    Args:
        path: a Parquet file, or a folder of Parquet parts (a Spark table, see ml.features.sources).
        day_sql: the expression giving a row's day, e.g. ``cast(occurred_at as date)``; evaluated with the session
            time zone set to UTC, so a ``timestamptz`` column gives its UTC day.
        columns: the columns whose values count (default: the whole row).

    Raises:
        FileNotFoundError: the file does not exist.
    """
    scan, parameter = parquet_scan(path)
    row = f"hash({', '.join(_quote(c) for c in columns)})" if columns else "hash(t)"
    sql = f"""
        select {day_sql} as day, count(*) as n, coalesce(sum({row}), 0)::varchar as h
        from {scan} t
        group by day
    """
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        rows = con.execute(sql, [parameter]).fetchall()
    return {day: f"{n}:{h}" for day, n, h in rows if day is not None}


def file_digest(path: Path) -> str:
    """One digest of a whole Parquet file's (or Spark table folder's) rows (``"rows:hashsum"``), independent of
    their order.

    Raises:
        FileNotFoundError: nothing exists at ``path``.
    """
    scan, parameter = parquet_scan(path)
    with duckdb.connect() as con:
        n, h = con.execute(
            f"select count(*), coalesce(sum(hash(t)), 0)::varchar from {scan} t", [parameter]
        ).fetchall()[0]
    return f"{n}:{h}"

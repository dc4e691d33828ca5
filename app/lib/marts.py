"""Reading what a run published: Parquet under ``<TAILOR_HOME>/marts/``, never the DuckDB warehouse file.

A run holds the warehouse file while dbt builds it (DuckDB allows one writer, and even a read-only reader blocks
it), so the app reads only the files each run publishes (dbt's ``publish_parquet`` post-hook and the experiment
assets, both of which replace a file whole). Queries run on an in-memory DuckDB over those files; anything a
user typed goes in as a bound parameter, never into the SQL text.

`stamp` is what the app's caches are keyed on: the modification time and size of every file a view reads, so a
new run (new files) invalidates exactly the views whose inputs changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from tailor.settings import Settings

#: Shown wherever there is nothing to read yet: the one command that builds a demo history.
MAKE_DEMO = "make demo"

#: (file name, modification time in ns, size in bytes) per input file; (name, None, None) when missing.
Stamp = tuple[tuple[str, int | None, int | None], ...]


class NoData(LookupError):
    """Nothing published yet for this view; the message says what is missing and what to run."""


def mart_path(settings: Settings, name: str) -> Path:
    """``<marts>/<name>.parquet``."""
    return settings.marts_dir / f"{name}.parquet"


def stamp(settings: Settings, names: Iterable[str]) -> Stamp:
    """Modification time and size of each named mart (None for a missing one): a cache key that changes when a
    run republishes any of them."""
    out: list[tuple[str, int | None, int | None]] = []
    for name in names:
        try:
            info = mart_path(settings, name).stat()
        except FileNotFoundError:
            out.append((name, None, None))
            continue
        out.append((name, info.st_mtime_ns, info.st_size))
    return tuple(out)


def missing(settings: Settings, names: Iterable[str]) -> list[str]:
    """The named marts that are not published yet."""
    return [name for name in names if not mart_path(settings, name).exists()]


def require(settings: Settings, names: Sequence[str], what: str) -> None:
    """Raise NoData naming the missing marts when any of ``names`` is not published.

    Args:
        what: the view that needs them, for the message ("the KPIs").
    """
    absent = missing(settings, names)
    if absent:
        raise NoData(
            f"No data for {what} yet: {', '.join(f'{n}.parquet' for n in absent)} not published in "
            f"{settings.marts_dir}. Run `{MAKE_DEMO}` (or `tailor run` on your own files) first."
        )


def query(settings: Settings, sql: str, marts: Sequence[str], params: Sequence[Any] = ()) -> pd.DataFrame:
    """Run ``sql`` on an in-memory DuckDB where ``$1 .. $n`` are the marts' paths and the parameters follow.

    ``sql`` is fixed text written in this package; values from the user (an id, a filter) go in ``params`` and
    are bound, never formatted into the text. A file replaced by a run while it is read (the rename is atomic,
    but a reader may have opened the old one) is read again once.

    Args:
        sql: e.g. ``select * from read_parquet($1) where user_id = $2``.
        marts: mart names, bound as ``$1 .. $len(marts)``.
        params: further values, bound after them.

    Raises:
        NoData: a mart is not published.
    """
    require(settings, marts, "this view")
    values = [str(mart_path(settings, name)) for name in marts] + list(params)
    for attempt in range(2):
        con = duckdb.connect(":memory:")
        try:
            return con.execute(sql, values).df()
        except duckdb.IOException:
            if attempt:
                raise
            time.sleep(0.2)
        finally:
            con.close()
    raise AssertionError("unreachable")


def read(settings: Settings, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A whole (small) mart as a frame. Raises NoData when it is not published."""
    require(settings, [name], name)
    for attempt in range(2):
        try:
            return pd.read_parquet(mart_path(settings, name), columns=list(columns) if columns else None)
        except (OSError, ValueError):
            if attempt:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def published_at(settings: Settings, names: Iterable[str]) -> pd.Timestamp | None:
    """The newest modification time (UTC) among the named marts that exist."""
    times = [t for _, t, _ in stamp(settings, names) if t is not None]
    return pd.Timestamp(max(times), unit="ns", tz="UTC") if times else None

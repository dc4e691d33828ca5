"""Wait for DuckDB's single-writer lock on the warehouse before dbt needs it.

A run killed while dbt was building (SIGKILL, OOM, a closed terminal) leaves its dbt child running: it finishes
the build it started, then exits. A rerun started meanwhile would fail at once with DuckDB's "Could not set lock
on file". So the warehouse step first waits, bounded, for whoever holds the file, saying whom; a holder that
stays (a SQL client left open) gets a one-line error that says what to do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import duckdb

#: Long enough for a dbt build left running by a killed run to finish on a large history.
WAIT_SECONDS = 900.0
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseBusyError(RuntimeError):
    """Another process kept the warehouse file locked for longer than we waited."""


class Holder(NamedTuple):
    pid: int | None
    program: str

    def __str__(self) -> str:
        return f"PID {self.pid} ({self.program})" if self.pid is not None else "another process"


def lock_holder(warehouse: Path) -> Holder | None:
    """Who holds the warehouse's lock, or None when it is free or the file does not exist yet.

    Opening the file also replays a write-ahead log a killed writer left behind, before dbt opens it.

    Raises:
        duckdb.IOException: the file cannot be opened for another reason than a lock.
    """
    if not warehouse.exists():
        return None
    try:
        duckdb.connect(str(warehouse)).close()
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        found = _HOLDER.search(str(exc))
        return Holder(int(found["pid"]), found["program"]) if found else Holder(None, "")
    return None


def wait_for_warehouse(
    warehouse: Path,
    log: Callable[[str], None],
    timeout: float = WAIT_SECONDS,
    poll: float = 1.0,
) -> float:
    """Block until no other process holds the warehouse; return the seconds waited.

    Raises:
        WarehouseBusyError: still held after ``timeout`` seconds; the message names the holder and what to do.
    """
    started = time.monotonic()
    holder = lock_holder(warehouse)
    if holder is None:
        return 0.0
    limit = f"{timeout / 60:.0f} min" if timeout >= 120 else f"{timeout:.0f} s"
    log(
        f"waiting (up to {limit}) for {holder} to release {warehouse}: a dbt build left by an interrupted run "
        "finishes first; a SQL client holding the file open must close it"
    )
    while holder is not None:
        waited = time.monotonic() - started
        if waited >= timeout:
            stop = f" (kill {holder.pid})" if holder.pid is not None else ""
            raise WarehouseBusyError(
                f"{warehouse} is still locked by {holder} after {waited:.0f} s: let it finish, or stop it{stop} "
                "if it is left over from an interrupted run or a SQL client you left open, then run again"
            )
        time.sleep(poll)
        holder = lock_holder(warehouse)
    return time.monotonic() - started

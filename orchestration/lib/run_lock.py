"""One `tailor run` at a time on a home.

Two runs on one home would build the same warehouse and write the same marts and models at once: the second one
used to fail midway with `FileNotFoundError: .../run_results.json` (a new-user trial started a second run four
seconds after the first). `tailor run` takes an exclusive lock on ``<TAILOR_HOME>/run.lock`` for its whole run
and refuses to start while another holds it. The lock is the kernel's (``flock``): it goes with the process, so a
run that was killed leaves no stale lock behind (the file's text, who held it last, is only what the error says).
Runs that Dagster launches itself (the UI, schedules, sensors) queue on the instance's run coordinator instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from tailor.faces import DAGSTER_UI, hint

LOCK_FILE = "run.lock"


class RunBusyError(RuntimeError):
    """Another `tailor run` holds the home's run lock."""


#: How long `run_lock` tries before it refuses: `lock_holder` (the inbox sensor, every 30 s) takes the lock for an
#: instant to look, and a run starting in that instant must not be refused for it.
TAKE_WAIT_S = 1.0


def _take(fd: int, wait_s: float = TAKE_WAIT_S) -> bool:
    """Take the exclusive lock on ``fd``, trying for ``wait_s`` seconds; whether it was taken."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _holder(fd: int) -> str:
    """The lock file's text: who took the lock last (``PID 123, started ...``)."""
    return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"


def lock_holder(home: Path) -> str | None:
    """Who holds ``home``'s run lock (the lock file's text, e.g. ``PID 123, started ...``), or None when no
    `tailor run` is running on it. Takes the lock for an instant to tell, so it never blocks."""
    path = home / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(home: Path) -> Iterator[None]:
    """Hold ``home``'s run lock for the block.

    Raises:
        RunBusyError: another process holds it; the message names that process and says what to do.
    """
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
    try:
        if not _take(fd):
            raise RunBusyError(
                f"another `tailor run` is running on {home} ({_holder(fd)}): wait for it to finish, then run again; "
                f"its progress is in {hint(DAGSTER_UI, home)}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()}, started {datetime.now(UTC).isoformat(timespec='seconds')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock

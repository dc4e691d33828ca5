"""Writes that survive a crash: fsync of files and folders, atomic replace, whole-line appends, a process lock.

A rename or a new file is durable only once its folder is synced too (POSIX leaves the directory entry in the
page cache until then), so every helper here syncs the folder it changed. The lock is an advisory `flock` on a
file: the kernel releases it when its holder dies, even by SIGKILL, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class LockTimeout(TimeoutError):
    """Another live process held the lock for longer than the caller was willing to wait."""

    def __init__(self, path: Path, holder: str, waited: float) -> None:
        super().__init__(f"{path} is held by {holder} (waited {waited:.0f} s)")
        self.path = path
        self.holder = holder
        self.waited = waited


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (files created, renamed or removed in it) to the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(source: Path, target: Path) -> None:
    """Rename ``source`` over ``target`` (atomic on one file system) and sync the target's folder."""
    os.replace(source, target)
    fsync_dir(target.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a file's content all at once: readers see the old bytes or the new, never a mix or a part.

    The new bytes go to a hidden temporary file in the same folder (so the rename stays on one file system),
    which is synced, then renamed over the target.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    replace_durably(tmp, path)


def append_lines(path: Path, data: bytes) -> None:
    """Append complete lines to a file and sync them.

    ``data`` is written with one ``write`` call where the kernel allows it (``O_APPEND``), so a crash leaves at
    most one torn line at the end, never a torn line in the middle. If the file does not end with a newline (an
    earlier writer died mid-line), a newline is written first so the torn fragment cannot swallow these lines.

    Raises:
        ValueError: ``data`` does not end with a newline.
    """
    if not data.endswith(b"\n"):
        raise ValueError("append_lines writes whole lines: data must end with a newline")
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextlib.contextmanager
def exclusive_lock(
    path: Path, timeout: float, on_wait: Callable[[str], None] | None = None, poll: float = 0.01
) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the duration of the block.

    ``poll`` is short because the wait is often short: `tailor serve --workers N` lands each POST /events under
    this lock, so one worker waits for another's landing (tens of ms) on a click's way to the page, and a coarse
    step (it was 200 ms) would add most of a step to it. A non-blocking flock every 10 ms costs nothing.

    Waits while another process holds it, calling ``on_wait`` once with a description of the holder, and gives up
    after ``timeout`` seconds. The holder's pid is written into the file so the waiter can say who it waits for.

    Raises:
        LockTimeout: the lock was still held after ``timeout`` seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                waited = time.monotonic() - started
                if waited >= timeout:
                    raise LockTimeout(path, holder, waited) from None
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(fd: int) -> str:
    raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"process {raw}" if raw.isdigit() else "another process"

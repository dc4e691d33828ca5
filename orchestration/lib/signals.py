"""A record of the signals that arrive while `tailor run` runs, kept apart from Dagster's own interrupt handling.

Dagster's in-process executor turns SIGINT (and SIGTERM, which it maps to SIGINT) into an exception raised wherever
the step's code happens to be. Code in C that polls for signals can swallow that exception: DuckDB, interrupted in
a query, raises ``RuntimeError: Query interrupted`` instead, and a step that falls back on an error then goes on
(a new-user trial: Ctrl-C during the drift checks, and the run trained a model for two more minutes and exited 0).

`SignalRecord` asks Python to write each signal's number to a pipe (`signal.set_wakeup_fd`), which it does for
every signal that has a Python handler, whichever handler that is and whatever becomes of its exception. Every
Tailor asset and check calls `stop_if_signalled` first, so a signal another step swallowed still stops the run at
the next step, and `tailor run` reads the record at the end to call the run interrupted, not failed or finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Signals that stop a run: Ctrl-C, and SIGTERM (a `timeout`, a shutdown), which Dagster handles as SIGINT.
STOPPING = frozenset({signal.SIGINT, signal.SIGTERM})


class SignalRecord:
    """The stopping signals seen since the record began (read from the wakeup pipe on demand)."""

    def __init__(self, read_fd: int) -> None:
        self._fd = read_fd
        self.received: list[signal.Signals] = []

    def seen(self) -> bool:
        """Whether a stopping signal has arrived (drains the pipe)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self._fd, 512):
                for number in chunk:
                    if number in STOPPING:
                        self.received.append(signal.Signals(number))
        return bool(self.received)


_current: SignalRecord | None = None


@contextlib.contextmanager
def signal_record() -> Iterator[SignalRecord | None]:
    """Record the stopping signals that arrive inside the block (None outside the main thread, where Python has no
    signal handlers: a Dagster UI run's own process handles its signals). The wakeup fd in place before is restored.
    """
    global _current
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    record = SignalRecord(read_fd)
    _current = record
    default_hook = sys.unraisablehook

    def quiet_interrupts(unraisable: Any) -> None:
        # A Ctrl-C raised inside a garbage-collection callback or a __del__ cannot propagate: Python drops it and
        # prints "Exception ignored ... Traceback ... KeyboardInterrupt". The record has the signal, and the next
        # step stops on it: the traceback would only alarm (a clean-clone suite run).
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default_hook(unraisable)

    sys.unraisablehook = quiet_interrupts
    try:
        yield record
    finally:
        sys.unraisablehook = default_hook
        record.seen()  # what arrived up to the end stays in record.received
        signal.set_wakeup_fd(previous)
        _current = None
        os.close(read_fd)
        os.close(write_fd)


def stop_if_signalled() -> None:
    """Raise KeyboardInterrupt (which Dagster records as an interrupted step) when a stopping signal arrived during
    this `tailor run` and was not acted on. Called first by every Tailor asset and check; a no-op outside a run that
    keeps a record.

    Raises:
        KeyboardInterrupt: a signal arrived earlier in the run.
    """
    if _current is not None and _current.seen():
        raise KeyboardInterrupt(f"{_current.received[0].name} arrived earlier in the run")

"""Start a server (`tailor serve`, `feast serve`) as a child in a process group of its own, and stop the whole group.

Shared by the benchmarks (bench/ puts the repository root on sys.path, as it does for `tests.redis_server`) and the
tests; it lives beside `tests.redis_server` rather than in a package of the pipeline, which never starts servers.

Why a group: `tailor serve --workers N` and `feast serve` start worker processes of their own. Signalling only
the process we started would orphan them if it died first; signalling the group reaches every one. Why the signals
are reset: a shell that starts a job in the background hands it SIGINT and SIGTERM ignored (STACK_NOTES), and an
ignored SIGTERM would turn every stop into a SIGKILL after the grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: How long a group gets between SIGTERM and SIGKILL (uvicorn's graceful shutdown is 10 s).
GRACE_S = 20.0


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def start_group(
    command: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new session (and so of a new process group), output to ``log``.

    stdin is /dev/null; stdout and stderr go to the file ``log`` (a file, not a pipe: a pipe nobody reads fills
    up and blocks the server). Returns the leader; its pid is the group's id.
    """
    with log.open("wb") as sink:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to the group (0: only check it exists); False when no process of it is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def stop_group(process: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> int:
    """SIGTERM to the group of ``process`` (started by `start_group`), wait up to ``grace_s`` for the leader and
    every other member, then SIGKILL to whatever is left. Safe to call twice or after the group exited.

    Returns the leader's exit status (negative: the signal that ended it, as `subprocess` reports it).
    """
    group = process.pid
    deadline = time.monotonic() + grace_s
    _signal_group(group, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(group, signal.SIGKILL)
        process.wait()
    # Members the leader left behind (workers still shutting down): until the deadline, then SIGKILL.
    while _signal_group(group, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(PermissionError):
        _signal_group(group, signal.SIGKILL)
    return process.returncode

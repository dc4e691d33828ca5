"""Start and stop the app as `make app` does, on a loopback port, for the browser test, the screenshots and the
time-to-first-render benchmark.

`streamlit run` started from a non-interactive shell inherits ignored SIGINT/SIGTERM (../shared/STACK_NOTES.md),
so the child resets them to the defaults before it execs, and is stopped with SIGTERM (SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tailor.settings import REPO_ROOT, TELEMETRY_OFF

ENTRYPOINT = REPO_ROOT / "app" / "streamlit_app.py"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@contextmanager
def running_app(
    home: Path, port: int | None = None, timeout_s: float = 120.0, log: Path | None = None
) -> Iterator[str]:
    """Run the app for ``home`` (TAILOR_HOME) on 127.0.0.1 and yield its base URL; stop it on exit.

    Raises:
        RuntimeError: the server did not answer its health check within ``timeout_s`` (the message holds the
            end of its output).
    """
    port = port or free_port()
    command = [
        str(Path(sys.executable).parent / "streamlit"), "run", str(ENTRYPOINT),
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    env = {**os.environ, **TELEMETRY_OFF, "TAILOR_HOME": str(home)}
    sink = log.open("w") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=_default_signals
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, timeout_s, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        if log is not None and hasattr(sink, "close"):
            sink.close()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"the app did not start on {url} within {timeout_s:.0f} s (exit code {process.poll()}): {tail}")

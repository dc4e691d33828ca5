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


def streamlit_command(host: str, port: int, *options: str) -> list[str]:
    """The command that serves the app on ``host``:``port`` (what `tailor app` execs, `make app` runs through
    it): headless, no usage statistics, the toolbar in viewer mode; ``options`` are more of `streamlit run`'s."""
    return [
        str(Path(sys.executable).parent / "streamlit"), "run", str(ENTRYPOINT),
        "--server.headless", "true", "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer", *options,
    ]  # fmt: skip


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
    command = streamlit_command("127.0.0.1", port, "--server.fileWatcherType", "none")
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

"""A real, throwaway `redis-server` on a loopback port, for tests that need Redis (Streams, the Feast online store).

The server runs in the foreground as our child (``--daemonize no``), keeps nothing on disk (``--save ''``,
``--appendonly no``; ``persist=True`` keeps an append-only file in the folder, so a restart finds the data again)
and works in its own temporary folder, so stopping the child leaves nothing behind but that folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tailor.environment import flag

INSTALL_HINT = "redis-server is not installed: run `apt-get install -y redis-server` (as root), then rerun the tests."


def redis_server_binary() -> str | None:
    """Path of `redis-server`, or None when it is not installed."""
    return shutil.which("redis-server")


def services_required() -> bool:
    """CI sets TAILOR_REQUIRE_SERVICES=1: there a missing service fails the run instead of skipping tests."""
    return flag(os.environ, "TAILOR_REQUIRE_SERVICES")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """Start with ``with RedisServer(binary, folder) as server: server.url``; stopped on exit."""

    def __init__(self, binary: str, folder: Path, startup_timeout: float = 10.0, persist: bool = False) -> None:
        self.binary = binary
        self.folder = folder
        self.startup_timeout = startup_timeout
        self.persist = persist
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        # The free port can be taken between our probe and redis binding it: try a few ports.
        for _ in range(5):
            if self._try_start(_free_port()):
                return self
        log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start on a loopback port; its log:\n{log}")

    def _try_start(self, port: int) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--daemonize", "no",
            "--dir", str(self.folder),
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        # A shell that started pytest in the background may pass SIGTERM as ignored; reset it for the child.
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if _answers_ping(port):
                self._process, self.port = process, port
                return True
            time.sleep(0.05)
        process.kill()
        process.wait()
        return False

    def restart(self) -> RedisServer:
        """Start again on the same port, after `stop` (a Redis coming back at the address its clients know)."""
        if not self._try_start(self.port):
            raise RuntimeError(f"redis-server did not start again on port {self.port}")
        return self

    def stop(self) -> None:
        """SIGTERM (redis shuts down cleanly and, with no persistence, writes nothing), SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

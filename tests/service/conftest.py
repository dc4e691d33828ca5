"""Shared fixtures of the service tests: ONE small history with a trained model (built once per session, the way
tests/integration/test_recommend.py builds it), its Feast online store in a real redis-server that can be killed
and restarted with its data, and real `tailor serve` processes on loopback ports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tailor.settings import FEATURE_REPO_DIR, TELEMETRY_OFF, Settings, get_settings
from tests.conftest import SERVED_ENV, copy_home
from tests.process_group import start_group, stop_group
from tests.redis_server import INSTALL_HINT, redis_server_binary, services_required

TAILOR = str(Path(sys.executable).parent / "tailor")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DurableRedis:
    """A redis-server on a fixed loopback port that keeps its data in an append-only file, so a SIGKILL followed
    by `start()` brings the same data back (the online store "coming back" after an outage)."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--daemonize", "no", "--dir", str(self.folder),
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):  # not -LOADING: the data is back
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on {self.address}: {(self.folder / 'redis.log').read_text()}")

    def kill(self) -> None:
        """SIGKILL: the outage a crash causes (no clean shutdown)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class Built:
    settings: Settings
    redis: DurableRedis
    env: dict[str, str]  # what a process needs to use this home and its online store

    @property
    def pages(self) -> pd.DataFrame:
        return pd.read_parquet(self.settings.marts_dir / "batch_recommendations.parquet")

    def personalized_user(self, n: int = 0) -> str:
        """An active user of the personalized arm (the model serves them)."""
        pages = self.pages
        return str(pages.loc[pages["policy"] == "personalized", "user_id"].drop_duplicates().iloc[n])

    def holdout_user(self) -> str:
        pages = self.pages
        return str(pages.loc[pages["policy"] == "holdout", "user_id"].iloc[0])


@pytest.fixture(scope="session")
def built(served_home: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The served home (150 users over 16 days after one `tailor run`) switched to the Redis online store by
    configuration only: a copy of it, and `tailor run` again with Feast's Redis configuration. The run re-applies
    the feature repo (its configuration changed), loads the features and the cached pages into Redis, and keeps
    the warehouse, the training set and the champion (their inputs did not change), which is also what a team
    moving its online store to Redis relies on."""
    binary = redis_server_binary()
    if binary is None:
        if services_required():
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    root = tmp_path_factory.mktemp("service")
    redis = DurableRedis(binary, root / "redis")
    redis.start()
    home = copy_home(served_home, root).home
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        "TAILOR_HOME": str(home),
        "FEAST_FS_YAML_FILE_PATH": str(FEATURE_REPO_DIR / "feature_store.redis.yaml"),
        "TAILOR_FEAST_REDIS": redis.address,
        **SERVED_ENV,  # the served home's configuration: a different one would retrain the ranker
    }
    try:
        done = subprocess.run(
            [TAILOR, "run", "--json"], env=env, capture_output=True, text=True, timeout=1500, check=False
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        models = json.loads(done.stdout)["run"]["models"]
        assert models["ml/ranker"].startswith("up to date: unchanged, version"), models
        assert models["ml/recommendations"].startswith("built: "), models  # the pages are loaded into Redis
        yield Built(get_settings(home), redis, env)
    finally:
        redis.stop()


class Server:
    """`tailor serve` in a process group of its own (its workers stop with it); ``url`` is its base address."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [TAILOR, "serve", "--port", str(self.port), "--log-level", "warning", "--workers", str(workers)]
        self.process = start_group(command, log, env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"tailor serve exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tailor serve did not answer within 120 s: {log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_group(self.process)


def start_server(built: Built, log: Path, workers: int = 1, **env: str) -> Server:
    return Server({**built.env, **env}, log, workers)


@pytest.fixture(scope="session")
def stream_url(built: Built) -> str:
    """The stream lives in the same Redis as the online store (its own database), as on a small deployment."""
    return f"redis://{built.redis.address}/1"


@pytest.fixture(scope="session")
def server(built: Built, stream_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service for the API, events and schema tests. The model path gets a generous budget here, so pages
    are the model's even on a loaded machine; the fault tests start their own with the default budget."""
    started = start_server(
        built,
        tmp_path_factory.mktemp("serve") / "serve.log",
        TAILOR_REDIS_URL=stream_url,
        TAILOR_RECOMMEND_BUDGET_MS="3000",
        TAILOR_SERVICE_DEADLINE_MS="8000",
    )
    yield started
    started.stop()

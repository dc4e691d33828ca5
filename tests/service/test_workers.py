"""`tailor serve --workers 2`: /metrics from any worker counts the requests every worker served (Prometheus'
multiprocess mode), a worker that dies keeps its counts and leaves the gauges, and the metrics folder goes when the
server stops.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.service.conftest import Built, start_server

pytestmark = pytest.mark.integration

HEALTHZ = 'tailor_http_requests_total{method="GET",route="/healthz",status="200"}'


def _metric(text: str, series: str) -> float:
    match = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics:\n{text[:3000]}"
    return float(match.group(1))


def _healthz_by_worker(folder: Path) -> dict[int, float]:
    """Each worker's own count of GET /healthz 200s, read from its counter file alone."""
    counts: dict[int, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for metric in MultiProcessCollector.merge([str(path)]):
            for sample in metric.samples:
                if sample.name == "tailor_http_requests_total" and sample.labels.get("route") == "/healthz":
                    counts[pid] = counts.get(pid, 0.0) + sample.value
    return counts


def _wait_for(condition: object, what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_workers_count_together_and_a_dead_worker_keeps_its_counts(built: Built, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"  # where `tailor serve` makes its metrics folder (TMPDIR), so the test can watch it
    temp.mkdir()
    server = start_server(built, tmp_path / "serve.log", workers=2, TMPDIR=str(temp), TAILOR_REDIS_URL="")
    try:
        [folder] = list(temp.glob("tailor-serve-metrics-*"))
        # Each worker writes its counter file when it builds its app: two files, two workers.
        _wait_for(lambda: len(list(folder.glob("counter_*.db"))) == 2, "both workers to start")
        _wait_for(lambda: httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200, "readiness")
        before = _metric(httpx.get(f"{server.url}/metrics").text, HEALTHZ)

        # A new connection per request, several at once: the kernel hands connections to both workers.
        sent = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            while sent < 800 and (len(_healthz_by_worker(folder)) < 2 or sent < 40):
                statuses = list(pool.map(lambda _: httpx.get(f"{server.url}/healthz").status_code, range(20)))
                assert statuses == [200] * 20
                sent += 20
        by_worker = _healthz_by_worker(folder)
        assert len(by_worker) == 2 and all(count > 0 for count in by_worker.values()), by_worker

        # Whichever worker answers /metrics, it reports the sum of both (several scrapes reach both workers).
        for _ in range(6):
            text = httpx.get(f"{server.url}/metrics").text
            assert _metric(text, HEALTHZ) == before + sent == sum(by_worker.values())
            assert _metric(text, "tailor_model_loaded") == 1  # livemin: every worker has the model path open
            assert _metric(text, 'tailor_model_info{closed_reason="",version="1"}') == 1

        # A worker killed outright (no shutdown code runs): uvicorn starts another; the dead one's requests still
        # count, and its live gauges leave the sums at the next scrape.
        victim = max(by_worker, key=lambda pid: by_worker[pid])
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(list(folder.glob("counter_*.db"))) == 3, "uvicorn to replace the killed worker")
        text = httpx.get(f"{server.url}/metrics").text
        assert _metric(text, HEALTHZ) == before + sent
        assert not list(folder.glob(f"gauge_live*_{victim}.db"))
        assert (folder / f"counter_{victim}.db").exists()
    finally:
        server.stop()
    assert not folder.exists(), "the metrics folder outlived the server"
    # Each worker is a new process: no library's deprecation notice from any of them (sqlglotrs's, a trial).
    log = (tmp_path / "serve.log").read_text()
    assert "DeprecationWarning" not in log, log[-3000:]

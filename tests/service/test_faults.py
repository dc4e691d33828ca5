"""Faults with real servers: the online store's Redis killed under load and brought back, the stream's broker down.

What a platform relies on: while the online store is down every request still gets a 200 with a full page, marked
as a fallback in the body and counted in /metrics; when Redis is back, the model path serves again without
restarting the service. With the stream's Redis down, POST /events still lands the events (the landing zone is the
system of record) and says the stream is behind.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.redis_server import RedisServer, redis_server_binary
from tests.service.conftest import Built, Server, start_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stream_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    assert binary is not None
    with RedisServer(binary, tmp_path_factory.mktemp("stream-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def faulty(built: Built, stream_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service whose stream is a Redis of its own (so it can be stopped), a 0.5 s model budget, 1.5 s deadline."""
    server = start_server(
        built,
        tmp_path_factory.mktemp("faulty") / "serve.log",
        TAILOR_REDIS_URL=stream_redis.url,
        TAILOR_RECOMMEND_BUDGET_MS="500",
        TAILOR_SERVICE_DEADLINE_MS="1500",
    )
    yield server
    server.stop()


class Load:
    """GET pages from 4 concurrent clients in a thread until stopped; every response is recorded with its time."""

    def __init__(self, url: str, users: list[str]) -> None:
        self.url, self.users = url, users
        self.records: list[tuple[float, int, dict[str, Any] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:

            async def worker(n: int) -> None:
                i = n
                while not self._stop.is_set():
                    response = await client.get(f"/recommendations/{self.users[i % len(self.users)]}")
                    body = response.json() if response.status_code == 200 else None
                    self.records.append((time.monotonic(), response.status_code, body))
                    i += 4

            await asyncio.gather(*(worker(n) for n in range(4)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def between(self, start: float, end: float) -> list[tuple[float, int, dict[str, Any] | None]]:
        return [r for r in self.records if start <= r[0] < end]


def _metric(text: str, series: str) -> float:
    match = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_the_online_store_killed_under_load_then_back(built: Built, faulty: Server) -> None:
    users = [built.personalized_user(n) for n in range(8)]
    pid = faulty.process.pid
    with Load(faulty.url, users) as load:
        time.sleep(2)
        killed = time.monotonic()
        built.redis.kill()
        time.sleep(6)
        down = httpx.get(f"{faulty.url}/readyz")
        metrics_down = httpx.get(f"{faulty.url}/metrics").text
        restarted = time.monotonic()
        built.redis.start()  # same port, same data (append-only file)
        resumed = None
        while time.monotonic() - restarted < 30:
            recent = load.between(time.monotonic() - 0.5, time.monotonic())
            if any(body and body["served_by"] == "model" for _, _, body in recent):
                resumed = time.monotonic()
                break
            time.sleep(0.2)
        time.sleep(0.5)
    assert load.records, "no request was answered"
    statuses = {status for _, status, _ in load.records}
    assert statuses == {200}, f"statuses under the fault: {statuses}"
    assert all(body and len(body["items"]) == 10 for _, _, body in load.records)
    before = load.between(0, killed)
    # Before the kill: the model's pages, or the cached page when both model workers were busy (load shedding).
    assert before and all(body and body["served_by"] in ("model", "cached") for _, _, body in before)
    assert any(body and body["served_by"] == "model" for _, _, body in before)
    for _, _, body in load.between(killed + 0.2, restarted):  # answered after the kill: never the model's
        assert body and body["served_by"] != "model" and body["fallback_reason"] and body["latency_ms"] <= 2000
    # Once the store watcher has seen the outage (a probe a second, one second to answer: 2 s) and the requests
    # begun before it have met their deadline (1.5 s), pages come from memory.
    outage = load.between(killed + 4, restarted)
    assert len(outage) > 10
    for _, _, body in outage:
        assert body and body["served_by"] == "popular" and body["model_version"] is None
        assert "the online store is down" in body["fallback_reason"], body["fallback_reason"]
    assert sorted(body["latency_ms"] for _, _, body in outage)[len(outage) // 2] < 50  # type: ignore[index]
    assert down.status_code == 503 and down.json()["checks"]["online_store"]["ok"] is False
    assert _metric(metrics_down, 'tailor_recommendation_fallbacks_total{reason="store_down"}') >= len(outage)
    assert _metric(metrics_down, 'tailor_online_store_errors_total{operation="probe"}') >= 1
    assert resumed is not None, "the model path did not resume within 30 s of Redis coming back"
    assert faulty.process.poll() is None and faulty.process.pid == pid  # the same process: no restart
    assert httpx.get(f"{faulty.url}/readyz").status_code == 200


def test_with_the_stream_down_events_still_land_and_the_response_says_so(
    built: Built, faulty: Server, stream_redis: RedisServer
) -> None:
    stream_redis.stop()
    event = {
        "event_id": f"svc-{uuid.uuid4().hex}",
        "event_type": "click",
        "user_id": "u0000020",
        "occurred_at": datetime.now(UTC).isoformat(),
        "content_id": "c0000021",
        "request_id": "r-stream-down",
    }
    response = httpx.post(f"{faulty.url}/events", json={"events": [event]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "landed" and body["stream"]["behind"] is True and body["stream"]["published"] == 0
    assert body["stream"]["detail"].startswith("landed, but the stream")
    batch = Path(built.settings.landing / "events" / f"batch-{body['batch_id']}.parquet")
    assert _landed(batch, event)
    # A retry of the batch: nothing new landed, and the answer does not say it was (a trial).
    again = httpx.post(f"{faulty.url}/events", json={"events": [event]}).json()
    assert again["status"] == "already_ingested" and again["batch_id"] == body["batch_id"]
    assert again["stream"]["detail"].startswith("already landed before, but the stream"), again
    metrics = httpx.get(f"{faulty.url}/metrics").text
    assert _metric(metrics, "tailor_stream_publish_failures_total") >= 1
    assert _metric(metrics, "tailor_stream_behind_events") >= 1


def _landed(batch: Path, event: dict[str, Any]) -> bool:
    import pandas as pd

    return any(event["event_id"] in raw for raw in pd.read_parquet(batch)["raw"])

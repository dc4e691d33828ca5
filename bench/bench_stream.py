"""Benchmark: the streaming path (Redis Stream -> 30-minute windows -> Feast push), SQLite and Redis online stores.

Starts its own redis-server on a loopback port and a throwaway Feast repository with the project's recent-activity
definitions, then measures:
  1. publish: events/s through `publish` (contract check in DuckDB + pipelined XADD);
  2. consume: events/s for a consumer draining a backlog (read, window, push, acknowledge), per batch size;
  3. click to online: for single clicks published one at a time while the consumer runs, the time from the start
     of `publish_event` to the end of the push that wrote the user's row (the value is readable from then on).

    .venv/bin/python bench/bench_stream.py --events 50000
    .venv/bin/python bench/bench_stream.py --events 500 --clicks 5 --output /tmp/stream.json   # a smoke run

With --redis-url it uses a running server instead: its streams are named ``bench:<run id>:*`` and deleted afterwards,
and its Feast rows belong to the `tailor_stream_test` project.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "stream.json"
sys.path.insert(0, str(BENCH_DIR.parent))  # the tests package: its redis-server and Feast repo helpers

from tailor.settings import disable_telemetry  # noqa: E402
from tailor.stream import Broker, Consumer, StreamConfig, connect, publish, publish_event  # noqa: E402
from tailor.stream.config import PUSH_SOURCE  # noqa: E402
from tailor.stream.sink import FeastSink  # noqa: E402
from tests.integration.feast_repo import (  # noqa: E402
    apply_recent_activity_repo,
    redis_online_store,
    sqlite_online_store,
)
from tests.redis_server import RedisServer, redis_server_binary  # noqa: E402


def _events(n: int, users: int, start: datetime) -> list[dict[str, Any]]:
    """A mix like the simulator's: mostly impressions, some clicks and views, a second apart per user."""
    kinds = ["impression"] * 7 + ["click", "view", "impression"]
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        event: dict[str, Any] = {
            "event_id": f"b{i}",
            "event_type": kind,
            "user_id": f"u{i % users:06d}",
            "occurred_at": (start + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
            "content_id": f"c{i % 500}",
        }
        if kind == "impression":
            event.update(position=1 + i % 10, surface="home", request_id=f"r{i // 10}")
        elif kind == "click":
            event["request_id"] = f"r{i // 10}"
        else:
            event["dwell_seconds"] = 12.5
        out.append(event)
    return out


class _Timed:
    """The real sink, noting when each user's row was written."""

    def __init__(self, inner: FeastSink) -> None:
        self.inner = inner
        self.written: dict[str, float] = {}

    def push(self, rows: pd.DataFrame) -> None:
        self.inner.push(rows)
        done = time.perf_counter()
        for user in rows["user_id"]:
            self.written.setdefault(str(user), done)


def _store(repo: Path) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def _bench(store_name: str, repo: Path, url: str, n: int, clicks: int) -> dict[str, Any]:
    result: dict[str, Any] = {"online_store": store_name}
    client = connect(url)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:{store_name}"
    try:
        return _measure(result, client, prefix, repo, n, clicks)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def _measure(result: dict[str, Any], client: Any, prefix: str, repo: Path, n: int, clicks: int) -> dict[str, Any]:
    """Publish, consume and click-to-online figures on streams named ``<prefix>:*``."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    events = _events(n, users=max(n // 50, 1), start=start)

    for batch_size in (100, 500, 2000):
        broker = Broker(client, StreamConfig(stream=f"{prefix}:{batch_size}"))
        began = time.perf_counter()
        report = publish(broker, events)
        published = time.perf_counter() - began
        assert len(report.published) == n, report.rejected[:3]
        consumer = Consumer(broker, FeastSink(_store(repo), PUSH_SOURCE), name="bench", batch_size=batch_size)
        began = time.perf_counter()
        stats = consumer.run(until_idle=0)
        consumed = time.perf_counter() - began
        result.setdefault("publish_events_per_s", round(n / published))
        result[f"consume_events_per_s_batch_{batch_size}"] = round(n / consumed)
        result[f"rows_per_push_batch_{batch_size}"] = round(stats.rows_pushed / max(stats.pushes, 1), 1)

    broker = Broker(client, StreamConfig(stream=f"{prefix}:latency"))
    sink = _Timed(FeastSink(_store(repo), PUSH_SOURCE))
    stop = threading.Event()
    consumer = Consumer(broker, sink, name="bench-latency", batch_size=500, block_ms=100)
    worker = threading.Thread(target=consumer.run, kwargs={"should_stop": stop.is_set})
    worker.start()
    time.sleep(3)  # let it rebuild and start blocking on the stream
    sent: dict[str, float] = {}
    for i in range(clicks):
        user = f"lat{i}"
        event = {
            "event_id": f"lat{i}",
            "event_type": "click",
            "user_id": user,
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "content_id": "c1",
            "request_id": "r1",
        }
        sent[user] = time.perf_counter()
        publish_event(broker, event)
        time.sleep(0.02)
    deadline = time.perf_counter() + 30
    while len(sink.written) < clicks and time.perf_counter() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join()
    latencies = sorted((sink.written[u] - t) * 1000 for u, t in sent.items() if u in sink.written)
    assert len(latencies) == clicks, f"only {len(latencies)} of {clicks} clicks reached the store"
    result["click_to_online_ms_p50"] = round(statistics.median(latencies), 1)
    result["click_to_online_ms_p99"] = round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1)
    result["click_to_online_ms_max"] = round(latencies[-1], 1)
    return result


@contextlib.contextmanager
def _throwaway_redis(folder: Path) -> Iterator[str]:
    """The URL of a redis-server on a loopback port, stopped on exit."""
    binary = redis_server_binary()
    if binary is None:
        raise SystemExit("redis-server is not installed: run `apt-get install -y redis-server` (as root).")
    with RedisServer(binary, folder) as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--clicks", type=int, default=200, help="single clicks timed for click-to-online latency")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"Results file (default {RESULTS}).")
    parser.add_argument(
        "--redis-url", default=None, help="a running server (redis://HOST:PORT) instead of a throwaway redis-server"
    )
    args = parser.parse_args()
    disable_telemetry()
    results = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(_throwaway_redis(Path(tmp) / "redis"))
        home = Path(tmp) / "home"
        (home / "marts").mkdir(parents=True)
        repos = {
            "sqlite": apply_recent_activity_repo(Path(tmp) / "fs", sqlite_online_store(Path(tmp) / "fs"), home),
            "redis": apply_recent_activity_repo(Path(tmp) / "fr", redis_online_store(url), home),
        }
        for name, repo in repos.items():
            results.append(_bench(name, repo, url, args.events, args.clicks))
            print(json.dumps(results[-1]), flush=True)
    out = {
        "benchmark": "stream",
        "events": args.events,
        "clicks": args.clicks,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: the personalization service (issue 11) under load, next to a bare `feast serve` call.

On one generated history (`tailor generate` + `tailor run`, the Feast online store in a redis-server of its own),
with `tailor serve` and `feast serve` (the same feature repository and online store, `--max-requests 0` as
feature_repo/README.md advises) on loopback ports, measures from a second process (a bounded httpx async client):

1. the load table: at each concurrency level, throughput, p50/p99 and errors of GET /recommendations/{user} over
   the active users (which path served, too), then of `POST /get-online-features` for the same users' online
   features (the one online read the model path makes) at the same concurrency;
   goal: the service's p99 at moderate load (concurrency 4 on 2 cores) <= 5x feast serve's p99 there;
2. fallback latency: cold-start users (the popular page), a service whose model budget is 1 ms (the cached batch
   page), and the online store's Redis killed (the popular page from memory, once the store watcher sees it);
3. click to changed page: POST /events with a click, `tailor stream consume` running, then GET the user's page
   every 10 ms until it shows the click (a "because you just read <category>" slot): the time from the POST.

    .venv/bin/python bench/bench_service.py                                  # writes bench/results/service.json
    .venv/bin/python bench/bench_service.py --smoke --output /tmp/service.json   # tiny, a few minutes
    .venv/bin/python bench/bench_service.py --home-from data   # a copy of a built home (the demo's) instead

With ``--home-from`` the history is a copy of a home that `tailor run` has built (with a trained champion), and
the copy gets one more `tailor run` that moves its online store to the Redis server; the test suite passes its own
served home that way, rather than simulating and training the same 150-user history a second time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # the tests package: its redis-server helper
sys.path.insert(0, str(BENCH_DIR))

from bench_feature_store import FeastServer, load, machine  # noqa: E402

from tailor.settings import FEATURE_REPO_DIR, TELEMETRY_OFF, Settings, get_settings  # noqa: E402
from tests.process_group import start_group, stop_group  # noqa: E402
from tests.redis_server import RedisServer, redis_server_binary  # noqa: E402

BIN = Path(sys.executable).parent
TAILOR = str(BIN / "tailor")
GOAL_RATIO = 5.0
MODERATE = 4  # concurrency called "moderate load" on 2 cores: the goal's level


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BareFeastServer(FeastServer):
    """`feast serve` as feature_repo/README.md advises for serving (no worker restart every 1,000 requests)."""

    @staticmethod
    def command(port: int) -> list[str]:
        return [*FeastServer.command(port), "--max-requests", "0"]


class Service:
    """`tailor serve` in a process group of its own (stopped with its workers: `tests.process_group`)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [TAILOR, "serve", "--port", str(self.port), "--log-level", "warning", "--workers", str(workers)]
        self.process = start_group(command, log, env)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tailor serve did not come up: {log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)

    def stop(self) -> None:
        stop_group(self.process)


# --- the load client (a second process) -----------------------------------------------------------------------


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one bounded load: ``requests`` requests (or ``seconds``) from ``concurrency`` tasks, after a warm-up.

    spec: url, concurrency, requests, seconds, warmup, and either ``paths`` (GET) or ``bodies`` (POST ``path``).
    """
    import httpx

    async def run() -> dict[str, Any]:
        n = spec["concurrency"]
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        served: dict[str, int] = {}
        counter = iter(range(10**9))
        async with httpx.AsyncClient(base_url=spec["url"], limits=limits, timeout=30) as client:

            async def one(i: int, record: bool) -> None:
                started = time.perf_counter()
                if "paths" in spec:
                    response = await client.get(spec["paths"][i % len(spec["paths"])])
                else:
                    body = spec["bodies"][i % len(spec["bodies"])]
                    response = await client.post(
                        spec["path"], content=body, headers={"Content-Type": "application/json"}
                    )
                elapsed = time.perf_counter() - started
                if record:
                    latencies.append(elapsed * 1000)
                    statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                    by = response.headers.get("x-served-by")
                    if by:
                        served[by] = served.get(by, 0) + 1

            for i in range(spec["warmup"]):
                await one(i, record=False)
            began = time.perf_counter()
            stop_at = began + spec["seconds"]

            async def worker() -> None:
                while time.perf_counter() < stop_at:
                    i = next(counter)
                    if i >= spec["requests"]:
                        return
                    await one(i, record=True)

            await asyncio.gather(*(worker() for _ in range(n)))
            wall = time.perf_counter() - began
        values = np.array(latencies)
        errors = sum(count for status, count in statuses.items() if status != "200")
        return {
            "concurrency": n,
            "requests": len(latencies),
            "seconds": round(wall, 3),
            "throughput_rps": round(len(latencies) / wall, 1) if wall else None,
            "p50_ms": round(float(np.percentile(values, 50)), 2) if len(values) else None,
            "p90_ms": round(float(np.percentile(values, 90)), 2) if len(values) else None,
            "p99_ms": round(float(np.percentile(values, 99)), 2) if len(values) else None,
            "max_ms": round(float(values.max()), 2) if len(values) else None,
            "errors": errors,
            "statuses": statuses,
            "served_by": served,
        }

    return asyncio.run(run())


def load_from_second_process(spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """The client in a child Python process, so its CPU is not the server's (both on loopback)."""
    path = scratch / f"spec-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, __file__, "client", str(path)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load client failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- the scenario -------------------------------------------------------------------------------------------------


def build(home: Path, env: dict[str, str], users: int, days: int, seed: int, source: Path | None = None) -> float:
    """Seconds to make the benchmark's home: simulate and run, or copy ``source`` (a built home) and run again,
    which moves its online store to the Redis the environment names.

    Raises:
        RuntimeError: a command failed, or the copy's run trained its ranker again (the copy's MLflow store names
            the source home's artifact folder, which a training would write into): the TAILOR_RANKER_* settings
            differ from those the source home was built with.
    """
    started = time.perf_counter()
    steps: list[tuple[str, ...]] = [("run", "--json")]
    if source is None:
        steps.insert(0, ("generate", "--users", str(users), "--days", str(days), "--seed", str(seed)))
    else:
        shutil.copytree(source, home, symlinks=True)
    for args in steps:
        done = subprocess.run([TAILOR, *args], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tailor {args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if source is not None:
        ranker = json.loads(done.stdout)["run"]["models"].get("ml/ranker", "")
        if not ranker.startswith("up to date"):
            raise RuntimeError(
                f"the copy of {source} trained its ranker again ({ranker}): run with the TAILOR_RANKER_* settings "
                "that home was built with"
            )
    return time.perf_counter() - started


def active_users(settings: Settings) -> tuple[list[str], list[str]]:
    """(personalized users, holdout users) of the batch pages: the active users."""
    import pandas as pd

    pages = pd.read_parquet(settings.marts_dir / "batch_recommendations.parquet", columns=["user_id", "policy"])
    first = pages.drop_duplicates("user_id")
    return (
        first.loc[first["policy"] == "personalized", "user_id"].tolist(),
        first.loc[first["policy"] == "holdout", "user_id"].tolist(),
    )


def user_feature_refs(settings: Settings) -> list[str]:
    """The user features the model path reads online (one read per request), as `view:feature`."""
    from ml.recommend.serving import service_features
    from tailor.feature_store import open_store

    return service_features(open_store(settings), "ranker_v1")[0]


#: The stages of a click's way to the page, in order (milliseconds each; `click_to_page` says how each is timed).
STAGES = ("post_ms", "land_ms", "stream_to_consumer_ms", "consumer_to_online_ms", "online_to_page_ms")


def click_to_page(
    service_url: str, stream_url: str, settings: Settings, users: list[str], clicks: int
) -> dict[str, Any]:
    """For ``clicks`` users served by the model: POST a click on an item of their lowest personalized slot's
    category, then time each stage until their page says "because you just read <category>".

    Stages (wall-clock milliseconds, one machine, so the Redis and Python clocks agree):
    - post_ms: the POST /events round trip (contract check, landing transaction, stream append);
    - land_ms: from sending the POST until the stream entry's id (Redis' arrival time, whole ms): the check and
      the landing before the append;
    - stream_to_consumer_ms: from the entry's arrival until the consumer's push time (the online row's event
      timestamp, which the consumer takes when it starts on a batch): the consumer waking and reading;
    - consumer_to_online_ms: from there until an online read of `recent_activity` (polled every 5 ms) shows the
      click: the consumer's contract check, window and Feast push;
    - online_to_page_ms: from there until the page shows it (GET every 10 ms): the next model-path page.
    The total is from sending the POST to the changed page. The page is polled only once the online store has
    the click, so the polling does not compete with the consumer for the 2 cores.
    """
    import pandas as pd
    import redis

    from tailor.stream.config import StreamConfig

    content = pd.read_parquet(settings.marts_dir / "dim_content.parquet", columns=["content_id", "category"])
    store = _online_store(settings)
    stream = redis.Redis.from_url(stream_url, decode_responses=True)
    probe = _ClickProbe(service_url, content, store, stream, StreamConfig().stream)
    users = list(users)
    warm = probe.click(users, 60.0)  # the consumer is up and reading (not counted)
    done: list[dict[str, float]] = []
    missed = 0
    while len(done) + missed < clicks and users:
        outcome = probe.click(users, 30.0)
        if outcome is None:
            break
        if "total_ms" in outcome:
            done.append(outcome)
        else:
            missed += 1
    summary: dict[str, Any] = {
        "warm_up_click_seconds": None if warm is None or "total_ms" not in warm else round(warm["total_ms"] / 1000, 3),
        "clicks": len(done) + missed,
        "changed": len(done),
        "missed_within_30_s": missed,
    }
    if done:
        totals = np.array([d["total_ms"] for d in done]) / 1000
        summary |= {"seconds_p50": round(float(np.median(totals)), 3), "seconds_max": round(float(totals.max()), 3)}
        summary["stages_ms"] = {
            stage: {
                "p50": round(float(np.median([d[stage] for d in done])), 1),
                "max": round(float(max(d[stage] for d in done)), 1),
            }
            for stage in STAGES
        }
        summary["each"] = [{k: round(v, 1) for k, v in d.items()} for d in done]
    return summary


def _online_store(settings: Settings) -> Any:
    from tailor.feature_store import open_store

    return open_store(settings)


class _ClickProbe:
    """One click and its stages (see `click_to_page`)."""

    def __init__(self, service_url: str, content: Any, store: Any, stream: Any, stream_key: str) -> None:
        self.service_url, self.content, self.store, self.stream, self.key = (
            service_url, content, store, stream, stream_key,
        )  # fmt: skip

    def _arrival_ms(self, event_id: str) -> float | None:
        for entry_id, fields in self.stream.xrevrange(self.key, count=200):
            if event_id in fields.get("event", ""):
                return float(entry_id.split("-")[0])
        return None

    def _online(self, user: str, category: str) -> float | None:
        """The online row's event timestamp (epoch ms) once it lists ``category``, else None."""
        response = self.store.get_online_features(
            features=["recent_activity:clicked_categories_30m"], entity_rows=[{"user_id": user}]
        )
        if category not in (response.to_dict()["clicked_categories_30m"][0] or []):
            return None
        # From the protobuf: to_dict(include_event_timestamps=True) truncates to whole seconds.
        index = list(response.proto.metadata.feature_names.val).index("clicked_categories_30m")
        stamp = response.proto.results[index].event_timestamps[0]
        return float(stamp.seconds * 1000 + stamp.nanos / 1e6)

    def click(self, users: list[str], wait_s: float) -> dict[str, float] | None:
        """Take users until one's page is the model's with no recent click; click and time it. Returns the stages
        (no ``total_ms`` when the page did not change within ``wait_s``), or None when no user is left."""
        import httpx

        with httpx.Client(base_url=self.service_url, timeout=10) as client:
            while users:
                user = users.pop(0)
                before = client.get(f"/recommendations/{user}").json()
                mine = [i for i in before["items"] if i["slot_kind"] == "personalized"]
                if (
                    before["served_by"] != "model"
                    or not mine
                    or any("just read" in i["reason"] for i in before["items"])
                ):
                    continue
                category = mine[-1]["category"]
                item = str(self.content.loc[self.content["category"] == category, "content_id"].iloc[0])
                event = {
                    "event_id": f"bench-{uuid.uuid4().hex}",
                    "event_type": "click",
                    "user_id": user,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "content_id": item,
                    "request_id": f"bench-{uuid.uuid4().hex[:12]}",
                }
                sent = time.time() * 1000
                response = client.post("/events", json=event)
                posted = time.time() * 1000
                assert response.status_code == 202, response.text
                stages = {"post_ms": posted - sent}
                online = None
                while online is None and time.time() * 1000 - sent < wait_s * 1000:
                    online = self._online(user, category)
                    seen = time.time() * 1000
                    if online is None:
                        time.sleep(0.005)
                if online is None:
                    return stages
                arrived = self._arrival_ms(event["event_id"])
                if arrived is not None:
                    stages["land_ms"] = arrived - sent
                    stages["stream_to_consumer_ms"] = online - arrived
                stages["consumer_to_online_ms"] = seen - online
                while time.time() * 1000 - sent < wait_s * 1000:
                    page = client.get(f"/recommendations/{user}").json()
                    if any(i["reason"] == f"because you just read {category}" for i in page["items"]):
                        changed = time.time() * 1000
                        stages["online_to_page_ms"] = changed - seen
                        stages["total_ms"] = changed - sent
                        return stages
                    time.sleep(0.01)
                return stages
        return None


@contextlib.contextmanager
def consumer(env: dict[str, str], stream_url: str, log: Path) -> Iterator[None]:
    process = start_group([TAILOR, "stream", "consume", "--redis", stream_url, "--consumer", "bench"], log, env)
    try:
        yield
    finally:
        stop_group(process, grace_s=30)


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    import httpx

    binary = redis_server_binary()
    if binary is None:
        raise SystemExit("redis-server is not installed: `apt-get install -y redis-server` (as root)")
    home = scratch / "home"
    result: dict[str, Any] = {
        "command": "bench/bench_service.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load(),
        "history": {"users": args.users, "days": args.days, "seed": args.seed},
        "goal": f"service p99 at concurrency {MODERATE} <= {GOAL_RATIO:g}x feast serve's p99 at the same concurrency",
    }
    with RedisServer(binary, scratch / "redis") as redis_server:
        settings = get_settings(home)
        env = {
            **os.environ,
            **TELEMETRY_OFF,
            "TAILOR_HOME": str(home),
            "FEAST_FS_YAML_FILE_PATH": str(FEATURE_REPO_DIR / "feature_store.redis.yaml"),
            "TAILOR_FEAST_REDIS": f"127.0.0.1:{redis_server.port}",
        }
        if args.home_from is None:  # a copied home keeps its champion only under the settings it was trained with
            env["TAILOR_RANKER_SEARCH_TRIALS"] = str(args.search_trials)
            env["TAILOR_RANKER_EVAL_USERS"] = str(min(args.users, 1000))
        stream_url = f"{redis_server.url}/1"
        if args.home_from is None:
            print(f"building the history ({args.users} users, {args.days} days) ...", file=sys.stderr)
        else:
            print(f"copying {args.home_from} and moving its online store to Redis ...", file=sys.stderr)
            result["history"] = {"copied_from": str(args.home_from)}
        seconds = build(home, env, args.users, args.days, args.seed, args.home_from)
        result["history"]["build_seconds"] = round(seconds, 1)
        os.environ.update({k: env[k] for k in ("TAILOR_HOME", "FEAST_FS_YAML_FILE_PATH", "TAILOR_FEAST_REDIS")})
        personalized, holdout = active_users(settings)
        result["history"]["active_users"] = len(personalized) + len(holdout)
        refs = user_feature_refs(settings)
        serve_env = {**env, "TAILOR_REDIS_URL": stream_url}
        service = Service(serve_env, scratch / "serve.log")
        feast = BareFeastServer(settings, free_port(), scratch / "feast.log")
        try:
            paths = [f"/recommendations/{u}?k=10&surface={('home', 'feed')[i % 2]}" for i, u in enumerate(personalized)]
            bodies = [json.dumps({"features": refs, "entities": {"user_id": [u]}}) for u in personalized]
            base = {"requests": args.requests, "seconds": args.seconds, "warmup": args.warmup}
            levels = []
            for n in args.levels:
                print(f"load at concurrency {n} ...", file=sys.stderr)
                svc = load_from_second_process({**base, "url": service.url, "concurrency": n, "paths": paths}, scratch)
                bare = load_from_second_process(
                    {**base, "url": f"http://127.0.0.1:{feast.port}", "concurrency": n, "bodies": bodies,
                     "path": "/get-online-features"},
                    scratch,
                )  # fmt: skip
                levels.append({"concurrency": n, "service": svc, "feast_serve": bare, "load": load()})
            result["levels"] = levels
            moderate = next((lv for lv in levels if lv["concurrency"] == MODERATE), levels[-1])
            ratio = moderate["service"]["p99_ms"] / moderate["feast_serve"]["p99_ms"]
            result["goal_check"] = {
                "concurrency": moderate["concurrency"],
                "service_p99_ms": moderate["service"]["p99_ms"],
                "feast_serve_p99_ms": moderate["feast_serve"]["p99_ms"],
                "ratio": round(ratio, 2),
                "met": ratio <= GOAL_RATIO,
                "errors": sum(lv["service"]["errors"] + lv["feast_serve"]["errors"] for lv in levels),
            }
            fallbacks: dict[str, Any] = {}
            few = {**base, "requests": max(args.requests // 4, 20), "concurrency": 1}
            print("fallbacks ...", file=sys.stderr)
            fallbacks["cold_start_popular"] = load_from_second_process(
                {**few, "url": service.url, "paths": [f"/recommendations/new-user-{i}" for i in range(500)]}, scratch
            )
            print("click to page ...", file=sys.stderr)
            with consumer(serve_env, stream_url, scratch / "consumer.log"):
                result["click_to_changed_page"] = click_to_page(
                    service.url, stream_url, settings, personalized, args.clicks
                )
        finally:
            feast.stop()
            service.stop()
        cached_service = Service({**serve_env, "TAILOR_RECOMMEND_BUDGET_MS": "1"}, scratch / "serve-cached.log")
        try:
            fallbacks["cached_page_1ms_budget"] = load_from_second_process(
                {**few, "url": cached_service.url, "paths": paths}, scratch
            )
            redis_server.stop()  # the online store's Redis goes away
            deadline = time.monotonic() + 30
            while httpx.get(f"{cached_service.url}/readyz", timeout=10).status_code == 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the service did not notice the online store going down within 30 s")
                time.sleep(0.2)
            fallbacks["online_store_down_popular"] = load_from_second_process(
                {**few, "url": cached_service.url, "paths": paths}, scratch
            )
        finally:
            cached_service.stop()
        result["fallbacks"] = fallbacks
    result["load_after"] = load()
    return result


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "client":
        print(json.dumps(client_main(json.loads(Path(sys.argv[2]).read_text()))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=3000, help="Requests per level (bounded by --seconds).")
    parser.add_argument("--seconds", type=float, default=60.0, help="Longest a level runs.")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--search-trials", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="Tiny: 150 users, 16 days, levels 1,2, 40 requests.")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    parser.add_argument(
        "--home-from",
        type=Path,
        default=None,
        help="Copy this built home (after a `tailor run` that trained a champion) instead of simulating one; "
        "--users, --days, --seed and --search-trials are then unused, and the TAILOR_RANKER_* settings must be the "
        "ones that home was built with (else its ranker would train again: refused).",
    )
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "service.json")
    args = parser.parse_args()
    if args.smoke:
        # The tests' history (tests/service): the smallest that trains a calibrated champion.
        args.users, args.days, args.seed, args.levels, args.requests, args.seconds = 150, 16, 3, [1, 2], 40, 20.0
        args.warmup, args.clicks, args.search_trials = 5, 1, 2
    if args.home_from is not None:
        args.home_from = args.home_from.resolve()
        if not (args.home_from / "marts" / "batch_recommendations.parquet").is_file():
            parser.error(f"--home-from {args.home_from}: not a built home (no marts/batch_recommendations.parquet)")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        result = run(args, Path(folder))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result.get("goal_check"), indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: what one `recommend` call costs in-process, next to a bare Feast online read, and the batch pages.

On one TAILOR_HOME (built here with `tailor generate` + `tailor run`, or an existing one with `--home`):

1. `Recommender.open` (champion, candidate generators, every item's features from the online store): its time and
   the process's peak RSS before and after it;
2. `recommend(user, k=10)` for `--requests` requests drawn from the personalized users with a history (the model
   path), timed around the call, with the deployed settings (about 300 candidates: 100 per generator) and with
   `--candidates` (default 500) candidates per request, the latency budget lifted so every request takes the model
   path whatever it costs (the distribution of the model path itself, not of the fallback);
3. in the same process, on the same users: a bare Feast `get_online_features` for the user's `ranker_v1` features
   (one entity row: the published feature-server figure the issue compares with is for one row), and Feast's
   `ranker_v1` for the (user, item) rows of one page's candidates (what a naive design would fetch per request);
4. the batch pages for every active user (`ml.recommend.batch.write_batch`, what the `ml/recommendations` asset
   runs): seconds per 1,000 users and the online-store load (`write_to_online_store` of `cached_recommendations`).

With `--home` step 4 rewrites that home's batch pages and cached recommendations, as `tailor run` would.

    .venv/bin/python bench/bench_recommend.py                                  # the demo world: 2,000 users, 21 days
    .venv/bin/python bench/bench_recommend.py --home ~/.tailor --output /tmp/r.json  # an existing home
    .venv/bin/python bench/bench_recommend.py --smoke --output /tmp/r.json     # tiny, for the tests (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_closed_loop import tailor, tailor_run

from ml.history import active_users, history_end
from ml.recommend.batch import batch_pages, write_batch
from ml.recommend.serving import HOLDOUT_ARMS, HOLDOUT_EXPERIMENT, HOLDOUT_WEIGHTS, Recommender, ServingConfig
from tailor.assignment import assign_variant
from tailor.settings import TELEMETRY_OFF, Settings, get_settings

RESULTS = Path(__file__).resolve().parent / "results" / "recommend.json"
#: Users with an impression in this many days before the newest one get batch pages (the asset's ACTIVE_DAYS).
ACTIVE_DAYS = 28
#: The Feast Python feature server's published feature-only p99 for one row (the issue's goal).
FEAST_SERVER_P99_MS = 7.2


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max and the mean of a list of milliseconds (numpy's linear interpolation)."""
    a = np.asarray(samples_ms, dtype=float)
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p90_ms": round(float(np.percentile(a, 90)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "max_ms": round(float(a.max()), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` calls."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def model_path_users(recommender: Recommender, seed: int) -> list[str]:
    """Users the model path serves: a history, not in the holdout (the hash decides it, as `recommend` does)."""
    users = [
        u
        for u in sorted(recommender.consumed)
        if assign_variant(HOLDOUT_EXPERIMENT, u, list(HOLDOUT_ARMS), list(HOLDOUT_WEIGHTS)) == "personalized"
    ]
    random.Random(seed).shuffle(users)
    return users


def serve(recommender: Recommender, users: list[str], requests: int, now: datetime) -> dict[str, Any]:
    """`requests` calls round-robin over `users` (after a warm-up of 20): latency and which path served."""
    for user in users[:20]:
        recommender.recommend(user, k=10, now=now)
    latencies: list[float] = []
    served: Counter[str] = Counter()
    candidates: list[int] = []
    original = recommender.before_scoring
    recommender.before_scoring = lambda rows: candidates.append(len(rows))
    try:
        for n in range(requests):
            user = users[n % len(users)]
            start = time.perf_counter()
            page = recommender.recommend(user, k=10, now=now)
            latencies.append((time.perf_counter() - start) * 1000)
            served[page.served_by] += 1
    finally:
        recommender.before_scoring = original
    return {
        **percentiles(latencies),
        "served_by": dict(served),
        "candidates_per_request": {
            "mean": round(float(np.mean(candidates)), 1) if candidates else None,
            "min": int(min(candidates)) if candidates else None,
            "max": int(max(candidates)) if candidates else None,
        },
    }


def per_generator_for(recommender: Recommender, users: list[str], target: int) -> int:
    """The per-generator count whose union averages about `target` candidates on these users."""
    assert recommender.candidates is not None
    base = recommender.candidates
    best = base.config.per_generator
    for per in range(100, 2001, 50):
        trial = replace(base, config=replace(base.config, per_generator=per))
        mean = float(np.mean([len(trial.candidates([u])) for u in users[:30]]))
        best = per
        if mean >= target:
            break
    return best


def build_home(args: argparse.Namespace, work: Path) -> tuple[Settings, dict[str, float]]:
    home = work / "home"
    env = {**os.environ, **TELEMETRY_OFF, "TAILOR_HOME": str(home)}
    timings: dict[str, float] = {}
    timings["generate"], _ = tailor(
        "generate", "--users", str(args.users), "--days", str(args.days), "--seed", str(args.seed), env=env
    )
    timings["tailor_run"], failed = tailor_run(env)
    if failed:
        raise SystemExit(f"tailor run failed in {failed}: no champion to benchmark")
    return get_settings(home), timings


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    timings: dict[str, float] = {}
    if args.home is not None:
        settings = get_settings(args.home)
    else:
        settings, timings = build_home(args, work)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    recommender = Recommender.open(settings, ServingConfig(budget_ms=60_000.0))
    timings["open"] = time.perf_counter() - start
    # ru_maxrss is the process's peak (KiB on Linux): before open it is the imports' (the home is built by
    # subprocesses), after it that plus whatever open held at its peak.
    open_rss = {
        "peak_rss_mb_before_open": round(rss_before / 1024),
        "peak_rss_mb_after_open": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if recommender.model is None:
        raise SystemExit(f"no champion in {settings.home} ({recommender.closed_reason}): run `tailor run` first")
    end = history_end(settings.marts_dir)
    if end is None:
        raise SystemExit(f"no impressions in {settings.marts_dir}: nothing to serve")
    now = (end + pd.Timedelta(seconds=1)).to_pydatetime()
    users = model_path_users(recommender, args.seed)
    result: dict[str, Any] = {
        "catalog_items": len(recommender.catalog.ids),
        "model_version": recommender.model_version,
        "open": open_rss,
    }

    deployed = serve(recommender, users, args.requests, now)
    assert recommender.candidates is not None
    base = recommender.candidates
    per = per_generator_for(recommender, users, args.candidates)
    recommender.candidates = replace(base, config=replace(base.config, per_generator=per))
    wide = serve(recommender, users, args.requests, now)
    wide["per_generator"] = per
    recommender.candidates = base

    store = recommender.store
    feast_user: list[float] = []
    for n in range(args.requests):
        entity: list[dict[str, Any]] = [{"user_id": users[n % len(users)]}]
        start = time.perf_counter()
        store.get_online_features(features=recommender.user_refs, entity_rows=entity).to_dict()
        feast_user.append((time.perf_counter() - start) * 1000)
    proposed = recommender.candidates.candidates([users[0]])
    rows = [{"user_id": users[0], "content_id": c, "request_at": now} for c in proposed["content_id"]]
    service = store.get_feature_service("ranker_v1")
    feast_rows = timed(
        lambda: store.get_online_features(features=service, entity_rows=rows).to_dict(), args.naive_repeats
    )
    result["recommend"] = {"deployed_candidates": deployed, f"about_{args.candidates}_candidates": wide}
    result["feast_get_online_features"] = {
        "user_ranker_v1_features_1_row": percentiles(feast_user),
        f"ranker_v1_{len(rows)}_rows_one_page": percentiles(feast_rows),
    }
    result["goal"] = {
        "p99_below_ms": FEAST_SERVER_P99_MS,
        "met_with_deployed_candidates": deployed["p99_ms"] < FEAST_SERVER_P99_MS,
        f"met_with_about_{args.candidates}_candidates": wide["p99_ms"] < FEAST_SERVER_P99_MS,
    }

    active = active_users(settings.marts_dir, end, ACTIVE_DAYS)
    summary = write_batch(recommender, active, k=10, now=now)
    result["batch"] = {
        "users": summary.users,
        "rows": summary.rows,
        "seconds_pages": round(summary.seconds_pages, 2),
        "seconds_per_1000_users": round(1000 * summary.seconds_pages / max(summary.users, 1), 2),
        "seconds_online_store_load": round(summary.seconds_online, 2),
    }
    # The same pages through the frame path (what batch pages used before the compiled block path; the path they
    # fall back to when the champion's layout is not one CompiledRanker reads): the speed-up, on the same users.
    started = time.perf_counter()
    batch_pages(recommender, active, k=10, now=now, compiled=False)
    frame_seconds = time.perf_counter() - started
    result["batch"]["frame_path_seconds_per_1000_users"] = round(1000 * frame_seconds / max(summary.users, 1), 2)
    result["seconds"] = {name: round(value, 1) for name, value in timings.items()}
    return result


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000, help="timed recommend calls per configuration")
    parser.add_argument("--candidates", type=int, default=500, help="candidates per request in the wide run")
    parser.add_argument("--naive-repeats", type=int, default=30, help="Feast reads of one page's candidate rows")
    parser.add_argument("--home", type=Path, default=None, help="an existing TAILOR_HOME with a champion")
    parser.add_argument("--smoke", action="store_true", help="tiny: 300 users, 21 days, 100 requests")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.users, args.requests, args.naive_repeats, args.candidates = 300, 100, 3, 200
        os.environ.setdefault("TAILOR_RANKER_SEARCH_TRIALS", "2")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tailor-bench-recommend-") as tmp:
        result = run(args, Path(tmp))
    out = {
        "command": "bench/bench_recommend.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        **result,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

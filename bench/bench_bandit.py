"""Benchmark the bandit and the off-policy estimates against the simulator's known truth.

Usage::

    .venv/bin/python bench/bench_bandit.py [--users 2000] [--days 28] [--replications 200] [--resamples 500]
    .venv/bin/python bench/bench_bandit.py --users 100 --days 7 --replications 2 --resamples 2 \\
        --output /tmp/bandit.json                                                      # a smoke run, seconds

Generates the demo world (2,000 users x 28 days by default) in a temporary folder, then:

1. Bandit: for exp_feed_ranker's impressions (the planted x1.08, and the same impressions with x1.02 and x1.20)
   and the A/A experiment, Thompson sampling with daily re-allocation (and every 1,000 impressions, over a
   quarter as many runs) against a fixed 50/50 split, over ``--replications`` runs: expected and realized
   regret (clicks lost against always serving the best arm), share of traffic to the best arm, final posterior.
2. Off-policy: the top slot as a logged bandit; IPS, SNIPS and replay estimates of several target policies'
   CTR against their true CTR, on the simulated log and over ``--resamples`` re-drawn logs (bias, spread,
   95% interval coverage).

Results are printed and written to ``bench/results/bandit.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.simulator_truth import (
    TargetPolicy,
    TopSlotLog,
    epsilon_greedy_oracle_policy,
    estimate_policy,
    experiment_environment,
    greedy_oracle_policy,
    load_top_slot_log,
    logging_policy,
    softmax_policy,
    tabulate,
    uniform_policy,
)
from ml.experiments.bandit import BanditEnvironment, compare_policies, fixed_split_regret, run_policy
from ml.experiments.offpolicy import ips, replay, snips
from simulator import SimulationConfig, simulate

RESULTS = Path(__file__).resolve().parent / "results" / "bandit.json"
FIFTY_FIFTY = (0.5, 0.5)


def bandit_scenario(env: BanditEnvironment, replications: int) -> dict[str, Any]:
    """Thompson vs 50/50 on one environment."""
    began = time.perf_counter()
    summaries = compare_policies(env, {"thompson": "thompson", "fixed 50/50": FIFTY_FIFTY}, replications)
    example = run_policy(env, "thompson", seed=0)
    return {
        "environment": env.name,
        "arms": list(env.arm_names),
        "arm_ctr": [round(float(x), 6) for x in env.arm_means],
        "pulls": env.pulls,
        "replications": replications,
        "batches": len(env.batch_ends),
        "fixed_split_expected_regret_closed_form": round(fixed_split_regret(env, FIFTY_FIFTY), 2),
        "policies": {name: s.as_dict() for name, s in summaries.items()},
        "thompson_run_0_traffic_share_by_day": [[round(float(x), 4) for x in row] for row in example.shares_by_batch],
        "seconds": round(time.perf_counter() - began, 1),
    }


def offpolicy_report(log: TopSlotLog, policies: dict[str, TargetPolicy], resamples: int) -> dict[str, Any]:
    """Estimates on the simulated log, then bias, spread and coverage over re-drawn logs of the same requests."""
    began = time.perf_counter()
    tables = {name: tabulate(log, p) for name, p in policies.items()}
    truths = {name: log.true_value(p) for name, p in tables.items()}
    out: dict[str, Any] = {"requests": log.requests, "observed_ctr": float(log.rewards.mean()), "policies": {}}
    for name, policy in tables.items():
        estimates = estimate_policy(log, policy)
        out["policies"][name] = {
            "true_ctr": truths[name],
            "max_ratio": log.max_ratio(policy),
            "on_the_simulated_log": {k: e.as_dict() | {"covers": e.covers(truths[name])} for k, e in estimates.items()},
        }
    rng = np.random.default_rng(2026)
    draws: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for r in range(resamples):
        again = log.resample(rng)
        rewards, mu = again.rewards, again.logging_propensity
        for name, policy in tables.items():
            pi = again.target_propensity(policy)
            found = [ips(rewards, mu, pi), snips(rewards, mu, pi)]
            with contextlib.suppress(ValueError):  # replay kept too few decisions for this policy
                found.append(replay(rewards, mu, pi, out["policies"][name]["max_ratio"], rng=r))
            for e in found:
                draws.setdefault((name, e.estimator), []).append((e.value, e.covers(truths[name])))
    for (name, estimator), values in draws.items():
        v = np.array([x for x, _ in values])
        out["policies"][name].setdefault("over_resamples", {})[estimator] = {
            "runs": len(values),
            "bias": float(v.mean() - truths[name]),
            "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
            "rmse": float(np.sqrt(((v - truths[name]) ** 2).mean())),
            "coverage_95": float(np.mean([c for _, c in values])),
        }
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    return {
        "platform": platform.platform(),
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="tailor-bench-bandit-"))
    try:
        began = time.perf_counter()
        config = SimulationConfig(users=args.users, days=args.days, seed=args.seed)
        simulate(config, folder, overwrite=True)
        generated = time.perf_counter() - began
        scenarios = []
        for experiment, multipliers, batch_size in [
            ("exp_feed_ranker", None, None),
            ("exp_feed_ranker", None, 1_000),  # about every 100 minutes instead of daily
            ("exp_feed_ranker", (1.0, 1.02), None),
            ("exp_feed_ranker", (1.0, 1.20), None),
            ("exp_feed_ranker", (1.0, 1.20), 1_000),
            ("exp_aa_feed", None, None),
        ]:
            env = experiment_environment(folder, experiment, multipliers)
            runs = args.replications
            if batch_size is not None:
                env = env.with_batch_size(batch_size)
                runs = max(2, runs // 4)  # 274 allocations per run instead of 19: a quarter of the runs
            scenarios.append(bandit_scenario(env, runs))
            _print_scenario(scenarios[-1])
        log = load_top_slot_log(folder)
        policies: dict[str, TargetPolicy] = {
            "logging policy": logging_policy,
            "uniform over the pool": uniform_policy,
            "logged scores, T=0.5": softmax_policy(0.5),
            "logged scores, T=2": softmax_policy(2.0),
            "greedy oracle": greedy_oracle_policy,
            "oracle, epsilon 0.3": epsilon_greedy_oracle_policy(0.3),
        }
        offpolicy = offpolicy_report(log, policies, args.resamples)
        _print_offpolicy(offpolicy)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    report = {
        "benchmark": "bandit and off-policy estimates on the simulator's truth",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/bench_bandit.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "world": {"users": args.users, "days": args.days, "seed": args.seed, "generate_seconds": round(generated, 1)},
        "replications": args.replications,
        "resamples": args.resamples,
        "bandit": scenarios,
        "offpolicy": offpolicy,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.output}")
    return 0


def _print_scenario(s: dict[str, Any]) -> None:
    print(f"\n{s['environment']}: {s['pulls']:,} impressions in {s['batches']} batches, CTR by arm {s['arm_ctr']}")
    for name, p in s["policies"].items():
        print(
            f"  {name:<12} expected regret {p['expected_regret_mean']:8.1f} +- {p['expected_regret_sd']:6.1f}"
            f"  realized {p['realized_regret_mean']:8.1f} +- {p['realized_regret_sd']:6.1f}"
            f"  best-arm share {p['best_arm_share_mean']:.3f}"
        )


def _print_offpolicy(o: dict[str, Any]) -> None:
    print(f"\ntop slot: {o['requests']:,} requests, observed CTR {o['observed_ctr']:.4f}")
    for name, p in o["policies"].items():
        parts = []
        for k, e in p["on_the_simulated_log"].items():
            cov = p.get("over_resamples", {}).get(k, {}).get("coverage_95", float("nan"))
            parts.append(f"{k} {e['value']:.4f} +- {e['se']:.4f} (coverage {cov:.2f})")
        print(f"  {name:<22} true {p['true_ctr']:.4f}  " + "  ".join(parts))


if __name__ == "__main__":
    sys.exit(main())

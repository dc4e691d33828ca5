"""Benchmark: false positives of the daily experiment decisions, on A/A experiments through the real marts.

Usage::

    .venv/bin/python bench/bench_sequential_aa.py --worlds 60 --experiments 100        # docs/benchmarks.md
    .venv/bin/python bench/bench_sequential_aa.py --worlds 1 --experiments 4 --users 200 --days 8 \
        --output /tmp/aa.json                                                          # smoke: ~30 s

Each world is simulated with ``--experiments`` A/A experiments (both arms identical; a new split per world),
landed with ``tailor ingest`` and built with ``dbt build`` (the whole project, tests included), then every
experiment is judged on every day of ``fct_experiment_daily_stats`` (cumulative per-unit metrics: units join over
time and their totals keep growing) by ``analyze_daily``, as the ``experiment_daily_results`` asset does. A trial
is one experiment: a false positive is any better/worse on any of its four non-guardrail metrics on any day.
Rules compared on the same looks: the decision rule with a planned size (reached about halfway) and without one,
the old naive rule (fixed-horizon Holm p every day), the planned read alone, and each comparison's confidence
sequence alone at the full alpha. Standard errors are clustered by world (trials of one world share its users).
Each metric's z at the planned read checks its fixed-horizon standard error (variance 1 if right).
Writes ``bench/results/sequential_aa.json``; the harness is ``evaluation.daily_aa``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from bench_pipeline import dbt_env, land_and_build

from evaluation.daily_aa import RULES, aa_world_config, false_positives, summarize, world_trials
from simulator import simulate
from tailor.settings import get_settings

RESULTS = Path(__file__).resolve().parent / "results" / "sequential_aa.json"
FIRST_SEED = 30_000  # the integration test uses seeds below 1,000


def run_world(seed: int, args: argparse.Namespace, scratch: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """Simulate, land, build and judge one world; its trials and where the time went."""
    work = Path(tempfile.mkdtemp(prefix=f"tailor-aa-{seed}-", dir=scratch))
    try:
        began = time.perf_counter()
        simulate(aa_world_config(seed, args.experiments, users=args.users, days=args.days), work / "generated")
        simulate_s = time.perf_counter() - began
        settings = get_settings(work / "home")
        land_s, build_s = land_and_build(work / "generated", dbt_env(settings, work))
        began = time.perf_counter()
        marts = settings.marts_dir
        trials = false_positives(
            pd.read_parquet(marts / "fct_experiment_daily_stats.parquet"),
            pd.read_parquet(marts / "fct_experiment_stats.parquet"),
            pd.read_parquet(marts / "dim_experiments.parquet"),
            alpha=args.alpha,
        )
        analyse_s = time.perf_counter() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = {"simulate": simulate_s, "land": land_s, "dbt_build": build_s, "analyse": analyse_s}
    return trials.assign(seed=seed), {k: round(v, 1) for k, v in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", type=int, default=60, help="simulated worlds, one dbt build each (default 60)")
    parser.add_argument("--experiments", type=int, default=100, help="A/A experiments per world (1-120, default 100)")
    parser.add_argument("--users", type=int, default=1_000, help="users per world (default 1,000)")
    parser.add_argument("--days", type=int, default=21, help="days per world (default 21)")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (default 0.05)")
    parser.add_argument("--seed", type=int, default=FIRST_SEED, help=f"first world's seed (default {FIRST_SEED})")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the temporary worlds")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results file (default {RESULTS.name})")
    args = parser.parse_args()
    if args.scratch is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.scratch.mkdir(parents=True, exist_ok=True)
    if args.worlds < 1 or not 1 <= args.experiments <= 120 or not 0 < args.alpha < 1:
        parser.error("need --worlds >= 1, --experiments in 1-120 and --alpha in (0, 1)")

    frames, timings = [], []
    began = time.perf_counter()
    for seed in range(args.seed, args.seed + args.worlds):
        trials, seconds = run_world(seed, args, args.scratch)
        frames.append(trials)
        timings.append({"seed": seed, **seconds})
        report = _report(args, world_trials(frames), timings, time.perf_counter() - began)
        # Written after every world: a long run that stops (a broken build, a reboot) keeps what it measured.
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"world {seed}: {seconds} | so far {report['trials']} trials: "
              + ", ".join(f"{rule} {report[rule]['rate']:.3f}" for rule in RULES), flush=True)  # fmt: skip
    _print(report)


def _report(
    args: argparse.Namespace, trials: pd.DataFrame, timings: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    return {
        "command": f"bench/bench_sequential_aa.py --worlds {args.worlds} --experiments {args.experiments} "
        f"--users {args.users} --days {args.days} --alpha {args.alpha} --seed {args.seed}",
        "complete": len(timings) == args.worlds,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "seconds": round(seconds, 1),
        "per_world_seconds": timings,
        "looks_per_experiment": {"min": int(trials["days"].min()), "max": int(trials["days"].max())},
        "units_per_variant": {"median": float(trials["units_per_variant"].median())},
        **summarize(trials, args.alpha),
    }


def _machine() -> dict[str, Any]:
    model = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "")
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def _print(report: dict[str, Any]) -> None:
    print(f"\n{report['trials']} A/A experiments in {report['worlds']} worlds, {report['seconds']:.0f} s")
    for name in (*RULES, "cs_per_comparison", "guardrail_breached"):
        r = report[name]
        print(
            f"  {name:20s} {r['rate']:7.2%}  se {max(r['se_binomial'], r['se_clustered']):.2%}  "
            f"(binomial {r['se_binomial']:.2%}, clustered {r['se_clustered']:.2%}), 95% upper {r['upper_95']:.2%}"
        )
    for metric, z in report["read_z"].items():
        share = next(v for k, v in z.items() if k.startswith("share_abs_z_above"))
        print(f"  read z of {metric:17s} variance {z['variance']:.3f} +- {z['variance_se']:.3f}, "
              f"beyond Holm's first step {share:.2%} (nominal {report['alpha'] / 4:.2%})")  # fmt: skip


if __name__ == "__main__":
    main()

"""Calibrate the experiment statistics against the simulator's planted effects.

Usage::

    .venv/bin/python bench/calibrate_experiments.py --simulations 1000 --demo-simulations 200

Runs ``--simulations`` small worlds (``--users`` x ``--days``, one seed each) and reports, per experiment and
metric, how often the 95% intervals of the relative and absolute effect cover the true effect computed from the
ground truth, the mean interval width, the rejection rate, the A/A false-positive rate after Holm, and CUPED's
predicted, reported and realised variance reduction. Then ``--demo-simulations`` demo-sized worlds (2,000 users
x 28 days) for the A/A false-positive rate at the demo's size. Writes ``bench/results/calibration.json``.
The harness itself is ``evaluation.calibration`` (the integration test runs the same code on fewer seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from evaluation.calibration import calibration_config, run_many, summarize, summarize_cuped

RESULTS = Path(__file__).resolve().parent / "results" / "calibration.json"
FIXED_SPLIT_RESULTS = RESULTS.with_name("calibration_fixed_split.json")
BENCH_SEEDS = 10_000  # first seed of the bench; the integration test uses seeds below 1,000
DEMO_SEEDS = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulations", type=int, default=1_000, help="small worlds to simulate (default 1,000)")
    parser.add_argument("--users", type=int, default=1_000, help="users per small world (default 1,000)")
    parser.add_argument("--days", type=int, default=14, help="days per small world (default 14)")
    parser.add_argument("--demo-simulations", type=int, default=200, help="demo-sized worlds for the A/A check")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1; see docs/benchmarks.md)")
    parser.add_argument("--scratch", type=Path, default=_default_scratch(), help="folder for temporary worlds")
    parser.add_argument(
        "--fixed-split",
        action="store_true",
        help="keep the simulator's experiment ids, so every seed has the same split (the flaw this bench found)",
    )
    parser.add_argument(
        "--out", type=Path, help=f"results file (default {RESULTS.name}, or {FIXED_SPLIT_RESULTS.name})"
    )
    args = parser.parse_args()
    if args.simulations < 1 or args.demo_simulations < 0 or args.workers < 1:
        parser.error("need --simulations >= 1, --demo-simulations >= 0 and --workers >= 1")

    out = args.out or (FIXED_SPLIT_RESULTS if args.fixed_split else RESULTS)
    resalt = not args.fixed_split
    began = time.perf_counter()
    small = run_many(
        range(BENCH_SEEDS, BENCH_SEEDS + args.simulations),
        partial(calibration_config, users=args.users, days=args.days, resalt=resalt),
        workers=args.workers,
        scratch=args.scratch,
    )
    small_seconds = time.perf_counter() - began
    began = time.perf_counter()
    demo = run_many(
        range(DEMO_SEEDS, DEMO_SEEDS + args.demo_simulations),
        partial(calibration_config, users=2_000, days=28, resalt=resalt),
        workers=args.workers,
        scratch=args.scratch,
    )
    demo_seconds = time.perf_counter() - began

    report: dict[str, Any] = {
        "command": "bench/calibrate_experiments.py " + _argv(args),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "split": "fixed: one split for every seed" if args.fixed_split else "re-randomized per seed",
        "small_worlds": {
            "users": args.users,
            "days": args.days,
            "simulations": args.simulations,
            "seeds": [BENCH_SEEDS, BENCH_SEEDS + args.simulations - 1],
            "workers": args.workers,
            "seconds": round(small_seconds, 1),
            "seconds_per_simulation": round(small_seconds / args.simulations, 3),
            **summarize(small.trials),
            "cuped": summarize_cuped(small.cuped),
        },
        "demo_worlds": {
            "users": 2_000,
            "days": 28,
            "simulations": args.demo_simulations,
            "seconds": round(demo_seconds, 1),
            "seconds_per_simulation": round(demo_seconds / max(args.demo_simulations, 1), 3),
            **(summarize(demo.trials) if demo.trials else {}),
            "cuped": summarize_cuped(demo.cuped) if demo.cuped else {},
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    _print(report)


def _default_scratch() -> Path | None:
    shm = Path("/dev/shm")  # memory-backed: the worlds are written and deleted hundreds of times
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def _argv(args: argparse.Namespace) -> str:
    return (
        f"--simulations {args.simulations} --users {args.users} --days {args.days} "
        f"--demo-simulations {args.demo_simulations} --workers {args.workers}"
        + (" --fixed-split" if args.fixed_split else "")
    )


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
    for world in ("small_worlds", "demo_worlds"):
        block = report[world]
        if "pairs" not in block:
            continue
        print(
            f"\n{world}: {block['simulations']} x {block['users']} users x {block['days']} days, {block['seconds']} s"
        )
        header = ("rel. cover", "abs. cover", "true rel", "CI width", "reject", "sd/se")
        print(f"{'experiment/metric':34} " + " ".join(f"{h:>10}" for h in header))
        for name, pair in block["pairs"].items():
            rel, absolute = pair["relative"], pair["absolute"]
            print(
                f"{name:34} {_pct(rel['coverage']):>10} {_pct(absolute['coverage']):>10} "
                f"{_num(rel['true_effect_mean']):>10} {rel['ci_width_mean']:10.3f} {_pct(rel['rejection_rate']):>10} "
                f"{_num(rel['error_sd_over_se']):>10}"
            )
        print("planted, pooled:", block["planted_pooled"])
        print("A/A:", block["aa"])
        for name, c in block["cuped"].items():
            print(f"CUPED {name:38} {c}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


if __name__ == "__main__":
    main()

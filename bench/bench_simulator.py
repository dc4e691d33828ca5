"""Benchmark the event simulator: wall time and events per second at given run sizes.

Usage::

    .venv/bin/python bench/bench_simulator.py --events 1000000 10000000
    .venv/bin/python bench/bench_simulator.py --events 3000 --days 3 --output /tmp/simulator.json   # a smoke run

Each size runs in a fresh subprocess (so peak memory and warm-up are per size), writes into a temporary
folder that is deleted afterwards, and is sized by choosing the number of users for the requested number of
events over ``--days`` days. Results are printed and written to ``bench/results/simulator.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "simulator.json"


def run_once(target: int, days: int, fmt: str) -> dict[str, Any]:
    """Simulate about ``target`` events into a temporary folder and measure it (in this process)."""
    from simulator import SimulationConfig, simulate
    from simulator.config import users_for_events

    users = users_for_events(target, days)
    config = SimulationConfig(users=users, days=days, format=fmt)  # type: ignore[arg-type]
    out = Path(tempfile.mkdtemp(prefix="tailor-bench-sim-"))
    try:
        began = time.perf_counter()
        result = simulate(config, out, overwrite=True)
        seconds = time.perf_counter() - began
        event_bytes = sum(p.stat().st_size for p in result.event_files)
        truth_bytes = sum(p.stat().st_size for p in result.truth_files)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "target_events": target,
        "users": users,
        "days": days,
        "format": fmt,
        "events_written": result.events_written,
        "clean_events": result.clean_events,
        "seconds": round(seconds, 2),
        "events_per_second": round(result.events_written / seconds),
        "event_bytes": event_bytes,
        "truth_bytes": truth_bytes,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def machine() -> dict[str, Any]:
    import numpy
    import pyarrow

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    args = parser.parse_args(argv)

    if args.one is not None:
        print(json.dumps(run_once(args.one, args.days, args.format)))
        return 0

    runs = []
    for target in args.events:
        command = [sys.executable, __file__, "--one", str(target), "--days", str(args.days)]
        command += ["--format", args.format]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        run = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(
            f"{run['events_written']:>12,} events  {run['seconds']:>7.1f} s  {run['events_per_second']:>9,} events/s"
            f"  ({run['users']:,} users x {run['days']} days, {run['format']}, "
            f"{run['event_bytes'] / 1e6:,.0f} MB, peak RSS {run['peak_rss_mb']:,} MB)"
        )
    report = {
        "benchmark": "simulator",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

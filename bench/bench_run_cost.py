"""Benchmark: what a whole `tailor run` costs next to landing + dbt alone, per asset, on first and later runs.

For each size, simulates DAYS days (seed 11) and runs `tailor run` three times on one home, as a daily schedule
would see it:
  1. first run: every day but the last delivered to the inbox (an empty home: landing, the whole warehouse, the
     feature store's first apply and backfill, the training set's first build, and whatever else the graph has);
  2. new day: the last day's files delivered (with the late events they carry for earlier days);
  3. nothing new: the inbox unchanged.
Each run's time is the wall clock of the `tailor run` process and, per step, the time between Dagster's step start
and step end events in the run's event log. Steps are read from the run, not from a list here, so the figures follow
the graph as it grows (the model assets of issues 8 and 9 are in it now; each run's results say what each
``ml/`` asset did: trained, or "up to date: unchanged, version N kept"). The ratio the issue sets a goal on (at
most 2 at 10M events) is the whole run's wall clock over the landing and dbt steps of the same run.

    .venv/bin/python bench/bench_run_cost.py --events 1000000 10000000
    .venv/bin/python bench/bench_run_cost.py --smoke --output /tmp/run_cost.json    # tiny, a couple of minutes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # bench_pipeline's helpers

from bench_pipeline import BIN  # noqa: E402

from simulator import SimulationConfig, simulate  # noqa: E402
from simulator.config import users_for_events  # noqa: E402
from tailor.settings import Settings, disable_telemetry, get_settings  # noqa: E402

RESULTS = BENCH_DIR / "results" / "run_cost.json"
#: Steps that make up "landing + dbt alone": the ingestion asset and the dbt build (all models, tests, snapshots).
BASELINE_STEPS = ("landing", "warehouse")
SMOKE_EVENTS = 3000
#: Metadata values longer than this are left out of the results (paths and small figures stay).
MAX_METADATA_CHARS = 200


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _file_day(path: Path) -> date | None:
    """The delivery day in a simulator file name (``events-2026-01-05.jsonl``), or None."""
    try:
        return date.fromisoformat(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return None


def deliver(generated: Path, inbox: Path, days: Iterable[date]) -> int:
    """Hard-link the simulator's files of these delivery days into the inbox (no copy; ingestion only reads them)."""
    wanted, linked = set(days), 0
    for path in sorted(generated.glob("*/*")):
        if path.parent.name == "_truth" or not path.is_file() or _file_day(path) not in wanted:
            continue
        target = inbox / path.relative_to(generated)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
        linked += 1
    return linked


def tailor_run(settings: Settings) -> tuple[float, dict[str, Any]]:
    """Seconds `tailor run --json` took on this home, and its JSON summary; stops with its output on failure."""
    env = {**os.environ, "TAILOR_HOME": str(settings.home)}
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "tailor"), "run", "--json"], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tailor run failed:\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)


def _small(value: Any) -> Any:
    """A metadata value worth keeping in the results (numbers, flags, short text), else None."""
    raw = getattr(value, "value", value)
    if isinstance(raw, bool | int | float):
        return raw
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return text if len(text) <= MAX_METADATA_CHARS else None


def step_times(settings: Settings, run_id: str) -> dict[str, dict[str, Any]]:
    """Per step of the run: seconds from start to end, the assets it materialized and the checks it evaluated.

    Metadata of assets outside the dbt step (dbt's many models would swamp it) is kept when it is short, so the
    results say what each feature asset did (applied or not, rows built, up to date).
    """
    import dagster as dg

    os.environ.update(settings.dagster_env())
    steps: dict[str, dict[str, Any]] = {}
    with dg.DagsterInstance.get() as instance:
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            step = steps.setdefault(event.step_key, {"assets": [], "checks": []})
            if event.event_type == dg.DagsterEventType.STEP_START:
                step["start"] = record.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                step["end"] = record.timestamp
                step["status"] = "success" if event.event_type == dg.DagsterEventType.STEP_SUCCESS else "failure"
            elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.step_materialization_data.materialization
                step["assets"].append(materialization.asset_key.to_user_string())
                if event.step_key not in BASELINE_STEPS:
                    kept = {k: _small(v) for k, v in materialization.metadata.items()}
                    step.setdefault("metadata", {})[materialization.asset_key.to_user_string()] = {
                        k: v for k, v in kept.items() if v is not None
                    }
            elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                check = event.asset_check_evaluation_data
                step["checks"].append(f"{check.check_name}: {'passed' if check.passed else 'FAILED'}")
    out: dict[str, dict[str, Any]] = {}
    for key, step in sorted(steps.items(), key=lambda item: item[1].get("start", 0.0)):
        row: dict[str, Any] = {"seconds": round(step["end"] - step["start"], 2), "status": step.get("status")}
        if len(step["assets"]) > 5:
            row["assets"] = f"{len(step['assets'])} assets"
        elif step["assets"]:
            row["assets"] = step["assets"]
        if step["checks"] and key not in BASELINE_STEPS:
            row["checks"] = step["checks"]
        elif step["checks"]:
            row["checks"] = f"{len(step['checks'])} checks"
        if step.get("metadata"):
            row["metadata"] = step["metadata"]
        out[key] = row
    return out


def measure_run(settings: Settings, name: str) -> dict[str, Any]:
    began_load = load()
    wall_s, summary = tailor_run(settings)
    steps = step_times(settings, summary["run"]["run_id"])
    missing = [s for s in BASELINE_STEPS if s not in steps]
    if missing:
        raise SystemExit(f"the run has no step {missing}: the baseline (landing + dbt) cannot be measured")
    baseline = sum(steps[s]["seconds"] for s in BASELINE_STEPS)
    steps_total = sum(s["seconds"] for s in steps.values())
    row = {
        "run": name,
        "wall_s": round(wall_s, 2),
        "steps_total_s": round(steps_total, 2),
        "landing_plus_dbt_s": round(baseline, 2),
        "ratio_wall_to_landing_plus_dbt": round(wall_s / baseline, 2),
        "outside_steps_s": round(wall_s - steps_total, 2),  # process start, imports, loading the definitions
        "load_avg_before_after": [began_load, load()],
        # What each model-side asset did ("up to date: unchanged, version 3 kept", "trained: changed: ...").
        "models": summary["run"].get("models", {}),
        "steps": steps,
    }
    print(
        f"  {name}: {wall_s:.1f} s wall, landing + dbt {baseline:.1f} s (x{wall_s / baseline:.2f}); "
        + ", ".join(f"{k} {v['seconds']:.1f}" for k, v in steps.items() if k not in BASELINE_STEPS),
        flush=True,
    )
    for asset, action in row["models"].items():
        print(f"    {asset}: {action[:160]}", flush=True)
    return row


def run_size(target_events: int, days: int, work: Path, seed: int) -> dict[str, Any]:
    generated = work / "generated"
    config = SimulationConfig(users=users_for_events(target_events, days=days), days=days, seed=seed)
    start = time.perf_counter()
    simulate(config, generated)
    simulate_s = time.perf_counter() - start
    delivery_days = sorted({d for d in map(_file_day, generated.glob("*/*")) if d is not None})
    # The last simulated day and any later file (late deliveries) make the new day; the rest is the first run's.
    earlier = [d for d in delivery_days if d < config.end_date]
    later = [d for d in delivery_days if d >= config.end_date]
    settings = get_settings(work / "home")
    print(
        f"{target_events:,} events: {config.users:,} users x {days} days, simulated in {simulate_s:.0f} s", flush=True
    )
    runs = []
    deliver(generated, settings.inbox, earlier)
    runs.append(measure_run(settings, "first run"))
    deliver(generated, settings.inbox, later)
    runs.append(measure_run(settings, "new day"))
    runs.append(measure_run(settings, "nothing new"))
    return {
        "target_events": target_events,
        "users": config.users,
        "days": days,
        "first_run_delivery_days": [str(earlier[0]), str(earlier[-1])],
        "new_day_delivery_days": [str(d) for d in later],
        "simulate_s": round(simulate_s, 2),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=28, help="Days simulated (the last one is the 'new day').")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_EVENTS:,} events over 4 days, to check it runs.")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folders (homes) for a look after.")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"Results file (default {RESULTS}).")
    args = parser.parse_args()
    if args.workdir is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.workdir.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.events, args.days = [SMOKE_EVENTS], 4
    disable_telemetry()
    rows = []
    for size in args.events:
        work = Path(tempfile.mkdtemp(prefix=f"tailor-run-cost-{size}-", dir=args.workdir))
        try:
            rows.append(run_size(size, args.days, work, args.seed))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    out = {
        "benchmark": "run_cost",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "shared": "2 cores shared with other work during the run: see each run's load averages",
        },
        "command": "python bench/bench_run_cost.py " + " ".join(sys.argv[1:]),
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

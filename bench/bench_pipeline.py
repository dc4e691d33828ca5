"""Benchmark: the whole pipeline (tailor ingest + dbt build) against a hand-written DuckDB script.

For each size, generates a history with the simulator, then times, on the same files:
  1. `tailor ingest` of the generated events/users/content (contract check + landing),
  2. `dbt build` from dbt_project/ (all models, snapshots, tests and unit tests, Parquet publishing),
  3. bench/handwritten.sql: parse + drop malformed + dedup + sessions + daily rollups in one DuckDB script.
It also checks the two agree on the core numbers (accepted events, sessions, user-days).

    .venv/bin/python bench/bench_pipeline.py --events 1000000 10000000
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
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tailor.settings import DBT_PROJECT_DIR, get_settings
from tailor.simulator import SimulationConfig, simulate
from tailor.simulator.config import users_for_events

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DAYS = 28


def _timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def run_size(target_events: int, work: Path, seed: int) -> dict[str, object]:
    generated = work / "generated"
    home = work / "home"
    config = SimulationConfig(users=users_for_events(target_events, days=DAYS), days=DAYS, seed=seed)
    start = time.perf_counter()
    result = simulate(config, generated)
    simulate_s = time.perf_counter() - start
    settings = get_settings(home)
    env = {**os.environ, **settings.dbt_env(), "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
           "DBT_TARGET_PATH": str(work / "target"), "DBT_LOG_PATH": str(work / "logs")}
    ingest_s = _timed([str(BIN / "tailor"), "ingest", "--json", str(generated)], env)
    build_s = _timed([str(BIN / "dbt"), "build"], env, cwd=DBT_PROJECT_DIR)

    script = (BENCH_DIR / "handwritten.sql").read_text().replace("{events_glob}", str(generated / "events" / "*.jsonl"))
    con = duckdb.connect(str(work / "handwritten.duckdb"))
    start = time.perf_counter()
    con.execute(script)
    handwritten_s = time.perf_counter() - start
    hand = con.execute(
        "select (select count(*) from events), (select count(*) from sessions), (select count(*) from daily)"
    ).fetchall()[0]
    con.close()

    marts = settings.marts_dir
    ours = duckdb.sql(
        f"select (select sum(accepted) from read_parquet('{marts}/fct_batch_fates.parquet')),"
        f" (select count(*) from read_parquet('{marts}/fct_sessions.parquet')),"
        f" (select count(*) from read_parquet('{marts}/fct_daily_user_engagement.parquet'))"
    ).fetchall()[0]
    events_received = int(
        duckdb.sql(f"select sum(received) from read_parquet('{marts}/fct_batch_fates.parquet')").fetchall()[0][0]
    )
    pipeline_s = ingest_s + build_s
    return {
        "target_events": target_events,
        "events_received": events_received,
        "users": config.users,
        "days": DAYS,
        "simulate_s": round(simulate_s, 2),
        "ingest_s": round(ingest_s, 2),
        "dbt_build_s": round(build_s, 2),
        "pipeline_s": round(pipeline_s, 2),
        "handwritten_s": round(handwritten_s, 2),
        "ratio_pipeline_to_handwritten": round(pipeline_s / handwritten_s, 2),
        "pipeline_events_per_s": round(events_received / pipeline_s),
        "agree": {"accepted_events": [int(ours[0]), int(hand[0])], "sessions": [int(ours[1]), int(hand[1])],
                  "user_days": [int(ours[2]), int(hand[2])]},
        "files_written": getattr(result, "files_written", None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    args = parser.parse_args()
    rows = []
    for size in args.events:
        work = Path(tempfile.mkdtemp(prefix=f"tailor-bench-{size}-", dir=args.workdir))
        try:
            row = run_size(size, work, args.seed)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        growth = (large["pipeline_s"] / small["pipeline_s"]) / (large["events_received"] / small["events_received"])
        print(f"cost growth vs linear, {small['target_events']:,} -> {large['target_events']:,}: {growth:.2f}x")
    out = {
        "benchmark": "pipeline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python bench/bench_pipeline.py --events " + " ".join(str(s) for s in args.events),
        "results": rows,
    }
    (BENCH_DIR / "results").mkdir(exist_ok=True)
    (BENCH_DIR / "results" / "pipeline.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

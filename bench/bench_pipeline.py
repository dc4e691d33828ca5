"""Benchmark: the whole pipeline (tailor ingest + dbt build) against a hand-written DuckDB script.

For each size, generates a history with the simulator, then times, on the same files:
  1. `tailor ingest` of the generated events/users/content (contract check + landing),
  2. `dbt build` from dbt_project/ (all models, snapshots, tests and unit tests, Parquet publishing),
  3. bench/handwritten.sql: parse + drop malformed + dedup + sessions + daily rollups in one DuckDB script.
It also checks the two agree on the core numbers (accepted events, sessions, user-days).

    .venv/bin/python bench/bench_pipeline.py --events 1000000 10000000
    .venv/bin/python bench/bench_pipeline.py --events 3000 --skip-tailor-run --output /tmp/pipeline.json  # smoke run
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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from simulator import SimulationConfig, simulate
from simulator.config import users_for_events
from tailor.settings import DBT_PROJECT_DIR, Settings, get_settings

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "pipeline.json"
BIN = Path(sys.executable).parent
DAYS = 28


def _timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    """Seconds a command took; on failure, stop with the end of its output."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def simulate_history(target_events: int, seed: int, out: Path) -> tuple[SimulationConfig, float]:
    """Simulate a history of about ``target_events`` events over DAYS days into ``out``: its config, and seconds."""
    config = SimulationConfig(users=users_for_events(target_events, days=DAYS), days=DAYS, seed=seed)
    start = time.perf_counter()
    simulate(config, out)
    return config, time.perf_counter() - start


def dbt_env(settings: Settings, work: Path) -> dict[str, str]:
    """Environment for plain dbt on ``settings``' warehouse, with its target and logs under ``work``."""
    return {
        **os.environ,
        **settings.dbt_env(),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
    }


def land_and_build(generated: Path, env: dict[str, str], select: Sequence[str] = ()) -> tuple[float, float]:
    """Seconds to land ``generated`` (bulk, no row checks) and to `dbt build` it (only ``select`` when given)."""
    land_s = _timed([str(BIN / "tailor"), "ingest", "--no-row-check", "--json", str(generated)], env)
    selection = ["--select", *select] if select else []
    build_s = _timed([str(BIN / "dbt"), "build", *selection], env, cwd=DBT_PROJECT_DIR)
    return land_s, build_s


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link the generated files into an inbox (no copy of gigabytes; ingestion only reads them)."""
    for path in source.rglob("*"):
        if path.is_file():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, dest)


def _slowest_nodes(run_results: Path, top: int = 5) -> dict[str, float]:
    """The models that took longest in a build, and all data tests together, from dbt's run_results.json."""
    results = json.loads(run_results.read_text())["results"]
    models = sorted(
        ((r["execution_time"], r["unique_id"]) for r in results if r["unique_id"].startswith("model.")), reverse=True
    )
    slowest = {unique_id.split(".")[-1]: round(seconds, 2) for seconds, unique_id in models[:top]}
    tests = sum(r["execution_time"] for r in results if r["unique_id"].startswith("test."))
    slowest["all data tests"] = round(tests, 2)
    return slowest


def _cpu_s(who: int) -> float:
    """User + system CPU seconds so far of this process (RUSAGE_SELF) or of its finished children (RUSAGE_CHILDREN)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    return tuple(con.execute(sql).fetchall()[0])


def run_size(target_events: int, work: Path, seed: int, tailor_run: bool = True) -> dict[str, Any]:
    generated = work / "generated"
    config, simulate_s = simulate_history(target_events, seed, generated)

    # 1. The pipeline as the scheduled run does it: land the files, then `dbt build` (plain dbt).
    settings = get_settings(work / "home")
    env = dbt_env(settings, work)
    # CPU seconds as well as wall time: on a shared machine the CPU ratio moves far less with the load than the wall
    # ratio does (a process waiting for a core accrues wall time, not CPU time).
    children_cpu = _cpu_s(resource.RUSAGE_CHILDREN)
    land_s, build_s = land_and_build(generated, env)
    pipeline_cpu_s = _cpu_s(resource.RUSAGE_CHILDREN) - children_cpu
    slowest = _slowest_nodes(work / "target" / "run_results.json")
    # The steady state of a daily schedule with nothing new: every incremental model redoes its lookback.
    rebuild_s = _timed([str(BIN / "dbt"), "build"], env, cwd=DBT_PROJECT_DIR)

    # 2. The same through Dagster: files in the inbox, `tailor run` (ingestion asset, dbt assets, checks).
    tailor_run_s: float | None = None
    if tailor_run:
        dagster_home = get_settings(work / "home-dagster")
        _link_tree(generated, dagster_home.inbox)
        dagster_env = {**os.environ, "TAILOR_HOME": str(dagster_home.home)}
        tailor_run_s = _timed([str(BIN / "tailor"), "run", "--json"], dagster_env)

    # 3. `tailor ingest` as a person runs it, with the row checks reported per file.
    checked_env = {**os.environ, "TAILOR_HOME": str(work / "home-checked")}
    ingest_checked_s = _timed([str(BIN / "tailor"), "ingest", "--json", str(generated)], checked_env)

    # 4. The hand-written script on the same files.
    script = (BENCH_DIR / "handwritten.sql").read_text().replace("{events_glob}", str(generated / "events" / "*.jsonl"))
    con = duckdb.connect(str(work / "handwritten.duckdb"))
    start, own_cpu = time.perf_counter(), _cpu_s(resource.RUSAGE_SELF)
    con.execute(script)
    handwritten_s = time.perf_counter() - start
    handwritten_cpu_s = _cpu_s(resource.RUSAGE_SELF) - own_cpu
    hand = _scalar(
        con, "select (select count(*) from events), (select count(*) from sessions), (select count(*) from daily)"
    )
    con.close()

    marts = settings.marts_dir
    reader = duckdb.connect()
    ours = _scalar(
        reader,
        f"select (select sum(accepted) from read_parquet('{marts}/fct_batch_fates.parquet')),"
        f" (select sum(received) from read_parquet('{marts}/fct_batch_fates.parquet')),"
        f" (select count(*) from read_parquet('{marts}/fct_sessions.parquet')),"
        f" (select count(*) from read_parquet('{marts}/fct_daily_user_engagement.parquet'))",
    )
    pipeline_s = land_s + build_s
    return {
        "target_events": target_events,
        "events_received": int(ours[1]),
        "users": config.users,
        "days": DAYS,
        "simulate_s": round(simulate_s, 2),
        "land_s": round(land_s, 2),
        "dbt_build_s": round(build_s, 2),
        "pipeline_s": round(pipeline_s, 2),
        "dbt_rebuild_no_new_data_s": round(rebuild_s, 2),
        "dbt_slowest_nodes_s": slowest,
        "tailor_run_s": None if tailor_run_s is None else round(tailor_run_s, 2),
        "ingest_with_row_checks_s": round(ingest_checked_s, 2),
        "handwritten_s": round(handwritten_s, 2),
        "ratio_pipeline_to_handwritten": round(pipeline_s / handwritten_s, 2),
        "pipeline_cpu_s": round(pipeline_cpu_s, 2),
        "handwritten_cpu_s": round(handwritten_cpu_s, 2),
        "ratio_pipeline_to_handwritten_cpu": round(pipeline_cpu_s / handwritten_cpu_s, 2),
        "ratio_tailor_run_to_handwritten": None if tailor_run_s is None else round(tailor_run_s / handwritten_s, 2),
        "pipeline_events_per_s": round(int(ours[1]) / pipeline_s),
        # The hand-written script keeps rows Tailor quarantines (it checks no types), hence a few more events.
        "accepted_events": {"tailor": int(ours[0]), "handwritten": int(hand[0])},
        "sessions": {"tailor": int(ours[2]), "handwritten": int(hand[1])},
        "user_days": {"tailor": int(ours[3]), "handwritten": int(hand[2])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"Results file (default {RESULTS}).")
    parser.add_argument(
        "--skip-tailor-run",
        action="store_true",
        help="Skip the build through Dagster (`tailor run`).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep each size's scratch folder (to profile it again).")
    args = parser.parse_args()
    if args.workdir is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.events:
        work = Path(tempfile.mkdtemp(prefix=f"tailor-bench-{size}-", dir=args.workdir))
        try:
            row = run_size(size, work, args.seed, tailor_run=not args.skip_tailor_run)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        growth = (float(large["pipeline_s"]) / float(small["pipeline_s"])) / (
            int(large["events_received"]) / int(small["events_received"])
        )
        print(f"cost per event, {small['target_events']:,} -> {large['target_events']:,}: x{growth:.2f} (1 = linear)")
    out = {
        "benchmark": "pipeline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python bench/bench_pipeline.py " + " ".join(sys.argv[1:]),
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: the same `dbt build` on DuckDB and on Apache Spark (local mode), from the same landing files (issue 13).

For each size, simulates a history, lands it once (`tailor ingest --no-row-check`), copies those landing files into
one DuckDB home and one Spark home, and runs on each, one after the other, the same selection:
`dbt build --exclude-resource-type unit_test --exclude-resource-type snapshot`. On Spark the project disables the
snapshots (they need merge: Delta/Iceberg) and dbt's unit tests (their fixtures are DuckDB SQL), so they are excluded on
DuckDB too: both engines build the same models and run the same data tests. Recorded per engine: wall seconds, CPU
seconds of dbt and every process it started (the JVM on Spark), the peak resident memory of each of those processes,
the per-model seconds from dbt's run_results.json, and the rows of fct_events (the two builds must agree).

The JVM that pyspark starts is never waited for by dbt: when dbt exits the JVM sees its stdin close and exits as an
orphan. This script makes itself a child subreaper (Linux prctl) so such orphans come back to it, and reaps them with
os.wait4 to account their CPU and memory to the build.

    nice -n 10 .venv/bin/python bench/bench_engines.py --events 20000 300000
    .venv/bin/python bench/bench_engines.py --smoke --output /tmp/engines.json  # tiny: does it still run?

Needs the optional `spark` extra (`python3 -m uv sync --frozen --extra spark`).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from bench_pipeline import BIN, _timed, dbt_env, simulate_history

from tailor.settings import DBT_PROJECT_DIR, ENGINES, Engine, Settings, get_settings, require_engine

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "engines.json"
#: What both engines can build: Spark's project disables the snapshots and the unit tests (dbt_project.yml).
BUILD = ("build", "--exclude-resource-type", "unit_test", "--exclude-resource-type", "snapshot")
SMOKE_EVENTS = 2000
PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Have orphaned descendants (pyspark's JVM, which dbt never waits for) reparented to this process."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _usage(rusage: resource.struct_rusage) -> tuple[float, float]:
    """CPU seconds (user + system) and peak resident MB (Linux reports ru_maxrss in KiB)."""
    return rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss / 1024


def _measured_dbt(args: tuple[str, ...], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run dbt to completion and reap every process it left behind.

    Returns wall seconds (dbt's own exit), CPU seconds of dbt and all its descendants, and the peak resident MB of
    dbt (with the children it waited for) and of the largest process it left to exit after it ("orphan": the JVM on
    Spark; on DuckDB multiprocessing's resource tracker), each process's own high-water mark: they run at the same
    time, so their sum bounds the build's footprint from above.
    Raises SystemExit with the end of dbt's log when it fails.
    """
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "dbt"), *args], cwd=DBT_PROJECT_DIR, env=env, stdout=out, stderr=out)
        _, status, dbt_usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu_s, dbt_rss = _usage(dbt_usage)
    orphan_rss = 0.0
    while True:  # orphans (the JVM) exit once dbt's end closes their stdin
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        orphan_cpu, rss = _usage(usage)
        cpu_s += orphan_cpu
        orphan_rss = max(orphan_rss, rss)
    if proc.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{log.read_text()[-5000:]}")
    return {
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "peak_rss_mb": {"dbt": round(dbt_rss), "orphan": round(orphan_rss) if orphan_rss else None},
        "wall_after_reaping_s": round(time.perf_counter() - start, 2),
    }


def _node_seconds(run_results: Path) -> dict[str, Any]:
    """Per-model seconds, and the count and total seconds of data tests and seeds, from dbt's run_results.json."""
    results = json.loads(run_results.read_text())["results"]

    def of(kind: str) -> list[dict[str, Any]]:
        return [r for r in results if r["unique_id"].startswith(f"{kind}.")]

    models = sorted(of("model"), key=lambda r: -r["execution_time"])
    return {
        "models": {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2) for r in models},
        "models_total_s": round(sum(r["execution_time"] for r in models), 2),
        "data_tests": len(of("test")),
        "data_tests_total_s": round(sum(r["execution_time"] for r in of("test")), 2),
        "seeds_total_s": round(sum(r["execution_time"] for r in of("seed")), 2),
        "not_success": [r["unique_id"] for r in results if r["status"] not in ("success", "pass")],
    }


def _events_built(settings: Settings) -> int:
    """Rows of marts.fct_events in ``settings``' warehouse (Spark's read from its Parquet folder, no second JVM)."""
    con = duckdb.connect(str(settings.warehouse) if settings.engine == "duckdb" else ":memory:", read_only=False)
    try:
        if settings.engine == "duckdb":
            return int(con.execute("select count(*) from marts.fct_events").fetchall()[0][0])
        folder = settings.spark_dir / "warehouse" / "marts.db" / "fct_events"
        sql = f"select count(*) from read_parquet('{folder}/**/*.parquet', hive_partitioning = true)"
        return int(con.execute(sql).fetchall()[0][0])
    finally:
        con.close()


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_engine(engine: Engine, landed: Settings, work: Path) -> dict[str, Any]:
    """`dbt build` (BUILD) on a fresh ``engine`` home holding a copy of ``landed``'s landing files."""
    home = replace(get_settings(work / engine), engine=engine)
    shutil.copytree(landed.landing, home.landing)
    for folder in (home.warehouse_dir, home.marts_dir):
        folder.mkdir(parents=True, exist_ok=True)
    load_before = _load()
    measured = _measured_dbt(BUILD, dbt_env(home, work / f"dbt-{engine}"), work / f"dbt-{engine}.log")
    return {
        **measured,
        "load_1min": {"before": load_before, "after": _load()},
        "fct_events_rows": _events_built(home),
        **_node_seconds(work / f"dbt-{engine}" / "target" / "run_results.json"),
    }


def run_size(target_events: int, work: Path, seed: int) -> dict[str, Any]:
    generated = work / "generated"
    config, simulate_s = simulate_history(target_events, seed, generated)
    landed = get_settings(work / "landed")
    land_s = _timed(
        [str(BIN / "tailor"), "ingest", "--no-row-check", "--json", str(generated)],
        {**os.environ, "TAILOR_HOME": str(landed.home)},
    )
    received = sum(1 for path in (generated / "events").glob("*.jsonl") for _ in path.open())
    engines = {engine: run_engine(engine, landed, work) for engine in ENGINES}
    duck, spark = engines["duckdb"], engines["spark"]
    if duck["fct_events_rows"] != spark["fct_events_rows"]:
        raise SystemExit(f"the engines disagree on fct_events: {duck['fct_events_rows']} vs {spark['fct_events_rows']}")
    return {
        "target_events": target_events,
        "events_received": received,
        "users": config.users,
        "days": config.days,
        "simulate_s": round(simulate_s, 2),
        "land_s": round(land_s, 2),
        "engines": engines,
        "spark_to_duckdb_wall": round(spark["wall_s"] / duck["wall_s"], 2),
        "spark_to_duckdb_cpu": round(spark["cpu_s"] / duck["cpu_s"], 2),
    }


def fixed_and_marginal(rows: list[dict[str, Any]], measure: str) -> dict[str, Any]:
    """Per engine, the line through the smallest and largest size: ``measure`` = fixed + marginal * events.

    Returns {engine: {"fixed_s", "per_million_events_s"}} and, when Spark's marginal cost is the lower, the number of
    events at which the two lines cross (None when they never do).
    """
    small, large = rows[0], rows[-1]
    delta = (large["events_received"] - small["events_received"]) / 1e6
    lines: dict[str, dict[str, float]] = {}
    for engine in ENGINES:
        a, b = small["engines"][engine][measure], large["engines"][engine][measure]
        slope = (b - a) / delta
        lines[engine] = {
            "fixed_s": round(a - slope * small["events_received"] / 1e6, 1),
            "per_million_events_s": round(slope, 1),
        }
    d, s = lines["duckdb"], lines["spark"]
    crossover: int | None = None
    if s["per_million_events_s"] < d["per_million_events_s"]:
        crossover = round(1e6 * (s["fixed_s"] - d["fixed_s"]) / (d["per_million_events_s"] - s["per_million_events_s"]))
    return {**lines, "crossover_events": crossover}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[20_000, 300_000])
    parser.add_argument("--smoke", action="store_true", help=f"One tiny size ({SMOKE_EVENTS} events): does it run?")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"Results file (default {RESULTS}).")
    parser.add_argument("--keep", action="store_true", help="Keep each size's scratch folder.")
    args = parser.parse_args()
    if args.workdir is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.workdir.mkdir(parents=True, exist_ok=True)
    require_engine("spark")
    _become_subreaper()
    sizes = [SMOKE_EVENTS] if args.smoke else args.events
    out: dict[str, Any] = {
        "benchmark": "engines",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python bench/bench_engines.py " + " ".join(sys.argv[1:]),
        "build": "dbt " + " ".join(BUILD),
        "results": [],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"tailor-engines-{size}-", dir=args.workdir))
        try:
            row = run_size(size, work, args.seed)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({k: v for k, v in row.items() if k != "engines"}), flush=True)
        out["results"].append(row)
        if len(out["results"]) >= 2:
            out["lines"] = {m: fixed_and_marginal(out["results"], m) for m in ("wall_s", "cpu_s")}
        # Written after every size: a long run that is stopped keeps what it measured.
        args.output.write_text(json.dumps(out, indent=2) + "\n")
    if "lines" in out:
        print(json.dumps(out["lines"]))


if __name__ == "__main__":
    main()

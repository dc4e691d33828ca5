"""Benchmark: the same `dbt build` from two commits of dbt_project/ on the same landed files, in CPU seconds.

What it answers: did a change to the models (issue 13's portability work: dispatched macros, cross-database
spellings) cost the default engine anything? Everything but the project is held fixed: one history (the simulator,
seed 11) is landed once with this checkout's `tailor ingest --no-row-check`, and each commit's `dbt_project/` (a
`git worktree` of it) builds a fresh DuckDB home made of those landing files, with this checkout's dbt and DuckDB.

The builds run on one thread (dbt `threads: 1`, DuckDB `threads = 1`) and the commits alternate, repeated, so a
shared machine's load moves CPU seconds far less than wall time (a process waiting for a core accrues wall time,
not CPU time) and both commits see the same conditions. Recorded per build: wall and CPU seconds (user + system of
dbt and its children), peak resident memory, the load average, and dbt's per-node seconds.

    .venv/bin/python bench/bench_dbt_commits.py --events 10000000 --commits a40eb7a HEAD --repeats 2
    .venv/bin/python bench/bench_dbt_commits.py --smoke --output /tmp/dbt_commits.json   # tiny, about a minute
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
from statistics import median
from typing import Any

from bench_pipeline import BIN, simulate_history

from tailor.settings import get_settings

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "dbt_commits.json"

#: One thread everywhere, the target every commit's models build on (the default local target's settings).
PROFILE = """\
tailor:
  target: local
  outputs:
    local:
      type: duckdb
      path: "{{ env_var('TAILOR_HOME') }}/warehouse/tailor.duckdb"
      threads: 1
      settings:
        TimeZone: UTC
        threads: 1
"""


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def _children() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def build(project: Path, landing: Path, work: Path, label: str) -> dict[str, Any]:
    """A first `dbt build` of ``project`` on a fresh home holding (hard links to) ``landing``."""
    home = work / f"home-{label}"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(landing, home / "landing", copy_function=os.link)
    for folder in ("warehouse", "marts"):
        (home / folder).mkdir()
    env = {
        **os.environ,
        **get_settings(home).dbt_env(),
        "DBT_PROFILES_DIR": str(work / "profile"),
        "DBT_TARGET_PATH": str(work / f"target-{label}"),
        "DBT_LOG_PATH": str(work / f"logs-{label}"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    load = os.getloadavg()[0]
    cpu_before, _ = _children()
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "dbt"), "build"], cwd=project, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    cpu_after, peak_kb = _children()
    if done.returncode != 0:
        raise SystemExit(f"dbt build of {project} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    nodes = json.loads((work / f"target-{label}" / "run_results.json").read_text())["results"]
    models = sorted((n["execution_time"], n["unique_id"]) for n in nodes if n["unique_id"].startswith("model."))
    shutil.rmtree(home, ignore_errors=True)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_after - cpu_before, 2),
        # ru_maxrss of children is the largest of any child so far: dbt's process, the only big one.
        "peak_rss_mb_so_far": round(peak_kb / 1024),
        "load_1min_before": round(load, 2),
        "nodes": len(nodes),
        "data_tests_s": round(sum(n["execution_time"] for n in nodes if n["unique_id"].startswith("test.")), 2),
        "slowest_models_s": {uid.split(".")[-1]: round(s, 2) for s, uid in reversed(models[-6:])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--commits", nargs="+", default=["a40eb7a", "HEAD"], help="Commits to compare (git revs).")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds; each round builds every commit once.")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"Results file (default {RESULTS}).")
    parser.add_argument("--smoke", action="store_true", help="3,000 events, this commit only, one round.")
    args = parser.parse_args()
    if args.workdir is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.workdir.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.events, args.commits, args.repeats = 3_000, ["HEAD"], 1

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)  # a folder not made yet is one to make, not a traceback
    work = Path(tempfile.mkdtemp(prefix="tailor-dbt-commits-", dir=args.workdir))
    (work / "profile").mkdir()
    (work / "profile" / "profiles.yml").write_text(PROFILE)
    commits = {rev: _git("rev-parse", "--short", rev) for rev in args.commits}
    trees: dict[str, Path] = {}
    try:
        _, simulate_s = simulate_history(args.events, args.seed, work / "generated")
        lander = get_settings(work / "landed")
        env = {**os.environ, "TAILOR_HOME": str(lander.home)}
        ingest = [str(BIN / "tailor"), "ingest", "--no-row-check", "--json", str(work / "generated")]
        subprocess.run(ingest, env=env, capture_output=True, text=True, check=True)
        for sha in dict.fromkeys(commits.values()):
            trees[sha] = work / f"tree-{sha}"
            _git("worktree", "add", "--detach", str(trees[sha]), sha)
        builds: list[dict[str, Any]] = []
        for round_ in range(args.repeats):
            for rev, sha in commits.items():
                row = {"round": round_ + 1, "commit": sha, "rev": rev}
                row |= build(trees[sha] / "dbt_project", lander.home / "landing", work, f"{sha}-{round_}")
                print(json.dumps(row), flush=True)
                builds.append(row)
        summary = {
            sha: {
                "cpu_s_median": round(median(b["cpu_s"] for b in builds if b["commit"] == sha), 2),
                "wall_s_median": round(median(b["wall_s"] for b in builds if b["commit"] == sha), 2),
            }
            for sha in dict.fromkeys(commits.values())
        }
        print(json.dumps(summary))
    finally:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "benchmark": "dbt_commits",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python bench/bench_dbt_commits.py " + " ".join(sys.argv[1:]),
        "events_target": args.events,
        "simulate_s": round(simulate_s, 2),
        "commits": commits,
        "builds": builds,
        "summary": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""What Feast's typeguard checks cost a process that opens the feature store (`tailor.feast_typechecks`).

Each case runs in fresh processes, once with the checks skipped (Tailor's default) and once kept
(``TAILOR_FEAST_TYPECHECKS=1``), alternating, ``--repeats`` times:

- import: ``import tailor, feast`` (what every `tailor` command, Dagster step process, the app and the service pay
  before any work);
- import from source: ``import tailor, feast, sklearn, dagster, mlflow`` with no compiled ``.pyc`` to read
  (``PYTHONPYCACHEPREFIX`` pointing at an empty folder, ``PYTHONDONTWRITEBYTECODE=1``), next to the same import
  as ``import_with_pyc``: what a process pays where bytecode is never written and the install did not compile it
  (``uv sync --compile-bytecode``, which `make install` uses);
- recommend (with ``--home``, a home with pages, e.g. the demo's ``data``): the whole ``tailor recommend USER --json``
  command, as a person runs it;
- online read (with ``--home``): one user's features (the ``ranker_v1`` service's user half, as `recommend` reads
  them) through ``FeatureStore.get_online_features``, ``--calls`` times in one process after a warm-up: the
  checks' cost per call of a decorated Feast function.

Wall and CPU seconds (user + system of the child and its children, from ``getrusage(RUSAGE_CHILDREN)``); medians
over the repeats.

Usage:
    .venv/bin/python bench/bench_startup.py --home data            # about two minutes on the demo
    .venv/bin/python bench/bench_startup.py --repeats 2            # smoke: the import cases only
    .venv/bin/python bench/bench_startup.py --cases import,recommend --home data   # some cases only

Writes bench/results/startup.json (or --output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tailor.feast_typechecks import KEEP_ENV
from tailor.settings import REPO_ROOT, TELEMETRY_OFF, get_settings

TAILOR = str(Path(sys.executable).parent / "tailor")
MODES = {"skipped": None, "kept": "1"}
#: Every case, in the order they run (the last two only with --home).
CASES = ("import", "import_with_pyc", "import_from_source", "recommend", "online_read")

IMPORT = "import tailor, feast"
IMPORT_STACK = "import tailor, feast, sklearn, dagster, mlflow"
ONLINE_READ = """
import json, sys, time
import tailor
from ml.recommend.serving import service_features
from tailor.feature_store import open_store
from tailor.settings import get_settings
store = open_store(get_settings(sys.argv[1]))
refs = service_features(store, "ranker_v1")[0]
rows = [{"user_id": sys.argv[2]}]
for _ in range(20):
    store.get_online_features(features=refs, entity_rows=rows).to_dict()
calls = int(sys.argv[3])
started = time.perf_counter()
for _ in range(calls):
    store.get_online_features(features=refs, entity_rows=rows).to_dict()
print(json.dumps({"ms_per_call": 1000 * (time.perf_counter() - started) / calls}))
"""


def timed(
    args: list[str], keep: str | None, home: Path | None, extra: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, its stdout) of one run of ``args`` with the checks skipped or kept."""
    env = {**os.environ, **TELEMETRY_OFF, **(extra or {})}
    env.pop(KEEP_ENV, None)
    if home is not None:
        env["TAILOR_HOME"] = str(home)
    if keep is not None:
        env[KEEP_ENV] = keep
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def a_user(home: Path) -> str:
    """A user with a cached page (the first row of the batch pages by user)."""
    path = get_settings(home).marts_dir / "batch_recommendations_by_user.parquet"
    if not path.exists():
        raise SystemExit(f"{home} has no batch pages ({path}): run `tailor run` on it first (e.g. `make demo`)")
    return str(pq.read_table(path, columns=["user_id"]).column("user_id")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="a Tailor home with pages (adds the recommend and online cases)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300, help="online reads per process")
    parser.add_argument(
        "--cases",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        help=f"comma-separated cases to run (default: all of {', '.join(CASES)}; the last two need --home)",
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "startup.json")
    args = parser.parse_args()
    if args.cases == []:
        parser.error(f"--cases names no case: choose from {', '.join(CASES)}")
    unknown = sorted(set(args.cases or ()) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(CASES)}")

    empty_cache = tempfile.mkdtemp(prefix="tailor-no-pyc-")
    from_source = {"PYTHONPYCACHEPREFIX": empty_cache, "PYTHONDONTWRITEBYTECODE": "1"}
    cases: dict[str, list[str]] = {
        "import": [sys.executable, "-c", IMPORT],
        "import_with_pyc": [sys.executable, "-c", IMPORT_STACK],
        "import_from_source": [sys.executable, "-c", IMPORT_STACK],
    }
    extra_env = {"import_from_source": from_source}
    home = args.home.resolve() if args.home is not None else None
    if home is not None and (args.cases is None or {"recommend", "online_read"} & set(args.cases)):
        user = a_user(home)
        cases["recommend"] = [TAILOR, "recommend", user, "--json"]
        cases["online_read"] = [sys.executable, "-c", ONLINE_READ, str(home), user, str(args.calls)]
    if args.cases is not None:
        missing = [name for name in args.cases if name not in cases]
        if missing:
            parser.error(f"case(s) {', '.join(missing)} need --home (a home with pages)")
        cases = {name: command for name, command in cases.items() if name in args.cases}

    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        case: {mode: {"wall_s": [], "cpu_s": [], "ms_per_call": []} for mode in MODES} for case in cases
    }
    for repeat in range(args.repeats):
        for case, command in cases.items():
            for mode, keep in MODES.items():
                wall, cpu, out = timed(command, keep, home, extra_env.get(case))
                found = samples[case][mode]
                found["wall_s"].append(wall)
                found["cpu_s"].append(cpu)
                if case == "online_read":
                    found["ms_per_call"].append(json.loads(out.strip().splitlines()[-1])["ms_per_call"])
                print(f"round {repeat + 1} {case} {mode}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)

    results: dict[str, Any] = {}
    for case, modes in samples.items():
        results[case] = {
            mode: {name: round(statistics.median(v), 4) for name, v in found.items() if v}
            for mode, found in modes.items()
        }
        kept, skipped = results[case]["kept"], results[case]["skipped"]
        results[case]["cpu_saved_s"] = round(kept["cpu_s"] - skipped["cpu_s"], 3)
    report = {
        "benchmark": "startup",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "repeats": args.repeats,
        "results": results,
        # With Feast's checks skipped: what compiled bytecode saves a process importing the stack.
        "bytecode_cpu_saved_s": round(
            results["import_from_source"]["skipped"]["cpu_s"] - results["import_with_pyc"]["skipped"]["cpu_s"], 3
        )
        if {"import_from_source", "import_with_pyc"} <= set(results)
        else None,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

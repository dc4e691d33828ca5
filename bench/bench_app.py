"""Time to first render of each page of the analyst app, in a real browser (Debian's chromium via Playwright).

For each Tailor home given (e.g. the demo's and a 10M-event history, both built by `tailor run`) and each page:

- cold: a new `streamlit run` process (what `make app` starts: empty caches, nothing imported yet), one browser
  tab opened on the page; the time from navigation to the page being ready (its heading and charts or tables
  attached, the script finished: `app.browser.wait_ready`);
- warm: a second tab on the same server: the caches hold the reads (keyed on the marts' modification times).

The server's start (until its health check answers) is not counted: `make app` starts once and serves many visits.

Usage:
    .venv/bin/python bench/bench_app.py --home data --label demo --home /big/home --label 10M
    .venv/bin/python bench/bench_app.py --home data --label demo --repeats 1   # smoke: about a minute on the demo

Writes bench/results/app.json (or --output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from app.browser import PAGES, browser_page, chromium_path, wait_ready
from app.server import running_app
from tailor.settings import REPO_ROOT, get_settings


def history_size(home: Path) -> dict[str, Any]:
    """Event rows accepted (`fct_batch_fates`) and rows of the marts the pages read most."""
    marts = get_settings(home).marts_dir
    out: dict[str, Any] = {}
    fates = marts / "fct_batch_fates.parquet"
    if fates.exists():
        out["events_accepted"] = int(pq.read_table(fates, columns=["accepted"]).column("accepted").to_pandas().sum())
    for name in ("fct_impressions", "dim_users", "fct_daily_user_engagement", "fct_user_content_interactions"):
        path = marts / f"{name}.parquet"
        out[name] = pq.ParquetFile(path).metadata.num_rows if path.exists() else None
    return out


def time_page(url: str, slug: str) -> tuple[float, float]:
    """(cold, warm) seconds to a ready page: the first tab on a fresh server, then a second tab."""
    title, selectors = PAGES[slug]
    target = url if slug == "overview" else f"{url}/{slug}"
    timings = []
    with browser_page() as page:
        for _ in range(2):
            started = time.perf_counter()
            page.goto(target)
            wait_ready(page, title, selectors, timeout_ms=600_000)
            timings.append(time.perf_counter() - started)
            page.goto("about:blank")
    return timings[0], timings[1]


def measure(home: Path, repeats: int) -> dict[str, Any]:
    pages: dict[str, Any] = {}
    for slug in PAGES:
        cold, warm = [], []
        for _ in range(repeats):
            with running_app(home, timeout_s=300) as url:
                c, w = time_page(url, slug)
            cold.append(c)
            warm.append(w)
            print(f"  {slug}: cold {c:.1f} s, warm {w:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        pages[slug] = {"cold_s": cold, "warm_s": warm, "cold_median_s": sorted(cold)[len(cold) // 2],
                       "warm_median_s": sorted(warm)[len(warm) // 2]}  # fmt: skip
    return pages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, action="append", required=True, help="a built Tailor home (repeat)")
    parser.add_argument("--label", action="append", help="a name per --home (default: the folder name)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers per page (default 3)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "app.json")
    args = parser.parse_args(argv)
    if chromium_path() is None:
        raise SystemExit("chromium is missing: `apt-get install -y chromium` (never `playwright install`)")
    labels = args.label or [h.name for h in args.home]
    if len(labels) != len(args.home):
        raise SystemExit("give one --label per --home")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "repeats": args.repeats,
        "homes": {},
    }
    for label, home in zip(labels, args.home, strict=True):
        home = home.resolve()
        if not (get_settings(home).marts_dir / "dim_users.parquet").exists():
            raise SystemExit(f"{home} has no published marts: build it with `tailor run` first")
        size = history_size(home)
        print(f"{label} ({home}): {size}", flush=True)
        load_before = os.getloadavg()
        pages = measure(home, args.repeats)
        results["homes"][label] = {"home": str(home), "size": size, "pages": pages,
                                   "load_before": load_before, "load_after": os.getloadavg()}  # fmt: skip
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

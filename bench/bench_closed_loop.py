"""Benchmark: the closed loop. Serve the pipeline's recommendations to the simulated users and compare what the
pipeline measures with the truth.

On one TAILOR_HOME, as a reader would run it:

1. `tailor generate --days DAYS` (the demo world) and `tailor run`;
2. the pages to serve: `<TAILOR_HOME>/marts/batch_recommendations.parquet`, which `tailor run` wrote (the
   `ml/recommendations` asset: the champion's pages, the popular page for the holdout); or `--pages FILE`; or, with
   `--interim-pages`, a file built here from the marts (`interim_pages_from_marts`: popular items of each user's
   most clicked categories, minus consumed ones, for personalized users; the popular page for the holdout), for
   histories too short to train a ranker (the smoke run); the results say which was served;
3. `tailor generate --days SERVED --continue --policy cached --pages FILE`, then `tailor run` again;
4. reads `tailor experiments --json` (personalization_holdout, metric ctr) and the closed-loop truth
   (`evaluation.closed_loop`), and reports: the true CTR of the oracle, the served pages, the holdout page,
   popularity, random and the logging policy on the same simulated requests; the measured holdout lift with its CI
   next to the true lift; IPS/SNIPS of target policies for the explore slot, from the pools the batch file logs
   (``explore_pool``), next to their true values (`exploration`; pending when the file has no explore slots).

    .venv/bin/python bench/bench_closed_loop.py                                # the demo: 2,000 users, 21 + 7 days
    TAILOR_RANKER_SEARCH_TRIALS=4 .venv/bin/python bench/bench_closed_loop.py --users 1500   # quicker
    .venv/bin/python bench/bench_closed_loop.py --pages other.parquet --output /tmp/c.json   # any batch file
    .venv/bin/python bench/bench_closed_loop.py --smoke --output /tmp/c.json   # tiny (interim pages), for the tests
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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evaluation.closed_loop import PAGE_KINDS, ClosedLoopTruth
from tailor.assignment import assign_variant
from tailor.settings import TELEMETRY_OFF, get_settings

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "closed_loop.json"
TAILOR = str(Path(sys.executable).parent / "tailor")
BATCH_FILE = "batch_recommendations.parquet"
HOLDOUT = ("personalization_holdout", ["holdout", "personalized"], [0.1, 0.9])
#: Settings of `tailor run` recorded with the results when set (a smaller search budget makes a quicker run).
RUN_ENV = ("TAILOR_RANKER_SEARCH_TRIALS", "TAILOR_RANKER_SEARCH_TIMEOUT_S")
#: Steps of `tailor run` the loop can do without (Feast, models); any other failure stops the benchmark.
OPTIONAL_STEPS = ("feast__", "ml__")


def tailor(*args: str, env: dict[str, str]) -> tuple[float, str]:
    """Run the `tailor` command; seconds and stdout. Stops with its output on failure."""
    start = time.perf_counter()
    done = subprocess.run([TAILOR, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tailor {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return time.perf_counter() - start, done.stdout


def tailor_run(env: dict[str, str]) -> tuple[float, list[str]]:
    """`tailor run`; seconds and the failed steps. The loop needs the warehouse and the experiment results, so a
    failure there stops the benchmark; a failure elsewhere (e.g. the ranker on a history shorter than its
    windows) is recorded in the results and the loop goes on."""
    start = time.perf_counter()
    done = subprocess.run([TAILOR, "run", "--json", "--quiet"], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    try:
        failed = list(json.loads(done.stdout)["run"]["failed_steps"])
    except (json.JSONDecodeError, KeyError):
        failed = ["?"]
    if done.returncode != 0 and (not failed or any(not step.startswith(OPTIONAL_STEPS) for step in failed)):
        raise SystemExit(f"tailor run failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return seconds, failed


def interim_pages_from_marts(marts_dir: Path, k: int = 10) -> pa.Table:
    """INTERIM pages (until `ml/recommendations` writes the batch file): per active user and surface, in the
    batch recommendations' shape.

    Personalized users: the items clicked most in the marts' last 7 days within the user's two most clicked
    categories (6 slots), then the most clicked overall (4 slots), minus what the user consumed. Holdout users
    (tailor.assignment, like serving): the most clicked items overall, minus consumed ones. Active = any impression
    in the last 28 days.
    """
    impressions = pd.read_parquet(
        marts_dir / "fct_impressions.parquet", columns=["user_id", "content_id", "occurred_at", "is_clicked"]
    )
    content = pd.read_parquet(marts_dir / "dim_content.parquet", columns=["content_id", "category"])
    consumed = pd.read_parquet(marts_dir / "fct_user_content_interactions.parquet", columns=["user_id", "content_id"])
    end = impressions["occurred_at"].max()
    active = sorted(impressions.loc[impressions["occurred_at"] >= end - pd.Timedelta(days=28), "user_id"].unique())
    recent = impressions.loc[(impressions["occurred_at"] >= end - pd.Timedelta(days=7)) & impressions["is_clicked"]]
    clicks = recent["content_id"].value_counts()
    popular = (
        pd.DataFrame({"content_id": clicks.index, "clicks": clicks.to_numpy()})
        .merge(content, on="content_id")
        .sort_values(["clicks", "content_id"], ascending=[False, True])
    )
    liked = consumed.merge(content, on="content_id").groupby(["user_id", "category"]).size().rename("n").reset_index()
    favourite = (
        liked.sort_values(["user_id", "n", "category"], ascending=[True, False, True])
        .groupby("user_id")["category"]
        .agg(lambda c: list(c)[:2])
        .to_dict()
    )
    consumed_by = consumed.groupby("user_id")["content_id"].agg(set).to_dict()
    overall = popular["content_id"].tolist()
    by_category = popular.groupby("category")["content_id"].agg(list).to_dict()
    rows: list[dict[str, Any]] = []
    for user_id in active:
        variant = assign_variant(HOLDOUT[0], user_id, HOLDOUT[1], HOLDOUT[2])
        seen = consumed_by.get(user_id, set())
        if variant == "holdout":
            items = [(c, "popular") for c in overall if c not in seen][:k]
        else:
            taste = [c for cat in favourite.get(user_id, []) for c in by_category.get(cat, []) if c not in seen][
                : k - 4
            ]
            rest = [c for c in overall if c not in seen and c not in taste]
            items = [(c, "personalized") for c in taste] + [(c, "popular") for c in rest[: k - len(taste)]]
        for surface in ("home", "feed"):
            for rank, (content_id, kind) in enumerate(items, start=1):
                rows.append(
                    {
                        "user_id": user_id,
                        "surface": surface,
                        "rank": rank,
                        "content_id": content_id,
                        "score": float(clicks.get(content_id, 0)),
                        "slot_kind": kind,
                        "reason": "interim pages of bench_closed_loop.py",
                        "propensity": 1.0,
                        "policy": variant,
                        "variant": variant,
                        "model_version": "" if variant == "holdout" else "interim",
                        "generated_at": datetime.now(UTC),
                    }
                )
    return pa.Table.from_pylist(rows)


def holdout_result(experiments: dict[str, Any]) -> dict[str, Any] | None:
    """The personalized arm's ctr row of personalization_holdout in `tailor experiments --json`."""
    for row in experiments["results"]:
        if row["experiment_id"] == HOLDOUT[0] and row["metric"] == "ctr" and row["variant"] == "personalized":
            keys = (
                "units", "value", "control_value", "absolute_effect", "absolute_ci_low", "absolute_ci_high",
                "absolute_p", "relative_lift", "relative_ci_low", "relative_ci_high", "cuped_applied", "decision",
            )  # fmt: skip
            return {key: row.get(key) for key in keys}
    return None


def page_values(truth: ClosedLoopTruth) -> dict[str, dict[str, Any]]:
    """True CTR of each page kind on the requests served from the file (and on its personalized and holdout
    pages separately): the same simulated requests, valued with each page."""
    requests = truth.requests
    groups = {
        "served_requests": requests["served_by"] == "cached",
        "personalized_pages": requests["page_policy"] == "personalized",
        "holdout_pages": requests["page_policy"] == "holdout",
        "all_requests": pd.Series(True, index=requests.index),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, rows in groups.items():
        if rows.any():
            out[name] = {"requests": int(rows.sum()), **{kind: truth.true_ctr(kind, rows) for kind in PAGE_KINDS}}
    return out


def exploration(pages: Path, snapshot: Path, generated: Path) -> dict[str, Any]:
    """IPS and SNIPS of target policies for the explore slot, from the served days' explore impressions, next to
    the truth.

    The batch rules (`ml.recommend.rules`) fill the explore slot with one item drawn uniformly from a pool of fresh
    items, and the batch file logs the pool with it (``explore_pool``, the action set; propensity 1 / its size).
    A page's draw is made once and shown on every request of the served days, so the decision is the page: its
    reward is the click rate of its explore impressions, and the truth of a target policy is, averaged over the
    same pages, its expected click rate on the same impressions, examine(position) * attract(user, item, moment)
    (`evaluation.closed_loop.explore_decisions`). Pages are independent draws, so the estimators' standard errors
    hold as they are.

    Target policies over each logged pool: the logging policy itself (uniform: IPS must equal the observed mean),
    the freshest item, the item of the category the user consumed most (the marts at batch time, ``snapshot``),
    an even mixture of uniform and that (a stochastic target: weights 0.5 or 10.5 instead of 0 or 20), and the
    best item by the truth (the value of a perfect explore slot). A deterministic target matches the logged item
    on about one page in pool size, hence its small effective sample size.
    """
    from evaluation.closed_loop import explore_decisions, explore_estimates
    from evaluation.ranking_truth import TruthClickModel

    table = pq.read_table(pages).to_pandas()
    explore = table.loc[(table["slot_kind"] == "explore") & (table["propensity"] < 1)]
    if explore.empty:
        return {
            "status": "pending",
            "reason": "the served pages have no explore slots with a propensity below 1 (e.g. the interim pages): "
            "IPS/SNIPS with ml.experiments.offpolicy need them",
        }
    if "explore_pool" not in table.columns:
        return {"status": "pending", "reason": "the served pages do not log the explore pool (explore_pool)"}
    impressions = pd.concat(
        [
            pq.read_table(p).to_pandas()
            for p in sorted((generated / "_truth" / "continued").glob("impressions-*.parquet"))
        ]
    )
    decisions = explore_decisions(table, impressions, TruthClickModel.from_folder(generated))
    frame = decisions.frame
    if len(frame) < 2:
        return {"status": "pending", "reason": "fewer than 2 explore slots were served", "decisions": len(frame)}
    content = pd.read_parquet(snapshot / "dim_content.parquet", columns=["content_id", "category"])
    consumed = pd.read_parquet(snapshot / "fct_user_content_interactions.parquet", columns=["user_id", "content_id"])
    category = dict(zip(content["content_id"], content["category"], strict=True))
    taste = (
        consumed.assign(category=consumed["content_id"].map(category)).groupby(["user_id", "category"]).size().to_dict()
    )
    pools: list[list[str]] = frame["pool"].tolist()

    def one_hot(size: int, at: int) -> np.ndarray:
        return np.eye(size)[at]

    def to_taste(user_id: str, pool: list[str]) -> np.ndarray:
        """The pool item of the category the user consumed most (the freshest on ties): the page's cap usually
        keeps the user's favourite category out of the pool, so this is the best category left."""
        counts = [taste.get((user_id, category.get(c)), 0) for c in pool]
        return one_hot(len(pool), int(np.argmax(counts)))

    tasteful = [to_taste(u, p) for u, p in zip(frame["user_id"], pools, strict=True)]
    targets: dict[str, list[np.ndarray]] = {
        "logging (uniform over the pool)": [np.full(len(p), 1 / len(p)) for p in pools],
        "freshest item": [one_hot(len(p), 0) for p in pools],
        "item of the user's most consumed category": tasteful,
        "half uniform, half the user's category": [
            0.5 / len(p) + 0.5 * t for p, t in zip(pools, tasteful, strict=True)
        ],
        "best item by the truth": [one_hot(len(v), int(np.argmax(v))) for v in decisions.values],
    }
    rewards = frame["reward"].to_numpy(dtype=float)
    propensity = frame["propensity"].to_numpy(dtype=float)
    logged = frame["logged"].to_numpy(dtype=int)
    return {
        "status": "estimated",
        "unit": "page (one explore draw per user and surface, shown on every request of the served days)",
        "pages_with_explore": decisions.pages_with_explore,
        "decisions": len(frame),
        "explore_impressions": int(frame["impressions"].sum()),
        "explore_clicks": int(frame["clicks"].sum()),
        "pool_size": {"mean": float(frame["pool"].map(len).mean()), "min": int(frame["pool"].map(len).min())},
        "observed_ctr_per_page": float(rewards.mean()),
        "max_p_click_error": decisions.max_p_click_error,
        "policies": {
            name: explore_estimates(rewards, propensity, logged, target, decisions.values)
            for name, target in targets.items()
        },
    }


def _exploration_or_error(pages: Path, snapshot: Path, generated: Path) -> dict[str, Any]:
    """`exploration`, or its error in the results: a late failure must not lose the loop's other figures (the work
    folder is kept, so the section can be recomputed from it)."""
    try:
        return exploration(pages, snapshot, generated)
    except Exception as exc:  # reported in the results, with the folder to rerun from
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    home = work / "home"
    env = {**os.environ, **TELEMETRY_OFF, "TAILOR_HOME": str(home)}
    settings = get_settings(home)
    timings: dict[str, float] = {}
    timings["generate"], _ = tailor(
        "generate", "--users", str(args.users), "--days", str(args.days), "--seed", str(args.seed), env=env
    )
    failed: dict[str, list[str]] = {}
    timings["run_1"], failed["run_1"] = tailor_run(env)
    written = settings.marts_dir / BATCH_FILE
    if args.pages is not None:
        pages, source = args.pages.resolve(), f"given: {args.pages}"
    elif args.interim_pages:
        pages = work / f"interim_{BATCH_FILE}"
        pq.write_table(interim_pages_from_marts(settings.marts_dir), pages)
        source = "interim_pages_from_marts (--interim-pages)"
    elif written.is_file():
        # A copy: run 2 rewrites the batch file with new pages (new explore draws), and what was served is judged.
        pages, source = work / f"served_{BATCH_FILE}", "tailor run (ml/recommendations)"
        shutil.copy2(written, pages)
    else:
        raise SystemExit(
            f"tailor run wrote no {written} (failed steps: {failed['run_1']}): serve another file with --pages, or "
            "the interim pages with --interim-pages"
        )
    # The marts as the batch saw them (run 2 rebuilds them), for the target policies' context.
    snapshot = work / "marts_at_batch"
    snapshot.mkdir(exist_ok=True)
    for name in ("dim_content", "fct_user_content_interactions"):
        shutil.copy2(settings.marts_dir / f"{name}.parquet", snapshot / f"{name}.parquet")
    timings["generate_continue"], _ = tailor(
        "generate", "--days", str(args.served_days), "--continue", "--policy", "cached", "--pages", str(pages), env=env
    )
    timings["run_2"], failed["run_2"] = tailor_run(env)
    _, text = tailor("experiments", "--json", env=env)
    measured = holdout_result(json.loads(text))
    truth = ClosedLoopTruth.from_folder(settings.inbox)
    lift = truth.summary["personalization_holdout"]
    covered = None
    if measured and measured["absolute_ci_low"] is not None and lift["true_absolute_lift"] is not None:
        covered = measured["absolute_ci_low"] <= lift["true_absolute_lift"] <= measured["absolute_ci_high"]
    frame = pq.read_table(pages).to_pandas()
    return {
        "pages": {
            "source": source,
            "rows": len(frame),
            "users": int(frame["user_id"].nunique()),
            "users_by_variant": {
                str(k): int(v) for k, v in frame.drop_duplicates("user_id")["variant"].value_counts().items()
            },
            "slot_kinds": {str(k): int(v) for k, v in frame["slot_kind"].value_counts().items()},
        },
        "true_ctr_on_the_same_requests": page_values(truth),
        "holdout_lift": {
            "measured": measured,
            "true_absolute_lift": lift["true_absolute_lift"],
            "true_relative_lift": lift["true_relative_lift"],
            "true_arms": lift["arms"],
            "measured_ci_covers_true_lift": covered,
            "same_requests": lift["same_requests"],
        },
        "offpolicy": _exploration_or_error(pages, snapshot, settings.inbox),
        "seconds": {name: round(value, 1) for name, value in timings.items()},
        "failed_steps": failed,
    }


def recompute_offpolicy(output: Path) -> None:
    """Rewrite the ``offpolicy`` section of a results file from the work folder of its run (the served pages'
    copy, the marts at batch time, the simulation's truth), e.g. after a change to `exploration`."""
    result = json.loads(output.read_text())
    work = Path(result["workdir"])
    pages = work / f"served_{BATCH_FILE}"
    if not pages.is_file():
        raise SystemExit(f"{pages} does not exist: that run kept no copy of its served pages; rerun the benchmark")
    result["offpolicy"] = exploration(pages, work / "marts_at_batch", get_settings(work / "home").inbox)
    result["offpolicy_recomputed"] = datetime.now(UTC).isoformat(timespec="seconds")
    output.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result["offpolicy"], indent=2, default=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=21, help="days simulated before the first tailor run")
    parser.add_argument("--served-days", type=int, default=7, help="days served from the batch file")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pages", type=Path, default=None, help="serve this batch file instead")
    parser.add_argument(
        "--interim-pages", action="store_true", help="serve pages built from the marts here, not the ranker's"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="parent of the temporary home (default: system temp)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny history, for the test suite")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--offpolicy-only",
        action="store_true",
        help="recompute only the off-policy section of OUTPUT from the work folder it names (kept by every run)",
    )
    args = parser.parse_args()
    if args.workdir is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.workdir.mkdir(parents=True, exist_ok=True)
    if args.offpolicy_only:
        recompute_offpolicy(args.output)
        return
    if args.smoke:
        # Too short for the ranker's windows (14 days): the interim pages stand in for the champion's.
        args.users, args.days, args.served_days, args.interim_pages = 200, 8, 2, args.pages is None
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tailor-closed-loop-", dir=args.workdir))
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "config": {
            "users": args.users,
            "days": args.days,
            "served_days": args.served_days,
            "seed": args.seed,
            # Environment the two `tailor run`s read (the ranker's search budget), when set.
            **{name.lower(): os.environ[name] for name in RUN_ENV if name in os.environ},
        },
        **run(args, work),
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "total_seconds": round(time.perf_counter() - began, 1),
        "workdir": str(work),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("pages", "true_ctr_on_the_same_requests", "holdout_lift", "offpolicy")},
            indent=2,
            default=float,
        )
    )


if __name__ == "__main__":
    main()

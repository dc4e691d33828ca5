"""Benchmark: the ranker's quality against the simulator's truth, and what training costs next to a bare fit.

Simulates a history, runs the whole pipeline on it (`tailor run`: warehouse, Feast, training set, candidates and
a first registered ranker), then trains the ranker again in this process with the position-blind model for
comparison and judges everything against the truth (`evaluation.ranking_truth`):

- clicks on the test window's logged impressions: AUC / log loss / ECE of the ranker, the naive model, the
  popularity score, a constant, and the **oracle** (the true P(click) of each impression);
- top-10 lists from the candidates of the test users, as of the test window's start: truth-graded NDCG@10, the
  true CTR of the page, Spearman's correlation with the true click probability per user, for the ranker, the
  naive model, popularity, collaborative filtering and content affinity alone, random, and the oracle;
- the same lists judged by logged clicks (what the stored evaluation does without the truth);
- the logged slates of the test window re-ranked (truth-graded NDCG@10 within each request): where the logging
  policy's position confounds a naive model most;
- training time next to a bare `HistGradientBoostingClassifier.fit` with the chosen parameters on the same matrix.

    .venv/bin/python bench/bench_ranker.py                                  # the demo: 2,000 users x 28 days
    .venv/bin/python bench/bench_ranker.py --users 5000 --output /tmp/r.json  # about 1M impressions
    .venv/bin/python bench/bench_ranker.py --smoke --output /tmp/r.json       # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from evaluation.learnable_ceiling import LearnableCeiling, p_click_day_by_day
from evaluation.ranking_truth import TruthClickModel, truth_ranking_metrics
from ml.features import open_store
from ml.history import MissingMartError, load_history
from ml.ranker import RankerConfig, train_ranker
from ml.ranker.evaluate import classification_metrics, evaluate_lists
from simulator import SimulationConfig, simulate
from tailor.settings import get_settings

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "ranker.json"
TAILOR = str(Path(sys.executable).parent / "tailor")


def _run(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([TAILOR, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tailor {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def truth_lists(trained: Any, truth: TruthClickModel, ceiling: LearnableCeiling, k: int) -> dict[str, dict[str, float]]:
    """Truth-graded metrics of each ordering of the test users' candidates."""
    rows = trained.candidate_rows
    moments = [trained.windows.test_start] * len(rows)
    attract = truth.attract(rows["user_id"].tolist(), rows["content_id"].tolist(), moments)
    rng = np.random.default_rng(trained.config.seed)
    orders = {
        "ranker": trained.model.relevance(rows),
        "naive": trained.naive.relevance(rows),
        "popularity": rows["score_popularity"].fillna(-np.inf).to_numpy(),
        "collaborative_filtering": rows["score_cf"].fillna(-np.inf).to_numpy(),
        "content_affinity": rows["score_content"].fillna(-np.inf).to_numpy(),
        "random": rng.random(len(rows)),
        "oracle": attract,
        "ceiling": ceiling.attract(rows["user_id"].tolist(), rows["content_id"].tolist(), moments),
    }
    return {name: truth_ranking_metrics(rows, score, attract, truth, k) for name, score in orders.items()}


def logged_slates(trained: Any, truth: TruthClickModel, k: int) -> dict[str, float]:
    """Truth-graded NDCG@k of the test window's logged slates re-ranked by each model (within each request)."""
    test = trained.test_rows
    ids = test["impression_id"].tolist()
    attract = truth.impressions(ids, ["attract_without_experiments"])["attract_without_experiments"].to_numpy(float)
    frame = test.assign(user_id=test["request_id"])  # one "user" per request: NDCG within each slate
    out = {}
    for name, score in (
        ("ranker", trained.model.relevance(test)),
        ("naive", trained.naive.relevance(test)),
        ("logged_order", -test["position"].to_numpy(dtype=float)),
        ("oracle", attract),
    ):
        out[name] = truth_ranking_metrics(frame, score, attract, truth, k)["truth_ndcg_at_k"]
    return out


def gap_decomposition(trained: Any, truth: TruthClickModel, ceiling: LearnableCeiling, k: int) -> dict[str, Any]:
    """Where the oracle's advantage over any model comes from: what each latent part of the click model is worth
    (AUC of the true P(click) with a part set to its neutral value 1; truth NDCG@k of lists with only some parts
    known) and how many of each list's top-k items had never been shown before the test window."""
    test = trained.test_rows
    y = test["clicked"].astype(bool).to_numpy()
    logged = truth.impressions(test["impression_id"].tolist(), ["examine", "experiment_multiplier"])
    examine, multiplier = logged["examine"].to_numpy(), logged["experiment_multiplier"].to_numpy()
    taste, quality, rest = truth.attract_parts(
        test["user_id"].tolist(), test["content_id"].tolist(), test["event_timestamp"].tolist()
    )
    auc = {
        "oracle_without_quality": float(roc_auc_score(y, examine * np.minimum(1.0, taste * rest * multiplier))),
        "oracle_without_taste": float(roc_auc_score(y, examine * np.minimum(1.0, quality * rest * multiplier))),
        "position_only": float(roc_auc_score(y, examine)),
    }
    rows = trained.candidate_rows
    users, items = rows["user_id"].tolist(), rows["content_id"].tolist()
    moments = [trained.windows.test_start] * len(rows)
    attract = truth.attract(users, items, moments)
    taste, quality, rest = truth.attract_parts(users, items, moments)
    shown = ceiling.was_shown(items)
    blind = replace(ceiling, shown=np.zeros_like(ceiling.shown))
    lists = {
        "true_taste_no_quality": taste * rest,
        "true_taste_quality_of_shown_items": taste * rest * np.where(shown, quality, ceiling.quality_prior),
        "ceiling_no_quality": blind.attract(users, items, moments),
    }
    ndcg = {
        name: truth_ranking_metrics(rows, score, attract, truth, k)["truth_ndcg_at_k"] for name, score in lists.items()
    }
    unshown = {}
    for name, score in (
        ("oracle", attract),
        ("ceiling", ceiling.attract(users, items, moments)),
        ("ranker", trained.model.relevance(rows)),
    ):
        rank = pd.Series(score).groupby(rows["user_id"].to_numpy()).rank(ascending=False, method="first")
        unshown[name] = float((~shown[rank.to_numpy() <= k]).mean())
    past = pq.read_table(
        truth.folder / "impressions.parquet", columns=["user_id", "occurred_at", "clicked"]
    ).to_pandas()
    past = past.loc[pd.to_datetime(past["occurred_at"], utc=True) < trained.windows.test_start]
    clicks = past.groupby("user_id")["clicked"].sum()
    return {
        "auc": auc,
        "truth_ndcg_at_k": ndcg,
        "top_k_share_never_shown": unshown,
        "median_clicks_before_test": {
            "users_with_an_impression": float(clicks.median()),
            "list_users": float(clicks.reindex(rows["user_id"].unique()).fillna(0).median()),
        },
    }


def bare_fit_seconds(trained: Any) -> dict[str, float]:
    """A plain HistGradientBoostingClassifier.fit with the chosen parameters on the same training matrix."""
    model = trained.model
    frame = trained.train_rows
    x, y = model.matrix(frame), frame["clicked"].astype(bool).to_numpy()
    params = {k: v for k, v in model.params.items()}
    start = time.perf_counter()
    HistGradientBoostingClassifier(
        **params, categorical_features="from_dtype", early_stopping=False, random_state=0
    ).fit(x, y)
    return {"bare_fit_s": time.perf_counter() - start, "rows": float(len(frame)), "features": float(x.shape[1])}


def run(
    users: int,
    days: int,
    seed: int,
    trials: int,
    timeout_s: float,
    eval_users: int,
    work: Path,
    existing: Path | None = None,
    ceiling_samples: int = 50_000,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The benchmark on a new home under `work`, or on `existing` (a home `tailor generate` + `tailor run` made,
    its truth still in its inbox; only read: the search study goes under `work`). ``policy`` simulates a world whose
    logging policy differs from the simulator's defaults (`SimulationConfig` fields: ``policy_pool_explore``, the
    random items added to its daily pool, 40 by default; ``policy_temperature``, the Plackett-Luce temperature of
    its slates, 1.0 by default: lower ties the order of a slate more closely to the policy's score)."""
    policy = policy or {}
    home = existing or work / "home"
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_RANKER_SEARCH_TRIALS": "1"}
    generated = home / "inbox"
    timings: dict[str, float] = {}
    if existing is None:
        _say(f"simulating {users:,} users x {days} days into {generated}")
        if not policy:
            timings["generate_s"] = _run(
                "generate", "--users", str(users), "--days", str(days), "--seed", str(seed), env=env
            )
        else:  # a world with another logging policy: the simulator's own settings
            start = time.perf_counter()
            simulate(SimulationConfig(users=users, days=days, seed=seed, **policy), generated)
            timings["generate_s"] = time.perf_counter() - start
        _say("tailor run (landing, dbt, Feast, the models)")
        timings["tailor_run_s"] = _run("run", "--quiet", env=env)
    elif not (generated / "_truth").is_dir():
        raise SystemExit(
            f"error: {home} has no simulator truth in {generated / '_truth'}: pass a home that "
            "`tailor generate` wrote and `tailor run` built, or leave out --home to make one"
        )
    settings = get_settings(home)
    try:
        history = load_history(settings.marts_dir)
    except MissingMartError as exc:
        raise SystemExit(f"error: {exc}") from None
    config = RankerConfig(search_trials=trials, search_timeout_s=timeout_s, eval_users=eval_users, seed=seed)
    _say(f"training the ranker again ({trials} search trials, {timeout_s:.0f} s at most)")
    start = time.perf_counter()
    trained = train_ranker(
        settings.training_dir / "ranking_training_set.parquet", history, open_store(settings), config, work / "search"
    )
    timings["train_ranker_s"] = time.perf_counter() - start
    truth = TruthClickModel.from_folder(generated)
    # train_ranker keeps its evaluation frames and the naive (position-blind) model on its result.
    assert trained.test_rows is not None and trained.candidate_rows is not None and trained.test_users is not None
    assert trained.naive is not None
    test = trained.test_rows
    y = test["clicked"].astype(bool).to_numpy()
    oracle_p = truth.impression_p_click(test["impression_id"].tolist())
    foreign = test["impression_id"].to_numpy()[~np.isfinite(oracle_p)]
    if len(foreign):  # events ingested or POSTed by hand: the truth cannot judge them (a trial's NaN traceback)
        raise SystemExit(
            f"error: {len(foreign):,} of the test window's impressions were not made by the simulator "
            f"(e.g. {foreign[0]}): the benchmark judges against its truth, so use a home that only "
            "`tailor generate` fed, or leave out --home"
        )
    classification = dict(trained.metrics["classification"])
    classification["oracle"] = classification_metrics(y, oracle_p)
    _say(f"the learnable ceiling ({ceiling_samples:,} prior draws)")
    start = time.perf_counter()
    classification["ceiling"] = classification_metrics(
        y,
        p_click_day_by_day(truth, test["impression_id"].tolist(), samples=ceiling_samples, seed=seed),
    )
    ceiling = LearnableCeiling.as_of(truth, trained.windows.test_start, samples=ceiling_samples, seed=seed)
    timings["ceiling_s"] = time.perf_counter() - start
    ess = ceiling.effective_samples(trained.candidate_rows["user_id"].unique().tolist())
    k = config.ranking_k
    _say("top-k lists against the truth and the logged clicks")
    known = history.before(trained.windows.test_start)
    oracle_attract = truth.attract(
        trained.candidate_rows["user_id"].tolist(),
        trained.candidate_rows["content_id"].tolist(),
        [trained.windows.test_start] * len(trained.candidate_rows),
    )
    logged = evaluate_lists(
        trained.candidate_rows,
        trained.test_users,
        {"ranker": trained.model.relevance, "naive": trained.naive.relevance, "oracle": lambda _: oracle_attract},
        k,
        known,
        seed,
    )
    return {
        "users": users,
        "days": days,
        "policy_pool_explore": policy.get("policy_pool_explore"),
        "policy_temperature": policy.get("policy_temperature"),
        "seed": seed,
        "impressions": len(history.impressions),
        "training_rows": int((trained.windows.label(pd.Series(history.impressions["occurred_at"])) == "train").sum()),
        "windows": trained.windows.as_dict(),
        "best_params": trained.search.best_params,
        "search_trials": len(trained.search.trials),
        "classification": classification,
        "lists_truth": truth_lists(trained, truth, ceiling, k),
        "ceiling": {
            "samples": ceiling_samples,
            "effective_samples_of_list_users": {
                "min": float(ess.min()),
                "median": float(np.median(ess)),
                "below_20": int((ess < 20).sum()),
            },
            "users_by_mcmc": int(ceiling.taste.mcmc.sum()),
        },
        "lists_logged_clicks": logged,
        "logged_slates_truth_ndcg": logged_slates(trained, truth, k),
        "gap_decomposition": gap_decomposition(trained, truth, ceiling, k),
        "timings": {**timings, **trained.seconds, **bare_fit_seconds(trained)},
    }


def _say(step: str) -> None:
    """A progress line on stderr, so a run of minutes is not silent (a trial saw nothing for two minutes)."""
    print(f"bench_ranker: {step}...", file=sys.stderr, flush=True)


#: The defaults, and --smoke's (a tiny history and budget, for the test suite); a flag given explicitly wins.
DEFAULTS = {"users": 2000, "days": 28, "trials": 20, "timeout": 600.0, "eval_users": 1000, "ceiling_samples": 50_000}
SMOKE = {"users": 150, "days": 16, "trials": 2, "timeout": 60.0, "eval_users": 50, "ceiling_samples": 5_000}


def _positive(kind: type, zero: bool = False) -> Any:
    """An argparse type: a ``kind`` above 0 (or at least 0 with ``zero``), else a message saying which."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= 0 if zero else value > 0):
            raise argparse.ArgumentTypeError(f"must be {'0 or more' if zero else 'above 0'}, got {text}")
        return value

    return parse


def _smoke_output() -> Path:
    """A new file in the temporary folder for a smoke run's results."""
    fd, name = tempfile.mkstemp(prefix="tailor-bench-ranker-smoke-", suffix=".json")
    os.close(fd)
    return Path(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    count, seconds = _positive(int), _positive(float)
    parser.add_argument("--users", type=count, help=f"simulated users (default {DEFAULTS['users']})")
    parser.add_argument("--days", type=count, help=f"simulated days (default {DEFAULTS['days']})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trials", type=count, help=f"Optuna trials at most (default {DEFAULTS['trials']})")
    parser.add_argument(
        "--timeout", type=seconds, help=f"search wall-clock budget, s (default {DEFAULTS['timeout']:g})"
    )
    parser.add_argument(
        "--eval-users", type=count, help=f"users whose lists are judged (default {DEFAULTS['eval_users']})"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny history and budget, for the test suite: "
        + ", ".join(f"{k.replace('_', '-')} {v:g}" for k, v in SMOKE.items())
        + " unless given explicitly",
    )
    parser.add_argument("--home", type=Path, default=None, help="an existing generated and run home (read only)")
    parser.add_argument(
        "--ceiling-samples",
        type=count,
        help=f"prior draws of the learnable ceiling's taste posterior (default {DEFAULTS['ceiling_samples']:,})",
    )
    parser.add_argument(
        "--policy-pool-explore",
        type=_positive(int, zero=True),
        help="simulate a world whose logging policy adds this many random items to its daily pool (default: the "
        "simulator's 40; 0: no exploration, only the scored picks); not with --home",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where the result JSON goes (default {RESULTS.relative_to(BENCH_DIR.parent)}, the figures "
        "docs/benchmarks.md cites; with --smoke, a file in the temporary folder)",
    )
    parser.add_argument(
        "--policy-temperature",
        type=_positive(float),
        help="simulate a world whose logging policy orders its slates at this Plackett-Luce temperature (default: "
        "the simulator's 1.0; lower: a slate's order follows the policy's score more closely, so position is more "
        "confounded with the item features the score is made of); not with --home",
    )
    args = parser.parse_args()
    policy = {
        name: getattr(args, name)
        for name in ("policy_pool_explore", "policy_temperature")
        if getattr(args, name) is not None
    }
    if args.home is not None and policy:
        flags = ", ".join("--" + name.replace("_", "-") for name in policy)
        parser.error(f"{flags} simulates a new world: leave out --home")
    for name, value in (SMOKE if args.smoke else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.output is None:  # a smoke run must not overwrite the committed figures (a trial's did)
        # One file per smoke run: two at once wrote the same file (a trial).
        args.output = _smoke_output() if args.smoke else RESULTS
    if args.output.is_dir():
        parser.error(f"--output {args.output} is a folder: name the JSON file to write, e.g. {args.output / 'r.json'}")
    needed = RankerConfig().days_needed
    if args.home is None and args.days < needed:
        parser.error(
            f"--days {args.days} is too short: the ranker's windows need at least {needed} days of history "
            "(docs/configuration.md, TAILOR_RANKER_*_DAYS)"
        )
    if args.home is not None and not args.home.is_dir():
        parser.error(
            f"--home {args.home} is not a folder: pass a home that `tailor generate` wrote and `tailor run` built"
        )
    with tempfile.TemporaryDirectory(prefix="tailor-bench-ranker-") as scratch:
        result = run(
            args.users,
            args.days,
            args.seed,
            args.trials,
            args.timeout,
            args.eval_users,
            Path(scratch),
            args.home,
            args.ceiling_samples,
            policy,
        )
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "load_1m": os.getloadavg()[0]}
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["command"] = " ".join(["python", *sys.argv])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(summary(result, args.output))


#: The rows' names in the printed tables, as docs/benchmarks.md names them (the JSON keeps the short keys).
SHOWN_NAMES = {
    "ranker_uncalibrated": "ranker, not calibrated",
    "naive": "position-blind model",
    "ceiling": "learnable ceiling",
    "oracle": "oracle (true P(click))",
    "collaborative_filtering": "CF (EASE) alone",
    "content_affinity": "content affinity alone",
}


def summary(result: dict[str, Any], output: Path) -> str:
    """The headline figures as two small tables (the whole result is in ``output``), each row named as
    docs/benchmarks.md names it (a trial looked for "naive" there)."""
    lines = [f"{'clicks on the test window':<26} {'AUC':>6} {'log loss':>9} {'ECE':>7}"]
    for name, row in result["classification"].items():
        shown = SHOWN_NAMES.get(name, name)
        lines.append(f"{shown:<26} {row['auc']:>6.3f} {row['log_loss']:>9.4f} {row['ece']:>7.4f}")
    lines += ["", f"{'top-10 lists vs the truth':<26} {'NDCG@10':>7} {'true CTR':>9} {'Spearman':>9}"]
    for name, row in result["lists_truth"].items():
        shown, ndcg, ctr, rho = (
            SHOWN_NAMES.get(name, name),
            row["truth_ndcg_at_k"],
            row["true_page_ctr"],
            row["spearman_with_truth"],
        )
        lines.append(f"{shown:<26} {ndcg:>7.3f} {ctr:>9.3f} {rho:>9.2f}")
    lines += ["", f"everything else (windows, search, gap decomposition, timings): {output}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

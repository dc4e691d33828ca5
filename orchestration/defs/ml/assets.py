"""Models: the candidate generators fitted on the whole history, and the ranker trained, evaluated and registered.

Thin wiring over `ml.candidates` and `ml.ranker`: the decisions (windows, search, promotion) live there.
"""

import os
import pickle

import dagster as dg
import pandas as pd

from ml.candidates.union import fit_candidate_set
from ml.history import load_history
from ml.ranker import RankerConfig
from ml.registry import Registry
from tailor.settings import get_settings

CANDIDATES_KEY = dg.AssetKey(["ml", "candidates"])
RANKER_KEY = dg.AssetKey(["ml", "ranker"])
CANDIDATES_FILE = "candidates.pkl"
#: Expected calibration error above which the ranker's calibration check fails (equal-mass bins, test window).
MAX_ECE = 0.02


@dg.asset(
    key=CANDIDATES_KEY,
    deps=[
        dg.AssetKey(["marts", "fct_impressions"]),
        dg.AssetKey(["marts", "fct_user_content_interactions"]),
        dg.AssetKey(["marts", "dim_content"]),
    ],
    group_name="ml",
    kinds={"python", "scikitlearn"},
)
def candidates(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The candidate generators (recent popularity per surface, collaborative filtering with EASE, content
    affinity) fitted on everything known now, saved for serving: each proposes items, the ranker orders them."""
    settings = get_settings()
    history = load_history(settings.marts_dir)
    as_of = history.end + pd.Timedelta(microseconds=1)
    fitted = fit_candidate_set(history, as_of, RankerConfig.from_env(os.environ).candidates)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    path = settings.models_dir / CANDIDATES_FILE
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        pickle.dump(fitted, handle)
    partial.replace(path)
    users = len(fitted.seen.users) if fitted.seen is not None else 0
    context.log.info(f"candidate generators fitted as of {as_of}: {users} users with history")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "as_of": as_of.isoformat(),
            "users_with_history": users,
            "items_with_recent_impressions": len(fitted.popularity.scores),
            "collaborative_filtering": "EASE" if fitted.cf is not None else "none (no consumption yet)",
        }
    )


@dg.asset(
    key=RANKER_KEY,
    deps=[dg.AssetKey(["ml", "ranking_training_set"]), CANDIDATES_KEY],
    group_name="ml",
    kinds={"python", "scikitlearn", "optuna", "mlflow"},
)
def ranker(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The click model that orders candidates: trained on the point-in-time training set (time windows, never
    shuffled), tuned with Optuna within its budgets, calibrated on a later day, evaluated on the last days against
    popularity and a random order, and registered in MLflow. It becomes the champion only if it beats the current
    champion on the same test window (`tailor models` shows both)."""
    from ml.features import open_store
    from ml.ranker import TrainingDataError, train_and_register

    settings = get_settings()
    config = RankerConfig.from_env(os.environ)
    try:
        release = train_and_register(
            settings.training_dir / "ranking_training_set.parquet",
            load_history(settings.marts_dir),
            open_store(settings),
            config,
            Registry(settings.models_dir),
        )
    except TrainingDataError as exc:
        # Too little history is a state, not a failure: the pages come from popular items until a model can be
        # trained, and the run goes on (a young platform must still ingest, build and serve).
        context.log.warning(f"no ranker trained: {exc}")
        return dg.MaterializeResult(metadata={"trained": False, "reason": str(exc)})
    trained, promotion = release.trained, release.promotion
    cls, ranking = trained.metrics["classification"], trained.metrics["ranking"]
    context.log.info(
        f"ranker version {release.version.version}: AUC {cls['ranker']['auc']:.4f}, "
        f"{'promoted to champion' if promotion.promoted else 'kept as challenger'} ({promotion.reason})"
    )
    return dg.MaterializeResult(
        metadata={
            "trained": True,
            "version": release.version.version,
            "aliases": ", ".join(release.version.aliases),
            "promoted": promotion.promoted,
            "decision": promotion.reason,
            "challenger_on_test_window": dg.MetadataValue.json(promotion.challenger),
            "champion_on_test_window": dg.MetadataValue.json(promotion.champion or {}),
            "test_window": f"{trained.windows.test_start.date()} .. {trained.windows.end.date()}",
            "auc": cls["ranker"]["auc"],
            "auc_popularity": cls["popularity"]["auc"],
            "log_loss": cls["ranker"]["log_loss"],
            "ece": cls["ranker"]["ece"],
            "ndcg_at_k": ranking["ranker"]["ndcg_at_k"],
            "best_params": dg.MetadataValue.json(trained.search.best_params),
            "search_trials_run": trained.search.trials_run_now,
            "seconds": dg.MetadataValue.json({k: round(v, 1) for k, v in trained.seconds.items()}),
            "metrics": dg.MetadataValue.md(_table(trained.metrics)),
        }
    )


def _table(metrics: dict[str, object]) -> str:
    lines = ["| model | AUC | log loss | ECE |", "|---|---|---|---|"]
    for name, m in metrics["classification"].items():  # type: ignore[attr-defined]
        lines.append(f"| {name} | {m['auc']:.4f} | {m['log_loss']:.4f} | {m['ece']:.4f} |")
    lines += [
        "",
        "| list | NDCG@k | recall@k | MAP@k | coverage | diversity | novelty |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics["ranking"].items():  # type: ignore[attr-defined]
        lines.append(
            f"| {name} | {m['ndcg_at_k']:.4f} | {m['recall_at_k']:.4f} | {m['map_at_k']:.4f} | "
            f"{m['catalog_coverage']:.3f} | {m['intra_list_diversity']:.3f} | {m['novelty']:.2f} |"
        )
    return "\n".join(lines)


def _latest_ranker_metadata(context: dg.AssetCheckExecutionContext) -> dict[str, float]:
    """The numbers of the ranker's latest materialization (NaN-free: absent when not materialized)."""
    event = context.instance.get_latest_materialization_event(RANKER_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return {}
    return {k: float(v.value) for k, v in materialization.metadata.items() if isinstance(v.value, int | float | bool)}


@dg.asset_check(asset=RANKER_KEY, description="The ranker orders clicks better than popularity (test-window AUC).")
def ranker_beats_popularity(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Fails when the new ranker's AUC on the test window is not above the popularity score's.

    AUC on logged impressions, not NDCG of lists against logged clicks: those clicks happened on what the logging
    policy chose to show, which favours any list that copies it (docs/decisions.md, "Ranker evaluation").
    """
    meta = _latest_ranker_metadata(context)
    if not meta.get("trained"):
        return dg.AssetCheckResult(passed=True, metadata={"note": "no ranker trained in this run (too little history)"})
    auc, baseline = float(meta.get("auc", float("nan"))), float(meta.get("auc_popularity", float("nan")))
    return dg.AssetCheckResult(
        passed=bool(auc > baseline),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"auc": auc, "auc_popularity": baseline},
    )


@dg.asset_check(asset=RANKER_KEY, description=f"The ranker's calibration error is at most {MAX_ECE}.")
def ranker_is_calibrated(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Fails when the expected calibration error on the test window exceeds `MAX_ECE`: the probabilities feed
    the exploration slot and business rules, not only the order."""
    meta = _latest_ranker_metadata(context)
    if not meta.get("trained"):
        return dg.AssetCheckResult(passed=True, metadata={"note": "no ranker trained in this run (too little history)"})
    ece = float(meta.get("ece", float("nan")))
    return dg.AssetCheckResult(
        passed=bool(ece <= MAX_ECE), severity=dg.AssetCheckSeverity.ERROR, metadata={"ece": ece, "max": MAX_ECE}
    )


RECOMMENDATIONS_KEY = dg.AssetKey(["ml", "recommendations"])
#: Users with an impression in this many days are "active" and get a batch page.
ACTIVE_DAYS = 28


@dg.asset(
    key=RECOMMENDATIONS_KEY,
    deps=[RANKER_KEY, CANDIDATES_KEY, dg.AssetKey(["feast", "online_store"]), dg.AssetKey(["feast", "registry"])],
    group_name="ml",
    kinds={"python", "parquet", "duckdb"},
)
def recommendations(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Every active user's page on each surface (top 10 after the business rules), from the champion: published as
    Parquet, written to the warehouse table marts.batch_recommendations, and loaded into the online store as Feast's
    `cached_recommendations` view, the fallback `recommend` serves when the model path misses its latency budget.
    Holdout users (personalization_holdout) get the popular page."""
    import duckdb

    from ml.recommend.batch import write_batch
    from ml.recommend.serving import Recommender

    settings = get_settings()
    recommender = Recommender.open(settings)
    history = load_history(settings.marts_dir)
    recent = history.impressions["occurred_at"] >= history.end - pd.Timedelta(days=ACTIVE_DAYS)
    users = sorted(history.impressions.loc[recent, "user_id"].unique())
    summary = write_batch(recommender, users, k=10, now=(history.end + pd.Timedelta(seconds=1)).to_pydatetime())
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema if not exists marts")
        con.execute(
            "create or replace table marts.batch_recommendations as select * from read_parquet(?)", [str(summary.path)]
        )
    context.log.info(f"batch pages for {summary.users} users ({summary.holdout_users} in the holdout)")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(summary.path)),
            "users": summary.users,
            "holdout_users": summary.holdout_users,
            "rows": summary.rows,
            "model_version": recommender.model_version or "none (popular pages only)",
            "seconds_pages": round(summary.seconds_pages, 1),
            "seconds_online_store": round(summary.seconds_online, 1),
            "seconds_per_1000_users": round(1000 * summary.seconds_pages / max(summary.users, 1), 2),
        }
    )

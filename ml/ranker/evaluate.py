"""How good a ranker is, on a window later than anything it was fitted or tuned on.

Two views, both stored with every trained model:

- **Clicks on logged impressions** (classification): ROC AUC, log loss and expected calibration error of the
  predicted click probability at the position each item was shown, against what was clicked. Baselines: the
  popularity score (each item's smoothed recent CTR) and a constant (the training CTR: AUC 0.5).
- **Top-k lists from the candidates** (ranking): for test users who clicked something in the window, the union
  of candidate generators proposes items (features as of the window's start, from Feast's point-in-time join),
  each list ranks them, and the items the user clicked in the window are the relevant ones: NDCG@k, recall@k,
  MAP@k (Microsoft Recommenders' definitions, `ml.evaluate.metrics`), catalog coverage, intra-list diversity
  over categories and novelty. Baselines: the popularity generator's list, and a random order of the same
  candidates. Each generator's own recall is reported too, and the union's (the ceiling of any ranking).

Judging against the simulator's truth (the oracle) is the benchmark's job (`evaluation.ranking_truth`): the
pipeline never reads the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from sklearn.metrics import log_loss, roc_auc_score

from ml.candidates.union import CandidateSet
from ml.evaluate.metrics import (
    catalog_coverage,
    expected_calibration_error,
    intra_list_diversity,
    novelty,
    ranking_report,
    recommended_lists,
    reliability_curve,
)
from ml.features.training import build_training_set
from ml.history import History

ECE_BINS = 15  # equal-mass bins: with a CTR of a few percent, equal-width bins would put almost every row in one
#: A model's ECE counts as miscalibration only above what a perfectly calibrated model shows on the same
#: predictions with probability at most this (`calibrated_ece_quantile`; docs/decisions.md, "The calibration check
#: judges ECE against its own noise").
ECE_ALPHA = 0.01
#: Replications of `calibrated_ece_quantile`: ten beyond its 0.99 quantile.
ECE_REPLICATIONS = 1000
#: A bin whose click count has at least this variance (sum of p (1 - p)) is simulated as a normal count; below it
#: every label is drawn (the skewness of the count, about 1 / sqrt(variance), is then under 0.1).
LARGE_BIN_VARIANCE = 100.0


def classification_metrics(clicked: Sequence[bool] | np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """AUC, log loss and ECE (equal-mass bins) of click probabilities; AUC is NaN with one class only."""
    y = np.asarray(clicked, dtype=bool)
    p = np.clip(np.asarray(probability, dtype=float), 1e-7, 1 - 1e-7)
    both = 0 < y.sum() < len(y)
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[False, True])),
        "ece": float(expected_calibration_error(y, p, n_bins=ECE_BINS, strategy="quantile")),
        "ece_noise": calibrated_ece_quantile(p, ECE_ALPHA),
        "mean_predicted": float(p.mean()),
        "observed_ctr": float(y.mean()),
        "rows": len(y),
    }


def calibrated_ece_quantile(
    probability: np.ndarray,
    alpha: float = ECE_ALPHA,
    n_bins: int = ECE_BINS,
    replications: int = ECE_REPLICATIONS,
    seed: int = 0,
) -> float:
    """The ECE a perfectly calibrated model exceeds with probability ``alpha`` on these predictions.

    ECE is biased upward by the noise of the labels: each bin's observed rate scatters around its mean prediction
    by about ``sqrt(p (1 - p) / n_b)``, so even a perfect model shows roughly ``sqrt(B / n)`` times a typical
    ``sqrt(p (1 - p))``. The labels of a perfect model are ``y_i ~ Bernoulli(p_i)``: drawn ``replications`` times
    (seeded), each scored with the same equal-mass bins as `classification_metrics` (they depend on the predictions
    only; a bin with many expected clicks draws its count from the normal with the same mean and variance), and
    the ``1 - alpha`` quantile of those ECEs returned (the "consistency resampling" of Broecker and
    Smith, "Increasing the reliability of reliability diagrams", Weather and Forecasting 22(3), 2007).

    Args:
        probability: predicted P(label 1) per row, in [0, 1].

    Raises:
        ValueError: no predictions, a probability outside [0, 1], ``alpha`` outside (0, 1), or replications too
            few to have ten beyond the quantile.
    """
    p = np.asarray(probability, dtype=float).ravel()
    if not 0.0 < alpha < 1.0 or replications * alpha < 10:
        raise ValueError(f"need 0 < alpha < 1 and ten replications beyond the quantile, got {alpha}, {replications}")
    edges = reliability_curve(np.zeros(p.size), p, n_bins, "quantile").bin_edges  # validates p
    placed = np.searchsorted(edges[1:-1], p)
    rng = np.random.default_rng(seed)
    deviation = np.zeros(replications)
    for b in np.unique(placed):
        inside = p[placed == b]
        variance = float(np.sum(inside * (1.0 - inside)))
        if variance >= LARGE_BIN_VARIANCE:
            # The bin's click count is a sum of many independent Bernoullis: normal, with their exact mean and
            # variance (the central limit theorem), at no cost per row.
            deviation += np.abs(rng.normal(0.0, np.sqrt(variance), replications))
            continue
        chunk = max(1, 4_000_000 // inside.size)  # memory: about 4M labels at a time
        for done in range(0, replications, chunk):
            rows = slice(done, min(done + chunk, replications))
            clicks = (rng.random((rows.stop - rows.start, inside.size)) < inside).sum(axis=1)
            deviation[rows] += np.abs(clicks - inside.sum())
    return float(np.quantile(deviation / p.size, 1.0 - alpha))


#: The largest expected calibration error a version may have on its test window and serve (the ranker's calibration
#: check; `calibration_verdict` forgives more only where a perfectly calibrated model would show as much).
MAX_ECE = 0.02


def refusal(ranker: Mapping[str, float], popularity_auc: float) -> str | None:
    """Why a trained version may not serve, in words; None when it may. The two rules of the ranker's checks:
    its click-prediction AUC on the test window above popularity's, and its calibration (`calibration_verdict`
    with `MAX_ECE`).

    Args:
        ranker: the version's classification metrics on its test window (``auc``, ``ece``, ``ece_noise`` if
            measured), as `classification_metrics` returns them.
        popularity_auc: the popularity score's AUC on the same impressions.
    """
    if not ranker["auc"] > popularity_auc:  # NaN (one class) is not above either
        return f"AUC {ranker['auc']:.4f} is not above popularity's {popularity_auc:.4f} on the test window"
    calibrated, verdict = calibration_verdict(ranker["ece"], ranker.get("ece_noise"), MAX_ECE)
    return None if calibrated else f"miscalibrated: {verdict}"


def calibration_verdict(ece: float, noise: float | None, limit: float) -> tuple[bool, str]:
    """Whether a model passes the calibration check, and why in words.

    It fails only when its ECE is above ``limit`` and above ``noise``, the ECE a perfectly calibrated model
    exceeds with probability `ECE_ALPHA` on the same predictions (`calibrated_ece_quantile`; None: not measured,
    judged on ``limit`` alone).
    """
    beyond = f", above the {noise:.4f} a perfectly calibrated model can show on this window" if noise else ""
    if ece <= limit:
        return True, f"ECE {ece:.4f} within the limit {limit}"
    if noise is not None and ece <= noise:
        return True, (
            f"ECE {ece:.4f} above the limit {limit} but within the {noise:.4f} a perfectly calibrated model reaches "
            f"with probability {ECE_ALPHA} on these predictions: the test window is too small to tell"
        )
    return False, f"ECE {ece:.4f} above the limit {limit}{beyond}"


def reliability(clicked: Sequence[bool] | np.ndarray, probability: np.ndarray) -> list[dict[str, float]]:
    """The reliability curve (equal-mass bins) as rows: mean predicted, observed rate, count."""
    curve = reliability_curve(np.asarray(clicked, bool), np.asarray(probability, float), ECE_BINS, "quantile")
    return [
        {"mean_predicted": float(m), "observed": float(o), "rows": int(n)}
        for m, o, n in zip(curve.mean_predicted, curve.fraction_positive, curve.count, strict=True)
    ]


def test_users(history: History, start: pd.Timestamp, end: pd.Timestamp, limit: int) -> pd.DataFrame:
    """Users who clicked in [start, end), with the items they clicked there that they had not consumed before.

    Returns one row per user (``user_id``, ``relevant``: a set), the most active first, at most ``limit``.
    """
    imp = history.impressions
    clicked = imp.loc[imp["clicked"] & (imp["occurred_at"] >= start) & (imp["occurred_at"] < end)]
    earlier = history.interactions.loc[history.interactions["first_consumed_at"] < start, ["user_id", "content_id"]]
    fresh = clicked.merge(earlier.assign(_seen=True), on=["user_id", "content_id"], how="left")
    fresh = fresh.loc[fresh["_seen"].isna()]
    relevant = fresh.groupby("user_id")["content_id"].agg(set)
    order = fresh.groupby("user_id").size().sort_values(ascending=False, kind="stable")
    chosen = order.index[:limit]
    return pd.DataFrame({"user_id": chosen, "relevant": [relevant[u] for u in chosen]})


def candidate_rows(
    store: FeatureStore,
    candidates: CandidateSet,
    user_ids: Sequence[str],
    service: str,
    surface: str = "home",
) -> pd.DataFrame:
    """Every candidate for each user with the service's features as of the candidate set's moment.

    Returns one row per (user, item): ids, the candidate scores and sources, ``surface``, and the features.
    """
    proposed = candidates.candidates(list(user_ids))
    moment = candidates.as_of
    spine = proposed[["user_id", "content_id"]].assign(event_timestamp=moment, request_at=moment)
    with_features = build_training_set(store, spine, service)
    features = with_features.drop(columns=["user_id", "content_id", "event_timestamp", "request_at"])
    return pd.concat([proposed.reset_index(drop=True), features.reset_index(drop=True)], axis=1).assign(surface=surface)


def top_k_lists(rows: pd.DataFrame, score: np.ndarray, user_ids: Sequence[str], k: int) -> list[list[str]]:
    """Each user's ``k`` best candidates by ``score`` (ties by content_id), in the order of ``user_ids``."""
    ranked = rows[["user_id", "content_id"]].assign(_score=score)
    ranked = ranked.sort_values(["user_id", "_score", "content_id"], ascending=[True, False, True], kind="stable")
    ranked["rank"] = ranked.groupby("user_id").cumcount() + 1
    return recommended_lists(ranked.loc[ranked["rank"] <= k], list(user_ids))


def ranking_metrics(
    lists: list[list[str]],
    relevant: Sequence[set[str]],
    k: int,
    catalog: Sequence[str],
    category: dict[str, str],
    popularity_counts: dict[str, float],
) -> dict[str, float]:
    """NDCG/recall/MAP@k against the relevant sets, plus coverage, intra-list diversity and novelty."""
    report = ranking_report(lists, relevant, k).as_dict()
    shown = [[i for i in items if i in category] for items in lists]
    return {
        "ndcg_at_k": report["ndcg_at_k"],
        "recall_at_k": report["recall_at_k"],
        "map_at_k": report["map_at_k"],
        "precision_at_k": report["precision_at_k"],
        "catalog_coverage": catalog_coverage(lists, catalog, k),
        "intra_list_diversity": intra_list_diversity(shown, category, k),
        "novelty": novelty(lists, {i: popularity_counts.get(i, 0.0) for i in catalog}, k, pseudo_count=1.0),
        "users": float(report["users"]),
    }


def evaluate_lists(
    rows: pd.DataFrame,
    users: pd.DataFrame,
    scorers: Mapping[str, Callable[[pd.DataFrame], np.ndarray]],
    k: int,
    history: History,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Ranking metrics of each scorer's top-k lists, next to popularity, a random order and the union's recall."""
    user_ids = users["user_id"].tolist()
    relevant = users["relevant"].tolist()
    catalog = history.content["content_id"].astype(str).tolist()
    category = dict(
        zip(history.content["content_id"].astype(str), history.content["category"].astype(str), strict=True)
    )
    counts = {str(k): float(v) for k, v in history.interactions.groupby("content_id").size().items()}
    rng = np.random.default_rng(seed)
    orders: dict[str, np.ndarray] = {name: scorer(rows) for name, scorer in scorers.items()}
    orders["popularity"] = rows["score_popularity"].fillna(-np.inf).to_numpy()
    orders["random"] = rng.random(len(rows))
    out = {
        name: ranking_metrics(top_k_lists(rows, score, user_ids, k), relevant, k, catalog, category, counts)
        for name, score in orders.items()
    }
    out["candidates"] = {
        "per_user": float(len(rows) / max(len(user_ids), 1)),
        "union_recall": _recall(rows, user_ids, relevant),
        **{
            f"{source}_recall": _recall(rows.loc[rows["sources"].str.contains(source)], user_ids, relevant)
            for source in ("popularity", "cf", "content")
        },
    }
    return out


def _recall(rows: pd.DataFrame, user_ids: Sequence[str], relevant: Sequence[set[str]]) -> float:
    """Mean share of each user's relevant items that are among the rows (a candidate generator's recall)."""
    proposed = rows.groupby("user_id")["content_id"].agg(set)
    shares = [len(rel & proposed.get(u, set())) / len(rel) for u, rel in zip(user_ids, relevant, strict=True) if rel]
    return float(np.mean(shares)) if shares else float("nan")


def summarize(metrics: dict[str, Any]) -> dict[str, float]:
    """The flat ``group.model.metric`` numbers a registry stores."""
    flat: dict[str, float] = {}
    for group in ("classification", "ranking"):
        for model, values in metrics.get(group, {}).items():
            for name, value in values.items():
                if isinstance(value, int | float) and np.isfinite(value):
                    flat[f"{group}.{model}.{name}"] = float(value)
    return flat

"""Offline metrics: ranking quality of top-k lists, beyond-accuracy measures, and calibration of probabilities.

Ranking metrics follow the definitions of Microsoft Recommenders (``recommenders/evaluation/python_evaluation.py``)
with binary relevance, so our figures sit next to their published MovieLens table:

* precision@k = hits in the top k / k (a list shorter than k still divides by k);
* recall@k = hits in the top k / number of relevant items;
* NDCG@k = DCG / ideal DCG with gain 1 per hit and discount 1 / log2(1 + rank); the ideal list puts
  min(k, |relevant|) hits first (the log base cancels, so their natural-log default gives the same value);
* MAP@k: average precision over the hits in the top k, AP = sum over hit ranks r of (hits up to r) / r, divided by
  ``min(k, |relevant|)`` (``normalization="min_k"``, Recommenders' ``map_at_k`` since PR #2004, Spark's
  ``meanAveragePrecisionAt``) or by ``|relevant|`` (``normalization="relevant"``: their ``map``, and what their
  ``map_at_k`` returned before that change, so the definition behind the published MovieLens MAP column).

Averaging: over users with at least one relevant item (a user without any has nothing to find, as in Recommenders,
where the truth frame defines the users). A user with an empty recommended list scores 0. Recommenders drops a
user without any recommendation from precision/recall/MAP but counts them as 0 in NDCG; here they count as 0
everywhere (a user we failed to serve is a miss).

Lists are ordered best first and are cut to their first k entries; an item may appear only once per list.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Recommended = Sequence[Sequence[Hashable]]
Relevant = Sequence[Collection[Hashable]]
MapNormalization = Literal["min_k", "relevant"]
BinStrategy = Literal["uniform", "quantile"]


@dataclass(frozen=True)
class RankingReport:
    """All accuracy metrics of one set of lists, averaged over the ``users`` that had something relevant."""

    k: int
    users: int
    ndcg: float
    precision: float
    recall: float
    map: float
    map_relevant: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "k": self.k,
            "users": self.users,
            "ndcg_at_k": self.ndcg,
            "precision_at_k": self.precision,
            "recall_at_k": self.recall,
            "map_at_k": self.map,
            "map_at_k_relevant_denominator": self.map_relevant,
        }


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ValueError(f"k must be a positive integer (the list length evaluated), got {k!r}")
    return int(k)


def _hit_rows(recommended: Recommended, relevant: Relevant, k: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per user with something relevant: the 0/1 hit vector of their first k items, |relevant|, and their position."""
    k = _check_k(k)
    if isinstance(recommended, str) or isinstance(relevant, str):
        raise ValueError("pass one list of items per user, not a string")
    if len(recommended) != len(relevant):
        raise ValueError(
            f"{len(recommended)} recommended lists but {len(relevant)} relevant sets: pass one of each per user"
        )
    hits: list[np.ndarray] = []
    n_relevant: list[int] = []
    kept: list[int] = []
    for i, (items, truth) in enumerate(zip(recommended, relevant, strict=True)):
        if isinstance(items, str):
            raise ValueError(f"user #{i}: the recommended list is a string {items!r}; pass a list of item ids")
        truth_set = set(truth)
        if not truth_set:
            continue
        top = list(items)[:k]
        if len(set(top)) != len(top):
            raise ValueError(f"user #{i}: the recommended list repeats an item; each item may appear once")
        hits.append(np.fromiter((item in truth_set for item in top), dtype=np.float64, count=len(top)))
        n_relevant.append(len(truth_set))
        kept.append(i)
    if not hits:
        raise ValueError("no user has any relevant item: there is nothing to evaluate")
    return hits, np.asarray(n_relevant, dtype=np.float64), np.asarray(kept, dtype=np.int64)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _ndcg(hits: list[np.ndarray], n_relevant: np.ndarray, k: int) -> np.ndarray:
    disc = _discounts(k)
    ideal_cum = np.cumsum(disc)
    dcg = np.array([float(h @ disc[: len(h)]) for h in hits])
    idcg = ideal_cum[np.minimum(n_relevant, k).astype(int) - 1]
    return dcg / idcg


def _average_precision(hits: list[np.ndarray], n_relevant: np.ndarray, k: int, normalization: str) -> np.ndarray:
    if normalization not in ("min_k", "relevant"):
        raise ValueError(f"normalization must be 'min_k' or 'relevant', got {normalization!r}")
    sums = np.array([float((np.cumsum(h) / np.arange(1, len(h) + 1)) @ h) for h in hits])
    denominator = np.minimum(n_relevant, k) if normalization == "min_k" else n_relevant
    return sums / denominator


def ndcg_at_k(recommended: Recommended, relevant: Relevant, k: int) -> float:
    """Mean NDCG@k with binary gains (see the module docstring for the exact definition).

    Args:
        recommended: per user, item ids ordered best first.
        relevant: per user (same order), the set of relevant item ids.
        k: cut-off.

    Returns:
        Mean over users with at least one relevant item, in [0, 1].

    Raises:
        ValueError: mismatched lengths, k <= 0, a repeated item in a list, or no user with a relevant item.
    """
    hits, n_relevant, _ = _hit_rows(recommended, relevant, k)
    return float(_ndcg(hits, n_relevant, k).mean())


def ndcg_per_user(recommended: Recommended, relevant: Relevant, k: int) -> np.ndarray:
    """NDCG@k of each user, aligned with the inputs; NaN for a user without relevant items (e.g. for paired
    comparisons of two models over the same users). Arguments and errors as ndcg_at_k."""
    hits, n_relevant, kept = _hit_rows(recommended, relevant, k)
    out = np.full(len(recommended), np.nan)
    out[kept] = _ndcg(hits, n_relevant, k)
    return out


def precision_at_k(recommended: Recommended, relevant: Relevant, k: int) -> float:
    """Mean precision@k: hits in the first k / k (Recommenders and Spark). Arguments and errors as ndcg_at_k."""
    hits, _, _ = _hit_rows(recommended, relevant, k)
    return float(np.mean([h.sum() / k for h in hits]))


def recall_at_k(recommended: Recommended, relevant: Relevant, k: int) -> float:
    """Mean recall@k: hits in the first k / |relevant|. Arguments and errors as ndcg_at_k."""
    hits, n_relevant, _ = _hit_rows(recommended, relevant, k)
    return float(np.mean(np.array([h.sum() for h in hits]) / n_relevant))


def map_at_k(recommended: Recommended, relevant: Relevant, k: int, normalization: MapNormalization = "min_k") -> float:
    """Mean average precision at k.

    Args:
        normalization: ``"min_k"`` divides each user's summed precision-at-hits by min(k, |relevant|)
            (Recommenders' current ``map_at_k``; 1.0 for a perfect list); ``"relevant"`` divides by |relevant|
            (Recommenders' ``map``, the definition of their published MovieLens table). Other arguments and
            errors as ndcg_at_k.
    """
    hits, n_relevant, _ = _hit_rows(recommended, relevant, k)
    return float(_average_precision(hits, n_relevant, k, normalization).mean())


def ranking_report(recommended: Recommended, relevant: Relevant, k: int) -> RankingReport:
    """NDCG, precision, recall and both MAP variants at k in one pass over the lists."""
    hits, n_relevant, _ = _hit_rows(recommended, relevant, k)
    n_hits = np.array([h.sum() for h in hits])
    return RankingReport(
        k=k,
        users=len(hits),
        ndcg=float(_ndcg(hits, n_relevant, k).mean()),
        precision=float(np.mean(n_hits / k)),
        recall=float(np.mean(n_hits / n_relevant)),
        map=float(_average_precision(hits, n_relevant, k, "min_k").mean()),
        map_relevant=float(_average_precision(hits, n_relevant, k, "relevant").mean()),
    )


def recommended_lists(
    frame: pd.DataFrame,
    user_ids: Sequence[Hashable],
    user_col: str = "user_id",
    item_col: str = "content_id",
    rank_col: str = "rank",
) -> list[list[Any]]:
    """Turn a long frame of recommendations (e.g. a generator's candidates) into one ordered list per user.

    Args:
        frame: one row per (user, item) with a rank (1 = best).
        user_ids: the users to evaluate, in the order of the relevant sets; a user without rows gets ``[]``.

    Raises:
        ValueError: a column is missing.
    """
    missing = [c for c in (user_col, item_col, rank_col) if c not in frame.columns]
    if missing:
        raise ValueError(f"recommendations frame lacks column(s) {missing}; it has {list(frame.columns)}")
    ordered = frame.sort_values([user_col, rank_col], kind="stable")
    by_user = ordered.groupby(user_col, sort=False)[item_col].agg(list).to_dict()
    return [list(by_user.get(u, [])) for u in user_ids]


# -- beyond accuracy ------------------------------------------------------------------------------------------------


def catalog_coverage(recommended: Recommended, catalog: Collection[Hashable], k: int | None = None) -> float:
    """Share of the catalog that appears in at least one list (Shani and Gunawardana, "Evaluating Recommendation
    Systems", 2011; Recommenders' ``catalog_coverage`` with the catalog given explicitly).

    Args:
        recommended: per user, item ids ordered best first.
        catalog: every item that could have been recommended.
        k: count only each list's first k items (``None``: whole lists).

    Raises:
        ValueError: an empty catalog, or a recommended item outside it (the catalog is then wrong).
    """
    catalog_set = set(catalog)
    if not catalog_set:
        raise ValueError("the catalog is empty: pass every item that could be recommended")
    shown = _items_shown(recommended, k)
    outside = shown - catalog_set
    if outside:
        raise ValueError(
            f"{len(outside)} recommended item(s) are not in the catalog (e.g. {sorted(map(str, outside))[:5]}); "
            "pass the full catalog"
        )
    return len(shown) / len(catalog_set)


def intra_list_diversity(recommended: Recommended, item_category: Mapping[Any, Any], k: int) -> float:
    """Mean share of item pairs in a list that belong to different categories.

    Intra-list diversity (Ziegler et al., "Improving recommendation lists through topic diversification", WWW
    2005) with the category distance: 1 if two items' categories differ, 0 if equal. Per list, the mean over its
    n(n-1)/2 pairs among the first k items; averaged over lists with at least two items.

    Raises:
        ValueError: an item without a category, or no list with two or more items.
    """
    k = _check_k(k)
    values: list[float] = []
    missing: set[Hashable] = set()
    for items in recommended:
        top = list(items)[:k]
        missing.update(i for i in top if i not in item_category)
        if len(top) < 2 or missing:
            continue
        counts = np.unique(np.array([str(item_category[i]) for i in top]), return_counts=True)[1]
        n = len(top)
        same_pairs = float((counts * (counts - 1)).sum()) / 2
        values.append(1.0 - same_pairs / (n * (n - 1) / 2))
    if missing:
        raise ValueError(
            f"{len(missing)} recommended item(s) have no category (e.g. {sorted(map(str, missing))[:5]}); "
            "pass a category for every item"
        )
    if not values:
        raise ValueError("no list has two or more items: diversity is undefined")
    return float(np.mean(values))


def novelty(
    recommended: Recommended,
    item_counts: Mapping[Any, float],
    k: int,
    pseudo_count: float = 0.0,
) -> float:
    """Mean self-information of the recommended items, in bits: mean of -log2 p(i) over every recommended slot.

    p(i) is the item's share of the historical interactions (the "item choice" model of Castells, Vargas and Wang,
    "Novelty and diversity metrics for recommender systems", 2011, as in Recommenders' ``novelty``):
    p(i) = (count_i + a) / (sum of counts + a * len(item_counts)) with a = ``pseudo_count``. Popular items score
    low, long-tail items high.

    Args:
        recommended: per user, item ids ordered best first (first k used).
        item_counts: interactions per item in the history, for every item that can be recommended.
        k: cut-off.
        pseudo_count: additive smoothing so items without history get a finite value (0: none allowed).

    Raises:
        ValueError: a recommended item absent from ``item_counts``, or with zero count while ``pseudo_count`` is 0;
            negative counts; no recommended item at all.
    """
    k = _check_k(k)
    if pseudo_count < 0:
        raise ValueError(f"pseudo_count must be >= 0, got {pseudo_count}")
    counts = np.array(list(item_counts.values()), dtype=np.float64)
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("item_counts must be finite and >= 0")
    total = counts.sum() + pseudo_count * len(counts)
    slots = [i for items in recommended for i in list(items)[:k]]
    if not slots:
        raise ValueError("no recommended item at all: novelty is undefined")
    missing = {i for i in slots if i not in item_counts}
    if missing:
        raise ValueError(
            f"{len(missing)} recommended item(s) have no count (e.g. {sorted(map(str, missing))[:5]}); "
            "pass item_counts for every item that can be recommended"
        )
    shares = np.array([(item_counts[i] + pseudo_count) / total for i in slots], dtype=np.float64)
    if (shares <= 0).any():
        raise ValueError("a recommended item has zero interactions: pass pseudo_count > 0 to give it a finite novelty")
    return float(np.mean(-np.log2(shares)))


def _items_shown(recommended: Recommended, k: int | None) -> set[Hashable]:
    if k is not None:
        k = _check_k(k)
    shown: set[Hashable] = set()
    for items in recommended:
        shown.update(list(items)[:k] if k is not None else items)
    return shown


# -- calibration ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per non-empty bin: the mean predicted probability, the observed positive rate and the count.

    Bins follow ``sklearn.calibration.calibration_curve``: ``uniform`` = equal-width bins on [0, 1], ``quantile`` =
    equal-mass bins at the predictions' quantiles; a probability on an inner edge falls in the lower bin.
    """

    mean_predicted: np.ndarray
    fraction_positive: np.ndarray
    count: np.ndarray
    bin_edges: np.ndarray


def _check_binary(y_true: Sequence[float] | np.ndarray, y_prob: Sequence[float] | np.ndarray) -> tuple[np.ndarray, ...]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if len(t) != len(p):
        raise ValueError(f"{len(t)} labels but {len(p)} probabilities: pass one of each per example")
    if len(t) == 0:
        raise ValueError("no examples: calibration needs at least one prediction")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("y_true must be binary (0/1 or False/True)")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("y_prob must be probabilities in [0, 1] (the positive class's predicted probability)")
    return t, p


def reliability_curve(
    y_true: Sequence[float] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    n_bins: int = 10,
    strategy: BinStrategy = "uniform",
) -> ReliabilityCurve:
    """Reliability diagram data for a binary classifier's positive-class probabilities.

    Args:
        y_true: 0/1 labels.
        y_prob: predicted probability of label 1, in [0, 1].
        n_bins: number of bins (>= 1).
        strategy: ``"uniform"`` (equal width) or ``"quantile"`` (equal mass).

    Raises:
        ValueError: mismatched or empty inputs, non-binary labels, probabilities outside [0, 1], a bad strategy.
    """
    t, p = _check_binary(y_true, y_prob)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    bins = np.searchsorted(edges[1:-1], p)
    count = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_t = np.bincount(bins, weights=t, minlength=n_bins)
    used = count > 0
    return ReliabilityCurve(
        mean_predicted=sum_p[used] / count[used],
        fraction_positive=sum_t[used] / count[used],
        count=count[used].astype(np.int64),
        bin_edges=edges,
    )


def expected_calibration_error(
    y_true: Sequence[float] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    n_bins: int = 10,
    strategy: BinStrategy = "uniform",
) -> float:
    """Expected calibration error of positive-class probabilities, with **equal-width** bins by default.

    ECE = sum over bins b of (n_b / n) * |observed positive rate_b - mean predicted probability_b|
    (Naeini, Cooper and Hauskrecht, "Obtaining well calibrated probabilities using Bayesian binning", AAAI 2015;
    binary form, on the probability of label 1 rather than of the arg-max class). Bins as in
    :func:`reliability_curve`; ``strategy="quantile"`` gives the equal-mass variant.

    Raises:
        ValueError: as :func:`reliability_curve`.
    """
    curve = reliability_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    weights = curve.count / curve.count.sum()
    return float(np.sum(weights * np.abs(curve.fraction_positive - curve.mean_predicted)))

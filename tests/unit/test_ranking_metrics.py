"""Offline metrics against independent references: hand computations, scikit-learn (ndcg_score,
average_precision_score, calibration_curve) and a closed-form calibration error."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, ndcg_score

from ml.evaluate.metrics import (
    catalog_coverage,
    expected_calibration_error,
    intra_list_diversity,
    map_at_k,
    ndcg_at_k,
    ndcg_per_user,
    novelty,
    precision_at_k,
    ranking_report,
    recall_at_k,
    recommended_lists,
    reliability_curve,
)

pytestmark = pytest.mark.unit

# Three users, k = 3:
#   u1: top 3 = a, b, c; relevant {a, c, z}: hits at ranks 1 and 3.
#   u2: x, y; relevant {q}: no hit.
#   u3: nothing recommended; relevant {m}: counts as 0 everywhere.
RECOMMENDED = [["a", "b", "c", "d"], ["x", "y"], []]
RELEVANT = [{"a", "c", "z"}, {"q"}, {"m"}]


def test_hand_computed_case() -> None:
    # u1: precision 2/3, recall 2/3, DCG = 1/log2(2) + 1/log2(4) = 1.5,
    #     IDCG = 1 + 1/log2(3) + 1/log2(4), AP = (1/1 + 2/3) / min(3, 3).
    ndcg_u1 = 1.5 / (1 + 1 / math.log2(3) + 0.5)
    ap_u1 = (1 + 2 / 3) / 3
    assert precision_at_k(RECOMMENDED, RELEVANT, 3) == pytest.approx((2 / 3) / 3)
    assert recall_at_k(RECOMMENDED, RELEVANT, 3) == pytest.approx((2 / 3) / 3)
    assert ndcg_at_k(RECOMMENDED, RELEVANT, 3) == pytest.approx(ndcg_u1 / 3)
    assert map_at_k(RECOMMENDED, RELEVANT, 3) == pytest.approx(ap_u1 / 3)
    assert map_at_k(RECOMMENDED, RELEVANT, 3, normalization="relevant") == pytest.approx(ap_u1 / 3)
    np.testing.assert_allclose(ndcg_per_user(RECOMMENDED, RELEVANT, 3), [ndcg_u1, 0.0, 0.0])
    report = ranking_report(RECOMMENDED, RELEVANT, 3)
    assert report.users == 3
    assert (report.ndcg, report.precision, report.recall, report.map) == pytest.approx(
        (ndcg_u1 / 3, 2 / 9, 2 / 9, ap_u1 / 3)
    )


def test_lists_are_cut_at_k_and_short_lists_still_divide_by_k() -> None:
    # k = 1: only "a" counts for u1 (a hit); precision 1/1, recall 1/3, AP = 1 / min(1, 3).
    assert precision_at_k([["a", "b", "c"]], [{"a", "c", "z"}], 1) == 1.0
    assert recall_at_k([["a", "b", "c"]], [{"a", "c", "z"}], 1) == pytest.approx(1 / 3)
    assert map_at_k([["a", "b", "c"]], [{"a", "c", "z"}], 1) == 1.0
    # A two-item list at k = 10 with one hit: precision 1/10 (Recommenders and Spark), not 1/2.
    assert precision_at_k([["a", "b"]], [{"a"}], 10) == pytest.approx(0.1)


def test_map_normalizations_differ_only_when_relevant_exceeds_k() -> None:
    perfect = [["a", "b"]]
    many = [{"a", "b", "c", "d"}]
    assert map_at_k(perfect, many, 2, normalization="min_k") == 1.0
    assert map_at_k(perfect, many, 2, normalization="relevant") == pytest.approx(2 / 4)
    few = [{"a"}]
    assert map_at_k(perfect, few, 2, normalization="min_k") == map_at_k(perfect, few, 2, normalization="relevant")


def test_users_without_relevant_items_are_left_out_of_the_mean() -> None:
    base = ndcg_at_k(RECOMMENDED, RELEVANT, 3)
    assert ndcg_at_k([*RECOMMENDED, ["a", "b"]], [*RELEVANT, set()], 3) == pytest.approx(base)
    assert math.isnan(ndcg_per_user([["a"], ["b"]], [{"a"}, set()], 1)[1])


def test_ndcg_equals_sklearn_on_random_rankings() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items = 40, 25
    y_true = np.zeros((n_users, n_items))
    for u in range(n_users):
        y_true[u, rng.choice(n_items, size=rng.integers(1, 9), replace=False)] = 1
    y_score = rng.random((n_users, n_items))
    items = np.arange(n_items)
    recommended = [list(items[np.argsort(-y_score[u])]) for u in range(n_users)]
    relevant = [set(items[y_true[u] == 1]) for u in range(n_users)]
    for k in (1, 3, 10, 25):
        assert ndcg_at_k(recommended, relevant, k) == pytest.approx(ndcg_score(y_true, y_score, k=k), abs=1e-12)


def test_ndcg_with_tied_scores() -> None:
    # Scores with ties; our lists break them by item id (as the generators do).
    items = ["a", "b", "c", "d", "e"]
    y_true = np.array([[1, 0, 1, 0, 1]])
    y_score = np.array([[0.9, 0.5, 0.5, 0.5, 0.1]])
    ranked = [items[i] for i in sorted(range(5), key=lambda i: (-y_score[0, i], items[i]))]  # a, b, c, d, e
    relevant = [{"a", "c", "e"}]
    # The tie b/c/d mixes relevances: our value is that of the order a, b, c, d, e, i.e. scikit-learn's on scores
    # with the tie broken the same way; scikit-learn's own tie handling averages over the tied group instead.
    broken = np.array([[0.9, 0.52, 0.51, 0.50, 0.1]])
    ours = ndcg_at_k([ranked], relevant, 4)
    assert ours == pytest.approx(ndcg_score(y_true, broken, k=4))
    assert ours != pytest.approx(ndcg_score(y_true, y_score, k=4))
    # When a tie joins items of equal relevance, the order inside it cannot matter: both definitions agree.
    y_score_same = np.array([[0.9, 0.5, 0.7, 0.5, 0.1]])  # b and d tie, both irrelevant
    ranked_same = [items[i] for i in sorted(range(5), key=lambda i: (-y_score_same[0, i], items[i]))]
    assert ndcg_at_k([ranked_same], relevant, 4) == pytest.approx(ndcg_score(y_true, y_score_same, k=4))


def test_map_equals_sklearn_average_precision_when_every_relevant_item_is_listed() -> None:
    # With all relevant items inside the top k, AP@k with either denominator is the full-ranking AP.
    rng = np.random.default_rng(3)
    recommended, relevant, aps = [], [], []
    for _ in range(30):
        order = list(rng.permutation(12))
        rel = set(rng.choice(order[:10], size=rng.integers(1, 6), replace=False))
        y_true = [1 if i in rel else 0 for i in order]
        aps.append(average_precision_score(y_true, -np.arange(len(order))))
        recommended.append(order)
        relevant.append(rel)
    assert map_at_k(recommended, relevant, 10) == pytest.approx(np.mean(aps))
    assert map_at_k(recommended, relevant, 10, normalization="relevant") == pytest.approx(np.mean(aps))


def test_precision_and_recall_equal_set_arithmetic() -> None:
    rng = np.random.default_rng(11)
    recommended = [list(rng.permutation(30)[: rng.integers(0, 15)]) for _ in range(50)]
    relevant = [set(rng.choice(30, size=rng.integers(1, 10), replace=False)) for _ in range(50)]
    k = 8
    assert precision_at_k(recommended, relevant, k) == pytest.approx(
        np.mean([len(set(r[:k]) & t) / k for r, t in zip(recommended, relevant, strict=True)])
    )
    assert recall_at_k(recommended, relevant, k) == pytest.approx(
        np.mean([len(set(r[:k]) & t) / len(t) for r, t in zip(recommended, relevant, strict=True)])
    )


@pytest.mark.parametrize(
    ("recommended", "relevant", "k", "message"),
    [
        ([["a"]], [{"a"}, {"b"}], 1, "1 recommended lists but 2 relevant sets"),
        ([["a"]], [{"a"}], 0, "k must be a positive integer"),
        ([["a"]], [{"a"}], 2.5, "k must be a positive integer"),
        ([["a", "b", "a"]], [{"a"}], 3, "repeats an item"),
        ([["a"]], [set()], 1, "no user has any relevant item"),
        (["ab"], [{"a"}], 1, "is a string"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(recommended, relevant, k, message) -> None:
    with pytest.raises(ValueError, match=message):
        ndcg_at_k(recommended, relevant, k)


def test_map_refuses_an_unknown_normalization() -> None:
    with pytest.raises(ValueError, match="normalization must be"):
        map_at_k([["a"]], [{"a"}], 1, normalization="k")  # type: ignore[arg-type]


def test_recommended_lists_orders_by_rank_and_fills_missing_users() -> None:
    frame = pd.DataFrame(
        {"user_id": ["u2", "u1", "u1", "u2"], "content_id": ["z", "b", "a", "y"], "rank": [2, 2, 1, 1]}
    )
    assert recommended_lists(frame, ["u1", "u3", "u2"]) == [["a", "b"], [], ["y", "z"]]
    with pytest.raises(ValueError, match="lacks column"):
        recommended_lists(frame.drop(columns="rank"), ["u1"])


# -- beyond accuracy ------------------------------------------------------------------------------------------------


def test_catalog_coverage() -> None:
    lists = [["a", "b", "c"], ["a", "d"]]
    assert catalog_coverage(lists, ["a", "b", "c", "d", "e", "f", "g", "h"]) == pytest.approx(4 / 8)
    assert catalog_coverage(lists, list("abcdefgh"), k=1) == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match="not in the catalog"):
        catalog_coverage(lists, ["a", "b"])
    with pytest.raises(ValueError, match="catalog is empty"):
        catalog_coverage(lists, [])


def test_intra_list_diversity_against_pairwise_brute_force() -> None:
    category = {"a": "news", "b": "news", "c": "sport", "d": "film", "e": "sport"}
    # [a, b, c]: pairs ab (same), ac, bc (different) -> 2/3; [c, d]: 1; [a]: too short, left out.
    assert intra_list_diversity([["a", "b", "c"], ["c", "d"], ["a"]], category, k=3) == pytest.approx((2 / 3 + 1) / 2)
    rng = np.random.default_rng(5)
    items = list(category)
    lists = [list(rng.permutation(items)[: rng.integers(2, 6)]) for _ in range(20)]
    brute = np.mean(
        [np.mean([category[x] != category[y] for x, y in itertools.combinations(lst[:4], 2)]) for lst in lists]
    )
    assert intra_list_diversity(lists, category, k=4) == pytest.approx(brute)
    with pytest.raises(ValueError, match="have no category"):
        intra_list_diversity([["a", "zz"]], category, k=2)
    with pytest.raises(ValueError, match="two or more items"):
        intra_list_diversity([["a"]], category, k=2)


def test_novelty_is_mean_self_information() -> None:
    counts = {"a": 8, "b": 2, "c": 0}
    # p(a) = 0.8, p(b) = 0.2: every slot counts, so a list [a, b] and a list [a] give (3 * -log2 .8 ... ) / 3.
    expected = (-2 * math.log2(0.8) - math.log2(0.2)) / 3
    assert novelty([["a", "b"], ["a"]], counts, k=2) == pytest.approx(expected)
    # Additive smoothing: p(c) = (0 + 1) / (10 + 3).
    assert novelty([["c"]], counts, k=1, pseudo_count=1.0) == pytest.approx(-math.log2(1 / 13))
    with pytest.raises(ValueError, match="zero interactions"):
        novelty([["c"]], counts, k=1)
    with pytest.raises(ValueError, match="have no count"):
        novelty([["zz"]], counts, k=1)


# -- calibration ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_equals_sklearn(strategy: str) -> None:
    rng = np.random.default_rng(1)
    p = rng.random(2_000)
    # Values on bin edges, and the extremes, land in the same bins as scikit-learn's.
    p[:6] = [0.0, 0.1, 0.2, 0.5, 0.9, 1.0]
    y = rng.random(2_000) < p
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy=strategy)
    curve = reliability_curve(y, p, n_bins=10, strategy=strategy)  # type: ignore[arg-type]
    np.testing.assert_allclose(curve.fraction_positive, prob_true)
    np.testing.assert_allclose(curve.mean_predicted, prob_pred)
    assert curve.count.sum() == 2_000


def test_expected_calibration_error_by_hand() -> None:
    # Bins of width 0.1: {0.05} observed 0, {0.15, 0.15} observed 1/2, {0.95} observed 1.
    # ECE = 1/4 * 0.05 + 2/4 * |0.5 - 0.15| + 1/4 * 0.05 = 0.2.
    assert expected_calibration_error([0, 1, 0, 1], [0.05, 0.15, 0.15, 0.95]) == pytest.approx(0.2)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_expected_calibration_error_against_a_closed_form() -> None:
    # Predictions q ~ U(0, 1) for events of true probability sqrt(q). In the bin [a, b]: mean prediction (a + b) / 2,
    # positive rate 2/3 (b^1.5 - a^1.5) / (b - a); each bin holds 1/10 of the mass.
    rng = np.random.default_rng(2)
    q = rng.random(400_000)
    y = rng.random(400_000) < np.sqrt(q)
    edges = np.linspace(0, 1, 11)
    closed = np.mean([abs(2 / 3 * (b**1.5 - a**1.5) / (b - a) - (a + b) / 2) for a, b in itertools.pairwise(edges)])
    assert expected_calibration_error(y, q) == pytest.approx(closed, abs=0.003)
    calibrated = rng.random(400_000) < q
    assert expected_calibration_error(calibrated, q) < 0.005


@pytest.mark.parametrize(
    ("y_true", "y_prob", "message"),
    [
        ([0, 1], [0.5], "2 labels but 1 probabilities"),
        ([], [], "no examples"),
        ([0, 2], [0.1, 0.2], "binary"),
        ([0, 1], [0.1, 1.2], r"in \[0, 1\]"),
        ([0, 1], [0.1, float("nan")], r"in \[0, 1\]"),
    ],
)
def test_calibration_bad_input(y_true, y_prob, message) -> None:
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(y_true, y_prob)


def test_calibration_bad_bins() -> None:
    with pytest.raises(ValueError, match="strategy must be"):
        reliability_curve([0, 1], [0.2, 0.8], strategy="equal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_bins must be"):
        reliability_curve([0, 1], [0.2, 0.8], n_bins=0)

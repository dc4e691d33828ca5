"""Experiment assignment: pinned values, determinism, balance and independence across experiments.

The experiment analysis re-derives arms with this function, so a silent change of the hash would break
every later analysis of existing data: the pinned examples below fail on any such change.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from tailor.assignment import BUCKETS, assign_variant, assign_variants, bucket, thresholds

pytestmark = pytest.mark.unit

IDS = [f"u{i:07d}" for i in range(1, 100_001)]


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution for dof 1 or 2 (closed forms)."""
    if dof == 1:
        return math.erfc(math.sqrt(x / 2))
    if dof == 2:
        return math.exp(-x / 2)
    raise ValueError("closed form only for dof 1 or 2")


def test_pinned_examples() -> None:
    # Computed once from the documented rule; any change of hash, salt or bucket mapping fails here.
    assert bucket("exp_feed_ranker", "u0000001") == 449
    assert bucket("exp_feed_ranker", "u0000002") == 8985
    assert bucket("exp_aa_feed", "u0000001") == 3927
    assert assign_variant("exp_feed_ranker", "u0000001", ["control", "treatment"]) == "control"
    assert assign_variant("exp_feed_ranker", "u0000002", ["control", "treatment"]) == "treatment"
    assert assign_variant("exp_aa_feed", "u0000001", ["a", "b", "c"]) == "b"
    assert assign_variant("exp_feed_ranker", "u0000002", ["control", "treatment"], [0.85, 0.15]) == "treatment"
    assert assign_variant("exp_feed_ranker", "u0000002", ["control", "treatment"], [0.9, 0.1]) == "control"


def test_bucket_follows_the_documented_rule() -> None:
    # An independent computation of the rule: md5 of "experiment:user", first 8 hex digits, modulo 10,000.
    for user_id in IDS[:200]:
        digest = hashlib.md5(f"exp_x:{user_id}".encode()).hexdigest()
        assert bucket("exp_x", user_id) == int(digest[:8], 16) % 10_000


def test_same_inputs_same_variant_and_vector_equals_scalar() -> None:
    variants = ["control", "treatment", "other"]
    weights = [0.5, 0.3, 0.2]
    arms = assign_variants("exp_v", IDS[:2_000], variants, weights)
    again = assign_variants("exp_v", IDS[:2_000], variants, weights)
    assert np.array_equal(arms, again)
    scalar = [variants.index(assign_variant("exp_v", u, variants, weights)) for u in IDS[:2_000]]
    assert arms.tolist() == scalar


def test_fifty_fifty_is_balanced() -> None:
    arms = assign_variants("exp_balance", IDS, ["control", "treatment"], [0.5, 0.5])
    counts = np.bincount(arms, minlength=2)
    expected = len(IDS) / 2
    statistic = float(((counts - expected) ** 2 / expected).sum())
    assert chi2_sf(statistic, 1) > 0.001, counts
    assert abs(counts[0] / len(IDS) - 0.5) < 0.01


def test_unequal_weights_are_honoured() -> None:
    weights = [0.2, 0.3, 0.5]
    arms = assign_variants("exp_weights", IDS, ["a", "b", "c"], weights)
    counts = np.bincount(arms, minlength=3)
    expected = np.array(weights) * len(IDS)
    statistic = float(((counts - expected) ** 2 / expected).sum())
    assert chi2_sf(statistic, 2) > 0.001, counts


def test_experiments_are_independent() -> None:
    first = assign_variants("exp_one", IDS, ["control", "treatment"])
    second = assign_variants("exp_two", IDS, ["control", "treatment"])
    table = np.zeros((2, 2))
    np.add.at(table, (first, second), 1)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    assert chi2_sf(statistic, 1) > 0.001, table
    # Not the same split under another name: about half the users change arm.
    assert 0.45 < float((first != second).mean()) < 0.55


def test_zero_weight_arm_gets_nobody_and_thresholds_cover_all_buckets() -> None:
    arms = assign_variants("exp_zero", IDS[:20_000], ["off", "on"], [0.0, 1.0])
    assert set(arms.tolist()) == {1}
    bounds = thresholds([1, 1, 2])
    assert bounds.tolist() == [2_500, 5_000, BUCKETS]


def test_bad_weights_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="one weight per variant"):
        assign_variant("exp", "u0000001", ["a", "b"], [1.0])
    with pytest.raises(ValueError, match="not all zero"):
        assign_variant("exp", "u0000001", ["a", "b"], [0.0, 0.0])

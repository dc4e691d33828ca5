"""Deterministic experiment assignment: which arm a user is in, from a hash alone.

The simulator uses this to plant experiments, serving uses it for the personalization holdout, and the experiment
analysis imports it to re-derive assignment (for sample-ratio checks), so all agree by construction. The rule,
stable across processes and machines:

1. key = f"{experiment_id}:{user_id}" encoded as UTF-8;
2. bucket = int(md5(key).hexdigest()[:8], 16) % 10_000;
3. thresholds = round(cumulative share of each arm * 10_000); the user's arm is the first whose threshold
   exceeds the bucket.

Salting with the experiment id makes assignments of different experiments independent of each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

BUCKETS = 10_000


def bucket(experiment_id: str, user_id: str) -> int:
    """Hash bucket in [0, 10_000) of one user in one experiment."""
    digest = hashlib.md5(f"{experiment_id}:{user_id}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % BUCKETS


def thresholds(weights: Sequence[float]) -> np.ndarray:
    """Upper bucket bound (exclusive) of each arm; the last is always 10_000.

    Raises:
        ValueError: weights are empty, negative or all zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative and not all zero (got {list(weights)})")
    bounds = np.rint(np.cumsum(w) / w.sum() * BUCKETS).astype(np.int64)
    bounds[-1] = BUCKETS
    return bounds


def assign_variant(
    experiment_id: str, user_id: str, variants: Sequence[str], weights: Sequence[float] | None = None
) -> str:
    """The arm of one user in one experiment.

    Args:
        experiment_id: Salt of the hash; the same user lands independently in different experiments.
        user_id: The user's id as written in events (e.g. ``u0000042``).
        variants: Arm names, in the order their weights are given.
        weights: Traffic share per arm (normalised); equal shares when omitted.

    Returns:
        The name of the arm.

    Raises:
        ValueError: the number of weights differs from the number of variants.
    """
    return variants[_arm(bucket(experiment_id, user_id), variants, weights)]


def assign_variants(
    experiment_id: str, user_ids: Sequence[str], variants: Sequence[str], weights: Sequence[float] | None = None
) -> np.ndarray:
    """Arm index (into ``variants``) of many users at once, equal to ``assign_variant`` for each.

    Returns:
        int8 array, one arm index per user id.
    """
    buckets = np.fromiter((bucket(experiment_id, user_id) for user_id in user_ids), dtype=np.int64, count=len(user_ids))
    bounds = thresholds(_weights(variants, weights))
    return np.searchsorted(bounds, buckets, side="right").astype(np.int8)


def _weights(variants: Sequence[str], weights: Sequence[float] | None) -> Sequence[float]:
    if weights is None:
        return [1.0] * len(variants)
    if len(weights) != len(variants):
        raise ValueError(f"got {len(weights)} weights for {len(variants)} variants: give one weight per variant")
    return weights


def _arm(value: int, variants: Sequence[str], weights: Sequence[float] | None) -> int:
    return int(np.searchsorted(thresholds(_weights(variants, weights)), value, side="right"))

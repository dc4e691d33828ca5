"""The logged ranking policy: what the production system showed, and so what the events can tell.

A non-personalised policy on purpose: it ranks by recency, popularity and a noisy quality estimate, so a
recommender trained on the logs has real headroom (it can learn tastes the policy ignores), and its ranking is
random enough (Plackett-Luce sampling plus an exploration share of the pool) for off-policy evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.world import World


@dataclass
class PolicyState:
    """What the logged policy remembers between days: clicks per item per day (for popularity)."""

    clicks_by_day: np.ndarray

    @classmethod
    def start(cls, world: World) -> PolicyState:
        return cls(np.zeros((world.days, len(world.catalog)), dtype=np.int32))

    def record(self, day: int, items: np.ndarray) -> None:
        """Remember the items clicked on ``day``."""
        self.clicks_by_day[day] = np.bincount(items, minlength=self.clicks_by_day.shape[1])


def candidate_pool(
    world: World, state: PolicyState, day: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Items the policy may show today, and their scores.

    The pool is refreshed at 00:00 UTC from items published before then: the ``policy_pool_top`` best by
    score = recency_weight * 0.5 ** (age_hours / recency_half_life) + popularity_weight * log1p(clicks in
    the last window days) + quality_weight * quality_estimate, plus ``policy_pool_explore`` others at random.
    """
    c = world.config
    day_start = world.day_start_ms(day)
    available = np.flatnonzero(world.catalog.published_ms < day_start)
    age_hours = (day_start - world.catalog.published_ms[available]) / 3_600_000
    recent = state.clicks_by_day[max(0, day - c.policy_popularity_window_days) : day].sum(axis=0)
    score = (
        c.policy_recency_weight * 0.5 ** (age_hours / c.policy_recency_half_life_hours)
        + c.policy_popularity_weight * np.log1p(recent[available])
        + c.policy_quality_weight * world.catalog.quality_estimate[available]
    )
    order = np.argsort(-score, kind="stable")
    top, rest = order[: c.policy_pool_top], order[c.policy_pool_top :]
    explore = np.sort(rng.choice(rest, size=min(c.policy_pool_explore, len(rest)), replace=False))
    chosen = np.concatenate([top, explore]).astype(np.int64)
    return available[chosen], score[chosen]


def rank_slates(scores: np.ndarray, requests: int, k: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """``requests`` slates of ``k`` pool indices, each a Plackett-Luce draw with weights exp(score / T).

    Implemented as an exponential race (equivalent to Gumbel-top-k): item i gets key E_i / w_i with
    E_i ~ Exp(1), and the k smallest keys, in order, form the slate.
    """
    weights = _weights(scores, temperature)
    keys = rng.standard_exponential((requests, len(scores)), dtype=np.float32) / weights
    top = np.argpartition(keys, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def first_slot_propensity(scores: np.ndarray, temperature: float) -> np.ndarray:
    """P(each pool item is shown at position 1): w_i / sum(w), exact for the exponential race above (the
    smallest of independent Exp(w_j) keys is item i's with probability w_i / sum w). Logged as the known
    propensity for off-policy evaluation of the top slot."""
    weights = _weights(scores, temperature).astype(np.float64)
    return weights / weights.sum()


def _weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    # float32 because the race draws float32 keys; the propensities use these same rounded weights.
    return np.exp((scores - scores.max()) / temperature).astype(np.float32)

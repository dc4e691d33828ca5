"""Off-policy evaluation: a new policy's click-through rate estimated from what the logged policy showed.

Each logged decision carries its reward r (clicked or not), the logging policy's probability mu of the action it
took (the propensity) and the target policy's probability pi of that same action. With importance weights
w = pi / mu:

- IPS (inverse propensity scoring; Horvitz and Thompson 1952): mean(w * r). Unbiased whenever mu > 0 wherever
  pi > 0; its variance grows with the weights.
- SNIPS (self-normalised IPS; Swaminathan and Joachims 2015): sum(w * r) / sum(w). Slightly biased (O(1/n)), but
  invariant to adding a constant to the rewards and usually far less variable; its standard error is the
  delta-method one, sqrt(sum(w^2 (r - V)^2)) / sum(w).
- Replay by rejection sampling (Li et al. 2011, generalised to any logging policy): keep each decision with
  probability w / M, where M bounds pi / mu over every context and action; the kept decisions are distributed
  as if the target policy had chosen them, so their mean reward estimates its value. With uniform logging and a
  deterministic target this is the classic "keep the events where the logged action matches".

Intervals are normal (Wald) intervals, like the rest of `ml.experiments`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

Array = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class OffPolicyEstimate:
    """An estimated policy value with its standard error and interval.

    effective_sample_size: (sum w)^2 / sum w^2 for IPS/SNIPS (how many on-policy decisions the weighted log is
        worth), or the number of kept decisions for replay.
    """

    estimator: str
    value: float
    se: float
    ci: tuple[float, float]
    n: int
    effective_sample_size: float

    def covers(self, truth: float) -> bool:
        return self.ci[0] <= truth <= self.ci[1]

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def importance_weights(logging_propensity: Array, target_propensity: Array) -> np.ndarray:
    """w = pi / mu per logged decision, after checking the propensities make sense."""
    mu = np.asarray(logging_propensity, dtype=np.float64)
    pi = np.asarray(target_propensity, dtype=np.float64)
    if mu.ndim != 1 or mu.shape != pi.shape:
        raise ValueError(f"need one logging and one target propensity per decision, got {mu.shape} and {pi.shape}")
    if len(mu) < 2:
        raise ValueError(f"need at least 2 logged decisions, got {len(mu)}")
    bad = np.flatnonzero(~((mu > 0) & (mu <= 1)))
    if len(bad):
        raise ValueError(
            f"decision {int(bad[0])}: logging propensity must be in (0, 1], got {float(mu[bad[0]])!r}; a logged action "
            "always had a positive probability (a zero means the propensity was logged wrongly)"
        )
    bad = np.flatnonzero(~((pi >= 0) & (pi <= 1)))
    if len(bad):
        raise ValueError(f"decision {int(bad[0])}: target propensity must be in [0, 1], got {float(pi[bad[0]])!r}")
    return pi / mu


def ips(rewards: Array, logging_propensity: Array, target_propensity: Array, alpha: float = 0.05) -> OffPolicyEstimate:
    """Inverse propensity scoring: mean(w * r), standard error from the sample variance of w * r."""
    r, w = _rewards(rewards), importance_weights(logging_propensity, target_propensity)
    _same_length(r, w)
    terms = w * r
    value = float(terms.mean())
    se = float(terms.std(ddof=1) / math.sqrt(len(r)))
    return OffPolicyEstimate("ips", value, se, _interval(value, se, alpha), len(r), _ess(w))


def snips(
    rewards: Array, logging_propensity: Array, target_propensity: Array, alpha: float = 0.05
) -> OffPolicyEstimate:
    """Self-normalised IPS: sum(w * r) / sum(w), with the delta-method standard error."""
    r, w = _rewards(rewards), importance_weights(logging_propensity, target_propensity)
    _same_length(r, w)
    total = float(w.sum())
    if total <= 0:
        raise ValueError("the target policy gives probability 0 to every logged action: nothing to estimate from")
    value = float((w * r).sum() / total)
    se = float(math.sqrt(float((w**2 * (r - value) ** 2).sum())) / total)
    return OffPolicyEstimate("snips", value, se, _interval(value, se, alpha), len(r), _ess(w))


def replay(
    rewards: Array,
    logging_propensity: Array,
    target_propensity: Array,
    max_ratio: float,
    rng: np.random.Generator | int | None = 0,
    alpha: float = 0.05,
    min_kept: int = 30,
) -> OffPolicyEstimate:
    """Rejection-sampling replay: keep decision i with probability w_i / max_ratio, average the kept rewards.

    Args:
        max_ratio: M >= pi(a|x) / mu(a|x) for every context x and every action a, not only the logged ones
            (a smaller M biases the estimate). On average n / M decisions are kept.
        min_kept: Fewer kept decisions than this raise an error: a normal interval on a handful of clicks is
            meaningless (it can even have zero width).
    """
    r, w = _rewards(rewards), importance_weights(logging_propensity, target_propensity)
    _same_length(r, w)
    if not max_ratio > 0:
        raise ValueError(f"max_ratio must be positive, got {max_ratio}")
    if w.max() > max_ratio * (1 + 1e-12):
        raise ValueError(
            f"a logged decision has pi / mu = {w.max():.6g} > max_ratio = {max_ratio:.6g}: max_ratio must bound "
            "the ratio over all contexts and actions"
        )
    kept = np.random.default_rng(rng).random(len(r)) < w / max_ratio
    k = int(kept.sum())
    if k < max(min_kept, 2):
        raise ValueError(
            f"replay kept {k} of {len(r)} decisions (fewer than {max(min_kept, 2)}): too few to estimate; log more, "
            "or use snips"
        )
    value = float(r[kept].mean())
    se = float(r[kept].std(ddof=1) / math.sqrt(k))
    return OffPolicyEstimate("replay", value, se, _interval(value, se, alpha), len(r), float(k))


def _rewards(rewards: Array) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or not np.all(np.isfinite(r)):
        raise ValueError("rewards must be a one-dimensional array of finite numbers (e.g. clicked = 1, else 0)")
    return r


def _same_length(r: np.ndarray, w: np.ndarray) -> None:
    if len(r) != len(w):
        raise ValueError(f"need one reward per logged decision: {len(r)} rewards, {len(w)} propensities")


def _interval(value: float, se: float, alpha: float) -> tuple[float, float]:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    z = float(stats.norm.ppf(1 - alpha / 2))
    return value - z * se, value + z * se


def _ess(w: np.ndarray) -> float:
    squares = float((w**2).sum())
    return float(w.sum()) ** 2 / squares if squares > 0 else 0.0

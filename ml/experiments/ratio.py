"""Ratio metrics (e.g. CTR = clicks / impressions, per unit randomized): delta-method variance.

The unit of randomization is the user, not the impression, so impressions of one user are correlated and a
binomial variance over impressions would be too small. The delta method on per-user sums gives the right one
(Deng et al. 2018, "Applying the Delta Method in Metric Analytics").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class RatioStats:
    """Per-unit sums of numerator and denominator in one variant: n, their sums, squares and cross-product."""

    n: int
    sum_num: float
    sum_num2: float
    sum_den: float
    sum_den2: float
    sum_num_den: float

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"need at least 2 units, got n={self.n}")
        if self.sum_den <= 0:
            raise ValueError("the denominator sums to 0: the ratio is undefined")

    @property
    def ratio(self) -> float:
        return self.sum_num / self.sum_den

    @property
    def variance_of_ratio(self) -> float:
        """Delta-method variance of sum_num / sum_den."""
        n = self.n
        mu_n, mu_d = self.sum_num / n, self.sum_den / n
        var_n = (self.sum_num2 - n * mu_n**2) / (n - 1)
        var_d = (self.sum_den2 - n * mu_d**2) / (n - 1)
        cov = (self.sum_num_den - n * mu_n * mu_d) / (n - 1)
        return max((var_n / mu_d**2 - 2 * mu_n * cov / mu_d**3 + mu_n**2 * var_d / mu_d**4) / n, 0.0)


@dataclass(frozen=True)
class RatioComparison:
    control_ratio: float
    treatment_ratio: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_p: float
    relative: float
    relative_ci: tuple[float, float]
    relative_p: float


def compare_ratios(control: RatioStats, treatment: RatioStats, alpha: float = 0.05) -> RatioComparison:
    """Treatment against control for a ratio metric, absolute and relative, with normal intervals."""
    r_c, r_t = control.ratio, treatment.ratio
    v_c, v_t = control.variance_of_ratio, treatment.variance_of_ratio
    z = float(stats.norm.ppf(1 - alpha / 2))
    diff, se = r_t - r_c, math.sqrt(v_c + v_t)
    if se == 0:
        raise ValueError("both ratios have zero variance")
    if r_c == 0:
        raise ValueError("the control ratio is 0: a relative lift is undefined")
    rel = r_t / r_c - 1
    rel_se = math.sqrt(v_t / r_c**2 + r_t**2 * v_c / r_c**4)

    def p_of(estimate: float, std: float) -> float:
        return float(2 * stats.norm.sf(abs(estimate / std))) if std > 0 else float(estimate == 0)

    return RatioComparison(
        control_ratio=r_c,
        treatment_ratio=r_t,
        absolute=diff,
        absolute_ci=(diff - z * se, diff + z * se),
        absolute_p=p_of(diff, se),
        relative=rel,
        relative_ci=(rel - z * rel_se, rel + z * rel_se),
        relative_p=p_of(rel, rel_se),
    )

"""Ratio metrics (e.g. CTR = clicks / impressions, per unit randomized): delta-method variance.

The unit of randomization is the user, not the impression, so impressions of one user are correlated and a
binomial variance over impressions would be too small. The delta method on per-user sums gives the right one
(Deng et al. 2018, "Applying the Delta Method in Metric Analytics").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from ml.experiments.frequentist import Comparison, relative_lift, two_sided_p


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


def compare_ratios(control: RatioStats, treatment: RatioStats, alpha: float = 0.05) -> Comparison:
    """Treatment against control for a ratio metric, absolute and relative, with normal intervals."""
    r_c, r_t = control.ratio, treatment.ratio
    v_c, v_t = control.variance_of_ratio, treatment.variance_of_ratio
    diff, se = r_t - r_c, math.sqrt(v_c + v_t)
    if se == 0:
        raise ValueError("both ratios have zero variance")
    z = float(stats.norm.ppf(1 - alpha / 2))
    rel, rel_ci, rel_p = relative_lift(r_c, r_t, v_c, v_t, alpha, what="ratio")
    return Comparison(
        control_value=r_c,
        treatment_value=r_t,
        absolute=diff,
        absolute_ci=(diff - z * se, diff + z * se),
        absolute_p=two_sided_p(diff, se),
        relative=rel,
        relative_ci=rel_ci,
        relative_p=rel_p,
    )

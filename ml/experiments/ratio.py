"""Ratio metrics (e.g. CTR = clicks / impressions, per unit randomized): delta-method variance.

The unit of randomization is the user, not the impression, so impressions of one user are correlated and a
binomial variance over impressions would be too small. The delta method on per-user sums gives the right one
(Deng et al. 2018, "Applying the Delta Method in Metric Analytics").
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.experiments.frequentist import Comparison
from ml.experiments.moments import Moments, compare_moments


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

    def moments(self) -> Moments:
        """As a ratio metric without covariate in the general form."""
        return Moments.from_row(
            {"n": self.n, "sum": self.sum_num, "sum_squares": self.sum_num2, "denominator_sum": self.sum_den,
             "denominator_sum_squares": self.sum_den2, "main_denominator_sum_product": self.sum_num_den}
        )  # fmt: skip


def compare_ratios(control: RatioStats, treatment: RatioStats, alpha: float = 0.05) -> Comparison:
    """Treatment against control for a ratio metric, absolute and relative, with normal intervals."""
    return compare_moments(control.moments(), treatment.moments(), alpha).comparison

"""CUPED: use each unit's pre-exposure value of the metric to cut the variance of the comparison.

Regression adjustment with one slope (theta) pooled across variants from within-variant co-moments, which makes
the adjusted difference equal to the treatment coefficient of OLS y ~ treatment + (x - mean x) (Deng et al.
2013, "Improving the sensitivity of online controlled experiments by utilizing pre-experiment data").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class PairedStats:
    """Sufficient statistics of a metric y and its pre-period covariate x in one variant."""

    n: int
    sum_x: float
    sum_x2: float
    sum_y: float
    sum_y2: float
    sum_xy: float

    def __post_init__(self) -> None:
        if self.n < 3:
            raise ValueError(f"need at least 3 units for a regression adjustment, got n={self.n}")

    def comoments(self) -> tuple[float, float, float]:
        """Centered sums of squares and cross-products: (Sxx, Syy, Sxy)."""
        sxx = self.sum_x2 - self.sum_x**2 / self.n
        syy = self.sum_y2 - self.sum_y**2 / self.n
        sxy = self.sum_xy - self.sum_x * self.sum_y / self.n
        return sxx, syy, sxy


@dataclass(frozen=True)
class CupedResult:
    theta: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_p: float
    variance_reduction: float  # 1 - Var(adjusted difference) / Var(raw difference)


def cuped_compare(control: PairedStats, treatment: PairedStats, alpha: float = 0.05) -> CupedResult:
    """Difference of CUPED-adjusted means (treatment - control) with a normal interval."""
    c_xx, c_yy, c_xy = control.comoments()
    t_xx, t_yy, t_xy = treatment.comoments()
    if c_xx + t_xx <= 0:
        raise ValueError("the pre-period covariate is constant: CUPED has nothing to adjust with")
    theta = (c_xy + t_xy) / (c_xx + t_xx)
    n_c, n_t = control.n, treatment.n
    mean_x_all = (control.sum_x + treatment.sum_x) / (n_c + n_t)
    adj_c = control.sum_y / n_c - theta * (control.sum_x / n_c - mean_x_all)
    adj_t = treatment.sum_y / n_t - theta * (treatment.sum_x / n_t - mean_x_all)
    diff = adj_t - adj_c
    # Residual variance within each variant around the pooled slope.
    var_c = (c_yy - 2 * theta * c_xy + theta**2 * c_xx) / (n_c - 1)
    var_t = (t_yy - 2 * theta * t_xy + theta**2 * t_xx) / (n_t - 1)
    se = math.sqrt(var_c / n_c + var_t / n_t)
    raw_se2 = c_yy / (n_c - 1) / n_c + t_yy / (n_t - 1) / n_t
    z = float(stats.norm.ppf(1 - alpha / 2))
    p = float(2 * stats.norm.sf(abs(diff / se))) if se > 0 else 0.0
    return CupedResult(
        theta=theta,
        absolute=diff,
        absolute_ci=(diff - z * se, diff + z * se),
        absolute_p=p,
        variance_reduction=1 - se**2 / raw_se2 if raw_se2 > 0 else 0.0,
    )

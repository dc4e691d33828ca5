"""CUPED: use each unit's pre-exposure value of the metric to cut the variance of the comparison.

Regression adjustment with one slope (theta) pooled across variants from within-variant co-moments, which makes
the adjusted difference equal to the treatment coefficient of OLS y ~ treatment + (x - mean x) (Deng et al.
2013, "Improving the sensitivity of online controlled experiments by utilizing pre-experiment data").
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.experiments.moments import Moments, compare_moments


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

    def moments(self) -> Moments:
        """As a mean metric (y) with its covariate (x) in the general form."""
        return Moments.from_row(
            {"n": self.n, "sum": self.sum_y, "sum_squares": self.sum_y2, "covariate_sum": self.sum_x,
             "covariate_sum_squares": self.sum_x2, "main_covariate_sum_product": self.sum_xy}
        )  # fmt: skip


@dataclass(frozen=True)
class CupedResult:
    theta: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_p: float
    variance_reduction: float  # 1 - Var(adjusted difference) / Var(raw difference)


def cuped_compare(control: PairedStats, treatment: PairedStats, alpha: float = 0.05) -> CupedResult:
    """Difference of CUPED-adjusted means (treatment - control) with a normal interval."""
    if sum(s.comoments()[0] for s in (control, treatment)) <= 0:
        raise ValueError("the pre-period covariate is constant: CUPED has nothing to adjust with")
    result = compare_moments(control.moments(), treatment.moments(), alpha)
    c = result.comparison
    return CupedResult(
        theta=result.theta,
        absolute=c.absolute,
        absolute_ci=c.absolute_ci,
        absolute_p=c.absolute_p,
        variance_reduction=result.variance_reduction,
    )

"""One estimator for every metric shape: means, proportions, ratios, each with or without CUPED.

A unit contributes up to four values: m (the metric, or a ratio's numerator), d (a ratio's denominator; 1 for a
mean), x and xd (the same over the pre-period: the CUPED covariate). Per variant the warehouse sums them and all
their pairwise products (`fct_experiment_stats`). From those, the metric is the ratio of means R = mean(m)/mean(d)
and the covariate Rx = mean(x)/mean(xd); their variances and covariance follow from the delta method
(Deng et al. 2018, "Applying the Delta Method in Metric Analytics"), which reduces to the plain Var(m)/n for a mean.

CUPED (Deng et al. 2013) subtracts theta * (Rx - pooled Rx) in each variant, with one theta pooled from both
variants' within-variant co-moments. For means this is exactly the treatment coefficient of OLS
y ~ treatment + (x - mean x); for ratios it is the ratio extension GrowthBook and Statsig describe, with the
linearized unit values (m - R d) / mean(d) in place of y.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ml.experiments.frequentist import (
    Comparison,
    build_comparison,
    is_degenerate,
    null_unit_variance,
    two_sided_p,
)

# Positions of the four per-unit values in the moment vectors.
M, D, X, XD = 0, 1, 2, 3

# Stats-table column of each pairwise product (see dbt_project/macros/experiment_stats.sql).
PRODUCT_COLUMNS: dict[tuple[int, int], str] = {
    (M, M): "sum_squares",
    (D, D): "denominator_sum_squares",
    (M, D): "main_denominator_sum_product",
    (X, X): "covariate_sum_squares",
    (M, X): "main_covariate_sum_product",
    (XD, XD): "covariate_denominator_sum_squares",
    (X, XD): "covariate_covariate_denominator_sum_product",
    (M, XD): "main_covariate_denominator_sum_product",
    (D, X): "denominator_covariate_sum_product",
    (D, XD): "denominator_covariate_denominator_sum_product",
}
SUM_COLUMNS = ("sum", "denominator_sum", "covariate_sum", "covariate_denominator_sum")


@dataclass(frozen=True)
class Moments:
    """Sums of a metric's four per-unit values and of their pairwise products, in one variant.

    Missing values follow the metric's shape: a mean has d = 1 for every unit (so sum d = n, sum m*d = sum m);
    without a covariate, x = 0 and xd = 1 (no adjustment is possible).
    """

    n: int
    sums: tuple[float, float, float, float]
    products: tuple[tuple[float, ...], ...]  # symmetric 4 x 4
    has_covariate: bool

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"need at least 2 units to estimate a variance, got n={self.n}")

    @classmethod
    def from_row(cls, row: Mapping[str, object], use_covariate: bool = True) -> Moments:
        """Moments from one row of the stats table (or a CSV with the same columns; absent ones may be None)."""
        n = int(_number(row.get("n"), "n"))
        value = {name: _optional(row.get(name), name) for name in (*SUM_COLUMNS, *PRODUCT_COLUMNS.values())}
        if value["sum"] is None or value["sum_squares"] is None:
            raise ValueError("sum and sum_squares are required")
        is_ratio = value["denominator_sum"] is not None
        has_cov = use_covariate and value["covariate_sum"] is not None and value["covariate_sum_squares"] is not None
        sums = np.zeros(4)
        prods = np.zeros((4, 4))
        sums[M] = value["sum"]
        sums[D] = value["denominator_sum"] if is_ratio else n
        sums[X] = value["covariate_sum"] if has_cov else 0.0
        cov_is_ratio = has_cov and is_ratio and value["covariate_denominator_sum"] is not None
        sums[XD] = value["covariate_denominator_sum"] if cov_is_ratio else n
        ones = ({D} if not is_ratio else set()) | ({XD} if not cov_is_ratio else set())
        zeros = {X} if not has_cov else set()
        for (i, j), column in PRODUCT_COLUMNS.items():
            stored = value[column] if not (zeros & {i, j}) else 0.0
            if stored is None:
                stored = _implied_product(n, i, j, sums, ones, zeros, column)
            prods[i, j] = prods[j, i] = stored
        return cls(
            n=n,
            sums=(float(sums[0]), float(sums[1]), float(sums[2]), float(sums[3])),
            products=tuple(tuple(float(v) for v in r) for r in prods),
            has_covariate=has_cov,
        )

    @property
    def means(self) -> np.ndarray:
        return np.asarray(self.sums) / self.n

    @property
    def covariance(self) -> np.ndarray:
        """Sample covariance matrix (n - 1) of the four per-unit values."""
        s = np.asarray(self.sums)
        return (np.asarray(self.products) - np.outer(s, s) / self.n) / (self.n - 1)

    def _gradients(self) -> tuple[np.ndarray, np.ndarray]:
        mu = self.means
        if mu[D] == 0:
            raise ValueError("the denominator sums to 0: the ratio is undefined")
        g_metric = np.array([1 / mu[D], -mu[M] / mu[D] ** 2, 0.0, 0.0])
        g_cov = np.zeros(4)
        if self.has_covariate and mu[XD] != 0:
            g_cov = np.array([0.0, 0.0, 1 / mu[XD], -mu[X] / mu[XD] ** 2])
        return g_metric, g_cov

    @property
    def value(self) -> float:
        """The metric: mean(m) / mean(d)."""
        mu = self.means
        return float(mu[M] / mu[D])

    @property
    def covariate_value(self) -> float:
        mu = self.means
        return float(mu[X] / mu[XD]) if self.has_covariate and mu[XD] != 0 else 0.0

    def unit_comoments(self) -> tuple[float, float, float]:
        """Per-unit variance of the linearized metric, of the linearized covariate, and their covariance."""
        g_m, g_x = self._gradients()
        cov = self.covariance
        return float(g_m @ cov @ g_m), float(g_x @ cov @ g_x), float(g_m @ cov @ g_x)


@dataclass(frozen=True)
class AdjustedComparison:
    """A comparison plus what CUPED did: the pooled slope and the share of variance it removed."""

    comparison: Comparison
    theta: float
    variance_reduction: float  # 1 - Var(adjusted difference) / Var(unadjusted difference)
    adjusted: bool
    note: str | None = None  # why CUPED was not applied although both variants carry a covariate


def compare_moments(control: Moments, treatment: Moments, alpha: float = 0.05) -> AdjustedComparison:
    """Treatment against control, CUPED-adjusted when both variants carry a covariate that varies.

    Normal (z) intervals: this path serves ratios and adjusted means, where a t reference has no exact meaning;
    plain means use Welch's t in `compare_means`. An arm whose (adjusted) per-unit variance is 0 gets the pooled
    null variance of both arms (`frequentist`'s module docstring); if CUPED leaves no variance in either arm and
    no difference between them (the metric equals its covariate), the comparison is made without adjustment.

    Raises:
        ValueError: alpha outside (0, 1), a denominator summing to 0, or a metric constant in both variants.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    (c_yy, c_xx, c_xy), (t_yy, t_xx, t_xy) = control.unit_comoments(), treatment.unit_comoments()
    n_c, n_t = control.n, treatment.n
    pooled_xx = (n_c - 1) * c_xx + (n_t - 1) * t_xx
    adjusted = control.has_covariate and treatment.has_covariate and pooled_xx > 0
    theta = ((n_c - 1) * c_xy + (n_t - 1) * t_xy) / pooled_xx if adjusted else 0.0
    note = None
    result = _adjusted(control, treatment, theta, alpha)
    if result is None and adjusted:
        note = "CUPED removed all variance (the metric equals its covariate): compared without adjustment"
        theta, adjusted = 0.0, False
        result = _adjusted(control, treatment, theta, alpha)
    if result is None:
        raise ValueError("every unit in both variants has the same value: the metric is constant")
    comparison, var_adjusted = result
    raw_var = c_yy / n_c + t_yy / n_t
    reduction = 1 - var_adjusted / raw_var if raw_var > 0 else 0.0
    return AdjustedComparison(comparison, theta, reduction, adjusted, note)


def _adjusted(control: Moments, treatment: Moments, theta: float, alpha: float) -> tuple[Comparison, float] | None:
    """The comparison with slope `theta` (0: unadjusted) and the variance of its difference as the arms' own
    variances give it; None when no variance is left to test with."""
    (c_yy, c_xx, c_xy), (t_yy, t_xx, t_xy) = control.unit_comoments(), treatment.unit_comoments()
    n_c, n_t = control.n, treatment.n
    # Centring on the pooled covariate keeps each variant's adjusted value on the metric's own scale.
    pooled_x = (n_c * control.covariate_value + n_t * treatment.covariate_value) / (n_c + n_t)
    value_c = control.value - theta * (control.covariate_value - pooled_x)
    value_t = treatment.value - theta * (treatment.covariate_value - pooled_x)
    unit_c = max(c_yy - 2 * theta * c_xy + theta**2 * c_xx, 0.0)
    unit_t = max(t_yy - 2 * theta * t_xy + theta**2 * t_xx, 0.0)
    own = unit_c / n_c + unit_t / n_t
    scale = max(c_yy, t_yy, value_c**2, value_t**2)
    pooled = is_degenerate(unit_c, scale) or is_degenerate(unit_t, scale)
    if pooled:
        # Ratios: the linearized values are centred on each arm's own ratio, so the between-arm term uses the
        # difference of the ratios (first order, like the delta method itself).
        unit_c = unit_t = null_unit_variance(n_c, value_c, unit_c, n_t, value_t, unit_t)
        if is_degenerate(unit_c, scale):
            return None
    var_c, var_t = unit_c / n_c, unit_t / n_t
    se = math.sqrt(var_c + var_t)
    p = two_sided_p(value_t - value_c, se)
    return build_comparison(value_c, value_t, var_c, var_t, se, p, None, pooled, alpha), own


def _number(value: object, name: str) -> float:
    number = _optional(value, name)
    if number is None:
        raise ValueError(f"{name} is required")
    return number


def _optional(value: object, name: str) -> float | None:
    """A float, or None for an absent/empty/NaN cell; anything else that is not a number is an error."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    return None if math.isnan(number) else number


def _implied_product(n: int, i: int, j: int, sums: np.ndarray, ones: set[int], zeros: set[int], column: str) -> float:
    """A product the table may leave out because it follows from the metric's shape (d = 1, xd = 1, x = 0)."""
    if i in zeros or j in zeros:
        return 0.0
    if i in ones and j in ones:
        return float(n)
    if i in ones or j in ones:
        return float(sums[j] if i in ones else sums[i])
    raise ValueError(f"{column} is required for this metric (a ratio or a covariate is given)")

"""Fixed-horizon comparison of two variants: absolute difference and relative lift (delta method).

Three edge rules hold for every metric shape (means, proportions, ratios, CUPED-adjusted; `moments.py` uses the
same helpers):

- **Degenerate arms.** An arm whose per-unit values have no variance (0 successes, all successes, one unique
  value, or CUPED removing all of it) would give the Wald/Welch standard error of that arm as 0 and an interval of
  zero width. Then both arms use the variance of the pooled sample around its common mean instead: the variance
  under the null hypothesis of no difference, i.e. the score test. For a 0/1 metric it is exactly the pooled
  two-proportion z-test (Pearson's chi-square on the 2 x 2 table without continuity correction), the standard
  remedy for the Wald interval's collapse at 0 or n successes (Agresti, "Categorical Data Analysis", 3rd ed.,
  2013, ch. 3; Newcombe 1998, "Interval estimation for the difference between independent proportions").
- **Relative lift** is reported only where it means something: the control's value is positive and
  distinguishable from 0 (|control| / se(control) > z_(1 - alpha/2)), Fieller's condition for a bounded
  confidence set of a ratio (Fieller 1954, "Some problems in interval estimation", JRSS B 16). Otherwise the
  relative fields are None and `relative_note` says why; the absolute result stands.
- The absolute effect's p-value and interval come from one test statistic (`interval(alpha)` at any level), so
  "p < a" and "the (1 - a) interval excludes 0" never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from ml.experiments.stats import MeanStats

# A per-unit variance below this share of the metric's scale (its squared level or the arms' raw variance) is
# rounding noise on a variance that is really 0.
DEGENERATE_TOLERANCE = 1e-10


@dataclass(frozen=True)
class RelativeLift:
    """treatment / control - 1 with its delta-method interval, p-value and standard error."""

    estimate: float
    ci: tuple[float, float]
    p_value: float
    se: float


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric (a mean, a proportion or a ratio).

    absolute: difference of the metric's values (treatment - control), with its interval and p-value from one
        statistic: Welch's t with `df` degrees of freedom, or normal when `df` is None.
    relative: treatment / control - 1 with a delta-method (normal) interval and p-value; None (all four relative
        fields) when the control's value is not positive and distinguishable from 0, `relative_note` says why.
    pooled_variance: the null (pooled) variance replaced a degenerate arm's zero variance (module docstring).
    """

    control_value: float
    treatment_value: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_p: float
    absolute_se: float
    relative: float | None
    relative_ci: tuple[float, float] | None
    relative_p: float | None
    relative_se: float | None
    df: float | None = None
    pooled_variance: bool = False
    relative_note: str | None = None

    def critical_value(self, alpha: float) -> float:
        """The two-sided (1 - alpha) quantile of the absolute effect's reference distribution."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        return critical_value(alpha, self.df)

    def interval(self, alpha: float) -> tuple[float, float]:
        """The absolute effect's (1 - alpha) interval; it excludes 0 exactly when absolute_p < alpha."""
        half = self.critical_value(alpha) * self.absolute_se
        return self.absolute - half, self.absolute + half


def critical_value(alpha: float, df: float | None = None) -> float:
    """The two-sided (1 - alpha) quantile of the normal (df None) or Student's t distribution.

    scipy.special's functions are the ones scipy.stats.norm / t call, without their per-call overhead (the
    results table makes tens of thousands of these calls for a daily history).
    """
    if df is None:
        return float(special.ndtri(1 - alpha / 2))
    return float(special.stdtrit(df, 1 - alpha / 2))


def two_sided_p(estimate: float, se: float) -> float:
    """Normal two-sided p-value; a zero standard error means certainty either way."""
    if se > 0:
        return float(2 * special.ndtr(-abs(estimate / se)))
    return 1.0 if estimate == 0 else 0.0


def relative_lift(
    control: float, treatment: float, var_control: float, var_treatment: float, alpha: float
) -> RelativeLift | str:
    """treatment / control - 1 with its delta-method interval, p-value and standard error, from the two
    estimates and their variances (independent arms): Var(r) = v_t / c^2 + t^2 v_c / c^4.

    Returns the reason instead when the lift has no meaning: a control value of 0 or below (a ratio to a
    negative number flips signs), or one that its own interval does not separate from 0 (Fieller's condition:
    the ratio's confidence set is then unbounded, and the delta method's interval is not an approximation of it).
    """
    z = critical_value(alpha)
    if control == 0:
        return "the control's value is 0: a relative lift is undefined; read the absolute effect"
    if control < 0:
        return (
            f"the control's value is negative ({control:.4g}): a ratio to it would flip signs; read the absolute effect"
        )
    if control**2 <= z**2 * var_control:
        return (
            f"the control's value ({control:.4g}) is within {z:.2f} standard errors of 0: the relative lift's "
            "interval would be unbounded (Fieller); read the absolute effect"
        )
    rel = treatment / control - 1
    se = math.sqrt(var_treatment / control**2 + treatment**2 * var_control / control**4)
    return RelativeLift(rel, (rel - z * se, rel + z * se), two_sided_p(rel, se), se)


def is_degenerate(unit_variance: float, scale: float) -> bool:
    """True when a per-unit variance is 0 up to rounding, relative to the metric's `scale` (a variance)."""
    return unit_variance <= DEGENERATE_TOLERANCE * scale


def null_unit_variance(n_c: int, mean_c: float, var_c: float, n_t: int, mean_t: float, var_t: float) -> float:
    """Per-unit variance of both arms pooled around their common mean (divisor n_c + n_t): the variance under
    the null hypothesis. From the within-arm sample variances (divisor n - 1) and the means:
    ((n_c - 1) v_c + (n_t - 1) v_t + n_c n_t / N (mean_t - mean_c)^2) / N. For 0/1 data it is p(1 - p) of
    the pooled proportion p."""
    total = n_c + n_t
    between = n_c * n_t / total * (mean_t - mean_c) ** 2
    return ((n_c - 1) * var_c + (n_t - 1) * var_t + between) / total


def compare_means(control: MeanStats, treatment: MeanStats, alpha: float = 0.05) -> Comparison:
    """Compare two variants from their sufficient statistics.

    The absolute difference uses Welch's t with Welch-Satterthwaite degrees of freedom (unequal variances, as
    arms of an experiment often have); when an arm has no variance, the pooled (score) z-test of the module
    docstring. The relative lift uses the delta method for a ratio of independent means, the approach of
    GrowthBook's and Eppo's engines.

    Raises:
        ValueError: alpha outside (0, 1), or every unit of both arms has the same value (nothing to test).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m_c, m_t = control.mean, treatment.mean
    v_c, v_t = control.variance, treatment.variance
    diff = m_t - m_c
    scale = max(v_c, v_t, m_c**2, m_t**2)
    pooled = is_degenerate(v_c, scale) or is_degenerate(v_t, scale)
    if pooled:
        v0 = null_unit_variance(control.n, m_c, v_c, treatment.n, m_t, v_t)
        if v0 <= 0:
            raise ValueError("every unit in both variants has the same value: the metric is constant")
        a_c, a_t = v0 / control.n, v0 / treatment.n
        se, df = math.sqrt(a_c + a_t), None
        p = two_sided_p(diff, se)
    else:
        a_c, a_t = v_c / control.n, v_t / treatment.n
        se = math.sqrt(a_c + a_t)
        df = (a_c + a_t) ** 2 / (a_c**2 / (control.n - 1) + a_t**2 / (treatment.n - 1))
        p = float(2 * special.stdtr(df, -abs(diff / se)))
    return build_comparison(m_c, m_t, a_c, a_t, se, p, df, pooled, alpha)


def build_comparison(
    value_c: float,
    value_t: float,
    var_c: float,
    var_t: float,
    se: float,
    p: float,
    df: float | None,
    pooled: bool,
    alpha: float,
) -> Comparison:
    """A Comparison from the two values, the variances of their estimates and the absolute test."""
    diff = value_t - value_c
    crit = critical_value(alpha, df)
    relative = relative_lift(value_c, value_t, var_c, var_t, alpha)
    rel = relative if isinstance(relative, RelativeLift) else None
    return Comparison(
        control_value=value_c,
        treatment_value=value_t,
        absolute=diff,
        absolute_ci=(diff - crit * se, diff + crit * se),
        absolute_p=p,
        absolute_se=se,
        relative=None if rel is None else rel.estimate,
        relative_ci=None if rel is None else rel.ci,
        relative_p=None if rel is None else rel.p_value,
        relative_se=None if rel is None else rel.se,
        df=df,
        pooled_variance=pooled,
        relative_note=relative if isinstance(relative, str) else None,
    )

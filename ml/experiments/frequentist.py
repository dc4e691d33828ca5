"""Fixed-horizon comparison of two variants: absolute difference and relative lift (delta method)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from ml.experiments.stats import MeanStats


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric (a mean, a proportion or a ratio).

    absolute: difference of the metric's values, with its confidence interval and p-value.
    relative: treatment / control - 1, with a delta-method (normal) interval and p-value.
    """

    control_value: float
    treatment_value: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_p: float
    absolute_se: float
    relative: float
    relative_ci: tuple[float, float]
    relative_p: float
    relative_se: float


def two_sided_p(estimate: float, se: float) -> float:
    """Normal two-sided p-value; a zero standard error means certainty either way."""
    if se > 0:
        return float(2 * stats.norm.sf(abs(estimate / se)))
    return 1.0 if estimate == 0 else 0.0


def relative_lift(
    control: float, treatment: float, var_control: float, var_treatment: float, alpha: float, what: str
) -> tuple[float, tuple[float, float], float, float]:
    """treatment / control - 1 with its delta-method interval, p-value and standard error, from the two
    estimates and their variances (independent arms): Var(r) = v_t / c^2 + t^2 v_c / c^4."""
    if control == 0:
        raise ValueError(f"the control {what} is 0: a relative lift is undefined")
    rel = treatment / control - 1
    se = math.sqrt(var_treatment / control**2 + treatment**2 * var_control / control**4)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return rel, (rel - z * se, rel + z * se), two_sided_p(rel, se), se


def compare_means(control: MeanStats, treatment: MeanStats, alpha: float = 0.05) -> Comparison:
    """Compare two variants from their sufficient statistics.

    The absolute difference uses Welch's t with Welch-Satterthwaite degrees of freedom (unequal variances, as
    arms of an experiment often have). The relative lift uses the delta method for a ratio of independent means,
    the approach of GrowthBook's and Eppo's engines.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m_c, m_t = control.mean, treatment.mean
    a_c, a_t = control.variance / control.n, treatment.variance / treatment.n
    diff = m_t - m_c
    se = math.sqrt(a_c + a_t)
    if se == 0:
        raise ValueError("both variants have zero variance: the metric is constant")
    df = (a_c + a_t) ** 2 / (a_c**2 / (control.n - 1) + a_t**2 / (treatment.n - 1))
    t_crit = float(stats.t.ppf(1 - alpha / 2, df))
    abs_p = float(2 * stats.t.sf(abs(diff / se), df))
    rel, rel_ci, rel_p, rel_se = relative_lift(m_c, m_t, a_c, a_t, alpha, what="mean")
    return Comparison(
        control_value=m_c,
        treatment_value=m_t,
        absolute=diff,
        absolute_ci=(diff - t_crit * se, diff + t_crit * se),
        absolute_p=abs_p,
        absolute_se=se,
        relative=rel,
        relative_ci=rel_ci,
        relative_p=rel_p,
        relative_se=rel_se,
    )

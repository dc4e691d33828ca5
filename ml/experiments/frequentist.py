"""Fixed-horizon comparison of two variants: absolute difference (Welch) and relative lift (delta method)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from ml.experiments.stats import MeanStats


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric.

    absolute: difference of means, with a Welch t confidence interval and p-value.
    relative: treatment mean / control mean - 1, with a delta-method (normal) interval and p-value.
    """

    control_mean: float
    treatment_mean: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_p: float
    relative: float
    relative_ci: tuple[float, float]
    relative_p: float


def compare_means(control: MeanStats, treatment: MeanStats, alpha: float = 0.05) -> Comparison:
    """Compare two variants from their sufficient statistics.

    The absolute difference uses Welch's t with Welch-Satterthwaite degrees of freedom (unequal variances, as
    arms of an experiment often have). The relative lift uses the delta method for a ratio of independent means
    (Var(r) = s_t^2/(n_t m_c^2) + m_t^2 s_c^2/(n_c m_c^4)), the approach of GrowthBook's and Eppo's engines.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m_c, m_t = control.mean, treatment.mean
    a_c, a_t = control.variance / control.n, treatment.variance / treatment.n
    diff = m_t - m_c
    se = math.sqrt(a_c + a_t)
    if se == 0:
        raise ValueError("both variants have zero variance: the metric is constant")
    df = (a_c + a_t) ** 2 / (a_c**2 / (control.n - 1) + a_t**2 / (treatment.n - 1)) if a_c + a_t > 0 else math.inf
    t_crit = float(stats.t.ppf(1 - alpha / 2, df))
    abs_p = float(2 * stats.t.sf(abs(diff / se), df))

    if m_c == 0:
        raise ValueError("the control mean is 0: a relative lift is undefined")
    rel = m_t / m_c - 1
    rel_se = math.sqrt(a_t / m_c**2 + m_t**2 * a_c / m_c**4)
    z_crit = float(stats.norm.ppf(1 - alpha / 2))
    rel_p = float(2 * stats.norm.sf(abs(rel / rel_se))) if rel_se > 0 else (0.0 if rel != 0 else 1.0)
    return Comparison(
        control_mean=m_c,
        treatment_mean=m_t,
        absolute=diff,
        absolute_ci=(diff - t_crit * se, diff + t_crit * se),
        absolute_p=abs_p,
        relative=rel,
        relative_ci=(rel - z_crit * rel_se, rel + z_crit * rel_se),
        relative_p=rel_p,
    )

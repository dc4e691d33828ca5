"""Novelty check: does the treatment effect change with days since first exposure?

Users often react to anything new, so an effect measured in the first days can fade (novelty) or grow (learning).
Per day k since exposure the warehouse gives that day's sufficient statistics; the effect on each day is an
independent-ish estimate d_k with standard error s_k, and the weighted least-squares slope of d_k on k
(weights 1 / s_k^2) with its z-test says whether the effect trends. A trend against the sign of the overall
effect is flagged as novelty. Units on day k are a subset of those on day k - 1, so the estimates are positively
correlated, and day-to-day differences in who is active add variance the per-day errors do not see: the slope's
standard error is therefore inflated by the residual overdispersion (the usual WLS scale, never below 1). It is
a warning light, not a decision, and only raised when the overall effect is itself significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ml.experiments.frequentist import two_sided_p


@dataclass(frozen=True)
class NoveltyTrend:
    slope: float  # change of the daily effect per day since exposure (the metric's units)
    slope_se: float
    p_value: float
    days: int  # days since exposure that entered the fit

    def fades(self, overall_effect: float, overall_p: float, alpha: float = 0.05) -> bool:
        """True when a significant effect significantly shrinks towards zero (a slope against its sign)."""
        against = overall_effect != 0 and math.copysign(1, self.slope) != math.copysign(1, overall_effect)
        return overall_p < alpha and self.p_value < alpha and against


def effect_trend(days: Sequence[float], effects: Sequence[float], ses: Sequence[float]) -> NoveltyTrend | None:
    """Weighted least-squares slope of daily effects on days since exposure; None with fewer than 3 usable days."""
    points = [(k, d, s) for k, d, s in zip(days, effects, ses, strict=True) if s > 0 and math.isfinite(d)]
    if len(points) < 3:
        return None
    w = [1 / s**2 for _, _, s in points]
    sw = sum(w)
    k_bar = sum(wi * k for wi, (k, _, _) in zip(w, points, strict=True)) / sw
    d_bar = sum(wi * d for wi, (_, d, _) in zip(w, points, strict=True)) / sw
    sxx = sum(wi * (k - k_bar) ** 2 for wi, (k, _, _) in zip(w, points, strict=True))
    if sxx == 0:
        return None
    sxy = sum(wi * (k - k_bar) * (d - d_bar) for wi, (k, d, _) in zip(w, points, strict=True))
    slope = sxy / sxx
    residual = sum(wi * (d - d_bar - slope * (k - k_bar)) ** 2 for wi, (k, d, _) in zip(w, points, strict=True))
    scale = max(1.0, residual / (len(points) - 2))
    se = math.sqrt(scale / sxx)  # Var(slope) = scale / sum w (k - k_bar)^2
    return NoveltyTrend(slope=slope, slope_se=se, p_value=two_sided_p(slope, se), days=len(points))

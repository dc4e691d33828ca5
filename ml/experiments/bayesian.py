"""Bayesian read-out of a difference estimate: chance to beat control and expected loss.

With a flat prior, the posterior of the difference is approximately normal(estimate, se^2), the Gaussian
approximation GrowthBook's engine uses for means and ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special


@dataclass(frozen=True)
class BayesianResult:
    chance_to_win: float  # P(treatment better than control)
    expected_loss_treatment: float  # E[loss] if we ship treatment and it is worse (in the metric's units)
    expected_loss_control: float  # E[loss] if we keep control and treatment is better


def bayesian_readout(estimate: float, se: float) -> BayesianResult:
    """Chance to win and expected losses of a difference (treatment - control) with standard error `se`."""
    if se <= 0:
        raise ValueError(f"se must be positive, got {se}")
    z = estimate / se
    # E[max(0, -D)] and E[max(0, D)] for D ~ N(estimate, se^2).
    # scipy.special.ndtr is the normal cdf scipy.stats.norm calls, without its per-call overhead.
    density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    cdf = float(special.ndtr(z))
    loss_treatment = se * density - estimate * (1 - cdf)
    loss_control = se * density + estimate * cdf
    return BayesianResult(cdf, float(loss_treatment), float(loss_control))

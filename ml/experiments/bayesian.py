"""Bayesian read-out of a difference estimate: chance to beat control and expected loss.

With a flat prior, the posterior of the difference is approximately normal(estimate, se^2), the Gaussian
approximation GrowthBook's engine uses for means and ratios.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy import stats


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
    loss_treatment = se * stats.norm.pdf(z) - estimate * stats.norm.cdf(-z)
    loss_control = se * stats.norm.pdf(z) + estimate * stats.norm.cdf(z)
    return BayesianResult(float(stats.norm.cdf(z)), float(loss_treatment), float(loss_control))

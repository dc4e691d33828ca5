"""Always-valid confidence sequences: intervals that stay valid however often an analyst peeks.

The asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (2021, "Time-uniform
central limit theory and asymptotic confidence sequences"), as used by Eppo and GrowthBook: with n units seen and
the usual standard error `se` of the estimate, the half-width is

    se * sqrt( 2 (n rho^2 + 1) / (n rho^2) * log( sqrt(n rho^2 + 1) / alpha ) ).

The tuning parameter rho sets where the sequence is tightest; choosing it for a planned sample size n* with
rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / n* makes it tightest there (the paper's recommendation).
Before and after n* it is still valid, only a little wider.
"""

from __future__ import annotations

import math


def tuning_rho2(planned_n: int, alpha: float = 0.05) -> float:
    """rho^2 that makes the sequence tightest at `planned_n` units."""
    if planned_n < 1:
        raise ValueError(f"planned_n must be positive, got {planned_n}")
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / planned_n


def confidence_sequence(estimate: float, se: float, n: int, planned_n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Always-valid (1 - alpha) interval for an estimate with standard error `se` after `n` units."""
    if n < 1 or se < 0:
        raise ValueError(f"need n >= 1 and se >= 0, got n={n}, se={se}")
    rho2 = tuning_rho2(planned_n, alpha)
    spread = n * rho2 + 1
    half = se * math.sqrt(2 * spread / (n * rho2) * math.log(math.sqrt(spread) / alpha))
    return estimate - half, estimate + half

"""Always-valid confidence sequences: intervals that stay valid however often an analyst peeks.

The asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (2021, "Time-uniform
central limit theory and asymptotic confidence sequences"), as used by Eppo and GrowthBook: with n units seen and
the usual standard error `se` of the estimate, the half-width at level alpha is

    se * sqrt( 2 (n rho^2 + 1) / (n rho^2) * log( sqrt(n rho^2 + 1) / alpha ) ).

The tuning parameter rho sets where the sequence is tightest; choosing it for a planned sample size n* with
rho^2 = (-2 log a + log(-2 log a + 1)) / n* makes it tightest there for level a (the paper's recommendation).
Before and after n* it is still valid, only a little wider. rho must stay fixed while the data grow; it may be
tuned for one level (`tuning_alpha`) and the sequence read at another, which keeps the intervals of different
levels nested, so the always-valid p-value below is the smallest level at which the sequence excludes 0.

The always-valid p-value inverts the sequence (Johari, Koomen, Pekelis and Walsh 2022, "Always valid inference:
continuous monitoring of A/B tests", Operations Research 70(3)): solving half-width(p) = |estimate| gives

    p = min(1, sqrt(n rho^2 + 1) * exp(-z^2 n rho^2 / (2 (n rho^2 + 1)))),  z = estimate / se,

and P(p_t <= a for some t) <= a under the null, so it may be read (and multiplicity-corrected) at every look.
"""

from __future__ import annotations

import math


def tuning_rho2(planned_n: int, alpha: float = 0.05) -> float:
    """rho^2 that makes the sequence tightest at `planned_n` units for level `alpha`."""
    if planned_n < 1:
        raise ValueError(f"planned_n must be positive, got {planned_n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / planned_n


def confidence_sequence(
    estimate: float, se: float, n: int, planned_n: int, alpha: float = 0.05, tuning_alpha: float | None = None
) -> tuple[float, float]:
    """Always-valid (1 - alpha) interval for an estimate with standard error `se` after `n` units.

    Args:
        estimate, se: the estimate and its usual (fixed-horizon) standard error at this look.
        n: units seen so far (both arms).
        planned_n: units (both arms) where the sequence should be tightest.
        alpha: level of this interval.
        tuning_alpha: level rho is tuned for (default: alpha); keep it fixed across looks and levels.
    """
    if n < 1 or se < 0:
        raise ValueError(f"need n >= 1 and se >= 0, got n={n}, se={se}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rho2 = tuning_rho2(planned_n, alpha if tuning_alpha is None else tuning_alpha)
    spread = n * rho2 + 1
    half = se * math.sqrt(2 * spread / (n * rho2) * math.log(math.sqrt(spread) / alpha))
    return estimate - half, estimate + half


def always_valid_p(estimate: float, se: float, n: int, planned_n: int, tuning_alpha: float) -> float:
    """The smallest alpha at which `confidence_sequence(..., tuning_alpha=tuning_alpha)` excludes 0.

    A zero standard error gives 0 (certainty) unless the estimate is 0 too; callers keep degenerate standard
    errors out (see `frequentist`).
    """
    if n < 1 or se < 0:
        raise ValueError(f"need n >= 1 and se >= 0, got n={n}, se={se}")
    if se == 0:
        return 1.0 if estimate == 0 else 0.0
    nr2 = n * tuning_rho2(planned_n, tuning_alpha)
    spread = nr2 + 1
    z2 = (estimate / se) ** 2
    return min(1.0, math.sqrt(spread) * math.exp(-z2 * nr2 / (2 * spread)))

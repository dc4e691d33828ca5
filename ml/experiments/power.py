"""Planning: units per variant for a minimum detectable effect on a conversion rate, and the reverse.

Uses statsmodels' power classes (NormalIndPower with Cohen's h, the arcsine-transformed difference of two
proportions), two-sided. With several comparisons (treatment variants x metrics) each is sized at the
Bonferroni level alpha / comparisons: that is the level Holm's procedure tests the smallest p-value at, and Holm
rejects everything Bonferroni does, so every comparison keeps at least the requested power under the Holm
correction `analyze` applies (Holm 1979). The caller passes the alpha of the read being planned (the decision
rule keeps part of alpha for interim looks: `ml.experiments.decision.alpha_budget`).
"""

from __future__ import annotations

import math

from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize


def _target(baseline: float, mde: float, relative: bool) -> float:
    _check_baseline(baseline)
    if mde <= 0:
        raise ValueError(f"mde must be positive, got {mde}")
    target = baseline * (1 + mde) if relative else baseline + mde
    if not 0 < target < 1:
        raise ValueError(f"baseline {baseline} plus the effect {mde} leaves (0, 1): choose a smaller --mde")
    return target


def _check_baseline(baseline: float) -> None:
    if not 0 < baseline < 1:
        raise ValueError(f"baseline must be a rate in (0, 1), got {baseline}")


def _check_levels(alpha: float, power: float, comparisons: int) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if comparisons < 1:
        raise ValueError(f"comparisons must be at least 1, got {comparisons}")


def sample_size_per_variant(
    baseline: float, mde: float, relative: bool = False, alpha: float = 0.05, power: float = 0.8, comparisons: int = 1
) -> int:
    """Units each equal variant needs to detect `mde` (absolute, or relative to the baseline) with `power` in
    each of `comparisons` two-sided tests corrected by Holm at family-wise level `alpha`.

    Raises:
        ValueError: a baseline outside (0, 1), a non-positive mde, a target rate outside (0, 1), or alpha/power
            outside (0, 1).
    """
    _check_levels(alpha, power, comparisons)
    effect = proportion_effectsize(_target(baseline, mde, relative), baseline)
    n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha / comparisons, power=power, ratio=1.0)
    return math.ceil(float(n))


def minimum_detectable_effect(
    baseline: float, n_per_variant: int, alpha: float = 0.05, power: float = 0.8, comparisons: int = 1
) -> float:
    """Smallest absolute increase of `baseline` detectable with `n_per_variant` units in each variant, with
    `power` in each of `comparisons` Holm-corrected two-sided tests at family-wise level `alpha`.

    Raises:
        ValueError: a baseline outside (0, 1), fewer than 2 units, or so few units that no rate up to 1 is
            detectable (Cohen's h would need to go past the top of the arcsine scale).
    """
    _check_baseline(baseline)
    _check_levels(alpha, power, comparisons)
    if n_per_variant < 2:
        raise ValueError(f"need at least 2 units per variant, got {n_per_variant}")
    effect = float(NormalIndPower().solve_power(nobs1=n_per_variant, alpha=alpha / comparisons, power=power, ratio=1.0))
    # Invert Cohen's h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1)); asin(sqrt(p)) only reaches pi / 2 (p = 1).
    top = math.asin(math.sqrt(baseline)) + effect / 2
    if top >= math.pi / 2:
        raise ValueError(
            f"{n_per_variant} units per variant cannot detect any increase of a baseline of {baseline} with power "
            f"{power:g}: even a rate of 1 would be missed more often than that; use more units per variant "
            f"(or a lower baseline)"
        )
    return math.sin(top) ** 2 - baseline

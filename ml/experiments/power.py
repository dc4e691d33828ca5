"""Planning: units per variant for a minimum detectable effect on a conversion rate, and the reverse.

Uses statsmodels' power classes (NormalIndPower with Cohen's h, the arcsine-transformed difference of two
proportions), two-sided.
"""

from __future__ import annotations

import math

from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize


def _target(baseline: float, mde: float, relative: bool) -> float:
    if not 0 < baseline < 1:
        raise ValueError(f"baseline must be a rate in (0, 1), got {baseline}")
    if mde <= 0:
        raise ValueError(f"mde must be positive, got {mde}")
    target = baseline * (1 + mde) if relative else baseline + mde
    if not 0 < target < 1:
        raise ValueError(f"baseline {baseline} plus the effect {mde} leaves (0, 1): choose a smaller --mde")
    return target


def sample_size_per_variant(
    baseline: float, mde: float, relative: bool = False, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Units each of two equal variants needs to detect `mde` (absolute, or relative to the baseline)."""
    effect = proportion_effectsize(_target(baseline, mde, relative), baseline)
    n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
    return math.ceil(float(n))


def minimum_detectable_effect(baseline: float, n_per_variant: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest absolute increase of `baseline` detectable with `n_per_variant` units in each of two variants."""
    if n_per_variant < 2:
        raise ValueError(f"need at least 2 units per variant, got {n_per_variant}")
    effect = float(NormalIndPower().solve_power(nobs1=n_per_variant, alpha=alpha, power=power, ratio=1.0))
    # Invert Cohen's h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1)).
    target = math.sin(math.asin(math.sqrt(baseline)) + effect / 2) ** 2
    return target - baseline

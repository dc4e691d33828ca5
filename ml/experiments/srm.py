"""Sample ratio mismatch: are units split across variants as configured?

A mismatch means assignment or logging is broken, and every other number of the experiment is suspect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

# The convention of GrowthBook, Statsig and others: flag only strong evidence, since SRM is checked on every
# experiment every day.
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class SrmResult:
    chi2: float
    p_value: float
    expected: tuple[float, ...]

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def srm_test(observed: Sequence[int], weights: Sequence[float]) -> SrmResult:
    """Pearson chi-square of the observed units per variant against the configured split.

    Args:
        observed: units per variant.
        weights: configured traffic share per variant (normalised here).
    """
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError("need one weight per variant and at least two variants")
    if any(w <= 0 for w in weights):
        raise ValueError(f"weights must be positive, got {list(weights)}")
    total = sum(observed)
    if total == 0:
        raise ValueError("no units observed")
    expected = tuple(total * w / sum(weights) for w in weights)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    p_value = float(stats.chi2.sf(chi2, df=len(observed) - 1))
    return SrmResult(chi2=float(chi2), p_value=p_value, expected=expected)

"""The decision label of one variant on one metric: what an analyst should do with the numbers.

Rules (documented in docs/experiments.md):
- an experiment whose split fails the SRM check gets `srm_invalid` everywhere: its numbers cannot be trusted;
- a guardrail metric with a margin is tested for non-inferiority: the relative lift's interval, oriented so
  that positive is good, must lie above -margin (`guardrail_ok`); wholly below it is `guardrail_breached`, otherwise
  `guardrail_inconclusive`;
- other metrics: before the planned sample size is reached only the always-valid (sequential) interval may stop
  the test early (`better`/`worse` when it excludes 0, else `keep_running`); from the planned size on, the
  Holm-corrected fixed-horizon p-value decides (`better`/`worse` below alpha, else `no_detectable_effect`).
"""

from __future__ import annotations

from dataclasses import dataclass

LABELS = (
    "srm_invalid",
    "better",
    "worse",
    "keep_running",
    "no_detectable_effect",
    "guardrail_ok",
    "guardrail_breached",
    "guardrail_inconclusive",
)


@dataclass(frozen=True)
class Evidence:
    """What the decision looks at for one variant x metric, oriented by the metric's raw direction."""

    srm_mismatch: bool
    is_guardrail: bool
    higher_is_better: bool
    relative_ci: tuple[float, float]
    sequential_ci: tuple[float, float]
    corrected_p: float | None
    relative: float
    units: int
    planned_units: int | None
    margin: float | None
    alpha: float = 0.05


def non_inferiority(relative_ci: tuple[float, float], margin: float, higher_is_better: bool) -> str:
    """Guardrail verdict: is the worst plausible change smaller than the margin?"""
    if margin <= 0:
        raise ValueError(f"a non-inferiority margin must be positive, got {margin}")
    low, high = relative_ci if higher_is_better else (-relative_ci[1], -relative_ci[0])
    if low > -margin:
        return "guardrail_ok"
    if high < -margin:
        return "guardrail_breached"
    return "guardrail_inconclusive"


def decide(e: Evidence) -> str:
    """The label for one variant x metric (see the module docstring)."""
    if e.srm_mismatch:
        return "srm_invalid"
    if e.is_guardrail and e.margin is not None:
        return non_inferiority(e.relative_ci, e.margin, e.higher_is_better)
    good = e.relative > 0 if e.higher_is_better else e.relative < 0
    if e.planned_units is not None and e.units < e.planned_units:
        low, high = e.sequential_ci
        if low > 0 or high < 0:
            return "better" if good else "worse"
        return "keep_running"
    if e.corrected_p is not None and e.corrected_p < e.alpha:
        return "better" if good else "worse"
    return "no_detectable_effect"

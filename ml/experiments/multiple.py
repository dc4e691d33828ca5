"""Corrections for testing many metrics and variants at once."""

from __future__ import annotations

from collections.abc import Sequence


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values: controls the family-wise error rate, uniformly stronger than Bonferroni."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values): controls the false discovery rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, i in enumerate(order):
        rank = m - position  # 1-based rank in ascending order
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(running, 1.0)
    return adjusted


def holm_levels(p_values: Sequence[float], alpha: float) -> list[tuple[bool, float]]:
    """Holm's step-down test at family-wise level `alpha`: per p-value, whether it is rejected and the level its
    interval must be read at so that the interval excludes 0 exactly when it is rejected.

    Sorted ascending, the j-th p-value (1-based) is tested at alpha / (m - j + 1) while all before it were
    rejected (Holm 1979, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6). Those
    from the first non-rejection on are not rejected and get the level at which the procedure stopped: their
    p-values are at least that one's, so their intervals at that level include 0 too. These levels make each
    decision match its own interval; they are not simultaneous confidence intervals (for those read all at the
    Bonferroni level alpha / m).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out: list[tuple[bool, float]] = [(False, alpha)] * m
    stopped: float | None = None
    for rank, i in enumerate(order):
        level = alpha / (m - rank)
        if stopped is None and p_values[i] < level:
            out[i] = (True, level)
            continue
        stopped = level if stopped is None else stopped
        out[i] = (False, stopped)
    return out

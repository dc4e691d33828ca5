"""The decision rule: what an analyst may conclude from an experiment at each look, with its error rate kept.

Rule (docs/experiments.md, "Decisions"):
- Every better/worse decision is read from the **absolute effect** (treatment - control in the metric's units),
  never from the relative lift: the absolute effect is defined whenever the arms have variance, its sign is the
  metric's own, and its test is the one the p-values report. Guardrails read the relative lift, because their
  margin is relative.
- The family is every treatment variant x non-guardrail metric of the experiment; errors are controlled
  family-wise (Holm). Guardrails are non-inferiority tests outside the family.
- alpha is spent in two parts (a union bound, so the whole procedure's family-wise error is at most alpha however
  often anyone looks): `INTERIM_ALPHA_SHARE` of it on the looks before the planned size, where only the
  always-valid (sequential) evidence may decide, with Holm across the family's always-valid p-values; the rest on
  one fixed-horizon read on the first look at which every variant has its planned units, with Holm across the
  family's fixed-horizon p-values. An experiment without a planned size never has that read: all of alpha goes
  to the always-valid looks, and an open comparison stays `keep_running`.
- Holm over always-valid p-values controls the family-wise error at every look at once: a false rejection at
  any look needs some true null's p-value to fall below alpha / m0 at some time, which each always-valid p-value
  does with probability at most alpha / m0 (Holm 1979's argument with Johari et al. 2022's time-uniform p-values).
  Each comparison's always-valid p-value is the running minimum over looks (still always-valid), which makes
  interim decisions final once taken: an experiment stopped for a win stays won.
- A decision, once taken (interim better/worse, or the planned-size read), is frozen with the look it was taken
  on (`decided_on`) and the interval it was read from.
- An experiment whose split fails the SRM check shows `srm_invalid` at that look and its evidence is not used.
- `decision_ci` is always the interval the rule reads: it excludes 0 exactly when the label is better/worse.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ml.experiments.frequentist import Comparison, critical_value
from ml.experiments.multiple import holm, holm_levels
from ml.experiments.sequential import always_valid_p, confidence_sequence

LABELS = (
    "srm_invalid",
    "better",
    "worse",
    "keep_running",
    "no_detectable_effect",
    "guardrail_ok",
    "guardrail_breached",
    "guardrail_inconclusive",
    "insufficient_data",
)
BASES = ("sequential", "fixed_horizon", "non_inferiority")

#: Share of alpha spent on the always-valid looks before the planned size (the rest goes to the one read at it).
#: Most of it is kept for the planned read, as group-sequential designs do (Haybittle-Peto, O'Brien-Fleming):
#: at alpha 0.05 the interim looks get 0.01 and the read 0.04, which costs the plan 5-7% more units (one to four
#: comparisons) and makes the interim sequence 13-18% wider at the planned size than at the full 0.05.
INTERIM_ALPHA_SHARE = 0.2


@dataclass(frozen=True)
class AlphaBudget:
    """How an experiment's alpha is spent: over the always-valid looks, and at the planned-size read."""

    interim: float
    final: float  # 0 when the experiment has no planned size


def alpha_budget(alpha: float, planned: bool) -> AlphaBudget:
    """The split of `alpha` (see the module docstring)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not planned:
        return AlphaBudget(interim=alpha, final=0.0)
    return AlphaBudget(interim=alpha * INTERIM_ALPHA_SHARE, final=alpha * (1 - INTERIM_ALPHA_SHARE))


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


@dataclass(frozen=True)
class Candidate:
    """One treatment variant x metric at one look, as the rule sees it.

    comparison: None when the look has too little data for this pair (the row says why).
    units: units of both arms; planned_units: both arms' planned units (or the default), which tunes the
        always-valid sequence.
    margin: the relative non-inferiority margin of a guardrail; None for a metric in the family.
    """

    metric: str
    variant: str
    comparison: Comparison | None
    units: int
    planned_units: int
    higher_is_better: bool = True
    margin: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.metric, self.variant


@dataclass(frozen=True)
class Verdict:
    """The rule's output for one candidate at one look (`decision_ci` on the absolute scale, on the relative
    scale for guardrails)."""

    decision: str
    basis: str | None = None
    alpha: float | None = None  # two-sided level of decision_ci
    ci: tuple[float, float] | None = None
    decided_on: Any = None
    sequential_p_holm: float | None = None
    relative_sequential_ci: tuple[float, float] | None = None


@dataclass
class _Evidence:
    """The strongest always-valid evidence seen so far for one comparison."""

    p: float = 1.0
    estimate: float = 0.0
    se: float = 0.0
    units: int = 1
    planned_units: int = 1


@dataclass
class ExperimentRule:
    """The rule's state for one experiment across its looks (oldest first).

    Args:
        family: every (metric, variant) pair the experiment is decided on (non-guardrail metrics x treatment
            variants), fixed for all looks: a pair without data at a look counts with p = 1.
        alpha: the experiment's family-wise error rate.
        planned: every variant has a planned size (there will be a fixed-horizon read).
    """

    family: Sequence[tuple[str, str]]
    alpha: float = 0.05
    planned: bool = False
    budget: AlphaBudget = field(init=False)
    _evidence: dict[tuple[str, str], _Evidence] = field(init=False)
    _frozen: dict[tuple[str, str], Verdict] = field(init=False, default_factory=dict)
    _read_done: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.family = list(dict.fromkeys(self.family))
        self.budget = alpha_budget(self.alpha, self.planned)
        self._evidence = {key: _Evidence() for key in self.family}

    @property
    def interim_level(self) -> float:
        """Bonferroni level of each family member's always-valid interval (and the sequence's tuning level)."""
        return self.budget.interim / max(len(self.family), 1)

    def look(
        self, candidates: Sequence[Candidate], planned_reached: bool, srm_mismatch: bool, as_of: Hashable = None
    ) -> dict[tuple[str, str], Verdict]:
        """The verdict of every candidate at this look, updating the state (running evidence, frozen decisions)."""
        if srm_mismatch:
            return {c.key: Verdict("srm_invalid") for c in candidates}
        by_key = {c.key: c for c in candidates}
        members = [by_key.get(key) for key in self.family]
        verdicts: dict[tuple[str, str], Verdict] = {}
        self._update_evidence(members)
        adjusted = dict(zip(self.family, holm([self._evidence[k].p for k in self.family]), strict=True))
        if self.planned and planned_reached and not self._read_done:
            self._read(members, as_of)
        interim = holm_levels([self._evidence[k].p for k in self.family], self.budget.interim) if self.family else []
        for key, candidate, (rejected, level) in zip(self.family, members, interim, strict=True):
            verdict = self._frozen.get(key) or self._interim(key, candidate, rejected, level, as_of)
            rel_cs = _relative_sequence(candidate, self.interim_level, self.interim_level)
            verdicts[key] = replace(verdict, sequential_p_holm=adjusted[key], relative_sequential_ci=rel_cs)
        for c in candidates:
            if c.margin is not None:
                verdicts[c.key] = self._guardrail(c, planned_reached, as_of)
        return verdicts

    def _update_evidence(self, members: Sequence[Candidate | None]) -> None:
        for key, c in zip(self.family, members, strict=True):
            if c is None or c.comparison is None:
                continue
            comparison = c.comparison
            p = always_valid_p(comparison.absolute, comparison.absolute_se, c.units, c.planned_units,
                               self.interim_level)  # fmt: skip
            if p < self._evidence[key].p:
                self._evidence[key] = _Evidence(p, comparison.absolute, comparison.absolute_se, c.units,
                                                c.planned_units)  # fmt: skip

    def _interim(
        self, key: tuple[str, str], candidate: Candidate | None, rejected: bool, level: float, as_of: Hashable
    ) -> Verdict:
        if candidate is None or candidate.comparison is None:
            return Verdict("insufficient_data")
        if rejected:
            best = self._evidence[key]
            ci = confidence_sequence(best.estimate, best.se, best.units, best.planned_units, level, self.interim_level)
            verdict = Verdict(_direction(best.estimate, candidate.higher_is_better), "sequential", level, ci, as_of)
            self._frozen[key] = verdict
            return verdict
        comparison = candidate.comparison
        ci = confidence_sequence(comparison.absolute, comparison.absolute_se, candidate.units,
                                 candidate.planned_units, level, self.interim_level)  # fmt: skip
        return Verdict("keep_running", "sequential", level, ci)

    def _read(self, members: Sequence[Candidate | None], as_of: Hashable) -> None:
        """The one fixed-horizon read at the planned size: Holm over the family at the final alpha."""
        ps = [1.0 if c is None or c.comparison is None else c.comparison.absolute_p for c in members]
        for key, c, (rejected, level) in zip(self.family, members, holm_levels(ps, self.budget.final), strict=True):
            if key in self._frozen or c is None or c.comparison is None:
                continue
            comparison = c.comparison
            label = _direction(comparison.absolute, c.higher_is_better) if rejected else "no_detectable_effect"
            self._frozen[key] = Verdict(label, "fixed_horizon", level, comparison.interval(level), as_of)
        self._read_done = True

    def _guardrail(self, c: Candidate, planned_reached: bool, as_of: Hashable) -> Verdict:
        """Non-inferiority on the relative lift: the always-valid interval before the planned size, the
        fixed-horizon one at the read (then frozen)."""
        assert c.margin is not None
        frozen = self._frozen.get(c.key)
        if frozen is not None:
            return frozen
        comparison = c.comparison
        if comparison is None:
            return Verdict("insufficient_data")
        if comparison.relative is None or comparison.relative_se is None:
            return Verdict("guardrail_inconclusive", "non_inferiority")
        if self.planned and planned_reached:
            level = self.budget.final
            half = critical_value(level) * comparison.relative_se
            ci = (comparison.relative - half, comparison.relative + half)
            verdict = Verdict(non_inferiority(ci, c.margin, c.higher_is_better), "non_inferiority", level, ci, as_of)
            self._frozen[c.key] = verdict
            return verdict
        level = self.budget.interim
        ci_seq = _relative_sequence(c, level, level)
        assert ci_seq is not None
        label = non_inferiority(ci_seq, c.margin, c.higher_is_better)
        return Verdict(label, "non_inferiority", level, ci_seq, relative_sequential_ci=ci_seq)


def _relative_sequence(c: Candidate | None, alpha: float, tuning_alpha: float) -> tuple[float, float] | None:
    """The always-valid interval of the relative lift (descriptive; None where the lift is undefined)."""
    if c is None or c.comparison is None or c.comparison.relative is None or c.comparison.relative_se is None:
        return None
    return confidence_sequence(c.comparison.relative, c.comparison.relative_se, c.units, c.planned_units, alpha,
                               tuning_alpha)  # fmt: skip


def _direction(estimate: float, higher_is_better: bool) -> str:
    return "better" if (estimate > 0) == higher_is_better else "worse"

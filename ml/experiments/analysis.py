"""Experiment results from sufficient statistics: one row per experiment x metric x variant.

Input is the shape of the warehouse marts (`fct_experiment_stats`, `dim_experiments`, optionally
`fct_experiment_novelty_stats` and the daily cumulative `fct_experiment_daily_stats`), or the same columns from
a CSV (`ml.experiments.summary_csv`). Every number is computed by the tested functions of this package; this
module lines them up, looks at each experiment day by day when a history is given, and applies the decision rule
of `ml.experiments.decision`. The output columns are documented in docs/experiments.md and are a stable
interface (the CLI's --json, the app).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ml.experiments.bayesian import bayesian_readout
from ml.experiments.decision import Candidate, ExperimentRule, Verdict
from ml.experiments.frequentist import Comparison, compare_means
from ml.experiments.moments import Moments, compare_moments
from ml.experiments.multiple import benjamini_hochberg, holm
from ml.experiments.novelty import effect_trend
from ml.experiments.srm import srm_test
from ml.experiments.stats import MeanStats

# Tunes the always-valid sequence of experiments without a planned size (see docs/experiments.md).
DEFAULT_PLANNED_UNITS_PER_VARIANT = 10_000


@dataclass
class ResultRow:
    """One experiment x metric x variant. Comparison fields are None on the control row."""

    experiment_id: str
    metric: str
    metric_kind: str
    metric_role: str
    variant: str
    is_control: bool
    units: int
    value: float | None
    control_value: float | None = None
    absolute_effect: float | None = None
    absolute_ci_low: float | None = None
    absolute_ci_high: float | None = None
    absolute_p: float | None = None
    absolute_se: float | None = None
    relative_lift: float | None = None
    relative_ci_low: float | None = None
    relative_ci_high: float | None = None
    relative_p: float | None = None
    relative_note: str | None = None
    p_value_holm: float | None = None
    q_value_bh: float | None = None
    sequential_ci_low: float | None = None
    sequential_ci_high: float | None = None
    sequential_p_holm: float | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    cuped_applied: bool = False
    variance_reduction: float | None = None
    novelty_slope: float | None = None
    novelty_p: float | None = None
    novelty_fading: bool | None = None
    srm_p: float | None = None
    srm_mismatch: bool = False
    non_inferiority_margin: float | None = None
    decision: str | None = None
    decision_basis: str | None = None
    decision_alpha: float | None = None
    decision_ci_low: float | None = None
    decision_ci_high: float | None = None
    decided_on: Any = None
    note: str | None = None
    _comparison: Comparison | None = field(default=None, repr=False)
    _higher_is_better: bool = field(default=True, repr=False)


RESULT_COLUMNS = [name for name in ResultRow.__dataclass_fields__ if not name.startswith("_")]
# experiment -> metric -> variant -> stats record
StatsIndex = dict[str, dict[str, dict[str, dict[str, Any]]]]
NoveltyIndex = dict[str, dict[str, dict[float, dict[str, dict[str, Any]]]]]


def analyze(
    stats: pd.DataFrame,
    variants: pd.DataFrame,
    novelty: pd.DataFrame | None = None,
    alpha: float = 0.05,
    use_cuped: bool = True,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The results table from the stats marts (or a CSV in their shape).

    Args:
        stats: one row per experiment x variant x metric with n, sums and products (fct_experiment_stats).
        variants: one row per experiment x variant with is_control, weight, planned_units_per_variant
            (dim_experiments); variants without a weight are outside the configured split and skipped.
        novelty: per day since exposure stats (fct_experiment_novelty_stats), for the novelty trend.
        alpha: family-wise error rate of each experiment's decisions (and level of the descriptive intervals).
        use_cuped: adjust with the pre-period covariate where the stats carry one.
        history: the cumulative stats as of each earlier day (fct_experiment_daily_stats, `as_of_date`). The
            decisions are then those of the daily looks, so they equal the last day of `analyze_daily`; without
            it `stats` is the only look (as for a CSV).

    Raises:
        ValueError: alpha outside (0, 1), or an experiment without exactly one control.
    """
    _check_alpha(alpha)
    stats_index = _index(stats)
    days = _history(history)
    novelty_index = None if novelty is None else _novelty_index(novelty)
    rows: list[ResultRow] = []
    for experiment_id, arms in _experiments(variants):
        experiment = _Experiment(experiment_id, arms, alpha, use_cuped)
        looks = [(as_of, index.get(experiment_id, {})) for as_of, index in days]
        final = stats_index.get(experiment_id, {})
        rule = experiment.rule([look for _, look in looks] + [final])
        for as_of, look in looks:
            experiment.look(look, rule, as_of)
        result = experiment.look(final, rule, looks[-1][0] if looks else None)
        if novelty_index is not None:
            by_metric = novelty_index.get(experiment_id, {})
            for r in result:
                if not r.is_control and r.absolute_effect is not None:
                    _novelty(r, by_metric.get(r.metric, {}), experiment.control, r.variant)
        rows.extend(result)
    return _frame(rows)


def analyze_daily(
    daily: pd.DataFrame, variants: pd.DataFrame, alpha: float = 0.05, use_cuped: bool = True
) -> pd.DataFrame:
    """The results as they stood at the end of each day: one block of `analyze` rows per `as_of_date`, the
    decisions carried from day to day by the rule (so the last day's decisions are `analyze(..., history=)`'s).
    """
    _check_alpha(alpha)
    days = _history(daily)
    rows: list[dict[str, Any]] = []
    for experiment_id, arms in _experiments(variants):
        experiment = _Experiment(experiment_id, arms, alpha, use_cuped)
        looks = [(as_of, index.get(experiment_id, {})) for as_of, index in days]
        rule = experiment.rule([look for _, look in looks])
        for as_of, look in looks:
            rows.extend({"as_of_date": as_of, **_public(r)} for r in experiment.look(look, rule, as_of))
    return pd.DataFrame(rows).reindex(columns=["as_of_date", *RESULT_COLUMNS])


class _Experiment:
    """One experiment's arms and plan, and how one look at its stats becomes result rows."""

    def __init__(self, experiment_id: str, arms: pd.DataFrame, alpha: float, use_cuped: bool) -> None:
        controls = arms[arms["is_control"].astype(bool)]
        if len(controls) != 1:
            raise ValueError(f"experiment {experiment_id!r} needs exactly one control variant, found {len(controls)}")
        self.experiment_id = experiment_id
        self.control = str(controls["variant"].iloc[0])
        self.order = [self.control, *sorted(str(v) for v in arms["variant"] if v != self.control)]
        records = [_record(r) for r in arms.to_dict("records")]
        self.weight = {str(r["variant"]): float(r["weight"]) for r in records}
        self.planned = {str(r["variant"]): _planned(r.get("planned_units_per_variant")) for r in records}
        self.alpha, self.use_cuped = alpha, use_cuped

    @property
    def has_plan(self) -> bool:
        return all(self.planned[v] is not None for v in self.order)

    def tuned_units(self, variant: str) -> int:
        """Both arms' planned units: where the always-valid sequence of this comparison is tightest."""
        return sum(self.planned[v] or DEFAULT_PLANNED_UNITS_PER_VARIANT for v in (self.control, variant))

    def rule(self, looks: Iterable[Mapping[str, Mapping[str, Mapping[str, Any]]]]) -> ExperimentRule:
        """The decision rule over the family every look shares: treatment variants x non-guardrail metrics."""
        metrics: set[str] = set()
        for look in looks:
            metrics |= {m for m, by in look.items() if not _is_guardrail_metric(by)}
        family = [(m, v) for m in sorted(metrics) for v in self.order[1:]]
        return ExperimentRule(family, self.alpha, self.has_plan)

    def look(
        self, stats: Mapping[str, Mapping[str, Mapping[str, Any]]], rule: ExperimentRule, as_of: Hashable
    ) -> list[ResultRow]:
        """The result rows of one look (the stats as of one day, or the overall stats)."""
        units = {v: max((int(by[v]["n"]) for by in stats.values() if v in by), default=0) for v in self.order}
        srm_p, mismatch = None, False
        if sum(units.values()) > 0:
            srm = srm_test([units[v] for v in self.order], [self.weight[v] for v in self.order])
            srm_p, mismatch = srm.p_value, srm.mismatch
        reached = self.has_plan and all(units[v] >= (self.planned[v] or 0) for v in self.order)
        rows: list[ResultRow] = []
        for metric in sorted(stats):
            by = stats[metric]
            meta = next(iter(by.values()))
            for variant in self.order:
                row = by.get(variant)
                result = ResultRow(
                    experiment_id=self.experiment_id,
                    metric=str(metric),
                    metric_kind=str(meta.get("metric_kind") or "mean"),
                    metric_role=str(meta.get("metric_role") or "primary"),
                    variant=variant,
                    is_control=variant == self.control,
                    units=0 if row is None else int(row["n"]),
                    value=None if row is None else _value(row),
                    srm_p=srm_p,
                    srm_mismatch=mismatch,
                    non_inferiority_margin=_float(meta.get("non_inferiority_margin")),
                    _higher_is_better=_higher_is_better(meta),
                )
                if row is None:
                    result.decision = None if result.is_control else "insufficient_data"
                    result.note = f"no stats row for variant {variant!r} of metric {metric!r} at this look"
                elif not result.is_control:
                    base = by.get(self.control)
                    if base is None:
                        result.decision = "insufficient_data"
                        result.note = f"no stats row for the control {self.control!r} of metric {metric!r}"
                    else:
                        _compare(result, base, row, self.alpha, self.use_cuped)
                rows.append(result)
        _correct(rows)
        candidates = [
            Candidate(
                metric=r.metric,
                variant=r.variant,
                comparison=r._comparison,
                units=r.units + units_of(rows, r.metric, self.control),
                planned_units=self.tuned_units(r.variant),
                higher_is_better=r._higher_is_better,
                margin=r.non_inferiority_margin if _is_guardrail(r) else None,
            )
            for r in rows
            if not r.is_control
        ]
        verdicts = rule.look(candidates, reached, mismatch, as_of)
        for r in rows:
            if not r.is_control and (r.metric, r.variant) in verdicts:
                _apply(r, verdicts[(r.metric, r.variant)])
                _note_reversal(r)
        return rows


def units_of(rows: Sequence[ResultRow], metric: str, variant: str) -> int:
    return next((r.units for r in rows if r.metric == metric and r.variant == variant), 0)


def _compare(result: ResultRow, base: Mapping[str, Any], row: Mapping[str, Any], alpha: float, use_cuped: bool) -> None:
    notes = []
    try:
        c_m, t_m = Moments.from_row(base, use_cuped), Moments.from_row(row, use_cuped)
        if result.metric_kind == "ratio" or (c_m.has_covariate and t_m.has_covariate):
            adjusted = compare_moments(c_m, t_m, alpha)
            comparison: Comparison = adjusted.comparison
            result.cuped_applied = adjusted.adjusted
            result.variance_reduction = adjusted.variance_reduction if adjusted.adjusted else None
            if adjusted.note:
                notes.append(adjusted.note)
        else:
            comparison = compare_means(_mean_stats(base), _mean_stats(row), alpha)
    except ValueError as error:
        result.decision, result.note = "insufficient_data", str(error)
        return
    if comparison.pooled_variance:
        notes.append("an arm has no variance: tested with both arms' pooled (null) variance, the score test")
    result._comparison = comparison
    result.control_value = comparison.control_value  # CUPED-adjusted like the effects: absolute / control = relative
    result.absolute_effect = comparison.absolute
    result.absolute_ci_low, result.absolute_ci_high = comparison.absolute_ci
    result.absolute_p = comparison.absolute_p
    result.absolute_se = comparison.absolute_se
    result.relative_lift = comparison.relative
    if comparison.relative_ci is not None:
        result.relative_ci_low, result.relative_ci_high = comparison.relative_ci
    result.relative_p = comparison.relative_p
    result.relative_note = comparison.relative_note
    good = 1 if result._higher_is_better else -1
    if comparison.absolute_se > 0:
        # P(better) from the absolute effect, whose sign is the metric's own whatever the control's sign.
        result.chance_to_win = bayesian_readout(good * comparison.absolute, comparison.absolute_se).chance_to_win
    if comparison.relative is not None and comparison.relative_se:
        bayes = bayesian_readout(good * comparison.relative, comparison.relative_se)
        result.expected_loss = bayes.expected_loss_treatment
    result.note = "; ".join(notes) or None


def _correct(rows: list[ResultRow]) -> None:
    """Holm and BH across the look's non-guardrail comparisons (descriptive: decisions use the rule's Holm)."""
    tested = [r for r in rows if not r.is_control and r.absolute_p is not None and not _is_guardrail(r)]
    ps = [r.absolute_p or 0.0 for r in tested]
    for r, holm_p, bh_q in zip(tested, holm(ps), benjamini_hochberg(ps), strict=True):
        r.p_value_holm, r.q_value_bh = holm_p, bh_q


def _apply(r: ResultRow, verdict: Verdict) -> None:
    if r.decision == "insufficient_data" and verdict.decision in ("insufficient_data", "srm_invalid"):
        return
    r.decision = verdict.decision
    r.decision_basis, r.decision_alpha, r.decided_on = verdict.basis, verdict.alpha, verdict.decided_on
    if verdict.ci is not None:
        r.decision_ci_low, r.decision_ci_high = verdict.ci
    r.sequential_p_holm = verdict.sequential_p_holm
    if verdict.relative_sequential_ci is not None:
        r.sequential_ci_low, r.sequential_ci_high = verdict.relative_sequential_ci


def _note_reversal(r: ResultRow) -> None:
    """Add a note when a better/worse label stands (rule 4) while today's estimate points the other way.

    The label keeps its error rate: it was read from the interval of the look it was taken on. But an analyst who
    sees "better" beside a negative effect needs to be told the two disagree, and what that can mean (a faded
    novelty effect, a changed population, or the decided look's own noise), before acting on the label.
    """
    if r.decision not in ("better", "worse") or r.absolute_effect is None:
        return
    good = 1 if r._higher_is_better else -1
    favours_treatment = good * r.absolute_effect > 0
    if favours_treatment == (r.decision == "better") or r.absolute_effect == 0:
        return
    since = f" on {str(r.decided_on)[:10]}" if r.decided_on is not None else ""
    win = f", P(win) {r.chance_to_win:.0%}" if r.chance_to_win is not None else ""
    text = (
        f"decided {r.decision}{since}, but today's estimate points the other way (effect {r.absolute_effect:+.4g}"
        f"{win}): the label stands under the rule (docs/experiments.md, Decisions, rule 4), yet the effect may have "
        "faded or reversed since; confirm it (a holdout or a fresh experiment) before acting on the label"
    )
    r.note = f"{r.note}; {text}" if r.note else text


def _novelty(result: ResultRow, by_day: dict[float, dict[str, dict[str, Any]]], control: str, variant: str) -> None:
    days, effects, ses = [], [], []
    for day in sorted(by_day):
        by = by_day[day]
        if control not in by or variant not in by:
            continue
        try:
            c = compare_moments(Moments.from_row(by[control], False), Moments.from_row(by[variant], False))
        except ValueError:
            continue  # a day with too few units or no activity says nothing about the trend
        days.append(day)
        effects.append(c.comparison.absolute)
        ses.append(c.comparison.absolute_se)
    trend = effect_trend(days, effects, ses)
    if trend is not None:
        result.novelty_slope, result.novelty_p = trend.slope, trend.p_value
        result.novelty_fading = trend.fades(result.absolute_effect or 0.0, result.absolute_p or 1.0)


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _index(stats: pd.DataFrame) -> StatsIndex:
    # Records are indexed once: per-group DataFrame filtering costs more than the statistics themselves.
    index: StatsIndex = {}
    for record in stats.to_dict("records"):
        r = _record(record)
        index.setdefault(str(r["experiment_id"]), {}).setdefault(str(r["metric"]), {})[str(r["variant"])] = r
    return index


def _history(daily: pd.DataFrame | None) -> list[tuple[Any, StatsIndex]]:
    if daily is None or daily.empty:
        return []
    if "as_of_date" not in daily.columns:
        raise ValueError("history needs an as_of_date column (fct_experiment_daily_stats)")
    return [(as_of, _index(day)) for as_of, day in daily.groupby("as_of_date", sort=True)]


def _novelty_index(novelty: pd.DataFrame) -> NoveltyIndex:
    index: NoveltyIndex = {}
    for record in novelty.to_dict("records"):
        r = _record(record)
        by_day = index.setdefault(str(r["experiment_id"]), {}).setdefault(str(r["metric"]), {})
        by_day.setdefault(float(r["days_since_exposure"]), {})[str(r["variant"])] = r
    return index


def _experiments(variants: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    for experiment_id, arms in variants[variants["weight"].notna()].groupby("experiment_id", sort=True):
        yield str(experiment_id), arms


def _public(r: ResultRow) -> dict[str, Any]:
    return {k: getattr(r, k) for k in RESULT_COLUMNS}


def _frame(rows: Sequence[ResultRow]) -> pd.DataFrame:
    return pd.DataFrame([_public(r) for r in rows]).reindex(columns=RESULT_COLUMNS)


def _record(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in row.items()}


def _is_guardrail(r: ResultRow) -> bool:
    return r.metric_role == "guardrail" and r.non_inferiority_margin is not None


def _is_guardrail_metric(by_variant: Mapping[str, Mapping[str, Any]]) -> bool:
    meta = next(iter(by_variant.values()), {})
    return meta.get("metric_role") == "guardrail" and _float(meta.get("non_inferiority_margin")) is not None


def _value(row: Mapping[str, Any]) -> float | None:
    n = int(row["n"])
    den = _float(row.get("denominator_sum"))
    total = _float(row.get("sum"))
    if total is None:
        return None
    if den is not None:
        return total / den if den else None
    return total / n if n else None


def _mean_stats(row: Mapping[str, Any]) -> MeanStats:
    return MeanStats(n=int(row["n"]), sum=float(row["sum"]), sum_squares=float(row["sum_squares"]))


def _higher_is_better(row: Mapping[str, Any]) -> bool:
    value = row.get("higher_is_better")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return bool(value)


def _planned(value: object) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number > 0 else None


def _float(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number

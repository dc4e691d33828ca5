"""Experiment results from sufficient statistics: one row per experiment x metric x variant.

Input is the shape of the warehouse marts (`fct_experiment_stats`, `dim_experiments`, and optionally
`fct_experiment_novelty_stats`), or the same columns from a CSV (`ml.experiments.summary_csv`). Every number is
computed by the tested functions of this package; this module only lines them up, corrects for multiple
comparisons within each experiment and labels the decision. The output columns are documented in
docs/experiments.md and are a stable interface (the CLI's --json, the app).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from ml.experiments.bayesian import bayesian_readout
from ml.experiments.decision import Evidence, decide
from ml.experiments.frequentist import Comparison, compare_means
from ml.experiments.moments import Moments, compare_moments
from ml.experiments.multiple import benjamini_hochberg, holm
from ml.experiments.novelty import effect_trend
from ml.experiments.sequential import confidence_sequence
from ml.experiments.srm import srm_test
from ml.experiments.stats import MeanStats

# Sequential tuning for experiments without a planned size (see docs/experiments.md).
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
    relative_lift: float | None = None
    relative_ci_low: float | None = None
    relative_ci_high: float | None = None
    relative_p: float | None = None
    p_value_holm: float | None = None
    q_value_bh: float | None = None
    sequential_ci_low: float | None = None
    sequential_ci_high: float | None = None
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
    note: str | None = None
    _higher_is_better: bool = field(default=True, repr=False)  # the metric's direction, for the decision


RESULT_COLUMNS = [name for name in ResultRow.__dataclass_fields__ if not name.startswith("_")]
NoveltyIndex = dict[str, dict[str, dict[float, dict[str, dict[str, Any]]]]]


def analyze(
    stats: pd.DataFrame,
    variants: pd.DataFrame,
    novelty: pd.DataFrame | None = None,
    alpha: float = 0.05,
    use_cuped: bool = True,
) -> pd.DataFrame:
    """The results table from the stats marts (or a CSV in their shape).

    Args:
        stats: one row per experiment x variant x metric with n, sums and products (fct_experiment_stats).
        variants: one row per experiment x variant with is_control, weight, planned_units_per_variant
            (dim_experiments); variants without a weight are outside the configured split and skipped.
        novelty: per day since exposure stats (fct_experiment_novelty_stats), for the novelty trend.
        alpha: significance level of intervals, tests and decisions.
        use_cuped: adjust with the pre-period covariate where the stats carry one.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    # Records are indexed once (experiment -> metric -> [day ->] variant): per-group DataFrame filtering costs
    # more than the statistics themselves.
    stats_index: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for record in stats.to_dict("records"):
        r = _record(record)
        stats_index.setdefault(str(r["experiment_id"]), {}).setdefault(str(r["metric"]), {})[str(r["variant"])] = r
    novelty_index: NoveltyIndex | None = None
    if novelty is not None:
        novelty_index = {}
        for record in novelty.to_dict("records"):
            r = _record(record)
            by_day = novelty_index.setdefault(str(r["experiment_id"]), {}).setdefault(str(r["metric"]), {})
            by_day.setdefault(float(r["days_since_exposure"]), {})[str(r["variant"])] = r
    rows: list[ResultRow] = []
    for experiment_id, arms in variants[variants["weight"].notna()].groupby("experiment_id", sort=True):
        rows.extend(
            _experiment(
                str(experiment_id),
                arms,
                stats_index.get(str(experiment_id), {}),
                None if novelty_index is None else novelty_index.get(str(experiment_id), {}),
                alpha,
                use_cuped,
            )
        )
    frame = pd.DataFrame([{k: v for k, v in asdict(r).items() if not k.startswith("_")} for r in rows])
    return frame.reindex(columns=RESULT_COLUMNS)


def _experiment(
    experiment_id: str,
    arms: pd.DataFrame,
    stats: dict[str, dict[str, dict[str, Any]]],
    novelty: dict[str, dict[float, dict[str, dict[str, Any]]]] | None,
    alpha: float,
    use_cuped: bool,
) -> list[ResultRow]:
    controls = arms[arms["is_control"].astype(bool)]
    if len(controls) != 1:
        raise ValueError(f"experiment {experiment_id!r} needs exactly one control variant, found {len(controls)}")
    control = str(controls["variant"].iloc[0])
    order = [control, *sorted(str(v) for v in arms["variant"] if v != control)]
    records = [_record(r) for r in arms.to_dict("records")]
    weight = {str(r["variant"]): float(r["weight"]) for r in records}
    planned = {str(r["variant"]): _planned(r.get("planned_units_per_variant")) for r in records}
    units = {v: max((int(by[v]["n"]) for by in stats.values() if v in by), default=0) for v in order}
    srm_p, mismatch = None, False
    if sum(units.values()) > 0:
        srm = srm_test([units[v] for v in order], [weight[v] for v in order])
        srm_p, mismatch = srm.p_value, srm.mismatch
    rows: list[ResultRow] = []
    for metric in sorted(stats):
        by = stats[metric]
        if control not in by:
            continue
        base = by[control]
        for variant in order:
            if variant not in by:
                continue
            row = by[variant]
            result = ResultRow(
                experiment_id=experiment_id,
                metric=str(metric),
                metric_kind=str(row.get("metric_kind") or "mean"),
                metric_role=str(row.get("metric_role") or "primary"),
                variant=variant,
                is_control=variant == control,
                units=int(row["n"]),
                value=_value(row),
                srm_p=srm_p,
                srm_mismatch=mismatch,
                non_inferiority_margin=_float(row.get("non_inferiority_margin")),
            )
            if variant != control:
                tuned_at = (planned[control] or DEFAULT_PLANNED_UNITS_PER_VARIANT) + (
                    planned[variant] or DEFAULT_PLANNED_UNITS_PER_VARIANT
                )
                _compare(result, base, row, alpha, use_cuped, tuned_at)
                if novelty is not None and result.absolute_effect is not None:
                    _novelty(result, novelty.get(metric, {}), control, variant)
            rows.append(result)
    _correct_and_decide(rows, alpha, planned)
    return rows


def _compare(
    result: ResultRow, base: Mapping[str, Any], row: Mapping[str, Any], alpha: float, use_cuped: bool, planned: int
) -> None:
    try:
        c_m, t_m = Moments.from_row(base, use_cuped), Moments.from_row(row, use_cuped)
        if result.metric_kind == "ratio" or (c_m.has_covariate and t_m.has_covariate):
            adjusted = compare_moments(c_m, t_m, alpha)
            comparison: Comparison = adjusted.comparison
            result.cuped_applied = adjusted.adjusted
            result.variance_reduction = adjusted.variance_reduction if adjusted.adjusted else None
        else:
            comparison = compare_means(_mean_stats(base), _mean_stats(row), alpha)
    except ValueError as error:
        result.decision, result.note = "insufficient_data", str(error)
        return
    result.control_value = _value(base)
    result.absolute_effect = comparison.absolute
    result.absolute_ci_low, result.absolute_ci_high = comparison.absolute_ci
    result.absolute_p = comparison.absolute_p
    result.relative_lift = comparison.relative
    result.relative_ci_low, result.relative_ci_high = comparison.relative_ci
    result.relative_p = comparison.relative_p
    n = int(base["n"]) + int(row["n"])
    result.sequential_ci_low, result.sequential_ci_high = confidence_sequence(
        comparison.relative, comparison.relative_se, n, planned, alpha
    )
    higher_is_better = _higher_is_better(row)
    if comparison.relative_se > 0:
        bayes = bayesian_readout(comparison.relative, comparison.relative_se)
        win = bayes.chance_to_win if higher_is_better else 1 - bayes.chance_to_win
        result.chance_to_win = win
        result.expected_loss = bayes.expected_loss_treatment if higher_is_better else bayes.expected_loss_control
    result._higher_is_better = higher_is_better


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


def _correct_and_decide(rows: list[ResultRow], alpha: float, planned: Mapping[str, int | None]) -> None:
    """Holm and BH across the experiment's non-guardrail comparisons, then the decision label of each row."""
    tested = [r for r in rows if not r.is_control and r.absolute_p is not None and not _is_guardrail(r)]
    for r, holm_p, bh_q in zip(
        tested,
        holm([r.absolute_p or 0.0 for r in tested]),
        benjamini_hochberg([r.absolute_p or 0.0 for r in tested]),
        strict=True,
    ):
        r.p_value_holm, r.q_value_bh = holm_p, bh_q
    for r in rows:
        if r.is_control or r.decision == "insufficient_data" or r.relative_ci_low is None:
            continue
        assert r.relative_ci_high is not None and r.relative_lift is not None
        assert r.sequential_ci_low is not None and r.sequential_ci_high is not None
        r.decision = decide(
            Evidence(
                srm_mismatch=r.srm_mismatch,
                is_guardrail=_is_guardrail(r),
                higher_is_better=r._higher_is_better,
                relative_ci=(r.relative_ci_low, r.relative_ci_high),
                sequential_ci=(r.sequential_ci_low, r.sequential_ci_high),
                corrected_p=r.p_value_holm,
                relative=r.relative_lift,
                units=r.units,
                planned_units=planned.get(r.variant),
                margin=r.non_inferiority_margin,
                alpha=alpha,
            )
        )


def _record(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in row.items()}


def _is_guardrail(r: ResultRow) -> bool:
    return r.metric_role == "guardrail" and r.non_inferiority_margin is not None


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

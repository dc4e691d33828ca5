"""The Experiments page's numbers: the results marts as the run wrote them, and what they mean for a decision.

Reads ``experiment_results`` (the latest look), ``experiment_daily_results`` (the results as they stood at the end
of each day), ``dim_experiments`` (arms, weights, planned size, units) and ``fct_experiment_novelty_stats`` (each
day since exposure alone). Every statistic shown is the one the run computed (`ml.experiments.results`); the
only statistics computed here are the per-day effects of the novelty view, with the same function the analysis
uses for its novelty trend (`ml.experiments.moments.compare_moments` on each day's sufficient statistics).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from app.lib import marts
from app.lib.ui import formatted_table
from ml.experiments.decision import alpha_budget
from ml.experiments.moments import Moments, compare_moments
from ml.experiments.power import minimum_detectable_effect, sample_size_per_variant
from ml.experiments.traffic import DaysNeeded, days_needed
from tailor.settings import Settings

RESULTS = "experiment_results"
DAILY = "experiment_daily_results"
VARIANTS = "dim_experiments"
NOVELTY = "fct_experiment_novelty_stats"
ENGAGEMENT = "fct_daily_user_engagement"
#: The marts the list and the per-experiment view read (their cache key).
INPUTS = (RESULTS, DAILY, VARIANTS, NOVELTY)
#: The analysis's family-wise level (`ml.experiments.results.compute_results` default).
ALPHA = 0.05

#: Decision label -> what it means, for analysts.
LABELS = {
    "better": "better than control (its decision interval, read on the day it was decided, excludes 0)",
    "worse": "worse than control (its decision interval, read on the day it was decided, excludes 0)",
    "keep_running": "no decision yet: keep collecting units",
    "no_detectable_effect": "no detectable effect at the planned size (final)",
    "guardrail_ok": "guardrail holds (no harm beyond its margin)",
    "guardrail_inconclusive": "guardrail not settled yet",
    "guardrail_breached": "guardrail breached: it fell by more than its margin",
    "insufficient_data": "not enough data to compare",
    "srm_invalid": "sample ratio mismatch: the split is broken, do not read the result",
}

#: The columns of the metrics table, in order, with their labels. ``control_units`` and ``control_raw_value`` are
#: the control row's ``units`` and ``value`` (`metrics_table`).
TABLE_COLUMNS = {
    "metric": "metric",
    "metric_role": "role",
    "variant": "variant",
    "units": "units",
    "value": "value",
    "control_units": "control units",
    "control_raw_value": "control value",
    "absolute_effect": "absolute lift",
    "absolute_ci_low": "abs. CI low",
    "absolute_ci_high": "abs. CI high",
    "relative_lift": "relative lift",
    "relative_ci_low": "rel. CI low",
    "relative_ci_high": "rel. CI high",
    "absolute_p": "p-value",
    "p_value_holm": "p (Holm)",
    "q_value_bh": "q (BH)",
    "sequential_ci_low": "always-valid CI low",
    "sequential_ci_high": "always-valid CI high",
    "chance_to_win": "chance to beat control",
    "decision_ci": "decision CI",
    "decision": "decision",
    "decided_on": "decided on",
}

#: The table's number formats: every percentage with two decimals, every other number with four (a trial found
#: lifts, intervals and chances each in a format of its own). A cell with no value reads `NOT_DEFINED`.
_PERCENT_COLUMNS = (
    "relative lift",
    "rel. CI low",
    "rel. CI high",
    "always-valid CI low",
    "always-valid CI high",
    "chance to beat control",
)
_DECIMAL_COLUMNS = (
    "value",
    "control value",
    "absolute lift",
    "abs. CI low",
    "abs. CI high",
    "p-value",
    "p (Holm)",
    "q (BH)",
)


@dataclass(frozen=True)
class ExperimentStatus:
    """One experiment in the list.

    Attributes:
        units: analysed units per variant.
        planned: planned units per variant (None: no plan).
        reached: every variant has its planned units (the fixed-horizon read has happened).
        srm_p: the sample-ratio-mismatch test's p-value; srm: flagged (p < 0.001).
        decisions: ``metric/variant`` -> label, for every non-control row.
    """

    experiment_id: str
    description: str
    control: str
    units: dict[str, int]
    planned: int | None
    reached: bool
    srm_p: float | None
    srm: bool
    decisions: dict[str, str]
    analysed: bool = True

    @property
    def status(self) -> str:
        """``reached planned size``, ``running (n of N per variant)`` (``running`` without a plan), or ``no units
        exposed yet``."""
        if not self.analysed:
            return "no units exposed yet"
        if self.reached:
            return "reached planned size"
        if self.planned is None:
            return "running (no planned size)"
        return f"running ({min(self.units.values(), default=0):,} of {self.planned:,} units per variant)"


def experiment_list(settings: Settings) -> list[ExperimentStatus]:
    """Every experiment in ``dim_experiments`` (registered, or seen in exposures), sorted by id; those without
    result rows (nobody exposed yet) have ``analysed`` False.

    Raises:
        marts.NoData: the results or the experiments dimension are not published.
    """
    marts.require(settings, [RESULTS, VARIANTS], "the experiments")
    results = marts.read(settings, RESULTS)
    arms = marts.read(settings, VARIANTS)
    out = []
    for experiment_id in sorted(set(arms["experiment_id"]) | set(results["experiment_id"])):
        rows = results.loc[results["experiment_id"] == experiment_id]
        mine = arms.loc[(arms["experiment_id"] == experiment_id) & arms["weight"].notna()]
        units = {str(v): int(u) for v, u in zip(mine["variant"], mine["units_analysed"], strict=True)}
        planned_values = mine["planned_units_per_variant"].dropna()
        planned = int(planned_values.min()) if len(planned_values) and planned_values.min() > 0 else None
        control_rows = mine.loc[mine["is_control"].fillna(False).astype(bool), "variant"]
        control = (
            str(control_rows.iloc[0])
            if len(control_rows)
            else str(rows.loc[rows["is_control"].astype(bool), "variant"].iloc[0])
            if len(rows)
            else ""
        )
        description = str(mine["description"].dropna().iloc[0]) if mine["description"].notna().any() else ""
        srm_p = _float(rows["srm_p"].dropna().iloc[0]) if rows["srm_p"].notna().any() else None
        treated = rows.loc[~rows["is_control"].astype(bool)]
        decisions = {
            f"{m}/{v}": str(d)
            for m, v, d in zip(treated["metric"], treated["variant"], treated["decision"], strict=True)
        }
        out.append(
            ExperimentStatus(
                experiment_id=str(experiment_id),
                description=description,
                control=control,
                units=units,
                planned=planned,
                reached=planned is not None and bool(units) and min(units.values()) >= planned,
                srm_p=srm_p,
                srm=bool(rows["srm_mismatch"].fillna(False).astype(bool).any()),
                decisions=decisions,
                analysed=not rows.empty,
            )
        )
    return out


def results_for(settings: Settings, experiment_id: str) -> pd.DataFrame:
    """The experiment's rows of ``experiment_results`` (one per metric x variant; control rows first per metric).

    ``experiment_id`` is bound as a parameter. Raises LookupError when no experiment has that id (the message
    lists the ids there are), marts.NoData when the results are not published.
    """
    frame = marts.query(
        settings,
        "select * from read_parquet($1) where experiment_id = $2 order by metric, not is_control, variant",
        [RESULTS],
        [experiment_id],
    )
    if frame.empty:
        known = marts.query(settings, "select distinct experiment_id from read_parquet($1) order by 1", [RESULTS])
        raise LookupError(
            f"no experiment {experiment_id!r} in the results; there are: {', '.join(known['experiment_id'])}"
        )
    return frame


def metrics_table(results: pd.DataFrame) -> pd.DataFrame:
    """The analysts' table: `TABLE_COLUMNS`, renamed, one row per metric x treatment variant, the control's units
    and value beside the variant's.

    The control is compared with, not a comparison: as a row of its own it held two numbers and a dozen empty
    cells, which Streamlit shows as grey "None" (a trial). Both values are unadjusted (``value``); the lifts are
    CUPED-adjusted where the pre-period allows (the mart's ``control_value`` is the adjusted one, docs/experiments.md).
    """
    is_control = results["is_control"].fillna(False).astype(bool)
    control = results.loc[is_control, ["metric", "units", "value"]]
    control = control.rename(columns={"units": "control_units", "value": "control_raw_value"})
    paired = results.loc[~is_control].merge(control, on="metric", how="left")
    paired["decision_ci"] = [decision_interval(row) for row in paired.to_dict("records")]
    paired["decided_on"] = [None if pd.isna(d) else str(d)[:10] for d in paired["decided_on"]]
    return paired.reindex(columns=list(TABLE_COLUMNS)).rename(columns=TABLE_COLUMNS).reset_index(drop=True)


def decision_interval(row: Mapping[Hashable, Any]) -> str | None:
    """The interval a decision was read from, in its own units: ``"-0.0407 to 0.0659"`` on the effect, or
    ``"-12.49% to 19.82% (lift)"`` on the relative lift for a guardrail (``decision_basis`` non_inferiority:
    docs/experiments.md, Decisions). One column of numbers held both scales, so 0.0659 and 0.1982 sat side by side
    meaning different things (a trial). None without an interval (no decision read yet)."""
    low, high = row.get("decision_ci_low"), row.get("decision_ci_high")
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return None
    if row.get("decision_basis") == "non_inferiority":
        return f"{low:.2%} to {high:.2%} (lift)"
    return f"{low:.4f} to {high:.4f}"


def metric_notes(results: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(metric, variant, note)`` for each comparison with a note, in the table's order. Notes are sentences:
    shown under the table, where they can be read whole, not cut off in a cell."""
    rows = results.loc[~results["is_control"].fillna(False).astype(bool) & results["note"].notna()]
    return [(str(r["metric"]), str(r["variant"]), str(r["note"])) for r in rows.to_dict("records") if r["note"]]


def styled_metrics(table: pd.DataFrame) -> tuple[Styler, dict[str, Any]]:
    """`metrics_table` as shown (`app.lib.ui.formatted_table`: the Styler and its column configuration):
    percentages with two decimals, other numbers with four, counts with thousands separators, and `NOT_DEFINED`
    where a value is not defined (a guardrail has no Holm correction or always-valid interval; no relative lift on
    a control value of 0)."""
    formats = {c: "{:.2%}" for c in _PERCENT_COLUMNS if c in table}
    formats |= {c: "{:,.4f}" for c in _DECIMAL_COLUMNS if c in table}
    formats |= {c: "{:,.0f}" for c in ("units", "control units") if c in table}
    return formatted_table(table, formats, text=("decision CI", "decided on"))


def daily_for(settings: Settings, experiment_id: str) -> pd.DataFrame:
    """The experiment's non-control rows of ``experiment_daily_results``, by as_of_date: the cumulative lift and
    its intervals (fixed-horizon relative CI, always-valid relative CI) as they stood each day. Empty when the
    daily results are not published."""
    if marts.missing(settings, [DAILY]):
        return pd.DataFrame()
    frame = marts.query(
        settings,
        "select as_of_date, metric, variant, units, relative_lift, relative_ci_low, relative_ci_high, "
        "sequential_ci_low, sequential_ci_high, absolute_effect, absolute_ci_low, absolute_ci_high, decision "
        "from read_parquet($1) where experiment_id = $2 and not is_control order by metric, variant, as_of_date",
        [DAILY],
        [experiment_id],
    )
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"])
    return frame


def novelty_for(settings: Settings, experiment_id: str, alpha: float = ALPHA) -> pd.DataFrame:
    """Each treatment variant's absolute effect on each day since first exposure, alone (not cumulative).

    Returns one row per metric x variant x days_since_exposure: effect, ci_low, ci_high (two-sided 1 - alpha,
    normal), units (treatment). Days where the comparison is undefined (too few units, no variance) are left out,
    as in the analysis's novelty trend. Empty when the novelty mart is not published.
    """
    if marts.missing(settings, [NOVELTY, VARIANTS]):
        return pd.DataFrame(
            columns=["metric", "variant", "days_since_exposure", "effect", "ci_low", "ci_high", "units"]
        )
    stats = marts.query(settings, "select * from read_parquet($1) where experiment_id = $2", [NOVELTY], [experiment_id])
    control = _control(settings, experiment_id)
    rows = []
    for (metric, day), group in stats.groupby(["metric", "days_since_exposure"], sort=True):
        by_variant = {str(r["variant"]): {str(k): v for k, v in r.items()} for r in group.to_dict("records")}
        if control not in by_variant:
            continue
        for variant, row in by_variant.items():
            if variant == control:
                continue
            try:
                compared = compare_moments(
                    Moments.from_row(by_variant[control], False), Moments.from_row(row, False), alpha
                ).comparison
            except ValueError:
                continue
            low, high = compared.absolute_ci
            rows.append((metric, variant, int(str(day)), compared.absolute, low, high, int(row["n"])))
    return pd.DataFrame(
        rows, columns=["metric", "variant", "days_since_exposure", "effect", "ci_low", "ci_high", "units"]
    )


def _control(settings: Settings, experiment_id: str) -> str:
    arms = marts.query(
        settings,
        "select variant from read_parquet($1) where experiment_id = $2 and is_control",
        [VARIANTS],
        [experiment_id],
    )
    return str(arms["variant"].iloc[0]) if len(arms) else "control"


def headline_metric(results: pd.DataFrame) -> str:
    """The metric to chart first: a primary metric with a decision (better/worse), else the first primary one,
    else the first metric."""
    treated = results.loc[~results["is_control"].astype(bool)]
    for rows in (
        treated.loc[(treated["metric_role"] == "primary") & treated["decision"].isin(["better", "worse"])],
        treated.loc[treated["metric_role"] == "primary"],
        results,
    ):
        if len(rows):
            return str(sorted(rows["metric"])[0])
    raise LookupError("no metrics in these results")


@dataclass(frozen=True)
class Advice:
    """What the result means, in words: a headline (ship, do not ship, keep running, do not trust) and caveats."""

    headline: str
    tone: str  # "success" | "error" | "warning" | "info": how the page shows the headline
    caveats: list[str] = field(default_factory=list)


def advice(status: ExperimentStatus, results: pd.DataFrame, novelty_alpha: float = ALPHA) -> Advice:
    """The recommendation for an analyst, from the decision labels of the latest look.

    Ship when some primary metric is ``better``, none is ``worse`` and no guardrail is breached; do not ship when a
    primary metric is ``worse`` or a guardrail is breached; otherwise keep running (or, at the planned size with no
    detectable effect, do not ship on this evidence). SRM overrides everything. Caveats: SRM, a fading (novelty)
    effect, a standing better/worse label beside today's estimate pointing the other way (the results' note says
    the same) or beside today's interval on the lift holding 0, an experiment that has not reached its planned size
    (underpowered for its plan), insufficient data.
    """
    treated = results.loc[~results["is_control"].astype(bool)]
    caveats = []
    if status.srm:
        return Advice(
            f"Do not read this experiment: the split of units fails the sample-ratio-mismatch check "
            f"(p = {status.srm_p:.2g}). Fix assignment or exposure logging first.",
            "error",
            ["Every label is srm_invalid while the split is off."],
        )
    primary = treated.loc[treated["metric_role"] == "primary"]
    guard = treated.loc[treated["metric_role"] == "guardrail"]
    better = primary.loc[primary["decision"] == "better"]
    worse = primary.loc[primary["decision"] == "worse"]
    breached = guard.loc[guard["decision"] == "guardrail_breached"]
    fading = treated.loc[treated["novelty_fading"].eq(True)]  # True / False / missing: only True fades
    if len(fading):
        caveats.append(
            "Novelty: the effect on "
            + ", ".join(f"{m} ({v})" for m, v in zip(fading["metric"], fading["variant"], strict=True))
            + " shrinks with days since exposure; the long-run effect may be smaller than the average shown."
        )
    decided = treated.loc[treated["decision"].isin(["better", "worse"]) & treated["chance_to_win"].notna()]
    reversed_ = decided.loc[(decided["decision"] == "better") != (decided["chance_to_win"] > 0.5)]
    for row in reversed_.itertuples():
        caveats.append(
            f"Reversed since decided: {_decided(row)}, but today's estimate points the other way (P(win) "
            f"{row.chance_to_win:.0%}). The label stands (its error rate was kept), yet the effect may have faded "
            "or reversed: confirm it before acting on the label."
        )
    # Found by a trial: "Ship: ctr is better" beside today's interval on its lift holding 0 read as stronger
    # evidence than there is. The label stands (rule 4), but the analyst is told the estimate has weakened.
    weaker = decided.drop(reversed_.index)
    if {"relative_ci_low", "relative_ci_high"} <= set(weaker.columns):
        weaker = weaker.loc[(weaker["relative_ci_low"] <= 0) & (weaker["relative_ci_high"] >= 0)]
        for row in weaker.itertuples():
            caveats.append(
                f"Weaker since decided: {_decided(row)}, but today's 95% interval on its lift "
                f"[{row.relative_ci_low:+.1%}, {row.relative_ci_high:+.1%}] holds 0. The label stands (it was read "
                "with its error rate kept), yet the effect may be smaller than it looked then."
            )
    if not status.reached:
        caveats.append(
            "Underpowered so far: "
            + (f"{status.status}; " if status.planned else "no planned size; ")
            + "an effect the plan was sized for may not be detected yet, and only interim (always-valid) calls "
            "at a stricter level are possible before the planned size."
        )
    short = treated.loc[treated["decision"] == "insufficient_data"]
    if len(short):
        caveats.append(
            "Insufficient data for "
            + ", ".join(f"{m} ({v})" for m, v in zip(short["metric"], short["variant"], strict=True))
            + "."
        )
    if len(worse) or len(breached):
        what = [f"{m} is worse for {v}" for m, v in zip(worse["metric"], worse["variant"], strict=True)]
        what += [
            f"guardrail {m} breached for {v}" for m, v in zip(breached["metric"], breached["variant"], strict=True)
        ]
        return Advice("Do not ship: " + "; ".join(what) + ".", "error", caveats)
    if len(better):
        parts = []
        for row in better.itertuples():
            lift = f"{row.relative_lift:+.1%}" if _finite(row.relative_lift) else f"{row.absolute_effect:+.4g}"
            parts.append(f"{row.metric} is better for {row.variant} ({lift})")
        inconclusive = guard.loc[guard["decision"] == "guardrail_inconclusive"]
        if len(inconclusive):
            caveats.append("Guardrail " + ", ".join(inconclusive["metric"].unique()) + " is not settled yet.")
        return Advice("Ship: " + "; ".join(parts) + ", and no guardrail is breached.", "success", caveats)
    if len(primary) and (primary["decision"] == "no_detectable_effect").all():
        return Advice("No detectable effect at the planned size: nothing to ship on this evidence.", "info", caveats)
    return Advice("Keep running: no primary metric has a decision yet.", "warning", caveats)


def _decided(row: Any) -> str:
    """``ctr (treatment) was decided better on 2026-01-20`` for a results row (the day when it is known)."""
    decided_on = getattr(row, "decided_on", None)
    since = f" on {str(decided_on)[:10]}" if decided_on is not None and not pd.isna(decided_on) else ""
    return f"{row.metric} ({row.variant}) was decided {row.decision}{since}"


@dataclass(frozen=True)
class Plan:
    """The power/MDE planner's answer for a conversion-rate test (`ml.experiments.power`)."""

    units_per_variant: int
    units_total: int
    alpha_final_read: float
    comparisons: int
    days: DaysNeeded | None
    mde_now: float | None  # absolute MDE with the units analysed so far (None: too few)


def plan(
    settings: Settings,
    baseline: float,
    mde: float,
    relative: bool,
    variants: int = 2,
    metrics: int = 4,
    power: float = 0.8,
    units_now: int | None = None,
) -> Plan:
    """Units per variant to detect ``mde`` on a ``baseline`` rate at the fixed-horizon read (the alpha the decision
    rule keeps for it, Holm across ``(variants - 1) x metrics`` comparisons), as `tailor experiments plan` sizes
    it, the days that takes at the current traffic, and the MDE with ``units_now`` units per variant.

    Raises:
        ValueError: inputs outside their ranges (the message from `ml.experiments.power` says which).
    """
    comparisons = (variants - 1) * metrics
    budget = alpha_budget(ALPHA, planned=True)
    per_variant = sample_size_per_variant(
        baseline, mde, relative=relative, alpha=budget.final, power=power, comparisons=comparisons
    )
    total = per_variant * variants
    days = None
    if not marts.missing(settings, [ENGAGEMENT]):
        activity = marts.read(settings, ENGAGEMENT, ["user_id", "activity_date"])
        if not activity.empty:
            days = days_needed(activity, total)
    mde_now = None
    if units_now is not None and units_now >= 2:
        try:
            mde_now = minimum_detectable_effect(
                baseline, units_now, alpha=budget.final, power=power, comparisons=comparisons
            )
        except ValueError:
            mde_now = None
    return Plan(per_variant, total, budget.final, comparisons, days, mde_now)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None

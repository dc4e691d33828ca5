"""Experiments: every experiment's status and decision, then one experiment in depth."""

import pandas as pd
import streamlit as st

from app.lib import cache, charts, experiments, marts
from app.lib.ui import NOT_DEFINED, num, pct, rate, stop_no_data
from ml.experiments.results import cuped_metrics

settings = cache.settings()
home = str(settings.home)
st.title("Experiments")
try:
    stamp = marts.stamp(settings, experiments.INPUTS)
    listing = cache.experiment_list(home, stamp)
except marts.NoData as error:
    stop_no_data(error)
if not listing:
    stop_no_data("No experiment has exposures in the published results yet.")

st.caption(
    "Decisions follow one rule (docs/experiments.md): always-valid intervals before the planned size, one "
    "fixed-horizon read at it, Holm across each experiment's metrics; 5% family-wise error."
)
summary = pd.DataFrame(
    [
        {
            "experiment": s.experiment_id,
            "status": s.status,
            "SRM": "MISMATCH" if s.srm else "ok",
            "units": ", ".join(f"{v} {u:,}" for v, u in s.units.items()),
            "decisions": ", ".join(f"{k}: {v}" for k, v in s.decisions.items()),
            "description": s.description,
        }
        for s in listing
    ]
)
st.dataframe(summary, hide_index=True, width="stretch", key="experiment_list")
for s in listing:
    if s.srm:
        st.error(f"**{s.experiment_id}**: sample ratio mismatch (p = {s.srm_p:.2g}): do not read its results.")

ids = [s.experiment_id for s in listing]
chosen = st.selectbox("Experiment", ids, key="experiment")
status = next(s for s in listing if s.experiment_id == chosen)
if not status.analysed:
    st.header(chosen)
    st.info(
        f"No units exposed to {chosen} yet: its results appear after the first run that logs exposures. "
        + (status.description or "")
    )
    st.stop()
try:
    results = cache.experiment_results(home, stamp, chosen)
except LookupError as error:
    st.warning(str(error))
    st.stop()

st.header(chosen)
if status.description:
    st.caption(status.description)
advice = experiments.advice(status, results)
{"success": st.success, "error": st.error, "warning": st.warning, "info": st.info}[advice.tone](advice.headline)
for caveat in advice.caveats:
    st.warning(caveat, icon=":material/warning:")

cols = st.columns(len(status.units) + 1)
for col, (variant, units) in zip(cols, status.units.items(), strict=False):
    col.metric(f"Units: {variant}" + (" (control)" if variant == status.control else ""), num(units))
cols[-1].metric("Planned per variant", num(status.planned) if status.planned else "none")

st.subheader("Metrics")
table = experiments.metrics_table(results)
shown_table, number_columns = experiments.styled_metrics(table)
st.dataframe(
    shown_table,
    hide_index=True,
    width="stretch",
    key="metrics_table",
    column_config={
        **number_columns,
        "decision CI": st.column_config.TextColumn(help="the interval that decided: see the legend below"),
        "decided on": st.column_config.TextColumn(help="the day the decision was taken (UTC)"),
    },
)
for metric, variant, note in experiments.metric_notes(results):
    st.warning(f"**{metric}**, {variant}: {note}", icon=":material/info:")
adjusted = cuped_metrics(results)
if adjusted:  # a trial read value 0.2768 against 0.2894 and a lift of -0.0092 as a mistake; the CLI says so too
    st.caption(
        f"CUPED ({', '.join(adjusted)}): value and control value are the raw metrics; the lifts are adjusted for "
        "the pre-period covariate, so they can differ from the values' difference, even in sign "
        "(docs/experiments.md, CUPED)."
    )
with st.expander("What the columns mean"):
    st.markdown(
        "- **value**, **control value**: the variant's and the control's metric, as observed (ratio metrics: sum "
        "of numerators / sum of denominators over units); **units**, **control units**: the units analysed.\n"
        "- **absolute / relative lift**: treatment minus control, and treatment / control - 1, with 95% CIs "
        "(CUPED-adjusted where the pre-period allows).\n"
        "- **p (Holm)**, **q (BH)**: p-values corrected across the experiment's metrics and variants.\n"
        "- **always-valid CI**: the confidence sequence on the relative lift, valid however often you look.\n"
        "- **chance to beat control**: posterior probability under a flat prior (Gaussian approximation).\n"
        "- **decision CI**, **decided on**: the interval the decision was read from (fixed-horizon at the planned "
        "size, or the always-valid one before it; on the effect, or on the relative lift, marked *(lift)*, for a "
        "guardrail) and the day it was taken; a decision stands once taken, while the other columns are today's "
        "estimates (docs/experiments.md, Decisions).\n"
        f"- **{NOT_DEFINED}**: not defined for that row. A guardrail is read by its non-inferiority test "
        "alone: it is outside the Holm and BH families and has no always-valid interval. A relative lift needs a "
        "control value other than 0; a decision CI, a decision read.\n"
        "- **decision**: " + "; ".join(f"`{k}` {v}" for k, v in experiments.LABELS.items())
    )

st.subheader("Lift with 95% intervals")
st.plotly_chart(charts.forest(results), width="stretch", key="forest")

metrics = sorted(results["metric"].unique())
metric = st.selectbox(
    "Metric for the charts over time", metrics, index=metrics.index(experiments.headline_metric(results)), key="metric"
)
daily = cache.experiment_daily(home, stamp, chosen)
left, right = st.columns(2)
with left:
    st.markdown("**Cumulative lift by day, with the always-valid band**")
    if daily.empty or daily.loc[daily["metric"] == metric, "relative_lift"].notna().sum() == 0:
        st.write("No daily results with a relative lift for this metric yet.")
    else:
        st.plotly_chart(charts.cumulative_lift(daily, metric), width="stretch", key="cumulative")
with right:
    st.markdown("**Novelty: the effect by days since first exposure**")
    novelty = cache.experiment_novelty(home, stamp, chosen)
    if novelty.loc[novelty["metric"] == metric].empty:
        st.write("No per-day effects for this metric yet.")
    else:
        st.plotly_chart(charts.novelty(novelty, metric), width="stretch", key="novelty")
    row = results.loc[(results["metric"] == metric) & ~results["is_control"].astype(bool)]
    for r in row.itertuples():
        if r.novelty_slope == r.novelty_slope and r.novelty_slope is not None:
            fading = " The effect is fading (novelty)." if r.novelty_fading else ""
            st.caption(f"{r.variant}: slope {r.novelty_slope:+.3g} per day (p = {r.novelty_p:.2g}).{fading}")

st.subheader("Guardrails")
guards = results.loc[(results["metric_role"] == "guardrail") & ~results["is_control"].astype(bool)]
if guards.empty:
    st.write("This experiment has no guardrail metric.")
for g in guards.to_dict("records"):
    margin = f"may not fall more than {g['non_inferiority_margin']:.0%}" if g["non_inferiority_margin"] else ""
    st.markdown(
        f"- **{g['metric']}** ({g['variant']}, {margin}): `{g['decision']}` - relative change "
        f"{pct(g['relative_lift'])} [{pct(g['relative_ci_low'])}, {pct(g['relative_ci_high'])}]"
    )

st.subheader("Plan: units and days for a conversion-rate test")
conversion = results.loc[(results["metric"] == "conversion") & results["is_control"].astype(bool), "value"]
default_base = float(conversion.iloc[0]) if len(conversion) and 0 < conversion.iloc[0] < 1 else 0.05
a, b, c = st.columns(3)
baseline = a.number_input("Baseline rate", 0.0001, 0.9999, round(default_base, 4), format="%.4f", key="baseline")
relative = c.toggle("Relative effect", value=True, key="relative")
mde = b.number_input(
    "Minimum detectable effect" + (" (relative)" if relative else " (absolute)"),
    0.0001,
    10.0,
    0.10 if relative else 0.01,
    format="%.4f",
    key="mde",
)
try:
    plan = cache.experiment_plan(
        home, stamp, float(baseline), float(mde), bool(relative), min(status.units.values(), default=None)
    )
except ValueError as error:
    st.warning(f"Cannot plan that: {error}")
else:
    p1, p2, p3 = st.columns(3)
    p1.metric("Units per variant", num(plan.units_per_variant))
    days = plan.days.days if plan.days is not None else None
    p2.metric("Days at current traffic", num(days) if days is not None else "never" if plan.days else "-")
    p3.metric("Detectable now (absolute)", pct(plan.mde_now) if plan.mde_now is not None else "-")
    st.caption(
        f"Sized for the fixed-horizon read at alpha {plan.alpha_final_read:g} (the rest is kept for interim looks), "
        f"Holm across {plan.comparisons} comparisons, 80% power (`tailor experiments plan`). "
        + (f"Traffic: {rate(plan.days.new_users_per_day)} new users a day recently." if plan.days else "")
    )

"""Model and data health: champion vs challenger and baselines, drift, data-quality checks, the quarantine, and when
each asset was last materialized."""

import streamlit as st

from app.lib import cache, charts, health, marts, overview
from app.lib.ui import num, stop_no_data, when

#: What the list metrics measure, next to them wherever they are shown (docs/decisions.md, "The ranker").
LOGGED_CLICKS = (
    "AUC and log loss score click prediction on logged impressions: the promotion gate uses them. NDCG@k and "
    "recall@k are measured against what users clicked in the test window, and they could only click what the "
    "logging policy showed them, which favours popularity by construction; see docs/decisions.md, 'The ranker'."
)

settings = cache.settings()
home = str(settings.home)
st.title("Model and data health")
if marts.missing(settings, overview.INPUTS) == list(overview.INPUTS):
    stop_no_data(f"Nothing published in {settings.marts_dir} yet.")

st.subheader("Ranker versions (MLflow registry)")
versions = cache.model_versions(home, cache.file_stamp([settings.models_dir / "mlflow.db"]))
champion_now: int | None = None  # the version serving now, for the drift section below
if versions.empty:
    st.info(
        "No ranker trained yet: the ranker needs 14 days of history (the demo has 28). Run `make demo`, or "
        "`tailor run` once more days have landed."
    )
else:
    ranker = versions.loc[versions["model"] == "ranker"]
    champion = ranker.loc[ranker["aliases"].str.contains("champion")]
    challenger = ranker.loc[ranker["aliases"].str.contains("challenger")]
    c = st.columns(4)
    if len(champion):
        row = champion.iloc[0]
        champion_now = int(row["version"])
        c[0].metric("Champion", f"v{row['version']}")
        c[1].metric("Champion AUC", f"{row['auc']:.4f}")
        c[2].metric("Champion log loss", f"{row['log_loss']:.4f}")
        c[3].metric("Champion NDCG@k vs logged clicks", f"{row['ndcg_at_k']:.4f}", help=LOGGED_CLICKS)
        st.caption(str(row["promotion"]))
    if len(challenger) and (champion.empty or challenger.iloc[0]["version"] != champion.iloc[0]["version"]):
        other = challenger.iloc[0]
        st.markdown(
            f"**Challenger v{other['version']}**: AUC {other['auc']:.4f}, log loss {other['log_loss']:.4f}, "
            f"NDCG@k vs logged clicks {other['ndcg_at_k']:.4f}. {other['promotion']}"
        )
    shown = champion.iloc[0]["version"] if len(champion) else versions["version"].max()
    same_window = versions.loc[versions["version"] == shown].copy()
    same_window["label"] = same_window["model"]
    st.caption(LOGGED_CLICKS)
    left, right = st.columns(2)
    # Each side its own heading: one heading over both read as if the table held v{shown} alone (a trial).
    left.markdown(f"**v{shown} against its baselines on the same test window**")
    right.markdown("**Every version and its baselines, each on its own test window**")
    left.plotly_chart(
        charts.model_metrics(same_window, ["auc", "ndcg_at_k", "recall_at_k"]), width="stretch", key="models"
    )
    # A dash where a baseline has no value (random scores no AUC or log loss), as on the experiments page: a
    # trial read grey "None" there; and the aliases whole ("champio" was cut).
    shown_versions, number_columns = health.styled_versions(versions.drop(columns=["promotion"]))
    # The numbers first: behind created_at they were off the grid's right edge in a half-width column.
    order = ["version", "model", "aliases", *health.METRICS, "created_at"]
    right.dataframe(
        shown_versions, hide_index=True, width="stretch", key="versions",
        column_order=[c for c in order if c in versions],
        column_config={**number_columns, "aliases": st.column_config.TextColumn(width="medium")},
    )  # fmt: skip

checks = cache.check_results(home)
st.subheader("Drift (population stability index)")
drifts = health.drift(checks)
if not drifts:
    st.write("No drift check has run yet (they run with the training set in `tailor run`).")
for d in drifts:
    tone = st.success if d.passed else (st.error if d.severity == "ERROR" else st.warning)
    tone(f"`{d.check}`: {d.description}")
    if d.champion_version is None and champion_now is not None:
        # A first run evaluates the drift checks before its ranker is trained (a trial read "no champion yet" under
        # "Champion v1").
        st.caption(
            f"This evaluation ran before champion v{champion_now} was trained in the same run; the next `tailor run` "
            "judges it."
        )
    if not d.psi.empty and "psi" in d.psi:
        young = ", ".join(d.not_judged)
        st.caption(
            f"{d.judged(champion_now)}, training window {d.reference_window} against {d.current_day}; "
            f"warn at {d.warn:g}, fail at {d.fail:g}. Each bar is what its feature's verdict judges: the PSI beyond "
            "the largest one of the reference's own days shows, 0 where sampling noise explains it (the raw PSI "
            "is in the hover); green within the warn line, orange past it, red past the fail line."
            + (
                f" Not judged, so not drawn (a window longer than the history before the reference): {young}."
                if young
                else ""
            )
        )
        if d.nothing_moved:
            # All bars at 0 read as a chart that failed to render (a trial): said in words instead.
            st.caption(
                f"Every judged feature's excess is 0 (under the warn line {d.warn:g}): nothing moved beyond what "
                "one of the reference's own days, or sampling noise, shows. The raw PSI is in the table below."
            )
        else:
            st.plotly_chart(charts.psi_bars(d.psi, d.warn, d.fail), width="stretch", key=f"psi_{d.check}")
        with st.expander(f"PSI per feature ({d.check})"):
            columns = [c for c in health.DRIFT_TABLE_COLUMNS if c in d.psi]
            st.dataframe(d.psi[columns], hide_index=True, width="stretch", key=f"psi_table_{d.check}")

st.subheader("Data-quality checks (last run that evaluated any)")
if checks.empty:
    st.write("No check results recorded yet: run `make demo` (or `tailor run`).")
else:
    quality = health.quality_checks(checks)
    q1, q2, q3 = st.columns(3)
    q1.metric(
        "Checks evaluated",
        num(len(quality)),
        help=f"Besides the {num(len(checks) - len(quality))} drift checks above: {num(len(checks))} in all, the "
        "figure `tailor run --json` gives as checks_evaluated",
    )
    q2.metric("Failed", num((quality["result"] == "failed").sum()))
    q3.metric("Warned", num((quality["result"] == "warned").sum()), help="WARN severity: the run still succeeded")
    st.dataframe(quality, hide_index=True, width="stretch", key="checks")

st.subheader("Quarantined rows by reason")
try:
    q = cache.quarantine(home, marts.stamp(settings, overview.INPUTS))
except marts.NoData as error:
    st.info(str(error))
else:
    if q.by_reason.empty:
        st.write("Nothing quarantined.")
    else:
        st.dataframe(q.by_reason, hide_index=True, width="stretch", key="quarantine_reasons")

st.subheader("Last materializations")
done = cache.last_materializations(home)
if done.empty:
    st.write("No asset materialized yet.")
else:
    feast = done.loc[done["asset"].str.startswith("feast/")]
    for asset, at in zip(feast["asset"], feast["materialized_at"], strict=True):
        st.markdown(f"- **{asset}**: {when(at)}")
    st.dataframe(done, hide_index=True, width="stretch", key="materializations")

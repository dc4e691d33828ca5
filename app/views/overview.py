"""Overview: the KPIs of personalization by day, the last pipeline run, data freshness and the quarantine."""

import pandas as pd
import streamlit as st

from app.lib import cache, charts, marts, overview
from app.lib.ui import num, pct, stop_no_data, when

settings = cache.settings()
home = str(settings.home)
st.title("Overview")
try:
    stamp = marts.stamp(settings, overview.INPUTS)
    daily = cache.daily_kpis(home, stamp)
    fresh = cache.freshness(home, stamp)
except marts.NoData as error:
    stop_no_data(error)

if daily.empty:
    stop_no_data(f"The engagement marts in {settings.marts_dir} have no rows yet.")

at = overview.latest_complete(daily)
last = daily.iloc[at]
previous = daily.iloc[at - 1] if at > 0 else None
partial = daily.iloc[at + 1 :]


def _against() -> str:
    """What the tiles' changes compare with: the row before, which is the calendar day before unless a gap (days
    without events) lies between."""
    if previous is None:
        return "no day before it"
    gap = previous["day"] != last["day"] - pd.Timedelta(days=1)
    return f"{previous['day']:%Y-%m-%d}" + (", the day before it with events" if gap else ", the day before")


def _partial(row: pd.Series) -> str:
    newest = row["last_event_at"]
    upto = f"events up to {newest:%H:%M} UTC only" if pd.notna(newest) else "sessions but no events"
    return f"{row['day']:%Y-%m-%d}: partial ({upto}), not plotted."


def _span() -> str:
    """How many days the history covers, counted as said: days with events, and the calendar days when fewer."""
    days = f"{fresh.days} day{'s' if fresh.days != 1 else ''} with events"
    if fresh.first_day is None or fresh.last_day is None:
        return days
    span = f"{days} from {fresh.first_day:%Y-%m-%d} to {fresh.last_day:%Y-%m-%d}"
    gaps = fresh.calendar_days - fresh.days
    return span + (f" ({fresh.calendar_days} calendar days, {gaps} of them without events)" if gaps > 0 else "")


st.caption(
    f"Each point is one UTC day of event time. Tiles: {last['day']:%Y-%m-%d}, the newest complete day, against "
    f"{_against()}; {_span()}. Home: `{settings.home}`." + "".join(f" {_partial(row)}" for _, row in partial.iterrows())
)


def _delta(column: str, kind: str) -> str | None:
    if previous is None or pd.isna(previous[column]) or pd.isna(last[column]):
        return None
    change = last[column] - previous[column]
    return f"{change:+.2%} pts" if kind == "pct" else f"{change:+,.0f}"


cols = st.columns(5)
cols[0].metric("Active users (latest day)", num(last["active_users"]), _delta("active_users", "num"))
cols[1].metric("CTR (latest day)", pct(last["ctr"]), _delta("ctr", "pct"))
cols[2].metric("Conversion rate (latest day)", pct(last["conversion_rate"]), _delta("conversion_rate", "pct"))
cols[3].metric("Mean session (s, latest day)", num(last["mean_session_seconds"]), _delta("mean_session_seconds", "num"))
cols[4].metric("Revenue USD (latest day)", num(last["revenue_usd"]), _delta("revenue_usd", "num"))

# Complete days only: a partial newest day drawn as a point read as a collapse (active users near 0, a CTR jump; a
# trial); the caption names it.
st.plotly_chart(charts.kpi_lines(daily.iloc[: at + 1], overview.KPIS), width="stretch", key="kpis")

left, right = st.columns(2)
with left:
    st.subheader("Pipeline and freshness")
    runs = cache.recent_runs(home)
    if runs.empty:
        st.write("No Dagster run recorded in this home yet (`tailor run` records one).")
    else:
        run = runs.iloc[0]
        took = f", took {run['duration_s']:.0f} s" if pd.notna(run["duration_s"]) else " (still running)"
        st.markdown(f"**Last pipeline run:** `{run['status']}` ({run['job']}), started {when(run['started'])}{took}.")
    st.markdown(
        f"**Newest event:** {when(fresh.newest_event)}  \n"
        f"**Newest event landed:** {when(fresh.newest_landing)}  \n"
        f"**Marts published:** {when(fresh.published)}"
    )
with right:
    st.subheader("Quarantine")
    try:
        q = cache.quarantine(home, stamp)
    except marts.NoData as error:
        st.info(str(error))
    else:
        a, b, c = st.columns(3)
        a.metric("Event rows received", num(q.received))
        # A share, not a change: no arrow (a trial read the up-arrow as "more than yesterday").
        b.metric("Quarantined", num(q.quarantined), f"{q.share:.2%} of received", delta_color="off", delta_arrow="off")
        c.metric("Duplicates dropped", num(q.duplicates))
        if q.by_reason.empty:
            st.write("Nothing quarantined.")
        else:
            st.plotly_chart(charts.quarantine_bars(q.by_reason), width="stretch", key="quarantine")

"""The Overview page's numbers: daily KPIs, data freshness and the quarantine, from the published marts.

Definitions (per UTC day of event time):

- active users: users with at least one event that day (rows of ``fct_daily_user_engagement``);
- CTR: clicks / impressions, summed over every user (a click counts for the impression it belongs to);
- conversion rate: the share of that day's active users with at least one conversion;
- revenue: revenue in USD (fixed FX rates, seed ``fx_rates``);
- mean session duration: mean of ``fct_sessions.duration_seconds`` (last event minus first) over the sessions
  that started that day.

The newest day is often partial (the day in progress, or the minutes after midnight that the last sessions spill
into); the page's tiles show the newest complete day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from app.lib import marts
from ml.data_days import COMPLETE_FROM_HOUR
from tailor.settings import Settings

ENGAGEMENT = "fct_daily_user_engagement"
SESSIONS = "fct_sessions"
BATCH_FATES = "fct_batch_fates"
REJECTED = "fct_rejected_rows"
#: The marts the Overview reads (its cache key).
INPUTS = (ENGAGEMENT, SESSIONS, BATCH_FATES, REJECTED)

#: KPI column -> (label, plot format).
KPIS = {
    "active_users": ("Active users", ",.0f"),
    "ctr": ("CTR (clicks / impressions)", ".2%"),
    "conversion_rate": ("Conversion rate (share of active users)", ".2%"),
    "mean_session_seconds": ("Mean session duration (s)", ",.0f"),
    "revenue_usd": ("Revenue (USD)", ",.0f"),
}

_DAILY_SQL = f"""
with engagement as (
    select
        activity_date as day,
        count(*) as active_users,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        count(*) filter (where conversions > 0) as converted_users,
        sum(revenue_usd) as revenue_usd,
        max(last_event_at) as last_event_at
    from read_parquet($1)
    group by 1
),

sessions as (
    select
        session_date as day,
        count(*) as sessions,
        avg(duration_seconds) as mean_session_seconds
    from read_parquet($2)
    group by 1
),

final as (
    select
        coalesce(e.day, s.day) as day,
        coalesce(e.active_users, 0) as active_users,
        coalesce(e.impressions, 0) as impressions,
        coalesce(e.clicks, 0) as clicks,
        e.clicks / nullif(e.impressions, 0) as ctr,
        e.converted_users / nullif(e.active_users, 0) as conversion_rate,
        coalesce(e.revenue_usd, 0) as revenue_usd,
        coalesce(s.sessions, 0) as sessions,
        s.mean_session_seconds,
        e.last_event_at,
        coalesce(e.last_event_at >= coalesce(e.day, s.day) + interval {COMPLETE_FROM_HOUR} hour, false) as complete
    from engagement as e
    full outer join sessions as s on e.day = s.day
)

select * from final order by day
"""


def daily_kpis(settings: Settings) -> pd.DataFrame:
    """One row per day: day, active_users, impressions, clicks, ctr, conversion_rate, revenue_usd, sessions,
    mean_session_seconds (definitions in the module docstring), last_event_at (the day's newest event, UTC; NaT on
    a day with sessions but no engagement row), complete (the day has events from 23:00 UTC on: False for the day in
    progress, or the few minutes after midnight that sessions spill into). Days without any event have no row.

    Raises:
        marts.NoData: the engagement or session mart is not published.
    """
    marts.require(settings, [ENGAGEMENT, SESSIONS], "the KPIs")
    frame = marts.query(settings, _DAILY_SQL, [ENGAGEMENT, SESSIONS])
    frame["day"] = pd.to_datetime(frame["day"])
    for column in ("active_users", "impressions", "clicks", "sessions"):
        frame[column] = frame[column].astype("int64")
    frame["complete"] = frame["complete"].astype(bool)
    return frame


def latest_complete(daily: pd.DataFrame) -> int:
    """Position in `daily_kpis` of the newest complete day (the newest day when none is complete)."""
    positions = [i for i, done in enumerate(daily["complete"].tolist()) if done]
    return positions[-1] if positions else len(daily) - 1


@dataclass(frozen=True)
class Freshness:
    """How recent the published data is.

    Attributes:
        newest_event: the latest event time in the marts (UTC, naive as stored).
        newest_landing: when the newest of those events was landed (ingested).
        published: when the marts were last written (file modification time, UTC).
        first_day, last_day: the first and the last UTC day with an event.
        days: the days with at least one event; fewer than `calendar_days` when the history has gaps (e.g. a
            simulation continued months after its first days).
    """

    newest_event: pd.Timestamp | None
    newest_landing: pd.Timestamp | None
    published: pd.Timestamp | None
    first_day: pd.Timestamp | None
    days: int
    last_day: pd.Timestamp | None = None

    @property
    def calendar_days(self) -> int:
        """Calendar days from `first_day` to `last_day`, both counted (0 without events)."""
        if self.first_day is None or self.last_day is None:
            return 0
        return int((self.last_day.normalize() - self.first_day.normalize()).days) + 1


def freshness(settings: Settings) -> Freshness:
    """Freshness of the engagement mart. Raises marts.NoData when it is not published."""
    marts.require(settings, [ENGAGEMENT], "data freshness")
    row = marts.query(
        settings,
        "select max(last_event_at) as newest_event, max(last_ingested_at) as newest_landing, "
        "min(activity_date) as first_day, max(activity_date) as last_day, count(distinct activity_date) as days "
        "from read_parquet($1)",
        [ENGAGEMENT],
    ).iloc[0]
    return Freshness(
        newest_event=_timestamp(row["newest_event"]),
        newest_landing=_timestamp(row["newest_landing"]),
        published=marts.published_at(settings, INPUTS),
        first_day=_timestamp(row["first_day"]),
        days=int(row["days"] or 0),
        last_day=_timestamp(row["last_day"]),
    )


@dataclass(frozen=True)
class Quarantine:
    """Rows received, accepted, dropped as duplicates and quarantined over every landed event batch, and the
    quarantined rows of every source (events, users, content) by reason."""

    received: int
    accepted: int
    duplicates: int
    quarantined: int
    by_reason: pd.DataFrame  # source, reject_reason, rows, example (one reject_detail), newest ingested_at

    @property
    def share(self) -> float:
        """Quarantined share of received event rows (0 when nothing was received)."""
        return self.quarantined / self.received if self.received else 0.0


_REASONS_SQL = """
select
    source,
    reject_reason,
    count(*) as rows,
    min(reject_detail) as example,
    max(ingested_at) as newest
from read_parquet($1)
group by 1, 2
order by rows desc, source, reject_reason
"""


def quarantine(settings: Settings) -> Quarantine:
    """Batch fates and quarantined rows by reason. Raises marts.NoData when the quality marts are missing."""
    marts.require(settings, [BATCH_FATES, REJECTED], "the quarantine")
    totals = marts.query(
        settings,
        "select coalesce(sum(received), 0) as received, coalesce(sum(accepted), 0) as accepted, "
        "coalesce(sum(duplicates), 0) as duplicates, coalesce(sum(quarantined), 0) as quarantined "
        "from read_parquet($1)",
        [BATCH_FATES],
    ).iloc[0]
    by_reason = marts.query(settings, _REASONS_SQL, [REJECTED])
    return Quarantine(
        received=int(totals["received"]),
        accepted=int(totals["accepted"]),
        duplicates=int(totals["duplicates"]),
        quarantined=int(totals["quarantined"]),
        by_reason=by_reason,
    )


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value)

"""How many days an experiment needs at the current traffic.

Units enter an experiment once, at their first visit, so what matters is how many *distinct* users arrive over
d days, which grows slower than d x daily actives (returning users add nothing). The estimate replays the last
`window` days of activity: the first day d whose cumulative distinct users reach the units needed. Beyond the
window it extrapolates with the new (never seen in the window) users per day of its last week.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class DaysNeeded:
    days: int | None  # None: the traffic never reaches the units needed (no new users arrive)
    extrapolated: bool  # beyond the observed window
    window_days: int
    daily_active_users: float  # mean over the window
    new_users_per_day: float  # mean over the window's last week


def rate_text(value: float) -> str:
    """A per-day rate as the planner states it: ``1,234`` and ``12`` whole, ``3.5`` and ``0.15`` to two significant
    digits, ``0`` for none (a trial read "0 new users a day" for 0.15, beside 70,940 days computed from it)."""
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2g}"


def days_needed(activity: pd.DataFrame, units_needed: int, window: int = 28, share: float = 1.0) -> DaysNeeded:
    """Days to collect `units_needed` units from user-day activity rows (user_id, activity_date).

    Args:
        activity: one row per active user and day (fct_daily_user_engagement).
        units_needed: units across all variants.
        window: days of recent history to replay.
        share: the share of traffic the experiment gets (e.g. 0.5 when it runs on half of users).
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if activity.empty:
        raise ValueError("no activity to estimate traffic from: run `tailor run` on some events first")
    dates = sorted(pd.to_datetime(activity["activity_date"]).dt.date.unique())[-window:]
    recent = activity[pd.to_datetime(activity["activity_date"]).dt.date.isin(set(dates))]
    first_day = recent.groupby("user_id")["activity_date"].min()
    new_by_day = pd.to_datetime(first_day).dt.date.value_counts().reindex(dates, fill_value=0) * share
    cumulative = new_by_day.cumsum()
    dau = float(recent.groupby("activity_date")["user_id"].nunique().mean())
    tail_rate = float(new_by_day.iloc[-7:].mean())
    reached = cumulative[cumulative >= units_needed]
    if len(reached):
        return DaysNeeded(dates.index(reached.index[0]) + 1, False, len(dates), dau, tail_rate)
    if tail_rate <= 0:
        return DaysNeeded(None, True, len(dates), dau, tail_rate)
    extra = math.ceil((units_needed - float(cumulative.iloc[-1])) / tail_rate)
    return DaysNeeded(len(dates) + extra, True, len(dates), dau, tail_rate)

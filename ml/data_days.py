"""Trailing windows counted in days that hold data, so that a gap in the history does not empty them.

Tailor's windows end at the history's time (its newest impression), not the clock's: "the last 7 days" of
popularity, the batch pages' 28 days of active users, the training set's 21 days, the ranker's test, calibration
and tuning days. Counted in calendar days, one event far after the rest (a live event sent with the current time
into a home whose history ended months ago, or a platform back after an outage) moves the end past a gap and leaves
each window with that event alone: one popular item, a training set of one row, a ranker that cannot train
(found by a new-user trial). Counted in days with data, a window that meets a gap reaches over it to the days
before; where the history has no gap (every day of it holds data), nothing changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

_DAY = timedelta(days=1)
_INSTANT = timedelta(microseconds=1)

#: A history's newest day is complete once it holds an event at or after this hour (UTC); before, it is the day in
#: progress, or the minutes after midnight that the last sessions spill into (a few impressions at 1M events). The
#: app's Overview plots complete days only; the retrain rule counts complete days only.
COMPLETE_FROM_HOUR = 23


def window_start(end: datetime, span: timedelta, data_days: Collection[date]) -> datetime:
    """The start of the window of length ``span`` ending at ``end``, stretched back by one day for each whole UTC
    day inside it that holds no data (on or after the first day with data).

    Args:
        end: the window's end (tz-aware or naive UTC; the result has the same kind).
        span: its length in the history's time, e.g. 7 days.
        data_days: the UTC days that hold data (e.g. impressions); days after ``end`` are ignored (the day of an
            ``end`` at midnight too: the window holds nothing of it).

    Returns:
        ``end - span`` when every day of the window holds data (or there are no data days at all), else earlier by
        the number of empty days it spans, repeated until the stretched window spans no more: a gap of 300 days
        inside a 7-day window gives a window of 307 days, holding the 7 days of data nearest ``end``.
    """
    last = (end - _INSTANT).date()  # a window ending at midnight holds nothing of that day
    ordered = sorted({d for d in data_days if d <= last})
    start = end - span
    if not ordered:
        return start
    skipped = 0
    while True:
        low = max(start.date(), ordered[0])
        with_data = len(ordered) - bisect.bisect_left(ordered, low)
        empty = (last - low).days + 1 - with_data
        if empty <= skipped:
            return start
        skipped = empty
        start = end - span - skipped * _DAY


def complete_days(data_days: Collection[date], newest: datetime | None) -> list[date]:
    """The complete days of ``data_days``, oldest first: every day but the newest (the history has moved past it),
    and the newest once ``newest`` (the history's newest event time, tz-aware or naive UTC) is from
    `COMPLETE_FROM_HOUR` on that day. The dbt feature marts end on the same day (macros/newest_complete_day.sql).

    >>> complete_days({date(2026, 1, 1), date(2026, 1, 2)}, datetime(2026, 1, 2, 0, 10))
    [datetime.date(2026, 1, 1)]
    >>> complete_days({date(2026, 1, 1), date(2026, 1, 2)}, datetime(2026, 1, 2, 23, 30))
    [datetime.date(2026, 1, 1), datetime.date(2026, 1, 2)]
    """
    days = sorted(set(data_days))
    if days and newest is not None:
        at = newest.astimezone(UTC) if newest.tzinfo is not None else newest
        if at.date() <= days[-1] and at.hour < COMPLETE_FROM_HOUR:
            days.pop()  # the day in progress
    return days


def newest_days(data_days: Collection[date], count: int) -> list[date]:
    """The newest ``count`` days of ``data_days``, oldest first (fewer when there are fewer)."""
    return sorted(set(data_days))[-count:] if count > 0 else []


def days_of(times: pd.Series | Sequence[datetime]) -> set[date]:
    """The UTC days of ``times`` (tz-aware or naive UTC timestamps; NaT ignored)."""
    values = pd.to_datetime(pd.Series(times), utc=True).dropna()
    if values.empty:
        return set()
    as_days = np.unique(values.dt.tz_localize(None).to_numpy().astype("datetime64[D]"))
    return {d.astype(object) for d in as_days}

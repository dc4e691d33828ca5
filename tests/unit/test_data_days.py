"""Windows counted in days with data: unchanged without a gap, reaching over one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from ml.data_days import COMPLETE_FROM_HOUR, complete_days, days_of, newest_days, window_start

pytestmark = pytest.mark.unit

DAYS = [date(2026, 1, 5) + timedelta(days=n) for n in range(28)]  # 2026-01-05 .. 2026-02-01, every day


def test_without_a_gap_the_window_is_end_minus_span() -> None:
    end = datetime(2026, 2, 1, 23, 57, tzinfo=UTC)
    assert window_start(end, timedelta(days=7), DAYS) == end - timedelta(days=7)
    assert window_start(end, timedelta(days=60), DAYS) == end - timedelta(days=60)  # before the data: no stretch
    assert window_start(end, timedelta(days=7), []) == end - timedelta(days=7)
    naive = datetime(2026, 2, 1, 12)
    assert window_start(naive, timedelta(days=3), DAYS) == naive - timedelta(days=3)


def test_a_gap_inside_the_window_is_skipped() -> None:
    """One event on 2026-11-30, ten months after a history ending 2026-02-01 (the trial's case): the 7 days are
    the half day of 2026-11-30 and the 6.5 days of data before the gap."""
    end = datetime(2026, 11, 30, 12, tzinfo=UTC)
    start = window_start(end, timedelta(days=7), [*DAYS, date(2026, 11, 30)])
    assert start == datetime(2026, 1, 26, 12, tzinfo=UTC)
    gap = (date(2026, 11, 30) - date(2026, 2, 2)).days  # 2026-02-02 .. 2026-11-29 hold nothing
    assert end - start == timedelta(days=7 + gap)
    # A one-day hole in the middle stretches by one day; days after the end are ignored.
    holed = [d for d in DAYS if d != date(2026, 1, 30)] + [date(2026, 3, 1)]
    end = datetime(2026, 2, 1, 23, 57, tzinfo=UTC)
    assert window_start(end, timedelta(days=7), holed) == end - timedelta(days=8)


def test_newest_days_and_days_of() -> None:
    assert newest_days([date(2026, 1, 3), date(2026, 1, 1), date(2026, 5, 1), date(2026, 1, 3)], 2) == [
        date(2026, 1, 3),
        date(2026, 5, 1),
    ]
    assert newest_days(DAYS, 0) == [] and newest_days(DAYS, 100) == DAYS
    times = pd.Series(pd.to_datetime(["2026-01-05T23:59:59Z", "2026-01-06T00:00:00Z", None], utc=True))
    assert days_of(times) == {date(2026, 1, 5), date(2026, 1, 6)}
    assert days_of(pd.Series([], dtype="datetime64[ns, UTC]")) == set()


def test_complete_days_leave_out_the_newest_day_until_its_last_hour() -> None:
    days = {date(2026, 1, 4), date(2026, 1, 6), date(2026, 1, 5)}
    assert complete_days(days, datetime(2026, 1, 6, 0, 30, tzinfo=UTC)) == [date(2026, 1, 4), date(2026, 1, 5)]
    assert complete_days(days, datetime(2026, 1, 6, 22, 59, 59)) == [date(2026, 1, 4), date(2026, 1, 5)]  # naive: UTC
    assert complete_days(days, datetime(2026, 1, 6, 23, 0, tzinfo=UTC)) == sorted(days)
    # The hour is UTC's: 00:30 on the 7th at +02:00 is 22:30 UTC on the 6th, which is still in progress.
    moment = datetime.fromisoformat("2026-01-07T00:30:00+02:00")
    assert complete_days({date(2026, 1, 5), date(2026, 1, 6)}, moment) == [date(2026, 1, 5)]
    assert complete_days(days, None) == sorted(days) and complete_days(set(), None) == []


def test_the_dbt_feature_marts_and_python_share_the_complete_day_rule() -> None:
    """dbt's var complete_from_hour (macros/newest_complete_day.sql, where the feature marts end) and
    ml.data_days.COMPLETE_FROM_HOUR (training set, retrain rule, app) must be one rule."""
    import yaml

    from tailor.settings import REPO_ROOT

    project = yaml.safe_load((REPO_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    assert project["vars"]["complete_from_hour"] == COMPLETE_FROM_HOUR

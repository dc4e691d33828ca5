"""Which training-set days a change reaches, and which impressions the per-day sample keeps: DuckDB on small
hand-made Parquet files, no dbt and no Feast."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ml.features.digests import daily_digests
from ml.features.training import FeatureSource, TrainingWindow, day_keys, iter_spine
from tailor.settings import DEFAULT_TRAINING_WINDOW_DAYS, get_settings

pytestmark = pytest.mark.unit

DAY0 = date(2026, 1, 5)
DAYS = [DAY0 + timedelta(days=i) for i in range(10)]


def _impressions(rows_per_day: dict[date, int], requests_of: int = 3) -> pd.DataFrame:
    """fct_impressions-shaped rows: ``rows_per_day`` impressions per day, ``requests_of`` impressions per request."""
    rows = []
    for day, n in rows_per_day.items():
        for i in range(n):
            rows.append(
                {
                    "impression_id": f"i-{day}-{i}",
                    "request_id": f"r-{day}-{i // requests_of}",
                    "user_id": f"u{i % 7}",
                    "content_id": f"c{i % 5}",
                    "occurred_at": datetime(day.year, day.month, day.day) + timedelta(seconds=60 * i + 1),
                    "position": i % requests_of + 1,
                    "is_clicked": i % 4 == 0,
                }
            )
    return pd.DataFrame(rows)


def _features() -> pd.DataFrame:
    """One row per user and day, stamped at the next midnight (UTC), like fct_user_features_daily."""
    return pd.DataFrame(
        [
            {"user_id": f"u{u}", "event_timestamp": pd.Timestamp(day + timedelta(days=1), tz="UTC"), "clicks_7d": u}
            for day in DAYS
            for u in range(3)
        ]
    )


def _keys(tmp_path: Path, impressions: pd.DataFrame, features: pd.DataFrame, lookback: int | None) -> dict[date, str]:
    impressions.to_parquet(tmp_path / "impressions.parquet")
    features.to_parquet(tmp_path / "features.parquet")
    digests = daily_digests(tmp_path / "impressions.parquet", "cast(occurred_at as date)")
    source = FeatureSource(str(tmp_path / "features.parquet"), "event_timestamp", lookback)
    return day_keys(DAYS, digests, [source], TrainingWindow(10, None))


def _changed(before: dict[date, str], after: dict[date, str]) -> list[date]:
    return [day for day in before if before[day] != after[day]]


def test_a_changed_feature_row_rekeys_the_days_whose_join_can_reach_it_and_no_others(tmp_path: Path) -> None:
    impressions, features = _impressions({d: 6 for d in DAYS}), _features()
    before = _keys(tmp_path, impressions, features, lookback=2)
    changed_at = pd.Timestamp(DAYS[5], tz="UTC")  # the row for DAYS[4], visible from DAYS[5] 00:00 on
    edited = features.copy()
    edited.loc[(edited["event_timestamp"] == changed_at) & (edited["user_id"] == "u1"), "clicks_7d"] = 99
    after = _keys(tmp_path, impressions, edited, lookback=2)
    # An impression on day D reads rows stamped D - 2 days .. D: the row stamped DAYS[5] reaches DAYS[5..7].
    assert _changed(before, after) == DAYS[5:8]
    # Without a TTL the join reaches back to the beginning: every day from the change on.
    assert (
        _changed(_keys(tmp_path, impressions, features, None), _keys(tmp_path, impressions, edited, None)) == DAYS[5:]
    )


def test_a_late_impression_or_a_relabelled_click_rekeys_its_own_day_only(tmp_path: Path) -> None:
    impressions, features = _impressions({d: 6 for d in DAYS}), _features()
    before = _keys(tmp_path, impressions, features, lookback=2)
    late = pd.concat([impressions, _impressions({DAYS[2]: 7}).tail(1)], ignore_index=True)
    assert _changed(before, _keys(tmp_path, late, features, lookback=2)) == [DAYS[2]]
    relabelled = impressions.copy()
    relabelled.loc[relabelled["impression_id"] == f"i-{DAYS[7]}-1", "is_clicked"] = True
    assert _changed(before, _keys(tmp_path, relabelled, features, lookback=2)) == [DAYS[7]]


def test_keys_do_not_depend_on_row_order_and_do_depend_on_the_sample_size(tmp_path: Path) -> None:
    impressions, features = _impressions({d: 6 for d in DAYS}), _features()
    before = _keys(tmp_path, impressions, features, lookback=2)
    shuffled = _keys(
        tmp_path,
        impressions.sample(frac=1, random_state=1).reset_index(drop=True),
        features.sample(frac=1, random_state=2).reset_index(drop=True),
        lookback=2,
    )
    assert shuffled == before  # dbt's delete+insert reorders rows: that alone must not rebuild anything
    impressions.to_parquet(tmp_path / "impressions.parquet")
    digests = daily_digests(tmp_path / "impressions.parquet", "cast(occurred_at as date)")
    source = FeatureSource(str(tmp_path / "features.parquet"), "event_timestamp", 2)
    sampled = day_keys(DAYS, digests, [source], TrainingWindow(10, 100))
    assert all(sampled[d] != before[d] for d in DAYS)


def test_the_daily_sample_keeps_whole_requests_chosen_by_md5_of_the_request_id(tmp_path: Path) -> None:
    """Days above the cap keep the requests whose md5 (little-endian, over 2**128) is below cap / day's rows,
    computed here with hashlib; days at or below the cap keep everything; rows stay in time order."""
    settings = get_settings(tmp_path / "home")
    settings.marts_dir.mkdir(parents=True)
    sizes = {DAYS[0]: 300, DAYS[1]: 90, DAYS[2]: 600}
    impressions = _impressions(sizes)
    impressions.to_parquet(settings.marts_dir / "fct_impressions.parquet")
    cap = 120
    spine = pd.concat(list(iter_spine(settings, chunk_rows=50, max_per_day=cap)), ignore_index=True)

    def kept(request_id: str, day_rows: int) -> bool:
        u = int.from_bytes(hashlib.md5(request_id.encode()).digest(), "little") / 2**128
        return day_rows <= cap or u < cap / day_rows

    impressions["day"] = impressions["occurred_at"].dt.date
    expected = impressions[
        [kept(r, sizes[d]) for r, d in zip(impressions["request_id"], impressions["day"], strict=True)]
    ]
    assert list(spine["impression_id"]) == list(expected["impression_id"])
    per_day = expected.groupby("day").size()
    assert per_day[DAYS[1]] == 90  # below the cap: every impression
    assert 0.6 * cap < per_day[DAYS[0]] < 1.4 * cap and 0.6 * cap < per_day[DAYS[2]] < 1.4 * cap
    assert spine["event_timestamp"].is_monotonic_increasing
    assert str(spine["event_timestamp"].dt.tz) == "UTC"
    # The mart's naive timestamps are UTC: the spine says so, whatever the machine's zone.
    assert spine["event_timestamp"].iloc[0] == expected["occurred_at"].iloc[0].replace(tzinfo=UTC)


def test_the_window_settings_come_from_the_environment_with_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILOR_TRAINING_WINDOW_DAYS", raising=False)
    monkeypatch.delenv("TAILOR_TRAINING_MAX_IMPRESSIONS_PER_DAY", raising=False)
    assert get_settings("/tmp/x").training_window_days == DEFAULT_TRAINING_WINDOW_DAYS
    monkeypatch.setenv("TAILOR_TRAINING_WINDOW_DAYS", "9")
    monkeypatch.setenv("TAILOR_TRAINING_MAX_IMPRESSIONS_PER_DAY", "0")
    settings = get_settings("/tmp/x")
    assert TrainingWindow.from_settings(settings) == TrainingWindow(9, None)  # 0: every impression
    monkeypatch.setenv("TAILOR_TRAINING_WINDOW_DAYS", "two weeks")
    with pytest.raises(ValueError, match=r"TAILOR_TRAINING_WINDOW_DAYS='two weeks' is not a whole number >= 1"):
        get_settings("/tmp/x")
    with pytest.raises(ValueError, match="at least 1 day"):
        TrainingWindow(0)
    with pytest.raises(ValueError, match="max_impressions_per_day must be at least 1"):
        replace(TrainingWindow(3), max_impressions_per_day=0)


def test_the_window_is_the_newest_days_with_impressions() -> None:
    """Found by a trial: one live event months after a history made the training set that one row. The window is
    the newest N days that hold impressions; without a gap, the newest N calendar days."""
    from ml.features.training import _window_days

    days = {date(2026, 1, 1) + timedelta(days=n): f"k{n}" for n in range(28)}
    window = TrainingWindow(21)
    end = datetime(2026, 1, 28, 23, 58, tzinfo=UTC)
    assert _window_days(days, window, end) == tuple(date(2026, 1, 8) + timedelta(days=n) for n in range(21))
    gapped = {**days, date(2026, 11, 30): "live"}
    late = datetime(2026, 11, 30, 23, 5, tzinfo=UTC)
    assert _window_days(gapped, window, late) == (
        *(date(2026, 1, 9) + timedelta(days=n) for n in range(20)),
        date(2026, 11, 30),
    )
    assert _window_days({}, window, None) == ()


def test_the_day_in_progress_waits_until_it_is_complete() -> None:
    """Found by a trial: a newest day of 20 impressions (the minutes the last sessions spill past midnight) was a
    training and test day, with labels still to come and no feature row of its own. It joins the window once it
    holds an impression from 23:00 UTC (ml.data_days.COMPLETE_FROM_HOUR), and only the newest day can wait."""
    from ml.features.training import _window_days

    days = {date(2026, 1, 1) + timedelta(days=n): f"k{n}" for n in range(5)}
    window = TrainingWindow(3)
    spill = datetime(2026, 1, 5, 0, 12, tzinfo=UTC)
    assert _window_days(days, window, spill) == (date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4))
    assert _window_days(days, window, datetime(2026, 1, 5, 22, 59, tzinfo=UTC)) == _window_days(days, window, spill)
    assert _window_days(days, window, datetime(2026, 1, 5, 23, 0, tzinfo=UTC))[-1] == date(2026, 1, 5)
    # The day of a live event months after the history waits too; the window reaches back over the gap.
    live = {**days, date(2026, 11, 30): "live"}
    assert _window_days(live, window, datetime(2026, 11, 30, 9, 0, tzinfo=UTC)) == (
        date(2026, 1, 3),
        date(2026, 1, 4),
        date(2026, 1, 5),
    )


def test_a_first_build_with_no_complete_day_still_writes_the_empty_set(tmp_path: Path) -> None:
    """Found by CI: the contract's first file (five events before 23:00 on one day) left the training set with no
    complete day, the first build was taken for "up to date", and the step failed reading a state never written.
    A first build is never up to date; once its (empty) set is written, the same plan is."""
    from ml.features.training import _write_state, plan_training_set

    settings = get_settings(tmp_path / "home")
    settings.marts_dir.mkdir(parents=True)
    _impressions({DAY0: 5}).to_parquet(settings.marts_dir / "fct_impressions.parquet")
    _features().to_parquet(tmp_path / "features.parquet")
    sources = [FeatureSource(str(tmp_path / "features.parquet"), "event_timestamp", None)]

    first = plan_training_set(settings, sources=sources)
    assert first.days == () and first.build == () and first.reason == "first build"
    assert not first.up_to_date
    # The run summary says why the impressions are left out (a trial read "no impression or feature changed").
    assert first.waiting == DAY0
    assert first.waiting_note == (
        f"; the impressions of {DAY0} wait: the newest day of data joins once it holds an impression from 23:00 UTC "
        "or impressions of a later day arrive (it counts as complete then, whatever the clock says)"
    )

    # What write_training_set leaves for it: the file and a state naming the same sources and no day.
    from ml.features.training import _header, training_set_path

    training_set_path(settings).parent.mkdir(parents=True)
    training_set_path(settings).touch()
    header = _header(settings, "ranker_v1")
    _write_state(settings, {"header": header, "sources": [asdict(s) for s in sources], "days": {}})
    again = plan_training_set(settings, sources=sources)
    assert again.up_to_date and again.waiting == DAY0
    assert again.reason == "no impression of a complete day or feature changed"

    # Once the day holds an impression from 23:00 UTC it is complete: nothing waits, and the day is built.
    late = _impressions({DAY0: 5})
    late.loc[4, "occurred_at"] = datetime(DAY0.year, DAY0.month, DAY0.day, 23, 5)
    late.to_parquet(settings.marts_dir / "fct_impressions.parquet")
    complete = plan_training_set(settings, sources=sources)
    assert complete.waiting is None and complete.waiting_note == "" and complete.build == (DAY0,)

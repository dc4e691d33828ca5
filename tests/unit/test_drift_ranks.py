"""A rank input on its day's scale (`ml.monitoring.ranks`): a ranked set that grows day by day does not read as
drift, a change in what gets shown still does. Simulated days whose truth is known: the pages show items at a
fixed relative depth of the day's ranked range, plus a share tied at the bottom (no activity in the window)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.monitoring.config import DriftConfig
from ml.monitoring.drift import compare, fit_reference
from ml.monitoring.ranks import is_rank, on_day_scale

pytestmark = pytest.mark.unit

RANK = "popularity_rank_7d"
START = pd.Timestamp("2026-01-05", tz="UTC")


def _day(
    rng: np.random.Generator,
    day: int,
    bottom: int,
    tied_share: float = 0.25,
    depth: tuple[float, float] = (0.7, 3.0),
    rows: int = 1500,
    users: int = 50,
) -> pd.DataFrame:
    """One day of impressions over a ranked set whose bottom (the rank every item without activity shares) is
    ``bottom``: ``tied_share`` of them show a bottom item, the others an item at a relative depth of the ranked
    range drawn from Beta(*depth) (so what is shown does not change, only the size of the set)."""
    tied = rng.random(rows) < tied_share
    ranks = np.where(tied, bottom, np.ceil(rng.beta(*depth, rows) * (bottom - 1)).clip(1, bottom - 1))
    # The same rank is the same item within a day; the bottom's impressions go to a pool of new items.
    items = np.where(tied, rng.integers(0, 200, rows) + 10_000 * (day + 1), ranks)
    return pd.DataFrame(
        {
            RANK: ranks.astype(np.int64),
            "clicks_7d": rng.poisson(3.0, rows),
            "user_id": rng.integers(0, users, rows),
            "content_id": items.astype(np.int64),
            "event_timestamp": START + pd.Timedelta(days=day) + pd.to_timedelta(rng.uniform(0, 86_399, rows), "s"),
        }
    )


def _status(reference_days: list[pd.DataFrame], current: pd.DataFrame, scaled: bool) -> tuple[str, float, float]:
    """The rank's status, PSI and day baseline, the reference's days against the current day; a one-day
    reference's ``fail`` lowered to ``warn`` (`compare`'s rule) is reported as ``fail`` here: these tests are about
    the PSI's size, and tests/unit/test_drift.py checks that rule."""
    reference = pd.concat(reference_days, ignore_index=True)
    if scaled:
        reference, current = on_day_scale(reference, [RANK]), on_day_scale(current, [RANK])
    fitted = fit_reference(reference, [RANK], day_column="event_timestamp")
    report = compare(fitted, current, DriftConfig())
    [found] = report.features
    return "fail" if RANK in report.capped else found.status, found.psi, found.baseline


def test_rank_scale_divides_by_the_largest_rank_of_each_day() -> None:
    rows = pd.DataFrame(
        {
            RANK: [3, 400, 100, None, 5, 410],
            "ctr_smoothed_7d": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            "event_timestamp": pd.to_datetime(
                [
                    "2026-01-05 01:00",
                    "2026-01-05 23:00",
                    "2026-01-05 12:00",
                    "2026-01-06 00:30",
                    "2026-01-06 09:00",
                    "2026-01-06 20:00",
                ],
                utc=True,
            ),
        }
    )
    scaled = on_day_scale(rows, [RANK, "ctr_smoothed_7d"])
    expected = [3 / 400, 1.0, 100 / 400, np.nan, 5 / 410, 1.0]
    np.testing.assert_allclose(scaled[RANK].to_numpy(dtype=float), expected)
    pd.testing.assert_series_equal(scaled["ctr_smoothed_7d"], rows["ctr_smoothed_7d"])
    assert rows[RANK].iloc[1] == 400  # the caller's rows are left as they were
    assert on_day_scale(rows, ["ctr_smoothed_7d"]) is rows
    assert is_rank(RANK) and is_rank("rank") and not is_rank("ranker_score") and not is_rank("franks_7d")
    with pytest.raises(ValueError, match=r"lack column\(s\) \['event_timestamp'\]"):
        on_day_scale(rows.drop(columns="event_timestamp"), [RANK])


def test_a_growing_ranked_set_alone_is_not_drift() -> None:
    """The bottom rank grows by 12 a day (more items with activity, as on a platform that publishes every day),
    what gets shown stays the same. Raw, the reference's last cut point sits on its bottom tie and the next days'
    tie lands in a bin the reference never filled: every day fails with a PSI of several, the false alarm of the
    200-user world (PSI 3.4). On the day's scale no day alarms, against one reference day or two."""
    rng = np.random.default_rng(31)
    days = [_day(rng, d, bottom=400 + 12 * d) for d in range(14)]
    for current in days[8:]:
        raw_status, raw_psi, _ = _status([days[7]], current, scaled=False)
        assert raw_status == "fail" and raw_psi > 2.0
        assert _status([days[7]], current, scaled=True)[0] == "ok"
    # Two reference days: raw, one of them against the other is itself a PSI of several (the day baseline), which
    # would hide any real change of that size; on the day's scale the baseline is the days' sampling scatter.
    _, _, raw_baseline = _status(days[6:8], days[13], scaled=False)
    status, _, baseline = _status(days[6:8], days[13], scaled=True)
    assert raw_baseline > 2.0 and baseline < 0.1 and status == "ok"


@pytest.mark.parametrize(
    ("change", "tied_share", "depth"),
    [
        ("more of the pages go to items without activity", 0.6, (0.7, 3.0)),
        ("the pages move deeper into the order", 0.25, (1.5, 1.5)),
        ("the pages move to the top of the order", 0.05, (0.3, 6.0)),
    ],
)
def test_a_change_in_what_gets_shown_still_alarms(change: str, tied_share: float, depth: tuple[float, float]) -> None:
    """The same growing set, but the current day shows other ranks than the reference day did: fails."""
    rng = np.random.default_rng(32)
    reference = _day(rng, 7, bottom=484)
    for seed in range(5):
        current = _day(np.random.default_rng(100 + seed), 13, bottom=556, tied_share=tied_share, depth=depth)
        status, psi, _ = _status([reference], current, scaled=True)
        assert status == "fail", f"{change}: PSI {psi:.3f}"

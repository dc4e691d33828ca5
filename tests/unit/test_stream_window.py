"""The recent-activity window and the stream's contract check, against independent references.

The window is replayed event by event, in arrival order, and compared at many moments with a plain SQL query
(DuckDB) over the same events: counts, dwell and the ordered click categories and items must agree exactly.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest

from tailor.stream.events import ContractChecker, Event, Rejection
from tailor.stream.window import FEATURES, Activity, RecentActivity, empty_row, summarize

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 10, 0, 0)
MINUTES = timedelta(minutes=30)
TYPES = ["impression", "impression", "impression", "click", "view", "conversion", "exposure"]
CATEGORIES = ["news", "sport", "music", None]
ITEMS = ["c1", "c2", "c3", "c4"]


def _random_events(seed: int, n: int = 600) -> list[tuple[Activity, datetime]]:
    """(activity, arrival) pairs over three hours; some arrive late, some twice (re-deliveries)."""
    rng = random.Random(seed)
    events: list[tuple[Activity, datetime]] = []
    for i in range(n):
        kind = rng.choice(TYPES)
        at = T0 + timedelta(seconds=rng.randrange(0, 3 * 3600), microseconds=rng.randrange(0, 1_000_000))
        activity = Activity(
            event_id=f"e{i}",
            user_id=f"u{rng.randrange(6)}",
            event_type=kind,
            event_time=at,
            category=rng.choice(CATEGORIES) if kind == "click" else None,
            dwell_seconds=round(rng.uniform(0, 120), 3) if kind == "view" else None,
            content_id=rng.choice(ITEMS) if kind == "click" else None,
        )
        delay = timedelta(seconds=rng.choice([0, 1, 5, 60, 600, 2400]))  # 2400 s: arrives after it expired
        events.append((activity, at + delay))
        if rng.random() < 0.1:
            events.append((activity, at + delay + timedelta(seconds=rng.randrange(1, 900))))
    return sorted(events, key=lambda pair: (pair[1], pair[0].event_id))


def _sql_reference(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, dict[str, Any]]:
    """Window values as of ``now`` from the events that have arrived by then, written as one SQL query."""
    rows = con.execute(
        """
        with arrived as (
            select * from events where arrival <= $now
            qualify row_number() over (partition by event_id order by arrival) = 1
        ),
        in_window as (
            select * from arrived
            where event_time > $now - interval 30 minute and event_time <= $now
              and event_type in ('impression', 'click', 'view', 'conversion')
        ),
        last_click_per_category as (
            select user_id, category, event_time, event_id from in_window
            where event_type = 'click' and category is not null
            qualify row_number() over (partition by user_id, category order by event_time desc, event_id desc) = 1
        ),
        last_click_per_item as (
            select user_id, content_id, event_time, event_id from in_window
            where event_type = 'click' and category is not null
            qualify row_number() over (partition by user_id, content_id order by event_time desc, event_id desc) = 1
        ),
        items as (
            select user_id, list(content_id order by event_time desc, event_id desc) as items
            from last_click_per_item group by user_id
        ),
        categories as (
            select user_id, list(category order by event_time desc, event_id desc) as categories
            from last_click_per_category group by user_id
        )
        select
            in_window.user_id,
            count(*) filter (where event_type = 'impression'),
            count(*) filter (where event_type = 'click'),
            count(*) filter (where event_type = 'view'),
            count(*) filter (where event_type = 'conversion'),
            coalesce(sum(dwell_seconds), 0),
            coalesce(any_value(categories.categories), []),
            coalesce(any_value(items.items), []),
        from in_window left join categories using (user_id) left join items using (user_id)
        group by in_window.user_id
        """,
        {"now": now},
    ).fetchall()
    result = {}
    for user, impressions, clicks, views, conversions, dwell, categories, items in rows:
        result[user] = {
            "impressions_30m": impressions,
            "clicks_30m": clicks,
            "views_30m": views,
            "conversions_30m": conversions,
            "dwell_seconds_30m": dwell,
            "clicked_categories_30m": list(categories),
            "last_clicked_category": categories[0] if categories else None,
            "clicked_items_30m": list(items),
        }
    return result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sliding_windows_agree_with_a_sql_reference_at_every_moment(seed: int) -> None:
    events = _random_events(seed)
    con = duckdb.connect()
    con.execute(
        "create table events (event_id varchar, user_id varchar, event_type varchar, event_time timestamp, "
        "category varchar, dwell_seconds double, content_id varchar, arrival timestamp)"
    )
    con.executemany(
        "insert into events values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (a.event_id, a.user_id, a.event_type, a.event_time, a.category, a.dwell_seconds, a.content_id, t)
            for a, t in events
        ],
    )
    window = RecentActivity(MINUTES)
    online: dict[str, dict[str, Any]] = {}  # what the consumer would have pushed, user by user
    compared = 0
    for step, (activity, arrival) in enumerate(events):
        changed = window.expire(arrival)
        if window.add(activity, arrival):
            changed.add(activity.user_id)
        for user in changed:
            online[user] = window.row(user)
        if step % 25 == 0:
            expected = _sql_reference(con, arrival)
            for user in {f"u{i}" for i in range(6)}:
                got = window.row(user)
                want = expected.get(user, empty_row())
                assert got["dwell_seconds_30m"] == pytest.approx(want.pop("dwell_seconds_30m"), abs=1e-9)
                got.pop("dwell_seconds_30m")
                assert got == want, f"user {user} at {arrival}"
                # Only changed users are pushed: what is online must still be the current value.
                assert online.get(user, empty_row())["clicks_30m"] == want["clicks_30m"]
            compared += 1
    assert compared > 20


def test_an_event_leaves_the_window_exactly_thirty_minutes_after_it_happened() -> None:
    window = RecentActivity(MINUTES)
    assert window.add(Activity("e1", "u1", "click", T0, "news"), T0)
    assert window.expire(T0 + MINUTES - timedelta(microseconds=1)) == set()
    assert window.row("u1")["clicks_30m"] == 1
    assert window.expire(T0 + MINUTES) == {"u1"}
    assert window.row("u1") == empty_row()
    assert window.users == set() and len(window) == 0
    # Arriving when it is already 30 minutes old: never counted.
    assert not window.add(Activity("e2", "u1", "click", T0), T0 + MINUTES)


def test_a_redelivered_event_and_an_exposure_change_nothing() -> None:
    window = RecentActivity(MINUTES)
    click = Activity("e1", "u1", "click", T0, "news")
    assert window.add(click, T0)
    assert not window.add(click, T0 + timedelta(minutes=5))
    assert not window.add(Activity("e2", "u1", "exposure", T0), T0)
    assert window.row("u1")["clicks_30m"] == 1 and len(window) == 1


def test_categories_and_items_are_distinct_and_most_recent_first() -> None:
    clicks = [
        Activity("e1", "u1", "click", T0, "news", content_id="c1"),
        Activity("e2", "u1", "click", T0 + timedelta(minutes=1), "sport", content_id="c2"),
        Activity("e3", "u1", "click", T0 + timedelta(minutes=2), "news", content_id="c3"),
        Activity("e5", "u1", "click", T0 + timedelta(minutes=2), "sport", content_id="c1"),  # same time: e5 first
        # Unknown content: counted, but neither its category nor the item is listed (the mart does the same).
        Activity("e4", "u1", "click", T0 + timedelta(minutes=3), None, content_id="c9"),
    ]
    row = summarize(reversed(clicks))
    assert row["clicks_30m"] == 5
    assert row["clicked_categories_30m"] == ["sport", "news"]
    assert row["last_clicked_category"] == "sport"
    assert row["clicked_items_30m"] == ["c1", "c3", "c2"]
    assert set(row) == set(FEATURES)


def _event(**fields: object) -> str:
    base: dict[str, object] = {
        "event_id": "e1",
        "event_type": "click",
        "user_id": "u1",
        "occurred_at": "2026-01-05T10:00:00+01:00",
        "content_id": "c1",
        "request_id": "r1",
    }
    return json.dumps({**base, **fields})


def test_the_stream_applies_the_warehouse_contract_checks() -> None:
    checker = ContractChecker()
    received = datetime(2026, 1, 5, 12, 0)
    texts = [
        _event(),
        "not json",
        _event(event_type="teleport"),
        _event(event_type="view", dwell_seconds=-1),
        _event(occurred_at="2026-01-07T10:00:00Z"),  # 46 h after it was received
        _event(request_id=None),
    ]
    results = checker.check(texts, [received] * len(texts))
    first = results[0]
    assert isinstance(first, Event)
    assert (first.user_id, first.occurred_at, first.content_id) == ("u1", datetime(2026, 1, 5, 9, 0), "c1")
    reasons = [(r.index, r.reason) for r in results if isinstance(r, Rejection)]
    assert reasons == [
        (1, "invalid_json"),
        (2, "unknown_event_type"),
        (3, "bad_value"),
        (4, "future_timestamp"),
        (5, "missing_field"),
    ]
    assert "dwell_seconds must be between 0 and 86400" in str(results[3])

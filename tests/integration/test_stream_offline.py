"""The offline recent-activity mart agrees with the stream consumer's window, through Feast's point-in-time join.

A small simulated history is built with plain `dbt build`. For random (user, moment) pairs, Feast's
`get_historical_features` on the recent_activity view (30-minute TTL over fct_user_recent_activity) must return
exactly what the consumer's window code (tailor/stream/window.py) computes from the same events: the value a model
would have read online at that moment. A row with no recent activity comes back null or zero, never a future value.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Hashable, Iterator, Mapping
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from simulator import SimulationConfig, simulate
from tailor.ingest import ingest_paths
from tailor.settings import Settings, get_settings
from tailor.stream.window import COUNTS, FEATURES, Activity, RecentActivity, empty_row
from tests.conftest import query_warehouse, run_dbt
from tests.integration.feast_repo import apply_recent_activity_repo, sqlite_online_store

pytestmark = pytest.mark.integration

WINDOW = timedelta(minutes=30)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    root = tmp_path_factory.mktemp("recent_activity")
    simulate(SimulationConfig(users=150, days=8, seed=11), root / "generated")
    settings = get_settings(root / "home")
    ingest_paths([root / "generated"], settings)
    run_dbt(settings, "build")
    repo = apply_recent_activity_repo(root / "feast", sqlite_online_store(root / "feast"), settings.home)
    yield settings, repo


def _activities(settings: Settings) -> dict[str, list[Activity]]:
    """Every event per user, with its click's category as of the click: from the warehouse and the marts."""
    warehouse = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        events = warehouse.execute(
            "select event_id, user_id, event_type, least(occurred_at, coalesce(received_at, occurred_at)), "
            "content_id, dwell_seconds from marts.fct_events"
        ).fetchall()
    finally:
        warehouse.close()
    con = duckdb.connect()
    versions: dict[str, list[tuple[datetime, datetime | None, str | None]]] = {}
    for content_id, valid_from, valid_to, category in con.execute(
        f"select content_id, valid_from, valid_to, category from "
        f"read_parquet('{settings.marts_dir / 'dim_content_history.parquet'}') order by valid_from"
    ).fetchall():
        versions.setdefault(content_id, []).append((valid_from, valid_to, category))

    def category_at(content_id: str | None, moment: datetime) -> str | None:
        for valid_from, valid_to, category in versions.get(content_id or "", []):
            if valid_from <= moment and (valid_to is None or moment < valid_to):
                return category
        return None

    by_user: dict[str, list[Activity]] = {}
    for event_id, user, kind, at, content_id, dwell in events:
        category = category_at(content_id, at) if kind == "click" else None
        clicked = content_id if kind == "click" else None
        by_user.setdefault(user, []).append(Activity(event_id, user, kind, at, category, dwell, clicked))
    for activities in by_user.values():
        activities.sort(key=lambda a: a.event_time)
    return by_user


def _window_at(activities: list[Activity], moment: datetime) -> dict[str, Any]:
    """The consumer's code, replaying a user's events up to ``moment``."""
    window = RecentActivity(WINDOW)
    times = [a.event_time for a in activities]
    start, end = bisect.bisect_right(times, moment - WINDOW), bisect.bisect_right(times, moment)
    for activity in activities[start:end]:
        window.add(activity, moment)
    return window.row(activities[0].user_id)


def _served(row: Mapping[Hashable, Any]) -> dict[str, Any]:
    """A training row's features as plain values; null (no row within the TTL) means nothing recent."""
    if pd.isna(row["clicks_30m"]):
        return empty_row()
    return {
        **{name: int(row[name]) for name in COUNTS},
        "dwell_seconds_30m": round(float(row["dwell_seconds_30m"]), 6),
        "clicked_categories_30m": list(row["clicked_categories_30m"]),
        "last_clicked_category": row["last_clicked_category"] or None,
        "clicked_items_30m": list(row["clicked_items_30m"]),
    }


def test_training_rows_get_exactly_the_window_the_stream_would_have_served(built: tuple[Settings, Path]) -> None:
    from feast import FeatureStore

    settings, repo = built
    by_user = _activities(settings)
    rng = random.Random(5)
    moments: list[tuple[str, datetime]] = []
    for user in sorted(by_user):
        counted = [a for a in by_user[user] if a.event_type != "exposure"]
        for a in rng.sample(counted, min(4, len(counted))):
            # Just at an event, inside a burst, just before and just after the window lets it go.
            moments += [
                (user, a.event_time),
                (user, a.event_time + timedelta(minutes=rng.uniform(0, 30))),
                (user, a.event_time + WINDOW - timedelta(microseconds=1)),
                (user, a.event_time + WINDOW),
                (user, a.event_time - timedelta(seconds=rng.uniform(0, 3600))),
            ]
    entity_df = pd.DataFrame(moments, columns=["user_id", "event_timestamp"])
    entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.tz_localize("UTC")
    got = (
        FeatureStore(repo_path=str(repo))
        .get_historical_features(entity_df=entity_df, features=[f"recent_activity:{f}" for f in FEATURES])
        .to_df()
    )
    assert len(got) == len(moments)
    mismatches, busy = [], 0
    for row in got.to_dict("records"):
        moment = row["event_timestamp"].tz_convert("UTC").tz_localize(None).to_pydatetime()
        want = _window_at(by_user[row["user_id"]], moment)
        want["dwell_seconds_30m"] = round(want["dwell_seconds_30m"], 6)
        have = _served(row)
        if have != want:
            mismatches.append((row["user_id"], moment, have, want))
        busy += want["impressions_30m"] > 0
    assert not mismatches, f"{len(mismatches)} of {len(got)} differ, e.g. {json.dumps(mismatches[:3], default=str)}"
    assert busy > len(moments) / 4, "too few moments inside a burst of activity to prove anything"


def test_an_incremental_run_equals_a_full_rebuild(built: tuple[Settings, Path], tmp_path: Path) -> None:
    """A late event, a window crossing midnight and a client clock ahead by 20 hours, delivered after the build.

    The late event makes the run recompute from the day before its own (extra_days=1); that day's first windows
    reach into the evening before, which the run must read but not rewrite. The late day is chosen so that this
    evening has events (otherwise the test would prove nothing).
    """
    settings, _ = built
    [(first_day, last_day)] = query_warehouse(settings, "select min(event_date), max(event_date) from marts.fct_events")
    [(content_id,)] = query_warehouse(settings, "select min(content_id) from marts.dim_content")
    evenings = query_warehouse(
        settings,
        "select distinct event_date from marts.fct_events where event_type in ('impression', 'click', 'view') "
        f"and occurred_at >= event_date + interval 1 day - interval {int(WINDOW.total_seconds())} second "
        f"and event_date <= date '{last_day - timedelta(days=5)}' order by event_date desc",
    )
    assert evenings, f"no events in the last 30 minutes of any day from {first_day} to {last_day - timedelta(days=5)}"
    late_noon = datetime.combine(evenings[0][0] + timedelta(days=2), time(12))
    near_midnight = datetime.combine(last_day, time(23, 50))
    skewed = datetime.combine(last_day, time(10))

    def event(event_id: str, user: str, kind: str, at: datetime, received: datetime | None = None) -> str:
        fields: dict[str, Any] = {"content_id": content_id, "request_id": f"r-{event_id}"}
        if kind == "impression":
            fields.update(position=1, surface="home")
        return json.dumps(
            {
                "event_id": event_id,
                "event_type": kind,
                "user_id": user,
                "occurred_at": at.isoformat() + "Z",
                "received_at": (received or at).isoformat() + "Z",
                **fields,
            }
        )

    lines = [
        event("late-1", "u0000001", "impression", late_noon),
        event("late-2", "u0000001", "click", late_noon + timedelta(seconds=5)),
        event("midnight-1", "u0000002", "impression", near_midnight),
        event("midnight-2", "u0000002", "click", near_midnight + timedelta(minutes=1)),
        # Occurred (by its clock) on the last day, received the afternoon before: it counts from then.
        event("skewed-1", "u0000003", "click", skewed, received=skewed - timedelta(hours=20)),
    ]
    delivery = tmp_path / "late.jsonl"
    delivery.write_text("\n".join(lines) + "\n")
    ingest_paths([delivery], settings)
    run_dbt(settings, "build")
    rows = "select * exclude (last_ingested_at) from marts.fct_user_recent_activity order by user_id, event_timestamp"
    incremental = query_warehouse(settings, rows)
    counted = query_warehouse(
        settings,
        "select user_id, event_timestamp, clicks_30m from marts.fct_user_recent_activity "
        f"where (user_id, event_timestamp) in (('u0000001', timestamp '{late_noon + timedelta(seconds=5)}'), "
        f"('u0000003', timestamp '{skewed - timedelta(hours=20)}')) order by user_id",
    )
    assert [(u, c >= 1) for u, _, c in counted] == [("u0000001", True), ("u0000003", True)]
    run_dbt(settings, "build", "-s", "fct_user_recent_activity", "--full-refresh")
    assert query_warehouse(settings, rows) == incremental

    # A late event whose client clock ran ahead: its event time is the day before its occurred_at's day.
    skewed_late = datetime.combine(first_day + timedelta(days=2), time(10))
    (tmp_path / "skewed.jsonl").write_text(
        event("skewed-2", "u0000004", "click", skewed_late, received=skewed_late - timedelta(hours=20)) + "\n"
    )
    ingest_paths([tmp_path / "skewed.jsonl"], settings)
    run_dbt(settings, "build")
    incremental = query_warehouse(settings, rows)
    run_dbt(settings, "build", "-s", "fct_user_recent_activity", "--full-refresh")
    assert query_warehouse(settings, rows) == incremental

"""Incremental behaviour on hand-made deliveries: late events, re-deliveries, profile changes, bad files.

Each test delivers files with `tailor ingest` and builds with plain `dbt build`, as a user would.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tailor.ingest import IngestError, ingest_paths
from tailor.settings import Settings
from tests.conftest import query_warehouse as _query
from tests.conftest import run_dbt

pytestmark = pytest.mark.integration


def _event(event_id: str, occurred_at: str, event_type: str = "view", user_id: str = "u1", **extra: object) -> str:
    fields: dict[str, object] = {"content_id": "c1", "dwell_seconds": 10} if event_type == "view" else {}
    row = {
        "event_id": event_id,
        "event_type": event_type,
        "user_id": user_id,
        "occurred_at": occurred_at,
        "received_at": extra.pop("received_at", occurred_at),
        **fields,
        **extra,
    }
    return json.dumps(row)


def _deliver(settings: Settings, folder: Path, name: str, lines: list[str]) -> None:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    ingest_paths([path], settings)


def _profiles(folder: Path, settings: Settings, plan: str, updated_at: str, name: str) -> None:
    _deliver(
        settings,
        folder,
        name,
        [
            json.dumps(
                {
                    "user_id": "u1",
                    "signup_at": "2025-12-01T00:00:00Z",
                    "country": "DE",
                    "plan": plan,
                    "updated_at": updated_at,
                }
            )
        ],
    )


def test_late_event_lands_in_its_day_and_session(tmp_path: Path, settings: Settings) -> None:
    _profiles(tmp_path, settings, "free", "2025-12-01T00:00:00Z", "users-1.jsonl")
    # Day 1: a session 10:00-10:40 with a 40-minute hole that splits it in two; later days keep the pipeline going.
    _deliver(
        settings,
        tmp_path,
        "day1.jsonl",
        [
            _event("a", "2026-01-05T10:00:00Z"),
            _event("b", "2026-01-05T10:40:00Z"),
            _event("c", "2026-01-06T09:00:00Z"),
            _event("d", "2026-01-07T09:00:00Z"),
        ],
    )
    run_dbt(settings, "build")
    assert _query(settings, "select count(*) from marts.fct_sessions where session_date = '2026-01-05'") == [(2,)]
    # Two days later, an event from 10:20 on Jan 5 arrives: it bridges the hole, so the two sessions become one.
    _deliver(
        settings,
        tmp_path,
        "day3.jsonl",
        [
            _event("late", "2026-01-05T10:20:00Z", received_at="2026-01-07T12:00:00Z"),
            _event("e", "2026-01-07T10:00:00Z"),
        ],
    )
    run_dbt(settings, "build")
    sessions = _query(
        settings, "select session_start, events from marts.fct_sessions where session_date = '2026-01-05' order by all"
    )
    assert [(str(start), n) for start, n in sessions] == [("2026-01-05 10:00:00", 3)]
    [(event_date, session_start)] = _query(
        settings, "select event_date, session_start from marts.fct_events where event_id = 'late'"
    )
    assert (str(event_date), str(session_start)) == ("2026-01-05", "2026-01-05 10:00:00")
    daily = _query(settings, "select activity_date, views from marts.fct_daily_user_engagement order by 1")
    assert [(str(d), n) for d, n in daily] == [("2026-01-05", 3), ("2026-01-06", 1), ("2026-01-07", 2)]


def test_a_redelivered_event_is_counted_once(tmp_path: Path, settings: Settings) -> None:
    _deliver(
        settings, tmp_path, "first.jsonl", [_event("x1", "2026-01-05T10:00:00Z"), _event("x2", "2026-01-05T10:01:00Z")]
    )
    run_dbt(settings, "build")
    # The collector re-sends x1 the next day, in a different file (a different batch), and x3 twice in one file.
    _deliver(
        settings,
        tmp_path,
        "retry.jsonl",
        [
            _event("x1", "2026-01-05T10:00:00Z", received_at="2026-01-06T08:00:00Z"),
            _event("x3", "2026-01-05T10:02:00Z"),
            _event("x3", "2026-01-05T10:02:00Z"),
        ],
    )
    run_dbt(settings, "build")
    fates = _query(
        settings, "select event_id, fate, count(*) from staging.stg_landing__events group by all order by all"
    )
    assert fates == [
        ("x1", "accepted", 1),
        ("x1", "duplicate", 1),
        ("x2", "accepted", 1),
        ("x3", "accepted", 1),
        ("x3", "duplicate", 1),
    ]
    assert _query(settings, "select count(*), count(distinct event_id) from marts.fct_events") == [(3, 3)]
    assert _query(settings, "select views from marts.fct_daily_user_engagement") == [(3,)]


def test_profile_changes_are_kept_as_history(tmp_path: Path, settings: Settings) -> None:
    _profiles(tmp_path, settings, "free", "2025-12-01T00:00:00Z", "users-1.jsonl")
    run_dbt(settings, "build")
    _profiles(tmp_path, settings, "premium", "2026-01-06T09:30:00Z", "users-2.jsonl")
    run_dbt(settings, "build")
    history = _query(settings, "select plan, dbt_valid_from, dbt_valid_to from snapshots.snp_users order by 2")
    assert [(plan, str(f), str(t)) for plan, f, t in history] == [
        ("free", "2025-12-01 00:00:00", "2026-01-06 09:30:00"),
        ("premium", "2026-01-06 09:30:00", "9999-12-31 00:00:00"),
    ]
    assert _query(settings, "select plan from marts.dim_users") == [("premium",)]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_bad_file_leaves_landing_and_warehouse_unchanged(tmp_path: Path, settings: Settings) -> None:
    _deliver(settings, tmp_path, "good.jsonl", [_event("g1", "2026-01-05T10:00:00Z")])
    run_dbt(settings, "build")
    landing_before = sorted(p.name for p in settings.landing.rglob("*.parquet"))
    warehouse_before = _digest(settings.warehouse)
    binary = tmp_path / "photo.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    next_day = tmp_path / "next.jsonl"
    next_day.write_text(_event("g2", "2026-01-06T10:00:00Z") + "\n")
    with pytest.raises(IngestError, match="binary"):
        ingest_paths([next_day, binary], settings)
    assert sorted(p.name for p in settings.landing.rglob("*.parquet")) == landing_before
    assert _digest(settings.warehouse) == warehouse_before
    run_dbt(settings, "build")
    assert _query(settings, "select event_id from marts.fct_events") == [("g1",)]


def test_an_item_nobody_saw_lately_keeps_its_daily_rows_after_a_later_delivery(
    tmp_path: Path, settings: Settings
) -> None:
    """Found in CI by the generated-events test: an item no catalog record names, clicked only before the 28-day
    window an incremental run reads, lost its rows from the new days on, so `daily_rows_without_gaps` failed the
    build. Its rows must run to the newest day (zeros in the windows), the same as a full rebuild gives. (The
    newest days' events are from 23:00 on: a day before that is in progress and has no feature rows yet.)"""
    click = {"event_type": "click", "request_id": "r1"}
    _deliver(
        settings,
        tmp_path,
        "old.jsonl",
        [
            _event("old", "2026-01-05T10:00:00Z", content_id="c-old", **click),
            _event("recent", "2026-02-28T23:10:00Z", content_id="c-recent", **click),
        ],
    )
    run_dbt(settings, "build")
    _deliver(settings, tmp_path, "later.jsonl", [_event("later", "2026-03-10T23:10:00Z", content_id="c1", **click)])
    build = run_dbt(settings, "build", check=False)
    assert build.returncode == 0, build.stdout[-3000:]
    sql = (
        "select content_id, min(feature_date), max(feature_date), count(*), sum(content_clicks_1d) "
        "from marts.fct_content_features_daily group by 1 order by 1"
    )
    incremental = _query(settings, sql)
    assert [(c, str(first), str(last), n, clicks) for c, first, last, n, clicks in incremental] == [
        ("c-old", "2026-01-05", "2026-03-10", 65, 1),
        ("c-recent", "2026-02-28", "2026-03-10", 11, 1),
        ("c1", "2026-03-10", "2026-03-10", 1, 1),
    ]
    run_dbt(settings, "build", "--full-refresh", "--select", "fct_content_features_daily")
    assert _query(settings, sql) == incremental

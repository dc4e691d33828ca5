"""POST /events on a real `tailor serve`: the landing zone holds exactly the events of an accepted batch, a batch
with one bad event is refused whole, the events reach the Redis stream, and a click changes the user's next page
through the stream (`tailor stream consume` pushing recent activity to the online store, the session boost).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import redis

from tailor.ingest import read_log
from tests.process_group import start_group, stop_group
from tests.service.conftest import TAILOR, Built, Server

pytestmark = pytest.mark.integration


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _click(user: str, content: str) -> dict[str, Any]:
    return {
        "event_id": f"svc-{uuid.uuid4().hex}",
        "event_type": "click",
        "user_id": user,
        "occurred_at": _now(),
        "content_id": content,
        "request_id": f"r-{uuid.uuid4().hex[:12]}",
    }


def _view(user: str, content: str, dwell: float) -> dict[str, Any]:
    return {**_click(user, content), "event_type": "view", "dwell_seconds": dwell}


def _landed_ids(built: Built) -> list[str]:
    """Every event_id in the landing zone's event batches (what the warehouse will read)."""
    import duckdb

    glob = str(built.settings.landing / "events" / "batch-*.parquet")
    with duckdb.connect() as con:
        rows = con.execute(f"select raw->>'event_id' from read_parquet('{glob}') where json_valid(raw)").fetchall()
    return [r[0] for r in rows]


def test_an_accepted_batch_lands_exactly_its_events_once_and_reaches_the_stream(
    built: Built, server: Server, stream_url: str
) -> None:
    events = [_click("u0000010", "c0000011"), _view("u0000010", "c0000011", 42.5), _click("u0000011", "c0000012")]
    response = httpx.post(f"{server.url}/events", json={"events": events})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["received"] == 3 and body["status"] == "landed"
    assert body["stream"] == {"published": 3, "behind": False, "detail": None}
    batch = pd.read_parquet(built.settings.landing / "events" / f"batch-{body['batch_id']}.parquet")
    assert [json.loads(raw)["event_id"] for raw in batch["raw"]] == [e["event_id"] for e in events]
    [record] = [r for r in read_log(built.settings) if r.batch_id == body["batch_id"]]
    assert record.kind == "events" and record.status == "landed"
    # Every event was checked before it landed, so the log counts them as accepted (not null: "not checked").
    assert (record.received, record.accepted, record.rejected) == (3, 3, {})
    # The batch names the request, not the spool file deleted once it landed (a dbt warning quotes this name).
    assert re.fullmatch(
        r"POST /events at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \(request [0-9a-f]{8}\)", record.source_file
    )
    assert set(batch["source_file"]) == {record.source_file}
    # A retry of the same batch (same bytes) is recognised: nothing lands twice.
    again = httpx.post(f"{server.url}/events", json={"events": events})
    assert again.status_code == 202 and again.json()["status"] == "already_ingested"
    assert again.json()["batch_id"] == body["batch_id"]
    # The log's record of the retry names its request too, not a spool file that no longer exists (a trial).
    seen_again = [r for r in read_log(built.settings) if r.batch_id == body["batch_id"] and r.status != "landed"]
    assert seen_again and all(r.source_file.startswith("POST /events at ") for r in seen_again)
    assert seen_again[-1].source_file != record.source_file  # its own request
    landed = _landed_ids(built)
    assert all(landed.count(e["event_id"]) == 1 for e in events)
    stream = redis.Redis.from_url(stream_url, decode_responses=True)
    entries: list[tuple[str, dict[str, str]]] = stream.xrange("tailor:events")  # type: ignore[assignment]
    texts = [fields["event"] for _, fields in entries]
    assert all(any(e["event_id"] in t for t in texts) for e in events)


def test_a_single_event_is_accepted_too(built: Built, server: Server) -> None:
    event = _click("u0000012", "c0000013")
    response = httpx.post(f"{server.url}/events", json=event)
    assert response.status_code == 202 and response.json()["received"] == 1
    assert event["event_id"] in _landed_ids(built)


def test_a_batch_with_a_bad_event_is_refused_whole_naming_each_bad_event(built: Built, server: Server) -> None:
    good = [_click("u0000013", "c0000014"), _click("u0000013", "c0000015")]
    no_content = {k: v for k, v in _click("u0000013", "c0000016").items() if k != "content_id"}
    negative = _view("u0000013", "c0000017", -5)
    # Three problems at once: each is named, so the client fixes them in one go (a trial's took three round trips).
    several = {**_view("u0000013", "c0000018", -1), "user_id": " ", "occurred_at": "2026-02-30T10:00:00Z"}
    before = sorted((built.settings.landing / "events").glob("batch-*.parquet"))
    response = httpx.post(f"{server.url}/events", json={"events": [good[0], no_content, good[1], negative, several]})
    assert response.status_code == 422
    body = response.json()
    assert "3 of 5 events break the event contract" in body["error"] and "nothing was landed" in body["error"]
    refused = {r["event"]: r for r in body["rejected"]}
    assert set(refused) == {2, 4, 5}
    assert refused[2]["event_id"] == no_content["event_id"] and refused[2]["reason"] == "missing_field"
    assert "content_id" in refused[2]["detail"]
    assert refused[2]["problems"] == [refused[2]["detail"]]  # its one problem
    assert refused[4]["event_id"] == negative["event_id"] and "dwell" in refused[4]["detail"]
    problems = refused[5]["problems"]
    assert problems[0] == refused[5]["detail"] and len(problems) == 3, problems
    for field in ("user_id", "occurred_at", "dwell_seconds"):
        assert sum(field in text for text in problems) == 1, (field, problems)
    assert sorted((built.settings.landing / "events").glob("batch-*.parquet")) == before
    assert not {e["event_id"] for e in good} & set(_landed_ids(built))


@pytest.fixture
def consumer(built: Built, stream_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`tailor stream consume` as a user runs it, pushing recent activity into this home's online store."""
    process = start_group(
        [TAILOR, "stream", "consume", "--redis", stream_url, "--consumer", "service-test", "--max-idle", "120"],
        tmp_path / "consumer.log",
        built.env,
    )
    yield process
    stop_group(process, grace_s=30)


def test_a_click_changes_the_next_page_through_the_stream(
    built: Built, server: Server, consumer: subprocess.Popen[bytes]
) -> None:
    for n in range(3, 30):  # a user with no click in the last 30 minutes (other tests post clicks)
        user = built.personalized_user(n)
        url = f"{server.url}/recommendations/{user}"
        before = httpx.get(url).json()
        if not any("just read" in item["reason"] for item in before["items"]):
            break
    assert before["served_by"] == "model"
    assert not any("just read" in item["reason"] for item in before["items"])
    mine = [i for i in before["items"] if i["slot_kind"] == "personalized"]
    category = mine[-1]["category"]  # the user's lowest personalized slot: the boost lifts its category
    content = pd.read_parquet(built.settings.marts_dir / "dim_content.parquet")
    clicked = str(content.loc[content["category"] == category, "content_id"].iloc[0])
    posted = time.monotonic()
    response = httpx.post(f"{server.url}/events", json=_click(user, clicked))
    assert response.status_code == 202 and response.json()["stream"]["behind"] is False
    after = before
    while time.monotonic() - posted < 30 and consumer.poll() is None:
        after = httpx.get(url).json()
        if any(item["reason"] == f"because you just read {category}" for item in after["items"]):
            break
        time.sleep(0.1)
    waited = time.monotonic() - posted
    assert any(item["reason"] == f"because you just read {category}" for item in after["items"]), after
    assert waited < 15, f"the click took {waited:.1f} s to change the page"
    rank = {item["content_id"]: item["rank"] for item in after["items"]}
    assert rank[mine[-1]["content_id"]] <= mine[-1]["rank"] if mine[-1]["content_id"] in rank else True

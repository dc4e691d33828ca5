"""The contract's row checks: each reason code, agreement with the JSON Schema, and one tolerance in one place."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import jsonschema
import pytest

from tailor.contract.rules import classify_sql, schema_path

pytestmark = pytest.mark.unit

VALID = {
    "impression": {
        "event_id": "e1",
        "event_type": "impression",
        "user_id": "u1",
        "occurred_at": "2026-01-05T10:00:00.000Z",
        "received_at": "2026-01-05T10:00:01.500Z",
        "content_id": "c1",
        "position": 2,
        "surface": "home",
        "request_id": "r1",
    },
    "click": {
        "event_id": "e2",
        "event_type": "click",
        "user_id": "u1",
        "occurred_at": "2026-01-05T10:00:04Z",
        "content_id": "c1",
        "request_id": "r1",
    },
    "view": {
        "event_id": "e3",
        "event_type": "view",
        "user_id": "u1",
        "occurred_at": "2026-01-05T10:00:09+01:00",
        "content_id": "c1",
        "dwell_seconds": 41.5,
    },
    "conversion": {
        "event_id": "e4",
        "event_type": "conversion",
        "user_id": "u1",
        "occurred_at": "2026-01-05T10:05:00Z",
        "value": 9.99,
        "currency": "EUR",
    },
    "exposure": {
        "event_id": "e5",
        "event_type": "exposure",
        "user_id": "u1",
        "occurred_at": "2026-01-05T10:00:00Z",
        "experiment_id": "exp_ranker",
        "variant": "treatment",
    },
}


def _with(base: str, **changes: object) -> str:
    row = dict(VALID[base])
    for key, value in changes.items():
        if value is _DROP:
            row.pop(key)
        else:
            row[key] = value
    return json.dumps(row)


_DROP = object()

# (line, expected reason): every reason code the warehouse can give, reached by the smallest change.
INVALID = [
    ('{"event_id": "e9", "event_type": "click",', "invalid_json"),
    ("[1, 2, 3]", "invalid_json"),
    (_with("click", user_id=_DROP), "missing_field"),
    (_with("click", event_id=""), "missing_field"),
    (_with("impression", position=_DROP), "missing_field"),
    (_with("conversion", currency=None), "missing_field"),
    (_with("click", user_id=42), "bad_type"),
    (_with("impression", position="top"), "bad_type"),
    (_with("view", dwell_seconds="abc"), "bad_type"),
    (_with("click", event_type="scroll"), "unknown_event_type"),
    (_with("click", occurred_at="yesterday"), "bad_timestamp"),
    (_with("click", occurred_at="2026-13-45T10:00:00Z"), "bad_timestamp"),
    (_with("click", occurred_at="2026-01-05T10:00:00"), "bad_timestamp"),  # no zone
    (_with("click", received_at="soon"), "bad_timestamp"),
    (_with("impression", position=0), "bad_value"),
    (_with("impression", position=18446744073709551615), "bad_value"),  # too large to cast is still out of range
    (_with("view", dwell_seconds=-1), "bad_value"),
    (_with("conversion", value=-5), "bad_value"),
    (_with("conversion", currency="usd"), "bad_value"),
    (_with("click", occurred_at="2027-01-05T10:00:00Z", received_at="2026-01-05T10:00:00Z"), "future_timestamp"),
    # A client clock wrong in both fields: our ingestion time (2026-01-06) is the reference.
    (_with("click", occurred_at="2030-01-01T00:00:00Z", received_at="2030-01-01T00:00:01Z"), "future_timestamp"),
    (_with("click", occurred_at="1970-01-01T00:00:00Z"), "bad_timestamp"),  # before 2000: a zeroed clock
]


def _classify(lines: list[str], ingested_at: datetime = datetime(2026, 1, 6)) -> list[tuple[str | None, str | None]]:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(
        "create table t as select 'b' as batch_id, 'f' as source_file, "
        "generate_subscripts($1, 1)::bigint as line_number, unnest($1) as raw, $2::timestamp as ingested_at",
        [lines, ingested_at],
    )
    rows = con.execute(f"select reject_reason, reject_detail from ({classify_sql('events', 't')}) order by line_number")
    return rows.fetchall()


def test_valid_events_of_every_type_are_accepted() -> None:
    results = _classify([json.dumps(row) for row in VALID.values()])
    assert results == [(None, None)] * len(VALID)


@pytest.mark.parametrize(("line", "reason"), INVALID, ids=[f"{r}-{i}" for i, (_, r) in enumerate(INVALID)])
def test_each_malformed_kind_gets_its_reason_and_a_readable_detail(line: str, reason: str) -> None:
    [(got, detail)] = _classify([line])
    assert got == reason
    assert detail  # a human-readable explanation accompanies every rejection


def test_fields_of_another_event_type_are_ignored() -> None:
    con = duckdb.connect()
    stray = _with("view", value=5.0, currency="USD", position=3)
    con.execute(
        "create table t as select 'b' as batch_id, 'f' as source_file, 1::bigint as line_number, "
        "$1 as raw, timestamp '2026-01-06' as ingested_at",
        [stray],
    )
    row = con.execute(
        f"select reject_reason, value, currency, position, dwell_seconds from ({classify_sql('events', 't')})"
    )
    assert row.fetchall() == [(None, None, None, None, 41.5)]


def test_late_by_three_days_is_accepted_but_a_year_early_is_not() -> None:
    late = _with("click", occurred_at="2026-01-02T10:00:00Z", received_at="2026-01-05T09:00:00Z")
    assert _classify([late]) == [(None, None)]
    # Without received_at, the ingestion time is the reference.
    future = _with("click", occurred_at="2026-01-08T10:00:00Z")
    assert _classify([future])[0][0] == "future_timestamp"


def test_the_published_schema_agrees_with_the_warehouse_checks() -> None:
    schema = json.loads(schema_path("events").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for row in VALID.values():
        validator.validate(row)
    for line, reason in INVALID:
        if reason in {"invalid_json", "future_timestamp"} or "1970" in line:
            continue  # not a property of one JSON document / needs the receive time / a bound only SQL applies
        assert not validator.is_valid(json.loads(line)), f"schema accepts a row the warehouse rejects ({reason})"

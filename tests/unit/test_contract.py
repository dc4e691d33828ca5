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
    # Issue 12, part 1: values the warehouse's columns cannot hold, or that are not numbers at all.
    (
        '{"event_id":"ev-h2","event_type":"conversion","user_id":"u-h1","occurred_at":"2026-11-20T10:05:00Z",'
        '"value":1e15,"currency":"USD"}',
        "bad_value",
    ),
    (_with("conversion", value=1_000_000_001), "bad_value"),
    (_with("conversion", value=1e9 + 1e-6), "bad_value"),
    (_with("conversion").replace('"value": 9.99', '"value": 1e400'), "bad_value"),  # parsers make it infinity
    (_with("conversion").replace('"value": 9.99', '"value": NaN'), "bad_value"),
    (_with("conversion").replace('"value": 9.99', '"value": Infinity'), "bad_value"),
    (_with("view").replace('"dwell_seconds": 41.5', '"dwell_seconds": -Infinity'), "bad_value"),
    (_with("view", dwell_seconds=86400.001), "bad_value"),
    # Part 2: offsets and times that do not exist are refused, not silently shifted.
    (_with("click", occurred_at="2026-11-20T10:05:00+99:99"), "bad_timestamp"),
    (_with("click", occurred_at="2026-11-20T10:05:00+24:00"), "bad_timestamp"),
    (_with("click", occurred_at="2026-11-20T10:05:00+05:60"), "bad_timestamp"),
    (_with("click", occurred_at="2026-11-20T24:00:00Z"), "bad_timestamp"),
    (_with("click", occurred_at="2026-02-29T10:00:00Z"), "bad_timestamp"),
    (_with("click", received_at="2026-01-05T10:00:00+24:00"), "bad_timestamp"),
    # Ids made only of whitespace, whatever the whitespace, are missing.
    (_with("click", user_id="\t"), "missing_field"),
    (_with("click", user_id="\n\r"), "missing_field"),
    (_with("click", event_id="\u00a0"), "missing_field"),
    (_with("click", event_id="\u3000\u2003"), "missing_field"),
    (_with("click", content_id="\ufeff"), "missing_field"),
    (_with("exposure", variant=" \t "), "missing_field"),
    # Lengths the schema states hold in the warehouse too; an out-of-range position is a bad value, not a type.
    (_with("click", user_id="u" * 129), "bad_value"),
    (_with("exposure", variant="v" * 65), "bad_value"),
    (_with("impression", surface="s" * 65), "bad_value"),
    (_with("impression", position=1001), "bad_value"),
    (_with("impression", position=1e20), "bad_value"),
    (_with("impression", position=2.5), "bad_type"),
    (_with("conversion", currency="USD\n"), "bad_value"),
    # A control character anywhere in an id or a label (a NUL, a tab inside, DEL, C1) is a bad value.
    (_with("click", user_id="u\u0000x"), "bad_value"),
    (_with("click", content_id="c\tx"), "bad_value"),
    (_with("impression", surface="home\u007f"), "bad_value"),
    (_with("exposure", variant="\u0080b"), "bad_value"),
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


def test_a_patterned_field_says_what_form_it_needs() -> None:
    [(reason, detail)] = _classify([json.dumps({**VALID["conversion"], "currency": "usd"})])
    assert (reason, detail) == ("bad_value", "currency does not have the form the contract requires (ISO 4217 code: "
                                "[A-Z]{3}), got usd")  # fmt: skip


def test_a_control_character_is_named_by_its_code_and_place_not_echoed() -> None:
    lines = [
        json.dumps({**VALID["click"], "user_id": "\u00e9\U0001f600\u0000x"}),
        json.dumps({**VALID["exposure"], "variant": "v\u009fx"}),
    ]
    [(reason, detail), (reason2, detail2)] = _classify(lines)
    assert (reason, detail) == (
        "bad_value",
        "user_id must not hold a control character (U+0000-U+001F, U+007F-U+009F), got U+0000 at character 3",
    )
    assert (reason2, detail2) == (
        "bad_value",
        "variant must not hold a control character (U+0000-U+001F, U+007F-U+009F), got U+009F at character 2",
    )


@pytest.mark.parametrize(
    ("changes", "column", "expected"),
    [
        ({"position": 2.0}, "position", 2),  # JSON Schema: 2.0 is an integer
        ({"position": 1000}, "position", 1000),
        ({"user_id": "u" * 128}, "user_id", "u" * 128),
        ({"user_id": "\U0001f600" * 128}, "user_id", "\U0001f600" * 128),  # 128 characters, not bytes
        ({"occurred_at": "2028-02-29T10:00:00+05:30"}, "occurred_at", datetime(2028, 2, 29, 4, 30)),
        ({"occurred_at": "2000-02-29T23:59:59.123456-23:59"}, "occurred_at", datetime(2000, 3, 1, 23, 58, 59, 123456)),
        ({"occurred_at": "2026-01-05T10:00:00+0530"}, "occurred_at", datetime(2026, 1, 5, 4, 30)),
        ({"surface": " home "}, "surface", " home "),  # kept as sent: not blank
    ],
)
def test_values_on_the_limits_are_accepted_as_they_were_sent(
    changes: dict[str, object], column: str, expected: object
) -> None:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(
        "create table t as select 'b' as batch_id, 'f' as source_file, 1::bigint as line_number, "
        "$1 as raw, timestamp '2030-01-01' as ingested_at",
        [_with("impression", received_at=None, **changes)],
    )
    row = con.execute(f"select reject_reason, {column} from ({classify_sql('events', 't')})").fetchall()
    assert row == [(None, expected)]


def test_conversion_value_at_the_limit_fits_every_warehouse_column() -> None:
    """One billion units (the contract's maximum) in the strongest currency still fits DECIMAL(18, 4) after
    conversion to USD, the narrowest column revenue flows into (fct_sessions, fct_daily_user_engagement)."""
    import csv

    from tailor.settings import DBT_PROJECT_DIR

    with (DBT_PROJECT_DIR / "seeds" / "fx_rates.csv").open() as handle:
        strongest = max(float(row["usd_per_unit"]) for row in csv.DictReader(handle))
    maximum = json.loads(schema_path("events").read_text())["allOf"][3]["then"]["properties"]["value"]["maximum"]
    con = duckdb.connect()
    assert con.execute(f"select cast({maximum} * {strongest} as decimal(18, 4))").fetchall()[0][0] > 0
    # ... and its square (experiment statistics multiply a unit's revenue by itself) fits DECIMAL(38, 8).
    assert con.execute(f"select cast({maximum} * {strongest} as decimal(38, 4)) ^ 2").fetchall()[0][0] > 0


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


def test_details_name_json_types_and_the_future_tolerance() -> None:
    """Found by a trial: "content_id must be a string, got ubigint 12345" named DuckDB's type, and the
    future_timestamp detail left out the tolerance that makes it a rejection."""
    lines = [
        _with("click", content_id=12345),
        _with("view", dwell_seconds="abc"),
        _with("impression", position=-3.5),
        _with("click", user_id=True),
        _with("click", content_id={"id": 1}),
        _with("click", occurred_at="2026-01-08T10:00:00Z", received_at="2026-01-05T09:00:00Z"),
    ]
    details = [detail for _, detail in _classify(lines)]
    assert details[:5] == [
        "content_id must be a string, got integer 12345",
        'dwell_seconds must be of type number, got string "abc"',
        "position must be of type integer, got -3.5",
        "user_id must be a string, got boolean true",
        'content_id must be a string, got object {"id":1}',
    ]
    assert details[5] == (
        "occurred_at 2026-01-08T10:00:00Z is more than 24 h after its received time 2026-01-05T09:00:00Z"
    )


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
        if reason in {"invalid_json", "future_timestamp"}:
            continue  # not a property of one JSON document / needs the receive time
        document = json.loads(line)
        if not _is_strict_json(document):
            continue  # NaN and Infinity are not JSON (RFC 8259): no schema can be asked about them
        assert not validator.is_valid(document), f"schema accepts a row the warehouse rejects ({reason}): {line}"


def _is_strict_json(document: object) -> bool:
    try:
        json.dumps(document, allow_nan=False)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("odd", ["u\udcffx", "u\ud800x"])
def test_a_user_id_that_is_not_utf8_text_is_refused_by_place(odd: str) -> None:
    """A command-line byte that is not UTF-8 reaches Python as a lone surrogate (surrogateescape): `tailor recommend
    $'u\\xffx'` crashed in the holdout's hashing (a trial)."""
    from tailor.contract import user_id_problem

    assert user_id_problem(odd) == (
        "user_id is not UTF-8 text (a byte that is not UTF-8, or half a surrogate pair, at character 2): send the id "
        "encoded as UTF-8"
    )


def test_a_reject_detail_shows_a_control_character_as_a_replacement_character() -> None:
    """Details echo what was sent (`got usd`); a control character in it is shown as U+FFFD, not copied into the
    terminals and logs that read details (a trial saw `got art\\x01icle`)."""
    lines = [
        json.dumps({**VALID["conversion"], "currency": "U\u0001D"}),
        json.dumps({**VALID["click"], "event_type": "cl\u0085ick"}),
        '{"event_id": "cut\u0007',
    ]
    details = [detail for _, detail in _classify(lines)]
    assert details == [
        "currency does not have the form the contract requires (ISO 4217 code: [A-Z]{3}), got U\ufffdD",
        "event_type must be one of impression, click, view, conversion, exposure, got cl\ufffdick",
        'not a JSON object: {"event_id": "cut\ufffd',
    ]


def test_an_escape_of_half_a_surrogate_pair_is_said_as_such() -> None:
    """Python's json reads `"u\\ud800x"`; DuckDB's reader refuses the line, which was called "not a JSON object"
    though it is one (a trial). A whole pair is fine; a line cut short is still "not a JSON object"."""
    lone = {**VALID["click"], "user_id": "u\ud800x"}
    pair = {**VALID["click"], "user_id": "u\U0001f600x"}
    cut = json.dumps(pair)[:60]
    results = _classify([json.dumps(lone), json.dumps(pair), cut])
    assert results[0][0] == "invalid_json" and results[0][1].startswith(
        "not valid JSON: an escape of half a surrogate pair (U+D800-U+DFFF) without its other half, which is no "
        'character: {"event_id"'
    )
    assert results[1] == (None, None)
    assert results[2] == ("invalid_json", f"not a JSON object: {cut}")

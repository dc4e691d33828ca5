"""Every problem of a refused event, in words (a trial's event with three problems took three round trips to fix:
POST /events named only the first, the one the warehouse's checks keep)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.events import other_problems
from tailor.contract.problems import schema_problems
from tailor.stream.events import ContractChecker, Rejection, to_json

pytestmark = pytest.mark.unit

CLICK = {
    "event_id": "e1",
    "event_type": "click",
    "user_id": "u1",
    "occurred_at": "2026-01-05T10:00:00Z",
    "content_id": "c1",
    "request_id": "r1",
}


def test_a_valid_event_has_no_problem() -> None:
    assert schema_problems("events", CLICK) == {}


def test_each_broken_field_is_named_once_in_the_events_order_missing_fields_last() -> None:
    impression = {
        "event_id": "e\u0001",  # a control character
        "event_type": "impression",
        "user_id": "",  # breaks both the length and the not-blank rule: said once
        "occurred_at": "yesterday",
        "content_id": "c1",
        "position": 2.5,
        "surface": "home",
    }  # and no request_id
    assert schema_problems("events", impression) == {
        "event_id": "event_id must be 1 to 128 characters, not only whitespace, without control characters: "
        "got 'e\\x01'",
        "user_id": "user_id must be 1 to 128 characters, not only whitespace, without control characters: got ''",
        "occurred_at": "occurred_at must be ISO 8601 / RFC 3339 date-time with a zone (Z, +hh:mm or +hhmm), years "
        "2000-2999; the date must exist, hours 00-23, offsets within +-23:59: got 'yesterday'",
        "position": "position: 2.5 is not of type 'integer'",
        "request_id": "impression without request_id",
    }


def test_a_long_value_is_shortened_and_the_envelopes_fields_say_only_missing() -> None:
    problems = schema_problems("events", {"event_type": "x" * 500})
    assert problems["event_type"].startswith("event_type: 'xxxx") and problems["event_type"].endswith("...")
    assert len(problems["event_type"]) < 140
    assert [problems[name] for name in ("event_id", "user_id", "occurred_at")] == [
        "missing event_id",
        "missing user_id",
        "missing occurred_at",
    ]


def test_an_event_without_event_type_is_told_that_and_not_every_types_fields() -> None:
    """Found by a trial: POST /events answered an event without event_type with 12 missing fields, every event
    type's (the schema's `if event_type is X` held vacuously when event_type was absent)."""
    event = {key: value for key, value in CLICK.items() if key != "event_type"}
    assert schema_problems("events", event) == {"event_type": "missing event_type"}


def test_the_services_extra_problems_leave_out_the_one_the_checks_named() -> None:
    event = {**CLICK, "user_id": " ", "occurred_at": "2026-02-30T00:00:00Z"}
    del event["content_id"]
    also = other_problems(event, "click without content_id")
    assert len(also) == 2 and also[0].startswith("user_id must be") and also[1].startswith("occurred_at must be")
    # A field named inside another word is not that field: "user_id_hash" does not name user_id.
    assert len(other_problems(event, "user_id_hash is odd")) == 3


def test_a_caller_changing_its_schema_changes_it_for_nobody_else() -> None:
    """hypothesis-jsonschema inlines a schema's $refs in place: on the one cached dict every caller shared, the
    problems then quoted the fields' descriptions instead of their rules (found by the full suite)."""
    from tailor.contract.spec import load_schema

    mine = load_schema("events")
    mine["properties"]["user_id"] = {"description": "changed by a caller", "type": "integer"}
    assert load_schema("events")["properties"]["user_id"] == {
        "$ref": "#/$defs/id",
        "description": "Id of the user, as in the users dimension file.",
    }


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({k: v for k, v in CLICK.items() if k != "user_id"}, "user_id"),
        ({k: v for k, v in CLICK.items() if k != "event_type"}, "event_type"),
        ({k: v for k, v in CLICK.items() if k != "request_id"}, "request_id"),
    ],
)
def test_a_missing_field_is_said_as_the_contracts_checks_say_it(event: dict[str, str], field: str) -> None:
    """A refused event's `problems` list the checks' detail first and the schema's others after it: a missing field
    reads the same in both ("missing user_id", "click without request_id"), found mixed by a trial."""
    checker = ContractChecker()
    try:
        (result,) = checker.check([to_json(event)], [datetime(2026, 1, 5, 12, tzinfo=UTC)])
    finally:
        checker.close()
    assert isinstance(result, Rejection) and result.reason == "missing_field"
    assert schema_problems("events", event)[field] == result.detail

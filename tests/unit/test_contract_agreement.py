"""The published JSON Schema and the warehouse's SQL checks are one definition, tested against each other.

The SQL checks are generated from the schemas (`tailor.contract.spec`); these tests make sure the generation is
current and that the two agree on generated rows: every row the schema accepts passes the SQL checks, and on
rows built to sit near every boundary (lengths, ranges, whitespace, calendar dates, offsets, types, non-finite
numbers), the schema and the SQL reach the same verdict. The one rule a single document cannot state (an event
more than 24 hours ahead of when it was received) is the documented exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import duckdb
import jsonschema
import pytest
from hypothesis_jsonschema import from_schema

from tailor.contract.ids import user_id_problem
from tailor.contract.rules import KINDS, classify_sql
from tailor.contract.spec import (
    CONTROL_CHARACTERS,
    GENERATED_MACROS,
    ContractSchemaError,
    Kind,
    contract_spec,
    load_schema,
    render_macros,
)
from tests.corpus import corpus

pytestmark = pytest.mark.unit

# Far in the future, so that only an event's own received_at can make it "future" (the documented exception).
_INGESTED_AT = datetime(2999, 12, 31)
_EXCEPTION = {"future_timestamp"}


def classify(kind: Kind, lines: list[str]) -> list[str | None]:
    """The reject reason the warehouse gives each line, in order."""
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(
            "create table t as select 'b' as batch_id, 'f' as source_file, "
            "generate_subscripts($1, 1)::bigint as line_number, unnest($1) as raw, $2::timestamp as ingested_at",
            [lines, _INGESTED_AT],
        )
        rows = con.execute(f"select reject_reason from ({classify_sql(kind, 't')}) order by line_number").fetchall()
        return [row[0] for row in rows]
    finally:
        con.close()


def _validator(kind: Kind) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(kind))


def _is_json(document: Any) -> bool:
    """RFC 8259 has no NaN or Infinity; Python's json (and DuckDB) accept them as an extension."""
    try:
        json.dumps(document, allow_nan=False)
    except ValueError:
        return False
    return True


def test_generated_sql_rules_are_current() -> None:
    assert GENERATED_MACROS.read_text() == render_macros(), "run `python -m tailor.contract` and commit the result"


def _spec_of_edited_users_schema(monkeypatch: pytest.MonkeyPatch, edit: Callable[[dict[str, Any]], None]) -> None:
    """Generate the users' field rules from a copy of their schema changed by ``edit`` (the cache cleared around)."""
    from tailor.contract import spec

    schema = json.loads(json.dumps(load_schema("users")))
    edit(schema)
    monkeypatch.setattr(spec, "load_schema", lambda kind: schema)
    spec.contract_spec.cache_clear()
    try:
        spec.contract_spec("users")
    finally:
        spec.contract_spec.cache_clear()


def test_a_schema_construct_the_generator_does_not_know_is_an_error_not_ignored(monkeypatch) -> None:
    with pytest.raises(ContractSchemaError, match="multipleOf"):
        _spec_of_edited_users_schema(monkeypatch, lambda schema: schema["properties"]["plan"].update(multipleOf=2))


@pytest.mark.parametrize(
    "forbidden",
    [
        {"pattern": "^x(?!\n)$", "description": "an anchored pattern"},
        {"pattern": "[a-z]"},  # no words for the reject detail
        {"pattern": "[\\s]", "description": "a shorthand class the engines read differently"},
        {"minLength": 3, "description": "not a pattern"},
    ],
)
def test_a_not_the_generator_cannot_state_is_an_error(monkeypatch, forbidden: dict[str, str]) -> None:
    with pytest.raises(ContractSchemaError, match="'not' is only understood as"):
        _spec_of_edited_users_schema(monkeypatch, lambda schema: schema["$defs"]["id"].update({"not": forbidden}))


@pytest.mark.parametrize("kind", KINDS)
def test_every_row_the_schema_accepts_passes_the_warehouse_checks(kind: Kind) -> None:
    rows = corpus(from_schema(load_schema(kind)), 200)
    reasons = classify(kind, [json.dumps(row) for row in rows])
    refused = [(row, reason) for row, reason in zip(rows, reasons, strict=True) if reason not in (None, *_EXCEPTION)]
    assert not refused, f"the schema accepts rows the warehouse quarantines: {refused[:3]}"


# ------------------------------------------------------------------ rows on and near every boundary

#: Values that are wrong for most fields in a way some engine might let through.
ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    [],
    {},
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\u00a0",
    "\u2003",
    "\u3000",
    "\ufeff",
    "\u200b",
    " \t\u3000 ",
    # Control characters (C0, DEL, C1) inside an id or label; U+0085 is both blank and control, U+00A0 neither.
    "u\u0000x",
    "x\ty",
    "x\u001f",
    "\u007fx",
    "x\u0080",
    "x\u009fy",
    "x\u0085",
    "x\u00a0y",
    "x",
    "0",
    "USD\n",
    "usd",
    "DE",
    "de",
    "free",
    "video",
    "impression",
    "scroll",
    float("nan"),
    float("inf"),
    float("-inf"),
    1e15,
    10**25,
    2**64,
    -0.0,
    "2026-01-05T10:00:00Z",
    "2026-01-05 10:00:00+05:30",
    "2026-01-05T10:00:00+0530",
    "2026-01-05T10:00:00z",
    "2026-01-05T10:00:00",
    "2026-01-05",
    "2026-01-05T24:00:00Z",
    "2026-01-05T10:60:00Z",
    "2026-01-05T10:00:60Z",
    "2026-01-05T10:00:00+24:00",
    "2026-01-05T10:00:00+05:60",
    "2026-01-05T10:00:00+99:99",
    "2026-01-05T10:00:00+02",
    "2026-02-29T10:00:00Z",
    "2028-02-29T10:00:00Z",
    "2100-02-29T10:00:00Z",
    "2000-02-29T10:00:00Z",
    "2026-04-31T10:00:00Z",
    "2026-13-01T10:00:00Z",
    "1999-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "2026-01-05T10:00:00.1234567890Z",
    "2026-01-05T10:00:00.123456789Z",
    "2026-01-05T10:00:00Z\n",
    "\uff12\uff10\uff12\uff16-01-05T10:00:00Z",  # full-width digits: Python's \d would take them, [0-9] does not
]


def edge_values(node: dict[str, Any]) -> list[Any]:
    """Values on and just past each limit a property schema states (boundary-value analysis). The verdicts on
    them still come from two independent engines: the jsonschema package and DuckDB's SQL."""
    values: list[Any] = []
    if "maxLength" in node:
        n = node["maxLength"]
        values += ["a" * n, "a" * (n + 1), "é" * n, "é" * (n + 1), "😀" * n, "😀" * (n + 1)]
        values += [" " * (n - 1) + "a", "\u3000" * (n + 1), "a\u0000" * (n // 2)]
    for key in ("minimum", "maximum"):
        if key in node:
            edge = node[key]
            values += [edge, float(edge), math.nextafter(edge, -math.inf), math.nextafter(edge, math.inf)]
            values += [edge - 1, edge + 1, edge + 0.5, edge - 0.5, float(edge) + 1e-9]
    return values


def _valid_rows(kind: Kind) -> dict[str, dict[str, Any]]:
    """One valid row per event type (or one row for a dimension), from the schema's own generator."""
    schema = load_schema(kind)
    spec = contract_spec(kind)
    if not spec.by_type:
        return {"": corpus(from_schema(schema), 1)[0]}
    return {event_type: corpus(from_schema(_schema_for_type(schema, event_type)), 1)[0] for event_type in spec.by_type}


def _schema_for_type(schema: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The event schema with event_type fixed and its if/then branches resolved: the matching branch's properties
    and requirements merged in, the others dropped. The same set of valid events of that type, in a form
    hypothesis-jsonschema generates directly (it draws if/then schemas by filtering, which can exhaust its budget)."""
    properties = {**schema["properties"], "event_type": {"const": event_type}}
    required = list(schema.get("required", []))
    for branch in schema.get("allOf", []):
        condition = branch["if"]["properties"]["event_type"]
        assert set(branch) == {"if", "then"} and set(condition) == {"const"}, f"unexpected branch {branch}"
        if condition["const"] == event_type:
            properties.update(branch["then"].get("properties", {}))
            required += [name for name in branch["then"].get("required", []) if name not in required]
    return {**{k: v for k, v in schema.items() if k != "allOf"}, "properties": properties, "required": required}


def _node(kind: Kind, name: str) -> dict[str, Any]:
    schema = load_schema(kind)
    nodes = [schema["properties"].get(name)] + [b["then"]["properties"].get(name) for b in schema.get("allOf", [])]
    node = next(n for n in nodes if n is not None)
    node = node.get("anyOf", [node])[0]
    defs = schema.get("$defs", {})
    if "$ref" in node:
        node = {**defs[node["$ref"].removeprefix("#/$defs/")], **node}
    return {"$defs": defs, **{k: v for k, v in node.items() if k != "$ref"}}


def boundary_rows(kind: Kind) -> list[dict[str, Any]]:
    """Every valid row with each of its fields in turn set to each edge and odd value, or left out."""
    absent = object()
    spec = contract_spec(kind)
    rows: list[dict[str, Any]] = []
    for event_type, base in _valid_rows(kind).items():
        for name in [f.name for f in (*spec.fields, *spec.by_type.get(event_type, ()))]:
            for value in [*edge_values(_node(kind, name)), *ODD_VALUES, absent]:
                row = {k: v for k, v in base.items() if k != name}
                if value is not absent:
                    row[name] = value
                rows.append(row)
    return rows


def _disagreements(kind: Kind, rows: list[dict[str, Any]]) -> tuple[list[Any], list[str | None]]:
    validator = _validator(kind)
    reasons = classify(kind, [json.dumps(row) for row in rows])
    found = []
    for row, reason in zip(rows, reasons, strict=True):
        schema_accepts = _is_json(row) and validator.is_valid(row)
        if schema_accepts != (reason is None or reason in _EXCEPTION):
            found.append((row, reason, [e.message for e in validator.iter_errors(row)][:2]))
    return found, reasons


@pytest.mark.parametrize("kind", KINDS)
def test_schema_and_warehouse_agree_on_every_boundary_of_every_field(kind: Kind) -> None:
    rows = boundary_rows(kind)
    disagreements, reasons = _disagreements(kind, rows)
    assert not disagreements, f"{len(disagreements)} of {len(rows)} rows judged differently, e.g. {disagreements[:3]}"
    # Worth something only if the rows reach both verdicts, for several rules.
    assert reasons.count(None) > 10
    assert len(set(reasons) - {None}) >= 3, set(reasons)


def test_every_schema_refuses_in_ids_and_labels_the_control_characters_details_mask() -> None:
    for kind in KINDS:
        defs = load_schema(kind)["$defs"]
        assert defs["id"]["not"]["pattern"] == defs["label"]["not"]["pattern"] == CONTROL_CHARACTERS, kind


def test_a_user_id_given_by_hand_is_judged_as_the_schema_judges_one_in_a_row() -> None:
    """`tailor recommend`, the service and the app check one id in Python: the same verdict as the JSON Schema's
    on every odd and edge value of the id (blank characters, lengths, control characters)."""
    node = _node("events", "user_id")
    validator = jsonschema.Draft202012Validator(node)
    values = [v for v in [*edge_values(node), *ODD_VALUES] if isinstance(v, str)]
    verdicts = [(value, validator.is_valid(value), user_id_problem(value) is None) for value in values]
    assert [v for v in verdicts if v[1] != v[2]] == []
    assert {schema for _, schema, _ in verdicts} == {True, False}

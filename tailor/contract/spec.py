"""The contract's field rules, read from the published JSON Schemas: the one definition both checks use.

The JSON Schemas in this folder are the contract producers validate against. The warehouse's SQL checks
(`dbt_project/macros/contract/`) are not written by hand: `python -m tailor.contract` turns each schema into
a list of field rules (type, required, length, range, pattern, allowed values) and writes them to
`dbt_project/macros/contract/contract_fields.sql`, which the checks read. A unit test fails when that file is
stale, so the two cannot drift apart.

Only the schema constructs the contract uses are understood (strings with lengths, a pattern or an enum, and
``not: {pattern: [class]}`` for characters a string must not hold; integers and numbers with bounds; nullable
timestamps; one ``if event_type == X then ...`` block per event type).
Anything else raises ``ContractSchemaError`` instead of being silently ignored.

Patterns are written for ECMA-262 (the JSON Schema standard), Python's ``re`` and, after `_re2`, DuckDB's RE2:
only character classes, groups, alternation and counted repeats, with ``\\uXXXX`` escapes. Two conventions keep
the engines in step: an anchored pattern ends in ``(?!\\n)$`` (Python's ``$`` also matches before a final
newline), and "not only whitespace" is the class `NON_BLANK` (engines disagree on what ``\\s`` covers).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from tailor.settings import DBT_PROJECT_DIR

Kind = Literal["events", "users", "content"]
FieldKind = Literal["string", "integer", "number", "timestamp"]

CONTRACT_DIR = Path(__file__).resolve().parent
GENERATED_MACROS = DBT_PROJECT_DIR / "macros" / "contract" / "contract_fields.sql"
_SCHEMA_FILES: dict[Kind, str] = {"events": "event", "users": "user", "content": "content"}

#: Unicode White_Space (UAX #44) plus the invisible U+200B, U+2060 and U+FEFF, written out because ``\s``
#: differs between ECMA-262, Python and RE2. A string with no character outside this set is blank.
BLANK_CHARACTERS = (
    "\t\n\u000b\f\r \u0085\u00a0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200C))
    + "\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
)
#: The schema pattern that means "not only whitespace" (an unanchored search for one non-blank character).
NON_BLANK = r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]"
_END = r"(?!\n)$"
#: The control characters (C0, DEL, C1) the schemas' ids and labels refuse (their ``not: {pattern}``; a unit test
#: holds the schemas to it). A reject detail never echoes one: it shows U+FFFD in its place.
CONTROL_CHARACTERS = "[\\u0000-\\u001f\\u007f-\\u009f]"
#: The years a contract timestamp may have (its pattern's ``2[0-9]{3}``): what a time given by hand is held to.
TIMESTAMP_YEARS = (2000, 2999)


class ContractSchemaError(ValueError):
    """A JSON Schema uses a construct the SQL checks cannot be generated from."""


@dataclass(frozen=True)
class FieldRule:
    """What the contract demands of one field of one kind of row (or of one event type).

    ``pattern`` is the RE2 form of an anchored schema pattern, matched against the whole text; ``non_blank``
    means the text must hold a character outside `BLANK_CHARACTERS` (blank counts as missing). ``form`` says
    in words what a patterned field must look like (the schema's description and the pattern), for reject details.
    ``forbidden`` is the RE2 form of a character class the text must not hold anywhere (the schema's
    ``not: {pattern: ...}``) and ``forbidden_form`` its description, e.g. "a control character (U+0000-...)".
    """

    name: str
    kind: FieldKind
    required: bool
    nullable: bool = False
    min_length: int | None = None
    max_length: int | None = None
    non_blank: bool = False
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    form: str | None = None
    forbidden: str | None = None
    forbidden_form: str | None = None


@dataclass(frozen=True)
class ContractSpec:
    """The field rules of one kind of file: the envelope (every row) and, for events, each type's own fields."""

    kind: Kind
    fields: tuple[FieldRule, ...]
    by_type: dict[str, tuple[FieldRule, ...]]

    def as_json(self) -> dict[str, Any]:
        """The JSON the SQL checks read: keys with no value are left out, so Jinja's `is defined` tests them."""

        def rules(fields: tuple[FieldRule, ...]) -> list[dict[str, Any]]:
            return [{k: v for k, v in asdict(f).items() if v is not None} for f in fields]

        return {
            "fields": rules(self.fields),
            "by_type": {t: rules(f) for t, f in self.by_type.items()},
            "blank_code_points": [ord(c) for c in BLANK_CHARACTERS],
            "control_class": _re2_escapes(CONTROL_CHARACTERS),
        }


def schema_path(kind: Kind) -> Path:
    """Path of the published JSON Schema for one kind of file."""
    return CONTRACT_DIR / f"{_SCHEMA_FILES[kind]}.schema.json"


def load_schema(kind: Kind) -> dict[str, Any]:
    """The published JSON Schema of one kind of file, parsed: a new copy on every call, which the caller may change.

    It was one cached dict shared by every caller, and a caller that changed it changed it for all:
    hypothesis-jsonschema's ``from_schema`` inlines the ``$ref``s of the schema it is given in place, after which
    the problems POST /events lists quoted the fields' own descriptions instead of their rules (seen in the suite).
    """
    return copy.deepcopy(_parsed_schema(kind))


@cache
def _parsed_schema(kind: Kind) -> dict[str, Any]:
    return dict(json.loads(schema_path(kind).read_text()))


def _re2(pattern: str, where: str) -> str:
    """An anchored ECMA/Python pattern as RE2 for ``regexp_full_match``: anchors dropped, ``\\uXXXX`` as ``\\x{..}``."""
    if not (pattern.startswith("^") and pattern.endswith(_END)):
        raise ContractSchemaError(f"{where}: pattern {pattern!r} must start with ^ and end with {_END}")
    body = pattern[1 : -len(_END)]
    if re.search(r"\(\?[=!<]|\\[sSdDwWbB]", body):
        raise ContractSchemaError(f"{where}: pattern {pattern!r} uses a lookaround or a shorthand class")
    return _re2_escapes(body)


def _re2_escapes(pattern: str) -> str:
    """``\\uXXXX`` escapes as RE2's ``\\x{..}``."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: "\\x{" + m.group(1).lower() + "}", pattern)


def _forbidden(node: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    """A ``not: {pattern: "[...]"}`` as (RE2 class, its description); (None, None) without one.

    Raises:
        ContractSchemaError: the ``not`` is anything but one character class with a description.
    """
    if "not" not in node:
        return None, None
    inner = node["not"]
    pattern = inner.get("pattern") if isinstance(inner, dict) else None
    if (
        not isinstance(pattern, str)
        or set(inner) != {"pattern", "description"}
        or not re.fullmatch(r"\[[^\[\]]+\]", pattern)
        or re.search(r"\\[sSdDwWbB]", pattern)
    ):
        raise ContractSchemaError(
            f"{where}: 'not' is only understood as {{pattern: '[one character class]', description: ...}}"
        )
    return _re2_escapes(pattern), str(inner["description"])


def _resolve(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    """A property schema with its ``$ref`` merged in (the referencing node's own keys win)."""
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.removeprefix("#/$defs/")
    if name not in defs:
        raise ContractSchemaError(f"{where}: unknown $ref {ref}")
    return {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}


def _field(name: str, node: dict[str, Any], required: bool, defs: dict[str, Any]) -> FieldRule:
    where = f"field {name}"
    nullable = False
    if "anyOf" in node:
        options = node["anyOf"]
        if len(options) != 2 or {"type": "null"} not in options:
            raise ContractSchemaError(f"{where}: anyOf is only understood as 'X or null'")
        node = {**next(o for o in options if o != {"type": "null"}), "description": node.get("description")}
        nullable = True
    node = _resolve(node, defs, where)
    known = {"type", "minLength", "maxLength", "pattern", "not", "enum", "minimum", "maximum", "format", "description"}
    if unknown := set(node) - known:
        raise ContractSchemaError(f"{where}: keywords {sorted(unknown)} are not understood by the SQL generator")
    json_type = node.get("type")
    forbidden, forbidden_form = _forbidden(node, where)
    if json_type in ("integer", "number"):
        if forbidden is not None:
            raise ContractSchemaError(f"{where}: 'not' is only understood on strings")
        return FieldRule(name, json_type, required, nullable, minimum=node.get("minimum"), maximum=node.get("maximum"))
    if json_type != "string":
        raise ContractSchemaError(f"{where}: type {json_type!r} is not understood by the SQL generator")
    if node.get("minLength") not in (None, 1):
        raise ContractSchemaError(f"{where}: only minLength 1 is understood (a blank string counts as missing)")
    pattern: str | None = node.get("pattern")
    is_timestamp = node.get("format") == "date-time"
    if is_timestamp and pattern is None:
        raise ContractSchemaError(f"{where}: a date-time needs a pattern (formats are not asserted by default)")
    re2 = None if pattern is None or pattern == NON_BLANK else _re2(pattern, where)
    form = None
    if re2 is not None and not is_timestamp:
        described = (node.get("description") or "").strip().rstrip(".")
        form = f"{described}: {re2}" if described else re2
    return FieldRule(
        name,
        "timestamp" if is_timestamp else "string",
        required,
        nullable,
        min_length=node.get("minLength"),
        max_length=node.get("maxLength"),
        non_blank=pattern == NON_BLANK,
        pattern=re2,
        enum=tuple(node["enum"]) if "enum" in node else None,
        form=form,
        forbidden=forbidden,
        forbidden_form=forbidden_form,
    )


def _fields(properties: dict[str, Any], required: list[str], defs: dict[str, Any]) -> tuple[FieldRule, ...]:
    return tuple(_field(name, node, name in required, defs) for name, node in properties.items())


@cache
def contract_spec(kind: Kind) -> ContractSpec:
    """The field rules of one kind, read from its published JSON Schema.

    Raises:
        ContractSchemaError: the schema uses a construct the SQL checks cannot express.
    """
    schema = load_schema(kind)
    defs = schema.get("$defs", {})
    envelope = _fields(schema["properties"], schema.get("required", []), defs)
    by_type: dict[str, tuple[FieldRule, ...]] = {}
    for block in schema.get("allOf", []):
        try:
            event_type = block["if"]["properties"]["event_type"]["const"]
            then = block["then"]
        except KeyError as exc:
            raise ContractSchemaError(f"{kind}: allOf blocks must be 'if event_type is X then ...'") from exc
        by_type[event_type] = _fields(then["properties"], then.get("required", []), defs)
    return ContractSpec(kind, envelope, by_type)


def render_macros() -> str:
    """The text of `contract_fields.sql`: one macro per kind that prints its field rules as JSON."""
    parts = [
        "{#- Generated from tailor/contract/*.schema.json by `python -m tailor.contract`: do not edit by hand.",
        "    Each macro prints the field rules of one kind of file as JSON; the checks read them with fromjson. -#}",
    ]
    for kind in _SCHEMA_FILES:
        text = json.dumps(contract_spec(kind).as_json(), ensure_ascii=True, separators=(",", ":"))
        parts.append(f"{{% macro contract_fields_{kind}() %}}{{% raw %}}{text}{{% endraw %}}{{% endmacro %}}")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m tailor.contract [--check]``: write the generated macros, or check they are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the generated file is stale")
    args = parser.parse_args(argv)
    text = render_macros()
    current = GENERATED_MACROS.read_text() if GENERATED_MACROS.exists() else ""
    if args.check:
        if current != text:
            print(f"{GENERATED_MACROS} is stale: run `python -m tailor.contract`", file=sys.stderr)
            return 1
        return 0
    GENERATED_MACROS.write_text(text)
    print(f"wrote {GENERATED_MACROS}")
    return 0

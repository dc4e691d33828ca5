"""Every problem of one document against its published JSON Schema, in words, field by field.

The warehouse's checks (`classify_sql`) give each row one reason, the first rule it breaks, which is what a
quarantined row keeps. A client fixing a refused event wants them all at once: POST /events named only the first,
so an event with three problems took three round trips (a trial). The schema is the contract the checks are
generated from (`tailor.contract.spec`), so validating the document against it with `jsonschema` finds the same
rules broken, all of them; only the 24-hour future rule is outside any one document.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema

from tailor.contract.rules import Kind
from tailor.contract.spec import load_schema

#: Longest quoted value in a problem; longer ones are cut with "...".
_SHOWN = 60


@cache
def _validator(kind: Kind) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(kind))


def schema_problems(kind: Kind, document: dict[str, Any]) -> dict[str, str]:
    """Each field of ``document`` that breaks ``kind``'s schema -> one sentence saying how (the first the schema's
    order gives, per field), in the fields' order in the document, missing fields last. Empty when the schema holds.

    Examples: ``{"user_id": "user_id must be 1 to 128 characters, ...: got ''"}`` (a rule with a description in
    the schema is said with it), ``{"position": "position: 2.5 is not of type 'integer'"}`` (else jsonschema's
    message), ``{"request_id": "impression without request_id"}`` and ``{"user_id": "missing user_id"}`` (a missing
    field is said as the contract's checks say it).
    """
    problems: dict[str, str] = {}
    for error in _validator(kind).iter_errors(document):
        if error.validator == "required":
            have = error.instance if isinstance(error.instance, dict) else {}
            need = [name for name in error.validator_value if name not in have]
            kind_of = _then_type(error)
            for name in need:
                # Worded as the contract's own detail for the same rule (`classify_rows`), so a refused event's
                # `problems` read alike: "missing user_id", "impression without request_id".
                problems.setdefault(name, f"{kind_of} without {name}" if kind_of else f"missing {name}")
            continue
        path = ".".join(str(part) for part in error.absolute_path) or "the event"
        if path in problems:
            continue
        described = error.schema.get("description") if isinstance(error.schema, dict) else None
        if error.validator in ("pattern", "not", "minLength", "maxLength", "format") and described:
            problems[path] = f"{path} must be {_lower_first(described.rstrip('.'))}: got {_shown(error.instance)}"
        else:
            message = error.message if len(error.message) <= 2 * _SHOWN else error.message[: 2 * _SHOWN] + "..."
            problems[path] = f"{path}: {message}"
    order = list(document)
    return dict(sorted(problems.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def _then_type(error: jsonschema.ValidationError) -> str | None:
    """The event_type whose ``if``/``then`` required the field, or None for the envelope's own required fields."""
    if "then" not in error.relative_schema_path:
        return None
    event_type = error.instance.get("event_type") if isinstance(error.instance, dict) else None
    return str(event_type) if event_type is not None else None


def _lower_first(text: str) -> str:
    """A description as the rest of a sentence: "A label" -> "a label"; an acronym ("ISO 8601") stays."""
    return text if text[:2].isupper() else text[:1].lower() + text[1:]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."

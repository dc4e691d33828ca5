"""JSON Schemas of the API's bodies, published in /openapi.json (written out: the handlers build their JSON from
`Recommendation.as_dict` and the intake, not from Pydantic models, so the schema is stated here once).

The event schema states the contract's envelope (required fields and their types); the per-type rules (a click's
content_id, an impression's position...) are the contract's (tailor/contract/event.schema.json) and are applied by
the same checks as `tailor ingest`: a body that fits this schema can still be refused with 422 and the reason.
"""

from __future__ import annotations

from typing import Any

ID = {"type": "string", "minLength": 1, "maxLength": 128}

ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["content_id", "rank", "score", "slot_kind", "reason", "propensity", "category"],
    "properties": {
        "content_id": {"type": "string"},
        "rank": {"type": "integer", "minimum": 1},
        "score": {"type": "number"},
        "slot_kind": {"type": "string", "enum": ["personalized", "explore", "popular", "editorial"]},
        "reason": {"type": "string"},
        "propensity": {"type": "number", "minimum": 0, "maximum": 1},
        "category": {"type": ["string", "null"]},
        "explore_pool": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "On an explore slot served by the model path: the items it was drawn from (the action "
            "set, for off-policy estimates); null on other slots and on cached pages.",
        },
    },
}

PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "`Recommendation.as_dict()` (docs/recommendations.md), schema_version 1.",
    "required": [
        "user_id",
        "surface",
        "k",
        "items",
        "served_by",
        "fallback_reason",
        "model_version",
        "variants",
        "holdout",
        "latency_ms",
        "generated_at",
        "policy",
        "schema_version",
    ],
    "properties": {
        "user_id": {"type": "string"},
        "surface": {"type": "string", "enum": ["home", "feed"]},
        "k": {"type": "integer", "minimum": 1},
        "items": {"type": "array", "minItems": 1, "items": ITEM_SCHEMA},
        "served_by": {"type": "string", "enum": ["model", "cached", "popular"]},
        "fallback_reason": {"type": ["string", "null"]},
        "model_version": {"type": ["string", "null"]},
        "variants": {"type": "object", "additionalProperties": {"type": "string"}},
        "holdout": {"type": "boolean"},
        "latency_ms": {"type": "number", "minimum": 0},
        "generated_at": {"type": "string", "format": "date-time"},
        "policy": {"type": "string"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "schema_version": {"const": 1},
    },
}

SEGMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["segment", "k", "items", "served_by", "generated_at", "schema_version"],
    "properties": {
        "segment": {"type": "string"},
        "k": {"type": "integer", "minimum": 1},
        "items": {"type": "array", "minItems": 1, "items": ITEM_SCHEMA},
        "served_by": {"const": "popular"},
        "generated_at": {"type": "string", "format": "date-time"},
        "schema_version": {"const": 1},
    },
}

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One event of the contract (docs/contract/): the envelope below plus the fields of its type.",
    "required": ["event_id", "event_type", "user_id", "occurred_at"],
    "properties": {
        "event_id": ID,
        "event_type": {"type": "string", "enum": ["impression", "click", "view", "conversion", "exposure"]},
        "user_id": ID,
        "occurred_at": {"type": "string", "format": "date-time"},
        "received_at": {"type": ["string", "null"], "format": "date-time"},
        "content_id": ID,
        "request_id": ID,
    },
}

BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "additionalProperties": False,
    "properties": {"events": {"type": "array", "minItems": 1, "items": EVENT_SCHEMA}},
}

EVENTS_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": {"anyOf": [EVENT_SCHEMA, BATCH_SCHEMA]}}},
}

INTAKE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["received", "status", "batch_id", "stream"],
    "properties": {
        "received": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": ["landed", "already_ingested"]},
        "batch_id": {"type": "string"},
        "stream": {
            "type": "object",
            "required": ["published", "behind", "detail"],
            "properties": {
                "published": {"type": "integer", "minimum": 0},
                "behind": {"type": "boolean"},
                "detail": {"type": ["string", "null"]},
            },
        },
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "minLength": 1}},
}

_ERROR = {"content": {"application/json": {"schema": ERROR_SCHEMA}}}
#: Every error status the API answers with, each with a message in ``error``.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": what, **_ERROR}
    for status, what in (
        (400, "Malformed request (e.g. the body is not JSON)"),
        (404, "Unknown route or segment"),
        (405, "Method not allowed"),
        (408, "The body arrived too slowly"),
        (413, "Body or batch too large"),
        (415, "Not application/json"),
        (422, "Invalid parameters or events (each named with its reason)"),
        (503, "Not ready (no history yet) or the landing zone busy: retry"),
    )
}

"""Pure parts of the service: validators and lifetimes (RFC 9110/9111), its settings, fallback reason kinds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ml.recommend.serving import MODEL_PATH_BUSY
from service.caching import not_modified, page_etag, page_moment, private_page, public_page
from service.config import ServiceConfig, ServiceConfigError
from service.events import BadBody, parse_body
from service.metrics import reason_kind

pytestmark = pytest.mark.unit

PAGE = {"user_id": "u1", "items": [{"content_id": "c1", "rank": 1}], "latency_ms": 3.2, "generated_at": "t1"}


def test_the_etag_covers_the_page_but_not_its_timing() -> None:
    tag = page_etag(PAGE)
    assert tag.startswith('W/"') and tag == page_etag({**PAGE, "latency_ms": 99.0, "generated_at": "t2"})
    assert tag != page_etag({**PAGE, "items": [{"content_id": "c2", "rank": 1}]})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("*", True),
        ('W/"abc"', True),
        ('"abc"', True),
        ('"x", W/"abc"', True),
        ('"x"', False),
    ],
)
def test_if_none_match_uses_the_weak_comparison(header: str | None, expected: bool) -> None:
    assert not_modified(header, 'W/"abc"') is expected


def test_lifetimes_and_page_windows() -> None:
    assert private_page(5) == "private, max-age=5"
    assert public_page(60, 300).startswith("public, max-age=60, s-maxage=300")
    moment = page_moment(datetime(2026, 1, 1, 12, 0, 59, 900_000, tzinfo=UTC), 60)
    assert moment == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_settings_from_the_environment_and_their_errors() -> None:
    config = ServiceConfig.from_env(
        {"TAILOR_SERVICE_MAX_K": "20", "TAILOR_SERVICE_CORS_ORIGINS": "https://a.example, "}
    )
    assert config.max_k == 20 and config.cors_origins == ("https://a.example",)
    assert ServiceConfig.from_env({"TAILOR_RECOMMEND_BUDGET_MS": "100"}).deadline_ms == 500
    with pytest.raises(ServiceConfigError, match="TAILOR_SERVICE_MAX_K='many' is not a whole number"):
        ServiceConfig.from_env({"TAILOR_SERVICE_MAX_K": "many"})
    with pytest.raises(ServiceConfigError, match="any web page read every user's recommendations"):
        ServiceConfig.from_env({"TAILOR_SERVICE_CORS_ORIGINS": "*"})
    with pytest.raises(ServiceConfigError, match="deadline"):
        ServiceConfig(budget_ms=300, deadline_ms=250)
    assert ServiceConfig.from_env({"TAILOR_REDIS_URL": ""}).stream_url == ""


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (None, "none"),
        ("holdout: this user gets the non-personalized page", "holdout"),
        ("cold start: no history for this user", "cold_start"),
        ("the model path took longer than the 50 ms budget", "budget"),
        ("the request took longer than the 250 ms deadline", "deadline"),
        ("no champion model yet", "no_model"),
        ("the model path failed: ConnectionError: Error 111 connecting to 127.0.0.1:1", "store_down"),
        ("the online store is down (no answer within 1 s); popular items until it answers", "store_down"),
        ("the model path failed: ValueError: bad input", "model_error"),
        (MODEL_PATH_BUSY, "busy"),
    ],
)
def test_fallback_reasons_map_to_few_metric_labels(reason: str | None, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_bodies_are_one_event_or_a_batch_and_nothing_else() -> None:
    assert parse_body(b'{"event_id": "e1", "event_type": "click"}', 10) == [{"event_id": "e1", "event_type": "click"}]
    assert parse_body(b'{"events": [{"a": 1}, {"b": 2}]}', 10) == [{"a": 1}, {"b": 2}]
    with pytest.raises(BadBody, match="at most 1 per request") as too_many:
        parse_body(b'{"events": [{}, {}]}', 1)
    assert too_many.value.status == 413
    with pytest.raises(BadBody, match="unknown field"):
        parse_body(b'{"evnts": []}', 10)

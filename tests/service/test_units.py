"""Pure parts of the service: validators and lifetimes (RFC 9110/9111), its settings, fallback reason kinds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ml.recommend.serving import MODEL_PATH_BUSY
from service.caching import not_modified, page_etag, page_moment, private_page, public_page
from service.config import ServiceConfig, ServiceConfigError
from service.events import BadBody, parse_body
from service.metrics import METRICS_DIR_ENV, PROMETHEUS_ENV, Metrics, reason_kind, worker_metrics_env
from service.pages import NotReady, RecommenderHost
from tailor.settings import Settings

pytestmark = pytest.mark.unit

PAGE = {"user_id": "u1", "items": [{"content_id": "c1", "rank": 1}], "latency_ms": 3.2, "generated_at": "t1"}


def test_the_etag_covers_the_page_but_not_its_timing() -> None:
    tag = page_etag(PAGE)
    assert tag.startswith('W/"') and tag == page_etag({**PAGE, "latency_ms": 99.0, "generated_at": "t2"})
    assert tag != page_etag({**PAGE, "items": [{"content_id": "c2", "rank": 1}]})


def test_the_etag_ignores_the_pages_own_moment_in_its_notes_but_not_other_changes() -> None:
    """Found by a trial: a page whose note quoted its moment ("no explore slot: ... before 12:46:00") got a new tag
    every window, so a browser's revalidation never got 304 although the items had not changed."""

    def page(moment: str, note_moment: str, items: object = PAGE["items"]) -> dict[str, object]:
        note = f"no explore slot: no eligible item was published in the 48 hours before {note_moment} (ask at its end)"
        return {**PAGE, "items": items, "generated_at": moment, "notes": [note]}

    first = page("2026-11-30T12:46:00+00:00", "2026-11-30T12:46:00+00:00")
    next_window = page("2026-11-30T12:47:00+00:00", "2026-11-30T12:47:00+00:00")
    assert page_etag(first) == page_etag(next_window)
    # A different page in the next window, or a note that says something else, is another page.
    assert page_etag(first) != page_etag(page("2026-11-30T12:47:00+00:00", "2026-11-30T12:47:00+00:00", []))
    assert page_etag(first) != page_etag(page("2026-11-30T12:47:00+00:00", "2026-11-29T00:00:00+00:00"))
    assert page_etag(first) != page_etag({**first, "notes": []})


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
    # Each error names the variable and what to do (found by a trial: some said neither).
    with pytest.raises(ServiceConfigError, match="TAILOR_SERVICE_MAX_K='many' is not a whole number >= 1: use such "
                       "a number, or unset it for 100"):  # fmt: skip
        ServiceConfig.from_env({"TAILOR_SERVICE_MAX_K": "many"})
    # 0 and -3 are refused with the same bound (a trial read "-3 is not >= 0" beside "0 must be at least 1").
    for raw in ("0", "-3"):
        with pytest.raises(ServiceConfigError, match=rf"TAILOR_SERVICE_MAX_K='{raw}' is not a whole number >= 1: use"):
            ServiceConfig.from_env({"TAILOR_SERVICE_MAX_K": raw})
    assert ServiceConfig.from_env({"TAILOR_SERVICE_PUBLIC_MAX_AGE_S": "0"}).public_max_age_s == 0  # 0 is no caching
    # nan passed float() and started a service whose every page was a 500 (a re-check trial); inf and negative
    # times are no limits either.
    for name, raw in (("TAILOR_SERVICE_DEADLINE_MS", "nan"), ("TAILOR_RECOMMEND_BUDGET_MS", "nan"),
                      ("TAILOR_SERVICE_LANDING_WAIT_S", "inf"), ("TAILOR_SERVICE_LANDING_WAIT_S", "-1")):  # fmt: skip
        with pytest.raises(ServiceConfigError, match=rf"{name}='{raw}' is not a finite number >= 0: use such a number"):
            ServiceConfig.from_env({name: raw})
    # A body timeout of 0 answered 408 to every POST /events, and a reload check every 0 s spun a core (a trial).
    for name, raw, default in (("TAILOR_SERVICE_BODY_TIMEOUT_S", "0", 10), ("TAILOR_SERVICE_RELOAD_CHECK_S", "0.5", 30),
                               ("TAILOR_SERVICE_RELOAD_CHECK_S", "inf", 30)):  # fmt: skip
        with pytest.raises(
            ServiceConfigError, match=rf"{name}='{raw}' is not a finite number >= 1: use such a number, or unset it "
            f"for {default}$"
        ):  # fmt: skip
            ServiceConfig.from_env({name: raw})
    assert ServiceConfig.from_env({"TAILOR_SERVICE_BODY_TIMEOUT_S": "1.5"}).body_timeout_s == 1.5
    # An int default is said as the number it is (it was "1.04858e+06").
    with pytest.raises(ServiceConfigError, match=r"MAX_BODY_BYTES='1e99' is not a whole number >= 1: use such a "
                       r"number, or unset it for 1048576$"):  # fmt: skip
        ServiceConfig.from_env({"TAILOR_SERVICE_MAX_BODY_BYTES": "1e99"})
    with pytest.raises(ServiceConfigError, match=r"TAILOR_SERVICE_DEADLINE_MS, 0 ms\) at least as long.* or unset"):
        ServiceConfig.from_env({"TAILOR_SERVICE_DEADLINE_MS": "0"})
    with pytest.raises(ServiceConfigError, match="TAILOR_SERVICE_THREADS='0' is not a whole number >= 1: use such "
                       "a number, or unset it for 8"):  # fmt: skip
        ServiceConfig.from_env({"TAILOR_SERVICE_THREADS": "0"})
    # Built in code rather than from the environment, the same bound holds.
    with pytest.raises(ServiceConfigError, match="TAILOR_SERVICE_THREADS must be at least 1, got 0"):
        ServiceConfig(threads=0)
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
        ("cold start: no click or view by this user yet", "cold_start"),
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
    # Only UTF-8: a Latin-1 or UTF-16 body is named as not UTF-8, not as another codec's error (a trial's finding).
    for body, byte in (('{"user_id": "Jos\u00e9"}'.encode("latin-1"), "byte 16 is 0xe9"),
                       ('{"a": 1}'.encode("utf-16"), "byte 0 is 0xff")):  # fmt: skip
        with pytest.raises(BadBody, match=rf"the body is not UTF-8 \({byte}\): send the JSON encoded as UTF-8"):
            parse_body(body, 10)
    with pytest.raises(BadBody, match="at most 1 per request") as too_many:
        parse_body(b'{"events": [{}, {}]}', 1)
    assert too_many.value.status == 413
    with pytest.raises(BadBody, match="unknown field"):
        parse_body(b'{"evnts": []}', 10)
    with pytest.raises(BadBody, match=r"^the object has no fields: a batch is") as empty:
        parse_body(b"{}", 10)
    assert empty.value.status == 422
    # Types in JSON's words (a trial saw "the body is a JSON NoneType").
    for body, name in (
        (b"null", "null"),
        (b"42", "number"),
        (b"[1]", "array"),
        (b'"x"', "string"),
        (b"true", "boolean"),
    ):
        with pytest.raises(BadBody, match=f"^the body is a JSON {name}: send one event"):
            parse_body(body, 10)
    # Where the parser stopped, and a trailing comma named as such (a trial got "Expecting value: line 1 column
    # 10 (char 9)" for a batch written as a JavaScript array).
    for body, said in (
        (b'{"events": [{"a": 1},]}', "a comma before ']' at line 1, column 22: JSON allows no trailing comma"),
        (b'{"event_id": "e1",\n}', "a comma before '}' at line 2, column 1: JSON allows no trailing comma"),
        (b'{"event_id": "e1"', "it ends too soon at line 1, column 18 (expecting ',' delimiter): send the whole"),
        (b"event_id=e1", "expecting value at line 1, column 1"),
    ):
        with pytest.raises(BadBody, match=re.escape(f"the body is not valid JSON: {said}")) as bad:
            parse_body(body, 10)
        assert bad.value.status == 400 and "char" not in str(bad.value)


def test_a_repeated_key_keeps_its_first_value_as_the_warehouse_reads_it() -> None:
    """Found by a trial: POST /events took the last "user_id" of an event, the warehouse reads the first."""
    [event] = parse_body(b'{"event_id": "e1", "event_type": "click", "user_id": "u1", "user_id": "u2"}', 10)
    assert event["user_id"] == "u1"
    [batched] = parse_body(b'{"events": [{"event_id": "e1", "event_id": "e2", "event_type": "click"}]}', 10)
    assert batched["event_id"] == "e1"


_COUNT_AND_RENDER = """
import sys
from service.metrics import Metrics
metrics = Metrics()
metrics.requests.labels("/healthz", "GET", "200").inc(int(sys.argv[1]))
print(metrics.render().decode())
"""
SERIES = 'tailor_http_requests_total{method="GET",route="/healthz",status="200"}'


def _worker(requests: int) -> str:
    """A process started in the current environment (as uvicorn starts a worker) that counts ``requests`` and
    returns its /metrics text."""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_AND_RENDER, str(requests)], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_workers_share_a_fresh_metrics_folder_that_goes_with_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    feasts = str(tmp_path / "feast_metrics_x")  # what a parent that imported Feast passes down
    monkeypatch.setenv(PROMETHEUS_ENV, feasts)
    with worker_metrics_env(2) as first:
        assert first is not None and first.parent == tmp_path and not any(first.iterdir())
        assert os.environ[PROMETHEUS_ENV] == os.environ[METRICS_DIR_ENV] == str(first)
        assert f"{SERIES} 3.0" in _worker(3)
        assert f"{SERIES} 7.0" in _worker(4)  # a second worker answers for both
    assert not first.exists()
    assert os.environ[PROMETHEUS_ENV] == feasts and METRICS_DIR_ENV not in os.environ
    with worker_metrics_env(2) as second:
        assert second != first
        assert f"{SERIES} 5.0" in _worker(5)  # a new server starts from nothing
    with worker_metrics_env(1) as none:
        assert none is None and PROMETHEUS_ENV not in os.environ and METRICS_DIR_ENV not in os.environ
        assert f"{SERIES} 2.0" in _worker(2)  # one process: in memory
        assert not list(tmp_path.glob("*.db")) and not (tmp_path / "feast_metrics_x").exists()


def test_an_empty_home_says_once_what_to_build(settings: Settings) -> None:
    host = RecommenderHost(settings, ServiceConfig.from_env(), Metrics())
    host.open()
    why = host.open_error or ""
    assert "not found: build the warehouse first (`tailor run`" in why and why.endswith(
        "`make demo` builds a demo history"
    )
    assert why.count("tailor run") == 1, why
    with pytest.raises(NotReady, match="build the warehouse first"):
        host.current()

"""The HTTP API on a real `tailor serve` over a small built history: page shape, caching headers, bad input.

What a frontend and a CDN rely on: a well-formed id always gets a non-empty page in the `Recommendation` shape;
a user's page is private with an ETag that answers 304; a segment page is public with s-maxage; every bad request
is a 4xx with a message (never a 500); /readyz, /metrics and /openapi.json say what they should.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.service.conftest import Built, Server, start_server

pytestmark = pytest.mark.integration


def test_a_known_user_gets_the_models_page_in_the_recommendation_shape(built: Built, server: Server) -> None:
    user = built.personalized_user()
    response = httpx.get(f"{server.url}/recommendations/{user}", params={"k": 7, "surface": "feed"})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["user_id"] == user and page["surface"] == "feed" and page["k"] == 7 and page["schema_version"] == 1
    assert page["served_by"] == "model" and page["fallback_reason"] is None and page["model_version"] == "1"
    assert page["variants"] == {"personalization_holdout": "personalized"} and page["holdout"] is False
    assert [item["rank"] for item in page["items"]] == list(range(1, 8))
    assert len({item["content_id"] for item in page["items"]}) == 7
    assert "personalized" in {item["slot_kind"] for item in page["items"]}
    assert all(item["reason"] for item in page["items"])
    consumed = pd.read_parquet(built.settings.marts_dir / "fct_user_content_interactions.parquet")
    assert not set(consumed.loc[consumed["user_id"] == user, "content_id"]) & {i["content_id"] for i in page["items"]}
    assert response.headers["x-served-by"] == "model"


def test_unknown_and_holdout_users_get_the_popular_page(built: Built, server: Server) -> None:
    unknown = httpx.get(f"{server.url}/recommendations/someone-new", params={"k": 4}).json()
    assert unknown["served_by"] == "popular" and "cold start" in unknown["fallback_reason"]
    assert len(unknown["items"]) == 4 and {i["slot_kind"] for i in unknown["items"]} <= {"popular", "editorial"}
    held = httpx.get(f"{server.url}/recommendations/{built.holdout_user()}").json()
    assert held["holdout"] is True and held["served_by"] == "popular" and len(held["items"]) == 10


def test_a_users_page_is_private_with_an_etag_that_answers_304(built: Built, server: Server) -> None:
    url = f"{server.url}/recommendations/{built.personalized_user(1)}"
    first = httpx.get(url, params={"k": 5})
    assert first.headers["cache-control"] == "private, max-age=5"
    assert first.headers["vary"] == "Accept-Encoding"
    etag = first.headers["etag"]
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', etag)
    again = httpx.get(url, params={"k": 5}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers["cache-control"] == "private, max-age=5"
    other = httpx.get(url, params={"k": 6}, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag  # another page, another tag
    stale = httpx.get(url, params={"k": 5}, headers={"If-None-Match": 'W/"0000", "1111"'})
    assert stale.status_code == 200


def test_head_gives_the_pages_headers_and_revalidates_without_a_body(built: Built, server: Server) -> None:
    """`curl -I` and HTTP caches send HEAD; it was 405 on every GET route (a trial found it)."""
    url = f"{server.url}/recommendations/{built.personalized_user(1)}"
    got = httpx.get(url, params={"k": 5})
    head = httpx.head(url, params={"k": 5})
    assert head.status_code == 200 and head.content == b""
    # Not Content-Length: each request computes the page again, and its latency_ms (in the body) differs.
    for name in ("etag", "cache-control", "vary", "x-served-by", "content-type"):
        assert head.headers[name] == got.headers[name], name
    assert int(head.headers["content-length"]) > 0
    assert httpx.head(url, params={"k": 5}, headers={"If-None-Match": got.headers["etag"]}).status_code == 304
    segment = httpx.head(f"{server.url}/recommendations/segments/all")
    assert segment.status_code == 200 and segment.headers["cache-control"].startswith("public, ")


def test_an_unchanged_page_keeps_its_etag_in_the_next_window(built: Built, tmp_path: Path) -> None:
    """Found by a trial: the page's note quotes its moment ("no explore slot: ... before <window start>"), so
    every window gave an unchanged page a new tag and revalidation never got 304. A 1-second window here: two
    requests a window apart, the same items, the same tag."""
    server = start_server(
        built,
        tmp_path / "serve.log",
        TAILOR_SERVICE_PAGE_WINDOW_S="1",
        TAILOR_REDIS_URL="",
        TAILOR_RECOMMEND_BUDGET_MS="3000",
        TAILOR_SERVICE_DEADLINE_MS="8000",
    )
    try:
        url = f"{server.url}/recommendations/{built.personalized_user(3)}"
        first = httpx.get(url)
        time.sleep(1.2)
        later = httpx.get(url)
        page, next_page = first.json(), later.json()
        # The history ended long before now: no explore slot, and a note that quotes each page's own moment.
        assert page["served_by"] == next_page["served_by"] == "model"
        assert page["generated_at"] < next_page["generated_at"] and page["items"] == next_page["items"]
        assert any(page["generated_at"] in note for note in page["notes"]), page["notes"]
        assert later.headers["etag"] == first.headers["etag"]
        again = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        other = httpx.get(url, params={"k": 4}, headers={"If-None-Match": first.headers["etag"]})
        assert other.status_code == 200 and other.headers["etag"] != first.headers["etag"]
    finally:
        server.stop()


def test_a_segment_page_is_public_for_edge_caches(built: Built, server: Server) -> None:
    response = httpx.get(f"{server.url}/recommendations/segments/surface:home", params={"k": 5})
    assert response.status_code == 200, response.text
    cache = response.headers["cache-control"]
    assert cache.startswith("public, ") and "s-maxage=300" in cache and "private" not in cache
    page = response.json()
    assert page["segment"] == "surface:home" and len(page["items"]) == 5
    assert {i["slot_kind"] for i in page["items"]} == {"popular"} and page["items"][0]["reason"] == "popular on home"
    # The popular list is the smoothed 7-day CTR on the surface (ml.recommend): check its head against the marts.
    impressions = pd.read_parquet(built.settings.marts_dir / "fct_impressions.parquet")
    recent = impressions.loc[impressions["occurred_at"] >= impressions["occurred_at"].max() - pd.Timedelta(days=7)]
    home = recent.loc[recent["surface"] == "home"]
    prior = home["is_clicked"].sum() / len(home)
    per_item = home.groupby("content_id")["is_clicked"].agg(["sum", "count"])
    smoothed = ((per_item["sum"] + 100 * prior) / (per_item["count"] + 100)).sort_values(ascending=False)
    assert page["items"][0]["content_id"] == smoothed.index[0]
    assert page["items"][0]["score"] == pytest.approx(smoothed.iloc[0])
    revalidated = httpx.get(
        f"{server.url}/recommendations/segments/surface:home",
        params={"k": 5},
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert revalidated.status_code == 304
    unknown = httpx.get(f"{server.url}/recommendations/segments/country:ZZ")
    assert unknown.status_code == 404 and "use one of all" in unknown.json()["error"]
    assert "did you mean" not in unknown.json()["error"]
    # A known country typed in lower case is named as the data spells it.
    country = re.findall(r"country:[A-Z]+", unknown.json()["error"].split("use one of", 1)[1])[0]
    typed = httpx.get(f"{server.url}/recommendations/segments/{country.lower()}")
    assert typed.status_code == 404
    expected = f"unknown segment {country.lower()!r}: did you mean {country!r}? use one of"
    assert typed.json()["error"].startswith(expected)


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/recommendations/u0000001", {"k": "0"}, 422, "k: Input should be greater than or equal to 1"),
        ("/recommendations/u0000001", {"k": "1000000"}, 422, "k: Input should be less than or equal to 100"),
        ("/recommendations/u0000001", {"k": "ten"}, 422, "k: Input should be a valid integer"),
        ("/recommendations/u0000001", {"surface": "moon"}, 422, "surface: Input should be 'home' or 'feed'"),
        ("/recommendations/%20%20", {}, 422, "user_id is empty or blank"),
        # A NUL in an id is refused, as the contract refuses it in an event (it was a cold-start page).
        ("/recommendations/u%00x", {}, 422, "user_id holds a control character (U+0000 at character 2)"),
        ("/recommendations/" + "u" * 129, {}, 422, "at most 128 characters (got " + repr("u" * 30) + "..."),
        ("/recommendations/segments/planet:mars", {}, 422, "segment must be all, surface:<surface>"),
        ("/recommendations/u0000001", {"K": "3"}, 400, "unknown query parameter 'K': this route takes k, surface"),
        ("/recommendations/u0000001", {"at": "2020-01-01"}, 400, "pages are as of now: the service has no `at`"),
        # Reserved: not the page of a user called "segments" (it was a cold-start page for one).
        ("/recommendations/segments", {}, 404, "no segment given: ask /recommendations/segments/<segment>, one of all"),
        ("/nowhere", {}, 404, "no route /nowhere"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(
    server: Server, path: str, params: dict[str, str], status: int, message: str
) -> None:
    response = httpx.get(server.url + path, params=params)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "the body is not valid JSON"),
        # Python's json reads these; JSON has no such literals (a NaN in an ignored field landed as a non-JSON line).
        (b'{"event_id": "e1", "event_type": "click", "foo": NaN}', "application/json", 400, "NaN is not a JSON value"),
        (b'{"events": [{"dwell_seconds": -Infinity}]}', "application/json", 400, "-Infinity is not a JSON value"),
        (b'{"event_id": "e1", "event_type": "click", "foo": 1e999}', "application/json", 400, "beyond a double's"),
        (b"", "application/json", 400, "empty body"),
        (b"[1, 2]", "application/json", 422, "the body is a JSON array"),
        (b'{"events": [], "x": 1}', "application/json", 422, "unknown field(s) 'x'"),
        (b"{}", "application/json", 422, "the object has no fields: a batch is"),
        (b'{"events": []}', "application/json", 422, "non-empty JSON array"),
        (b'{"event_id": "e1"}', "text/plain", 415, "send the events as application/json"),
        (b"\xff\xfe\x00", "application/json", 400, "the body is not UTF-8 (byte 0 is 0xff): send the JSON encoded"),
        ('{"event_id": "caf\u00e9"}'.encode("latin-1"), "application/json", 400, "byte 17 is 0xe9"),
        (b'{"events": [' + b",".join([b"{}"] * 1001) + b"]}", "application/json", 413, "at most 1000 per request"),
        (b'{"events": ["' + b"x" * 1_100_000 + b'"]}', "application/json", 413, "at most 1,048,576 are accepted"),
    ],
)
def test_bad_event_bodies_get_a_4xx_that_says_what_is_wrong(
    server: Server, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = httpx.post(f"{server.url}/events", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(server: Server) -> None:
    def chunks():  # no Content-Length: the limit must hold while reading
        yield b'{"events": ["'
        for _ in range(40):
            yield b"x" * 32_768
        yield b'"]}'

    response = httpx.post(f"{server.url}/events", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "send smaller batches" in response.json()["error"]


def test_health_readiness_and_openapi(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["model"] == {"ok": True, "version": "1", "detail": "champion loaded"}
    assert checks["online_store"]["ok"] is True and checks["recommender"]["ok"] is True
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/recommendations/{user_id}", "/recommendations/segments/{segment}", "/events", "/metrics"} <= set(
        schema["paths"]
    )
    k = next(p for p in schema["paths"]["/recommendations/{user_id}"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["maximum"] == 100 and k["schema"]["minimum"] == 1


def test_metrics_count_requests_by_route_and_status_and_name_the_model(built: Built, server: Server) -> None:
    httpx.get(f"{server.url}/recommendations/{built.personalized_user(2)}")
    httpx.get(f"{server.url}/recommendations/u0000001", params={"k": "0"})
    httpx.get(f"{server.url}/recommendations/never-seen-user")
    text = httpx.get(f"{server.url}/metrics").text

    def value(series: str) -> float:
        match = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.MULTILINE)
        assert match, f"{series} not in /metrics:\n{text[:4000]}"
        return float(match.group(1))

    route = 'route="/recommendations/{user_id}"'
    assert value(f'tailor_http_requests_total{{method="GET",{route},status="200"}}') >= 2
    assert value(f'tailor_http_requests_total{{method="GET",{route},status="422"}}') >= 1
    assert value(f'tailor_http_request_duration_seconds_bucket{{le="+Inf",method="GET",{route}}}') >= 3
    assert value('tailor_recommendation_fallbacks_total{reason="cold_start"}') >= 1
    assert value('tailor_recommendations_total{served_by="model",surface="home"}') >= 1
    assert value('tailor_model_info{closed_reason="",version="1"}') == 1
    httpx.get(f"{server.url}/openapi.json")
    text = httpx.get(f"{server.url}/metrics").text
    assert value('tailor_http_requests_total{method="GET",route="/openapi.json",status="200"}') >= 1
    assert value("tailor_model_loaded") == 1

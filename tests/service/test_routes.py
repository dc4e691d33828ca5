"""The API's routing in process, on an empty home (no recommender, so no page): what every route does with a query
parameter it does not take, HEAD, and how /metrics labels the schema's route. Found by a new-user trial; the pages
themselves are checked on a real server in test_api.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import ServiceConfig
from tailor.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, ServiceConfig.from_env({"TAILOR_REDIS_URL": ""}))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/recommendations/u0000001?K=3", "unknown query parameter 'K': this route takes k, surface"),
        (
            "/recommendations/u0000001?at=2020-01-01&k=3",
            "unknown query parameter 'at': this route takes k, surface; pages are as of now: the service has no `at`",
        ),
        ("/recommendations/segments/all?surface=home&x=1", "unknown query parameters 'surface', 'x': this route takes"),
        ("/healthz?verbose=1", "unknown query parameter 'verbose': this route takes no query parameters"),
        ("/recommendations/u0000001?k=3&k=4", "query parameter 'k' is given 2 times ('3', '4'): give it once"),
        ("/recommendations/segments/all?k=2&k=2", "query parameter 'k' is given 2 times ('2', '2'): give it once"),
    ],
)
def test_a_query_parameter_the_route_does_not_take_is_refused_by_name(
    client: TestClient, path: str, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(message)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("segment", "hint"),
    [("Country:de", "; did you mean 'country:DE'?"), ("ALL", "; did you mean 'all'?"),
     ("Surface:Home", "; did you mean 'surface:home'?"), ("planet:mars", "")],
)  # fmt: skip
def test_a_segment_cased_wrong_gets_the_spelling_the_service_takes(client: TestClient, segment: str, hint: str) -> None:
    response = client.get(f"/recommendations/segments/{segment}")
    assert response.status_code == 422
    assert response.json()["error"] == (
        "segment must be all, surface:<surface> (e.g. surface:home) or country:<code> (e.g. country:DE)" + hint
    )


def test_head_answers_a_gets_status_and_headers_without_the_body(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"" and got.content, path
        same = ("content-type", "cache-control") + (("content-length",) if path != "/metrics" else ())  # it counts
        for name in same:
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    head = client.head("/events")  # a POST route has no HEAD: 405 with the allowed method
    assert head.status_code == 405 and head.headers["allow"] == "POST"


def test_the_schema_and_docs_are_counted_under_their_routes(client: TestClient) -> None:
    def counts() -> dict[str, float]:
        text = client.get("/metrics").text
        found = re.findall(r"^tailor_http_requests_total\{(.*)\} (\S+)$", text, re.MULTILINE)
        return {labels: float(value) for labels, value in found}

    before = counts()
    for path in ("/openapi.json", "/docs", "/nowhere"):
        client.get(path)
    client.head("/healthz")
    too_large = client.post("/events", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert too_large.status_code == 413
    after = counts()
    added = {labels: after[labels] - before.get(labels, 0.0) for labels in after}
    # Exactly one each, even after other apps in this process (see the test below).
    for labels in ("/openapi.json", "/docs"):
        assert added.get(f'method="GET",route="{labels}",status="200"', 0) == 1, added
    assert added.get('method="GET",route="unmatched",status="404"', 0) == 1, added  # an unknown path keeps it
    assert added.get('method="HEAD",route="/healthz",status="200"', 0) == 1, added
    # A body refused before it reached the route is counted under the route it was sent to (it was "unmatched").
    assert added.get('method="POST",route="/events",status="413"', 0) == 1, added


def test_each_app_in_a_process_counts_its_own_requests_when_feast_set_the_multiprocess_folder(
    settings: Settings, tmp_path: Path
) -> None:
    """prometheus-client keeps values in files when PROMETHEUS_MULTIPROC_DIR is set at its import (Feast sets it in
    any process that read online features): a second app's counter then started at the first one's total, and the
    full suite saw one request counted twice. Run in a fresh process, with the variable set as Feast would."""
    script = textwrap.dedent(
        """
        import sys
        from fastapi.testclient import TestClient
        from service.app import create_app
        from service.config import ServiceConfig
        from tailor.settings import get_settings

        def count(client):
            lines = client.get("/metrics").text.splitlines()
            series = [line for line in lines if line.startswith("tailor_http_requests_total{") and "openapi" in line]
            return float(series[0].split()[-1]) if series else 0.0

        for _ in range(2):
            app = create_app(get_settings(sys.argv[1]), ServiceConfig.from_env({"TAILOR_REDIS_URL": ""}))
            with TestClient(app) as client:
                before = count(client)
                client.get("/openapi.json")
                print(count(client) - before)
        """
    )
    folder = tmp_path / "feast-metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(settings.home)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["1.0", "1.0"], done.stdout


@pytest.mark.parametrize("blank", ["%20", "%E2%80%8B", "%E2%81%A0", "%EF%BB%BF", "%C2%A0%E3%80%80"])
def test_a_user_id_of_blank_characters_is_refused_as_the_contract_refuses_it(client: TestClient, blank: str) -> None:
    """U+200B, U+2060 and U+FEFF are blank to the contract (POST /events says missing user_id) but not to Python's
    \\S: such an id got a cold-start page (a re-check trial)."""
    response = client.get(f"/recommendations/{blank}")
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "user_id is empty or blank: pass the user's id, e.g. u0000042"


@pytest.mark.parametrize(("path", "byte"), [("u%FFx", "byte 18 is 0xff"), ("u%ED%A0%80x", "byte 18 is 0xed")])
def test_a_user_id_whose_escapes_are_not_utf8_is_a_422(client: TestClient, path: str, byte: str) -> None:
    """Starlette decodes the escapes with replacement characters: the user 'u\ufffdx' got a cold-start page (a
    trial), where a POST body with the same byte is a 400."""
    response = client.get(f"/recommendations/{path}")
    assert response.status_code == 422, response.text
    assert response.json()["error"] == (
        f"the path is not UTF-8 once its %-escapes are decoded ({byte}): percent-encode the id's UTF-8 bytes"
    )


def test_a_body_nested_too_deeply_or_with_a_byte_order_mark_is_a_400(client: TestClient) -> None:
    """A re-check trial's 4 KB of nested arrays was a 500 (RecursionError); a BOM got Python's own wording."""
    headers = {"Content-Type": "application/json"}
    deep = client.post("/events", content=b"[" * 5000 + b"]" * 5000, headers=headers)
    assert deep.status_code == 400 and deep.json()["error"] == (
        "the body's JSON is nested too deeply: send events as flat JSON objects"
    )
    bom = client.post("/events", content="\ufeff{}".encode(), headers=headers)
    assert bom.status_code == 400 and "byte-order mark" in bom.json()["error"]

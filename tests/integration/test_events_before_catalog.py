"""The contract's "A first file" example on a new home: events that come before any content file.

Found by a new-user trial: `tailor ingest events.jsonl && tailor run` (the five events of docs/contract/README.md)
failed in ml/candidates with `ValueError: no content published before ...`; `tailor recommend` then printed an
IndexError and "k=10 is more than the 0 items", `/readyz` blamed the feature store, and a page was an empty 200.
Events may arrive before the catalog (the contract allows it): the run succeeds and every face says there is no
content catalog yet and what to do.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import ServiceConfig
from tailor.settings import get_settings

pytestmark = pytest.mark.integration

TAILOR = str(Path(sys.executable).parent / "tailor")
CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract" / "README.md"


def _first_file() -> str:
    """The JSON block under "A first file", as the docs show it."""
    text = CONTRACT.read_text()
    section = text[text.index("## A first file") :]
    return re.search(r"```json\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_docs_first_file_runs_and_every_face_says_there_is_no_catalog_yet(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "TAILOR_HOME": str(home)}
    events = tmp_path / "events.jsonl"
    events.write_text(_first_file())
    assert len(events.read_text().splitlines()) == 5
    ingested = subprocess.run([TAILOR, "ingest", str(events)], env=env, capture_output=True, text=True)
    assert ingested.returncode == 0, ingested.stderr
    run = subprocess.run([TAILOR, "run"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "ml/candidates:           not fitted: no content catalog yet" in run.stdout
    assert "ml/recommendations:      not built: no content catalog yet" in run.stdout
    assert "docs/contract/dimensions.md" in run.stdout

    page = subprocess.run([TAILOR, "recommend", "u0000042"], env=env, capture_output=True, text=True)
    assert page.returncode == 1 and "Traceback" not in page.stderr and page.stdout == ""
    assert page.stderr.startswith("error: no content catalog yet: no content file describes an item")
    assert "item features unavailable" not in page.stderr  # the model path is not closed for it

    app = create_app(get_settings(home), ServiceConfig.from_env({"TAILOR_REDIS_URL": ""}))
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["recommender"]["detail"].startswith("no content catalog yet")
        for path in ("/recommendations/u0000042", "/recommendations/segments/all"):
            answer = client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert "no content catalog yet" in answer.json()["error"], answer.text

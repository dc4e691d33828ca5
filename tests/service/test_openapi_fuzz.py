"""A bounded schemathesis run against the published /openapi.json of a real `tailor serve`.

Schemathesis generates requests from the schema (valid ones, and invalid ones for the negative checks: wrong
types, out-of-range k, malformed bodies) and checks that nothing answers 500, every status and content type is
documented, every body fits its documented schema, and data that breaks the schema is refused with a 4xx.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import Server

pytestmark = pytest.mark.integration

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance," + (
    "negative_data_rejection"
)


def test_generated_requests_never_get_a_500_and_match_the_schema(server: Server, tmp_path: Path) -> None:
    options = {"--checks": CHECKS, "--max-examples": "20", "--seed": "1", "--generation-database": "none"}
    options |= {"--request-timeout": "10", "--workers": "1"}
    command = [SCHEMATHESIS, "run", f"{server.url}/openapi.json", *(part for item in options.items() for part in item)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "6 selected / 6 total" in done.stdout and " passed" in done.stdout

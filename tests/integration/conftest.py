"""Fixtures of the integration tests: `run_bench` runs a benchmark script as a reader would."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tailor.settings import REPO_ROOT, TELEMETRY_OFF

BENCH_DIR = REPO_ROOT / "bench"
TIMEOUT_S = 600


def _committed_results() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((BENCH_DIR / "results").glob("*.json"))}


@pytest.fixture
def run_bench(tmp_path: Path) -> Iterator[Any]:
    """``run_bench(script, *args)``: the script's results (JSON) after running it like a reader would."""
    before = _committed_results()

    def run(script: str, *args: str, output_flag: str = "--output") -> dict[str, Any]:
        """The results; what the script printed is in ``run.stdout`` after the call."""
        output = tmp_path / "results" / script.replace(".py", ".json")
        env = {**os.environ, **TELEMETRY_OFF, "TAILOR_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / script), *args, output_flag, str(output)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"{script} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        result: dict[str, Any] = json.loads(output.read_text())
        run.stdout = done.stdout  # type: ignore[attr-defined]
        return result

    yield run
    assert _committed_results() == before, "a smoke run overwrote the committed figures in bench/results/"

"""Processes loading the definitions together take turns at the dbt manifest instead of reading it half written.

The clean-clone CI run of 2026-11-30 failed at collection: two pytest-xdist workers imported the definitions at once,
one ran `dbt parse`, and the other read manifest.json while it was being written (orjson: "unexpected end of data").
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.lib.dbt import _parse_lock, dbt_project

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

LOADER = """
import sys
from orchestration.lib.dbt import dbt_project
print("imported", flush=True)
project = dbt_project()
print("loaded", project.manifest_path.stat().st_size, flush=True)
"""


def test_a_second_process_waits_for_the_parse_lock_before_it_reads_the_manifest() -> None:
    target = dbt_project().manifest_path.parent
    with _parse_lock(target):
        loader = subprocess.Popen(
            [sys.executable, "-c", LOADER], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert loader.stdout is not None
            assert loader.stdout.readline().strip() == "imported"
            time.sleep(2.0)
            # Still waiting: it has not reached the manifest while another process may be writing it.
            assert loader.poll() is None
        except BaseException:
            loader.kill()
            raise
    out, err = loader.communicate(timeout=120)
    assert loader.returncode == 0, err
    assert out.startswith("loaded"), out
    assert int(out.split()[1]) > 0

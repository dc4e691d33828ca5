"""The warehouse step's dbt invocation folders are pruned: dagster-dbt leaves one per build in the repository's
dbt target folder (~10 MB each) and never removes it; a working copy held 391 of them, 3.6 GB."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestration.lib.dbt import prune_invocations

pytestmark = pytest.mark.unit


def test_the_newest_and_the_young_are_kept_the_rest_removed(tmp_path: Path) -> None:
    now = time.time()
    ages_h = {"warehouse-a": 0.0, "warehouse-b": 0.1, "warehouse-c": 2, "warehouse-d": 3, "warehouse-e": 4}
    ages_h |= {"warehouse-f": 5, "warehouse-g": 6, "warehouse-h": 7}
    for name, hours in ages_h.items():
        folder = tmp_path / name
        (folder / "compiled").mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
        os.utime(folder, (now - hours * 3600, now - hours * 3600))
    (tmp_path / "manifest.json").write_text("{}")  # the project's own manifest is not an invocation
    (tmp_path / "spark").mkdir()
    removed = prune_invocations(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == [
        "warehouse-d",
        "warehouse-e",
        "warehouse-f",
        "warehouse-g",
        "warehouse-h",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json",
        "spark",
        "warehouse-a",
        "warehouse-b",
        "warehouse-c",
    ]
    # A folder younger than the grace period stays even beyond the newest: a build another process is running.
    for name in ("warehouse-x", "warehouse-y"):
        (tmp_path / name).mkdir()
    assert prune_invocations(tmp_path, keep=1) == [tmp_path / "warehouse-c"]
    assert {p.name for p in tmp_path.glob("warehouse-*")} == {
        "warehouse-x",
        "warehouse-y",
        "warehouse-a",
        "warehouse-b",
    }

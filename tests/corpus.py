"""Rows drawn by Hypothesis as a corpus, for checks that judge many rows in one query or one build."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def corpus(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """n rows drawn by Hypothesis (derandomized), to be judged in one query: one DuckDB plan per row would
    cost more than the generation. The failure message names the rows, so nothing is lost by not shrinking.

    Derandomized is not the same rows everywhere: Hypothesis's draws also depend on the strategies this process
    built before (seen in CI, where another module's corpus ran first in the same pytest-xdist worker). A failure
    seen only in CI may need that module run first to reproduce."""
    rows: list[Any] = []

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    @given(strategy)
    def collect(row: Any) -> None:
        rows.append(row)

    collect()
    return rows

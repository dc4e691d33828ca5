"""Rows drawn by Hypothesis as a corpus, for checks that judge many rows in one query or one build."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def corpus(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """n rows drawn by Hypothesis (deterministically), to be judged in one query: one DuckDB plan per row would
    cost more than the generation. The failure message names the rows, so nothing is lost by not shrinking."""
    rows: list[Any] = []

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    @given(strategy)
    def collect(row: Any) -> None:
        rows.append(row)

    collect()
    return rows

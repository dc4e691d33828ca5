"""Reading the closed loop's truth: what the served pages were truly worth, and the true holdout lift.

A continued simulation that served the pipeline's pages (``tailor generate --continue --policy cached``) writes,
per request, the true expected clicks of the page served and of the holdout, oracle, popularity, random and
logging pages on the same request (``_truth/continued/requests-*.parquet``), and truth.json's ``closed_loop``
summarises them, with the true CTR of each arm of ``personalization_holdout``. Benchmarks and tests compare the
pipeline's measurements (``tailor experiments``) with these. Reads `_truth/` files only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evaluation.simulator_truth import _truth_folder, read_truth

#: Page kinds valued on every request of a continued day, as in the requests table's columns.
PAGE_KINDS: tuple[str, ...] = ("served", "holdout", "oracle", "popularity", "random", "logging")


@dataclass(frozen=True)
class ClosedLoopTruth:
    """The closed-loop truth of a simulation: per-request values and truth.json's summary.

    Attributes:
        requests: One row per request of the continued days (columns as truth.json's
            ``tables.continued_requests.columns``).
        summary: truth.json's ``closed_loop``.
        slate_size: Slots of the counterfactual pages.
    """

    requests: pd.DataFrame
    summary: dict[str, Any]
    slate_size: int

    @classmethod
    def from_folder(cls, path: Path) -> ClosedLoopTruth:
        """Read a simulation's truth (its output folder or its ``_truth`` folder).

        Raises:
            FileNotFoundError: no truth, or the simulation was never continued.
        """
        folder = _truth_folder(path)
        doc = read_truth(folder)
        paths = sorted((folder / "continued").glob("requests-*.parquet"))
        if not paths or "closed_loop" not in doc:
            raise FileNotFoundError(
                f"{folder} has no closed-loop truth: continue the simulation first (tailor generate --continue)"
            )
        table = pa.concat_tables([pq.read_table(p) for p in paths])
        return cls(table.to_pandas(), dict(doc["closed_loop"]), int(doc["session_model"]["slate_size"]))

    def true_ctr(self, kind: str, rows: pd.Series | None = None) -> float:
        """True CTR (expected clicks per slot) of one page kind over some requests (all by default).

        Slots: the impressions shown for ``served``, ``holdout_slots`` for ``holdout``, the slate size for the
        others. Raises ValueError for an unknown kind or no requests.
        """
        if kind not in PAGE_KINDS:
            raise ValueError(f"unknown page kind {kind!r}: one of {list(PAGE_KINDS)}")
        frame = self.requests if rows is None else self.requests.loc[rows]
        if frame.empty:
            raise ValueError("no requests to value")
        slots = {"served": frame["impressions"].sum(), "holdout": frame["holdout_slots"].sum()}
        return float(frame[f"expected_clicks_{kind}"].sum() / slots.get(kind, len(frame) * self.slate_size))

    def holdout_arms(self) -> dict[str, dict[str, Any]]:
        """truth.json's per-arm figures of ``personalization_holdout`` (true and observed CTR, exposures)."""
        return {arm["variant"]: dict(arm) for arm in self.summary["personalization_holdout"]["arms"]}

    @property
    def true_lift(self) -> float | None:
        """True CTR of the personalized arm minus the holdout's (what the experiment's ctr difference estimates)."""
        value = self.summary["personalization_holdout"]["true_absolute_lift"]
        return None if value is None else float(value)

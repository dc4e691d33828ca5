"""Judging rankers against the simulator's truth: the oracle, truth-graded NDCG, the true CTR of a page.

The simulator draws every click from a position-based model, P(click) = examine(position) * attract(user, item,
t) (truth.json, "click_model"). With the truth, any ranking of any items for any user at any moment can be
valued exactly, not only what the logging policy happened to show:

- the **oracle** ranks by the true ``attract`` (the click probability at the top): no ranker can do better;
- **truth-graded NDCG@k**: DCG with gain = true attract, over the ideal (the oracle's) DCG;
- **true page CTR**: the expected clicks per impression of the top-k list placed in that order,
  sum_k examine(k) * attract_k / sum_k examine(k);
- **truth recovery**: Spearman's rank correlation between a model's scores and the true attract, per user.

Experiment effects are left out (``attract_without_experiments``): they are the planted A/B differences, not a
property of the items. Reads `_truth/` files only; never runs the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import stats

from evaluation.simulator_truth import _Items, _taste_factors, _truth_folder, moments_ms, read_truth


@dataclass(frozen=True)
class TruthClickModel:
    """The simulator's click model, able to value any (user, item, moment)."""

    items: _Items
    taste: np.ndarray  # (users, categories) taste factor, row i = user u{i+1}
    examine_by_position: dict[int, float]
    folder: Path

    @classmethod
    def from_folder(cls, path: Path) -> TruthClickModel:
        """Read ``_truth/`` (or the simulation's output folder holding it)."""
        folder = _truth_folder(path)
        doc = read_truth(folder)
        examine = {int(k): float(v) for k, v in doc["click_model"]["examine"]["by_position"].items()}
        return cls(_Items.read(folder, doc), _taste_factors(folder, doc), examine, folder)

    def examine(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """The probability that a slot is looked at, by 1-based position."""
        return np.array([self.examine_by_position[int(p)] for p in positions])

    def attract(
        self, user_ids: Sequence[str], content_ids: Sequence[str], moments: pd.Series | Sequence[Any]
    ) -> np.ndarray:
        """True P(click | shown at the top) per (user, item, moment), experiments left out; NaN for ids the
        simulation does not know."""
        users = _ids(user_ids, "u")
        items = _ids(content_ids, "c")
        ms = moments_ms(moments)
        out = np.full(len(users), np.nan)
        ok = (users >= 0) & (users < len(self.taste)) & (items >= 0) & (items < len(self.items.category))
        for user in np.unique(users[ok]):
            rows = np.flatnonzero(ok & (users == user))
            taste = np.repeat(self.taste[[user]], len(rows), axis=0)
            # One request per row: attract() gives (requests, items); we need the diagonal.
            grid = self.items.attract(taste, items[rows], ms[rows], np.ones(len(rows)))
            out[rows] = np.diagonal(grid)
        return out

    def attract_parts(
        self, user_ids: Sequence[str], content_ids: Sequence[str], moments: pd.Series | Sequence[Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Attract's three factors per (user, item, moment): the user's taste factor for the item's true category,
        the item's quality factor, and the rest (base_attract * freshness * drift); attract is
        min(1, taste * quality * rest) without experiments. NaN where an id is unknown."""
        users, items = _ids(user_ids, "u"), _ids(content_ids, "c")
        ok = (users >= 0) & (users < len(self.taste)) & (items >= 0) & (items < len(self.items.category))
        ms = moments_ms(moments)
        taste, quality, rest = (np.full(len(users), np.nan) for _ in range(3))
        taste[ok] = self.taste[users[ok], self.items.category[items[ok]]]
        quality[ok] = self.items.quality_factor[items[ok]]
        rest[ok] = self.items.unit_attract(items[ok], ms[ok], quality=False)
        return taste, quality, rest

    def impressions(self, impression_ids: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
        """``columns`` of the truth's per-impression table (`_truth/impressions.parquet`) for ``impression_ids``, in
        their order, indexed by event_id; a row of missing values for an id the truth does not hold."""
        table = pq.read_table(self.folder / "impressions.parquet", columns=["event_id", *columns]).to_pandas()
        return table.set_index("event_id").reindex(list(impression_ids))

    def impression_p_click(self, impression_ids: Sequence[str]) -> np.ndarray:
        """The true P(click) of logged impressions (with their position and experiment), NaN if unknown."""
        return self.impressions(impression_ids, ["p_click"])["p_click"].to_numpy(dtype=float)


def _ids(ids: Sequence[str], prefix: str) -> np.ndarray:
    """Index of simulator ids like u0000042 (numbered from 1), -1 for anything else."""
    series = pd.Series([str(i) for i in ids], dtype="string")
    ok = series.str.fullmatch(prefix + r"\d+").fillna(False).to_numpy(dtype=bool)
    out = np.full(len(series), -1, dtype=np.int64)
    out[ok] = series[ok].str.slice(1).astype(np.int64).to_numpy() - 1
    return out


def truth_ranking_metrics(
    rows: pd.DataFrame, score: np.ndarray, attract: np.ndarray, model: TruthClickModel, k: int
) -> dict[str, float]:
    """Truth-graded NDCG@k, true page CTR of the top-k and Spearman recovery, averaged over users.

    Args:
        rows: one row per (user, candidate item), with ``user_id``.
        score: the ranking's score per row (higher first; ties by row order; -inf for a row the ranking does not
            score, e.g. an item a generator has no score for, which goes last).
        attract: the true attract per row.
        model: for the examination curve.
    """
    frame = pd.DataFrame({"user_id": rows["user_id"].to_numpy(), "score": score, "attract": attract})
    frame = frame.loc[np.isfinite(frame["attract"])]
    discount = 1 / np.log2(np.arange(2, k + 2))
    examine = model.examine(np.arange(1, k + 1))
    ndcg, ctr, rho = [], [], []
    for _, group in frame.groupby("user_id", sort=False):
        gains = group["attract"].to_numpy()
        order = np.argsort(-group["score"].to_numpy(), kind="stable")[:k]
        ideal = np.sort(gains)[::-1][:k]
        top = gains[order]
        ndcg.append(float(np.sum(top * discount[: len(top)]) / np.sum(ideal * discount[: len(ideal)])))
        ctr.append(float(np.sum(top * examine[: len(top)]) / np.sum(examine[: len(top)])))
        scores = group["score"].to_numpy()
        # Distinct scores, not a positive range: a baseline scores what it does not know as -inf, and the range of
        # all -inf is NaN, which numpy warned about on every benchmark run (the user is all ties either way).
        if len(group) > 2 and (scores != scores[0]).any():
            rho.append(float(stats.spearmanr(group["score"], group["attract"]).statistic))
    return {
        "truth_ndcg_at_k": float(np.mean(ndcg)),
        "true_page_ctr": float(np.mean(ctr)),
        "spearman_with_truth": float(np.mean(rho)) if rho else float("nan"),
        "users": float(len(ndcg)),
    }

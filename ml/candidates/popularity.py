"""Popularity candidates: what gets clicked when shown, over the last days, per surface, shrunk toward a prior.

An item's score is its smoothed click-through rate over the trailing window (default 7 days) on one surface:
``(clicks + m * g) / (impressions + m)``, the posterior mean of a Beta(m * g, m * (1 - g)) prior after its
impressions, where ``g`` is the surface's CTR over the window and ``m`` the prior's strength in impressions (the
same shrinkage as the feature marts' ``smoothed_rate``). An item shown a few times with one lucky click stays near
``g``; one with thousands of impressions keeps its own rate. Every user gets the same list, less what they
have already seen; items with no impressions in the window are not candidates. This is the non-personalized
baseline and the cold-start fallback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Self

import numpy as np
import pandas as pd

from ml.candidates.base import NotFittedError, check_k, empty_candidates
from ml.candidates.interactions import Interactions
from ml.data_days import days_of, window_start

#: Columns `fit_impressions` needs.
IMPRESSION_COLUMNS = ("content_id", "occurred_at", "clicked")


class Popularity:
    """Smoothed recent CTR per item, the same list for every user (less what each has seen)."""

    def __init__(self, window_days: int = 7, prior_impressions: float = 100.0, surface: str | None = None) -> None:
        if window_days <= 0:
            raise ValueError(f"window_days must be positive, got {window_days}")
        if prior_impressions < 0:
            raise ValueError(f"prior_impressions must be >= 0, got {prior_impressions}")
        self.window_days = window_days
        self.prior_impressions = prior_impressions
        self.surface = surface
        self.name = "popularity" if surface is None else f"popularity_{surface}"
        self._scores: pd.Series | None = None
        self._seen: Mapping[str, set[str]] = {}

    def params(self) -> dict[str, Any]:
        return {"window_days": self.window_days, "prior_impressions": self.prior_impressions, "surface": self.surface}

    def fit_impressions(
        self, impressions: pd.DataFrame, now: datetime | None = None, seen: Interactions | None = None
    ) -> Self:
        """Fit on logged impressions (``content_id``, ``occurred_at``, ``clicked``, and ``surface`` if filtering).

        Args:
            impressions: one row per impression; ``occurred_at`` naive UTC or tz-aware.
            now: the end of the window (exclusive); default the newest impression.
            seen: what each user has consumed, to exclude from their list (e.g. clicks and views).

        Raises:
            ValueError: a needed column is missing.
        """
        needed = [*IMPRESSION_COLUMNS, *(["surface"] if self.surface is not None else [])]
        missing = [c for c in needed if c not in impressions.columns]
        if missing:
            raise ValueError(f"impressions lack column(s) {missing}; they have {list(impressions.columns)}")
        times = pd.to_datetime(impressions["occurred_at"], utc=True)
        end = pd.Timestamp(now if now is not None else times.max())
        end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
        # Days with impressions, not calendar days: a gap before the end does not empty the window (ml.data_days).
        start = window_start(end, timedelta(days=self.window_days), days_of(times))
        keep = (times >= start) & (times < end if now is not None else times <= end)
        if self.surface is not None:
            keep &= impressions["surface"] == self.surface
        window = impressions.loc[keep, ["content_id", "clicked"]]
        per_item = window.groupby("content_id")["clicked"].agg(["sum", "count"])
        total_impressions = float(per_item["count"].sum())
        prior = float(per_item["sum"].sum()) / total_impressions if total_impressions else 0.0
        m = self.prior_impressions
        scores = (per_item["sum"] + m * prior) / (per_item["count"] + m) if len(per_item) else per_item["sum"]
        self._scores = scores.astype(np.float64).sort_index()
        self._seen = {} if seen is None else _seen_by_user(seen)
        return self

    def fit(self, interactions: Interactions) -> Self:
        """Fit on an interaction matrix alone: the score is the number of users who interacted (no impressions
        are known, so no rate). Prefer `fit_impressions`."""
        self._scores = interactions.item_counts().astype(np.float64)
        self._seen = _seen_by_user(interactions)
        return self

    @property
    def scores(self) -> pd.Series:
        """Score per content_id (float), after fit."""
        if self._scores is None:
            raise NotFittedError(f"{self.name} is not fitted yet: call fit_impressions(...) first")
        return self._scores

    def candidates(self, user_ids: Sequence[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """The ``k`` best-scored items for each user (every user, known or not: this is the fallback).

        Returns a frame with CANDIDATE_COLUMNS; ties broken by ascending content_id.

        Raises:
            NotFittedError: before fit. ValueError: ``k`` is not a positive integer.
        """
        k = check_k(k)
        if isinstance(user_ids, str):
            raise ValueError(f"user_ids must be a sequence of ids, not the single string {user_ids!r}")
        scores = self.scores
        order = np.lexsort((scores.index.to_numpy(dtype=str), -scores.to_numpy()))
        items = scores.index.to_numpy()[order]
        values = scores.to_numpy()[order]
        frames = []
        for user in dict.fromkeys(str(u) for u in user_ids):
            seen = self._seen.get(user, set()) if exclude_seen else set()
            if seen:
                keep = np.fromiter((i not in seen for i in items), dtype=bool, count=len(items))
                top_items, top_values = items[keep][:k], values[keep][:k]
            else:
                top_items, top_values = items[:k], values[:k]
            frames.append(
                pd.DataFrame(
                    {
                        "user_id": user,
                        "content_id": top_items,
                        "score": top_values,
                        "rank": np.arange(1, len(top_items) + 1, dtype=np.int64),
                        "generator": self.name,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True) if frames else empty_candidates()


def _seen_by_user(interactions: Interactions) -> dict[str, set[str]]:
    return dict(zip(interactions.users, interactions.seen(list(interactions.users)), strict=True))

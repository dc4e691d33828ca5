"""Content-based candidates: the categories a user clicks, times how fresh and how popular each item is.

``score(u, i) = affinity(u, category(i)) * freshness(i) * popularity(i)``, where

- ``affinity(u, c) = (clicks of u in c + a * share(c)) / (clicks of u + a)``: the user's share of clicks in the
  category, shrunk toward the platform's share with ``a`` pseudo-clicks, so a user with two clicks is not
  pinned to two categories and a new user gets the platform's mix;
- ``freshness(i) = floor + (1 - floor) * 0.5 ** (age_hours / half_life_hours)`` at the moment of fitting
  (exponential decay with a floor, so evergreen items keep a chance);
- ``popularity(i)``: the smoothed recent CTR of :class:`~ml.candidates.popularity.Popularity` (the prior rate for
  items with no recent impressions).

It needs no co-occurrence, so it serves items nobody has clicked yet and users with a handful of clicks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

import numpy as np
import pandas as pd

from ml.candidates.base import NotFittedError, check_k, empty_candidates, top_k
from ml.candidates.interactions import Interactions


class ContentAffinity:
    """Category affinity x freshness x popularity."""

    name = "content"

    def __init__(
        self, affinity_prior: float = 5.0, half_life_hours: float = 72.0, freshness_floor: float = 0.1
    ) -> None:
        if affinity_prior < 0 or half_life_hours <= 0 or not 0 <= freshness_floor <= 1:
            raise ValueError("affinity_prior >= 0, half_life_hours > 0 and 0 <= freshness_floor <= 1 are required")
        self.affinity_prior = affinity_prior
        self.half_life_hours = half_life_hours
        self.freshness_floor = freshness_floor
        self._items: pd.Index | None = None
        self._item_weight: np.ndarray | None = None  # freshness * popularity per item
        self._item_category: np.ndarray | None = None  # category code per item
        self._affinity: pd.DataFrame | None = None  # users x categories
        self._platform: np.ndarray | None = None  # platform category shares
        self._seen: Interactions | None = None

    def params(self) -> dict[str, Any]:
        return {
            "affinity_prior": self.affinity_prior,
            "half_life_hours": self.half_life_hours,
            "freshness_floor": self.freshness_floor,
        }

    def fit_content(
        self,
        clicks: pd.DataFrame,
        content: pd.DataFrame,
        popularity: pd.Series,
        now: datetime,
        seen: Interactions | None = None,
    ) -> Self:
        """Fit from clicks (``user_id``, ``content_id``), the catalog (``content_id``, ``category``,
        ``published_at``) and a popularity score per content_id, as of ``now``.

        Items published after ``now`` are not candidates. ``seen`` (e.g. clicks and views) is excluded from
        each user's list.

        Raises:
            ValueError: a needed column is missing or the catalog is empty.
        """
        for frame, cols, what in (
            (clicks, ("user_id", "content_id"), "clicks"),
            (content, ("content_id", "category", "published_at"), "content"),
        ):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValueError(f"{what} lack column(s) {missing}; they have {list(frame.columns)}")
        moment = pd.Timestamp(now)
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        published = pd.to_datetime(content["published_at"], utc=True)
        catalog = content.loc[published <= moment].drop_duplicates("content_id").sort_values("content_id")
        if catalog.empty:
            raise ValueError(f"no content published before {moment}: nothing to recommend")
        categories = pd.Index(sorted(catalog["category"].astype(str).unique()))
        age_hours = (moment - pd.to_datetime(catalog["published_at"], utc=True)).dt.total_seconds().to_numpy() / 3600
        floor = self.freshness_floor
        freshness = floor + (1 - floor) * 0.5 ** (np.maximum(age_hours, 0) / self.half_life_hours)
        prior = float(popularity.mean()) if len(popularity) else 0.0
        pop = popularity.reindex(catalog["content_id"]).fillna(prior).to_numpy(dtype=np.float64)
        self._items = pd.Index(catalog["content_id"].astype(str).to_numpy(), name="content_id")
        self._item_weight = freshness * pop
        self._item_category = categories.get_indexer(catalog["category"].astype(str))
        category_of = dict(zip(catalog["content_id"], catalog["category"].astype(str), strict=True))
        labelled = clicks.assign(category=clicks["content_id"].map(category_of)).dropna(subset=["category"])
        counts = pd.crosstab(labelled["user_id"].astype(str), labelled["category"]).reindex(
            columns=categories, fill_value=0
        )
        totals = counts.to_numpy().sum()
        self._platform = (
            counts.to_numpy().sum(axis=0) / totals if totals else np.full(len(categories), 1 / len(categories))
        )
        a = self.affinity_prior
        self._affinity = (counts + a * self._platform).div(counts.sum(axis=1) + a, axis=0)
        self._seen = seen
        return self

    def fit(self, interactions: Interactions) -> Self:
        """Not enough on its own: the scores need the catalog's categories and ages."""
        raise TypeError("ContentAffinity needs the catalog: use fit_content(clicks, content, popularity, now)")

    def candidates(self, user_ids: Sequence[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items per user; a user with no clicks gets the platform's category mix.

        Raises:
            NotFittedError: before fit. ValueError: ``k`` is not a positive integer.
        """
        k = check_k(k)
        if self._items is None or self._affinity is None or self._item_weight is None or self._platform is None:
            raise NotFittedError("content is not fitted yet: call fit_content(...) first")
        if isinstance(user_ids, str):
            raise ValueError(f"user_ids must be a sequence of ids, not the single string {user_ids!r}")
        ids = list(dict.fromkeys(str(u) for u in user_ids))
        if not ids:
            return empty_candidates()
        affinity = self._affinity.reindex(ids).to_numpy()
        affinity[np.isnan(affinity).any(axis=1)] = self._platform
        scores = affinity[:, self._item_category] * self._item_weight[None, :]
        if exclude_seen and self._seen is not None:
            for row, seen in enumerate(self._seen.seen(ids)):
                cols = self._items.get_indexer(pd.Index(list(seen)))
                scores[row, cols[cols >= 0]] = -np.inf
        rows, cols = top_k(scores, k)
        if len(rows) == 0:
            return empty_candidates()
        first = np.searchsorted(rows, rows, side="left")
        return pd.DataFrame(
            {
                "user_id": np.array(ids, dtype=object)[rows],
                "content_id": self._items.to_numpy()[cols],
                "score": scores[rows, cols],
                "rank": (np.arange(len(rows)) - first + 1).astype(np.int64),
                "generator": self.name,
            }
        )

    def score_pairs(self, user_ids: Sequence[str], content_ids: Sequence[str]) -> np.ndarray:
        """The score of each (user, item) pair (NaN for an item not in the fitted catalog)."""
        if self._items is None or self._affinity is None or self._item_weight is None or self._platform is None:
            raise NotFittedError("content is not fitted yet: call fit_content(...) first")
        cols = self._items.get_indexer(pd.Index([str(c) for c in content_ids]))
        affinity = self._affinity.reindex([str(u) for u in user_ids]).to_numpy()
        affinity[np.isnan(affinity).any(axis=1)] = self._platform
        out = np.full(len(cols), np.nan)
        assert self._item_category is not None
        ok = cols >= 0
        out[ok] = affinity[np.flatnonzero(ok), self._item_category[cols[ok]]] * self._item_weight[cols[ok]]
        return out

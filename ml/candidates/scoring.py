"""Shared machinery of the collaborative-filtering generators: fit on the interaction matrix, score users in
batches, pick the top k.

A subclass implements ``_fit`` (learn from the users x items matrix) and ``_score_rows`` (dense scores of every
item for some rows of that matrix). This class turns those into the candidate contract of
:mod:`ml.candidates.base` and into per-pair scores for the ranker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import sparse

from ml.candidates.base import NotFittedError, check_k, empty_candidates, top_k
from ml.candidates.interactions import Interactions

#: Scores held in memory at once while ranking (users per batch x items); 4M float64 cells = 32 MB.
BATCH_CELLS = 4_000_000


class MatrixScoringGenerator(ABC):
    """Base class: a generator that scores every (user, item) from the fitted interaction matrix.

    Only users present in the fitted matrix can be scored (no folding-in of unseen history), and only items with at
    least one training interaction become candidates: CF has no evidence about the others (the content-based
    generator covers new items).
    """

    name: str

    def __init__(self, binarize: bool = True) -> None:
        self.binarize = binarize
        self._interactions: Interactions | None = None
        self._train: sparse.csr_matrix | None = None
        self._item_has_data: np.ndarray | None = None

    # -- to implement -------------------------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, X: sparse.csr_matrix) -> None:
        """Learn from ``X`` (users x items, float64, binarized unless ``binarize=False``)."""

    @abstractmethod
    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Dense (len(rows), n_items) scores for rows of the training matrix; higher is better."""

    def params(self) -> dict[str, Any]:
        """Hyperparameters, for logging with the model."""
        return {"binarize": self.binarize}

    def _candidate_mask(self, scores: np.ndarray) -> np.ndarray | None:
        """Optional (rows, n_items) boolean mask of items allowed as candidates, beyond the default rules."""
        return None

    # -- public API ---------------------------------------------------------------------------------------------
    def fit(self, interactions: Interactions) -> Self:
        """Fit on an interaction matrix.

        Raises:
            ValueError: the matrix has no users, no items or no interactions.
        """
        if not isinstance(interactions, Interactions):
            raise TypeError(f"fit() takes an Interactions (see Interactions.from_frame), got {type(interactions)}")
        if interactions.n_users == 0 or interactions.n_items == 0 or interactions.matrix.nnz == 0:
            raise ValueError(
                f"{self.name}: cannot fit on an empty interaction matrix "
                f"({interactions.n_users} users, {interactions.n_items} items, {interactions.matrix.nnz} interactions)"
            )
        X = interactions.binary() if self.binarize else interactions.matrix
        X = sparse.csr_matrix(X, dtype=np.float64)
        self._fit(X)
        self._train = X
        self._interactions = interactions
        self._item_has_data = np.diff(X.tocsc().indptr) > 0
        return self

    @property
    def interactions(self) -> Interactions:
        """The matrix the generator was fitted on."""
        if self._interactions is None:
            raise NotFittedError(f"{self.name} is not fitted yet: call fit(interactions) before asking for candidates")
        return self._interactions

    def candidates(self, user_ids: Sequence[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items per user.

        Args:
            user_ids: users to serve (duplicates are served once, in first-seen order). Users not in the fitted
                matrix get no rows.
            k: candidates per user (>= 1). A user gets fewer when fewer items are eligible.
            exclude_seen: leave out items the user interacted with in the fitted matrix.

        Returns:
            Frame with :data:`~ml.candidates.base.CANDIDATE_COLUMNS`, users in input order, ``rank`` 1..k by
            descending ``score`` with ties broken by ascending ``content_id``.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: ``k`` is not a positive integer, or ``user_ids`` is a single string.
        """
        k = check_k(k)
        interactions = self.interactions
        ids = _unique_ids(user_ids)
        rows = interactions.user_rows(ids)
        known = rows >= 0
        known_ids = np.array(ids, dtype=object)[known]
        known_rows = rows[known]
        frames: list[pd.DataFrame] = []
        for start, stop in self._batches(len(known_rows)):
            batch_rows = known_rows[start:stop]
            scores = self._eligible_scores(batch_rows, exclude_seen)
            r, c = top_k(scores, k)
            if len(r) == 0:
                continue
            first = np.searchsorted(r, r, side="left")
            frames.append(
                pd.DataFrame(
                    {
                        "user_id": known_ids[start:stop][r],
                        "content_id": interactions.items.to_numpy()[c],
                        "score": scores[r, c],
                        "rank": (np.arange(len(r)) - first + 1).astype(np.int64),
                        "generator": self.name,
                    }
                )
            )
        if not frames:
            return empty_candidates()
        return pd.concat(frames, ignore_index=True)

    def score_pairs(self, user_ids: Sequence[str], content_ids: Sequence[str]) -> np.ndarray:
        """The model's score for each (user, item) pair, e.g. as a ranker feature.

        Args:
            user_ids, content_ids: equal-length sequences of ids.

        Returns:
            float64 array, one score per pair; NaN when the user is unknown or the item had no training
            interactions. Seen items are scored too (no exclusion here).

        Raises:
            NotFittedError: before ``fit``. ValueError: the lengths differ.
        """
        interactions = self.interactions
        if isinstance(user_ids, str) or isinstance(content_ids, str):
            raise ValueError("pass sequences of ids, not a single string")
        if len(user_ids) != len(content_ids):
            raise ValueError(f"{len(user_ids)} user ids but {len(content_ids)} content ids: pass one of each per pair")
        out = np.full(len(user_ids), np.nan)
        rows = interactions.user_rows(user_ids)
        cols = np.asarray(interactions.items.get_indexer(pd.Index([str(c) for c in content_ids])), dtype=np.int64)
        assert self._item_has_data is not None
        ok = (rows >= 0) & (cols >= 0)
        ok[ok] &= self._item_has_data[cols[ok]]
        if not ok.any():
            return out
        unique_rows, inverse = np.unique(rows[ok], return_inverse=True)
        picked = np.empty(int(ok.sum()))
        for start, stop in self._batches(len(unique_rows)):
            scores = self._score_rows(unique_rows[start:stop])
            in_batch = (inverse >= start) & (inverse < stop)
            picked[in_batch] = scores[inverse[in_batch] - start, cols[ok][in_batch]]
        out[ok] = picked
        return out

    # -- helpers ------------------------------------------------------------------------------------------------
    def _batches(self, n_rows: int) -> Iterator[tuple[int, int]]:
        size = max(1, BATCH_CELLS // max(1, self.interactions.n_items))
        for start in range(0, n_rows, size):
            yield start, min(start + size, n_rows)

    def _eligible_scores(self, rows: np.ndarray, exclude_seen: bool) -> np.ndarray:
        """Scores of ``rows`` with ineligible items set to -inf."""
        assert self._train is not None and self._item_has_data is not None
        scores = np.array(self._score_rows(rows), dtype=np.float64)
        scores[:, ~self._item_has_data] = -np.inf
        mask = self._candidate_mask(scores)
        if mask is not None:
            scores[~mask] = -np.inf
        if exclude_seen:
            seen = self._train[rows].tocoo()
            scores[seen.row, seen.col] = -np.inf
        return scores


def _unique_ids(user_ids: Sequence[str]) -> list[str]:
    if isinstance(user_ids, str):
        raise ValueError(f"user_ids must be a sequence of ids, not the single string {user_ids!r}: wrap it in a list")
    return list(dict.fromkeys(str(u) for u in user_ids))

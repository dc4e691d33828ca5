"""The contract every candidate generator keeps, and the top-k selection they share.

A generator is fitted on :class:`~ml.candidates.interactions.Interactions` and returns, per user, up to ``k``
items as a frame with :data:`CANDIDATE_COLUMNS`: ``rank`` 1..k by descending ``score``, ties broken by
``content_id`` (ascending), so the same inputs always give the same rows. Users the generator does not know get
no rows: the union of generators (and the popularity fallback) serves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from ml.candidates.interactions import Interactions

CANDIDATE_COLUMNS = ("user_id", "content_id", "score", "rank", "generator")

__all__ = ["CANDIDATE_COLUMNS", "CandidateGenerator", "NotFittedError", "check_k", "empty_candidates", "top_k"]


@runtime_checkable
class CandidateGenerator(Protocol):
    """Anything that proposes items for users.

    ``candidates`` returns a frame with :data:`CANDIDATE_COLUMNS`, ranks 1..k per user by descending score with
    ties broken by ``content_id``; unknown users get no rows; ``k <= 0`` raises ``ValueError``; calling it before
    ``fit`` raises :class:`NotFittedError`.
    """

    name: str

    def fit(self, interactions: Interactions) -> Self: ...

    def candidates(self, user_ids: Sequence[str], k: int, exclude_seen: bool = True) -> pd.DataFrame: ...


def check_k(k: int) -> int:
    """Return ``k`` if it is a positive int, else raise ``ValueError`` saying what to pass."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ValueError(f"k must be a positive integer (how many candidates per user), got {k!r}")
    return int(k)


def empty_candidates() -> pd.DataFrame:
    """A zero-row frame with the candidate columns and dtypes."""
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype=object),
            "content_id": pd.Series(dtype=object),
            "score": pd.Series(dtype=np.float64),
            "rank": pd.Series(dtype=np.int64),
            "generator": pd.Series(dtype=object),
        }
    )


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row, by descending score, ties broken by the lower column index.

    Entries that are ``-inf`` (or NaN) are never selected, so a row may yield fewer than ``k`` columns.

    Args:
        scores: (n_rows, n_cols) float array. Not modified.
        k: how many per row (>= 1).

    Returns:
        ``(rows, cols)``: int64 arrays of equal length, grouped by row (ascending) and, within a row, in rank order.
    """
    k = check_k(k)
    n_rows, n_cols = scores.shape
    if n_rows == 0 or n_cols == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    neg = -np.asarray(scores, dtype=np.float64)
    neg[np.isnan(neg)] = np.inf
    kk = min(k, n_cols)
    # The k-th best value per row; every column at least as good is a contender (more than k when tied).
    kth = np.partition(neg, kk - 1, axis=1)[:, kk - 1 : kk]
    rows, cols = np.nonzero((neg <= kth) & np.isfinite(neg))
    order = np.lexsort((cols, neg[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(len(rows)) - starts) < kk
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)

"""One user's candidates at request time: the rows of `CandidateSet.candidates([user])`, as arrays, in microseconds.

`CandidateSet.candidates` serves many users at once through frames: each generator's top k, a group-by for the
union, then every generator scores the pairs again (`CandidateSet.scores`). For one user that is tens of
milliseconds of frame building and two dense CF products. `OnlineCandidates` holds each generator's fitted state
as arrays once (built when the recommender opens) and, per request, computes each generator's scores for the user
once, takes its top k with the same `top_k`, and reads the union's scores from the same vectors. The rows, their
order (popularity's, then content's, then CF's, first proposal wins) and the scores are those of
`CandidateSet.candidates([user])`; `Proposal.frame` gives that frame, and a test checks they are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.candidates.base import NotFittedError, check_k, top_k
from ml.candidates.scoring import MatrixScoringGenerator
from ml.candidates.union import _SOURCE_BIT, _SOURCES_OF_BITS, SCORE_COLUMNS, CandidateSet


@dataclass(frozen=True)
class Proposal:
    """One user's candidates: item ids, each generator's score (the `SCORE_COLUMNS`, NaN = no opinion) and which
    generators proposed each item (bits of ``_SOURCE_BIT``), in `CandidateSet.candidates` order.

    Attributes:
        content_ids: (n,) object array of item ids.
        scores: (n, 3) float64, columns in `SCORE_COLUMNS` order.
        source_bits: (n,) int64.
    """

    user_id: str
    content_ids: np.ndarray
    scores: np.ndarray
    source_bits: np.ndarray

    def __len__(self) -> int:
        return len(self.content_ids)

    def frame(self) -> pd.DataFrame:
        """The frame `CandidateSet.candidates([user_id])` returns: user_id, content_id, the `SCORE_COLUMNS`,
        sources."""
        return pd.DataFrame(
            {
                "user_id": np.full(len(self), self.user_id, dtype=object),
                "content_id": self.content_ids,
                **{name: self.scores[:, n] for n, name in enumerate(SCORE_COLUMNS)},
                "sources": [_SOURCES_OF_BITS[int(b)] for b in self.source_bits],
            }
        )


class OnlineCandidates:
    """A `CandidateSet` prepared for one-user requests (read-only after construction: safe across threads).

    Raises:
        NotFittedError: a generator of ``candidate_set`` is not fitted.
    """

    def __init__(self, candidate_set: CandidateSet) -> None:
        self.source = candidate_set
        pop = candidate_set.popularity
        scores = pop.scores
        values = scores.to_numpy(dtype=np.float64)
        # Popularity.candidates' order: descending score, ties by ascending content_id.
        order = np.lexsort((scores.index.to_numpy(dtype=str), -scores.to_numpy()))
        self._pop_items = scores.index.to_numpy()[order]
        self._pop_ranked = scores.to_numpy()[order]
        self._pop_seen = pop._seen
        self._pop_score = dict(zip((str(i) for i in scores.index), values.tolist(), strict=True))

        content = candidate_set.content
        if content._items is None or content._affinity is None or content._item_weight is None:
            raise NotFittedError("content is not fitted yet: call fit_content(...) first")
        assert content._platform is not None and content._item_category is not None
        self._c_items = content._items.to_numpy()
        self._c_col = {str(i): n for n, i in enumerate(self._c_items)}
        self._c_weight = content._item_weight
        self._c_category = content._item_category
        self._c_platform = content._platform
        affinity = content._affinity.to_numpy(dtype=np.float64)
        self._c_affinity = affinity
        self._c_row = {str(u): n for n, u in enumerate(content._affinity.index)}
        self._c_complete = ~np.isnan(affinity).any(axis=1)
        self._c_seen = content._seen
        self._c_seen_row: dict[str, int] = {}
        self._c_seen_cols: np.ndarray | None = None
        if content._seen is not None:
            self._c_seen_row = {str(u): n for n, u in enumerate(content._seen.users)}
            # Column of each of the seen matrix's items among content's items (-1: not a content item).
            self._c_seen_cols = content._items.get_indexer(pd.Index(content._seen.items))

        self._cf: MatrixScoringGenerator | None = candidate_set.cf
        self._cf_row: dict[str, int] = {}
        self._cf_col: dict[str, int] = {}
        if self._cf is not None:
            interactions = self._cf.interactions
            self._cf_row = {str(u): n for n, u in enumerate(interactions.users)}
            self._cf_items = interactions.items.to_numpy()
            self._cf_col = {str(i): n for n, i in enumerate(self._cf_items)}

    def propose(self, user_id: str, k: int | None = None) -> Proposal:
        """The user's candidates, as `CandidateSet.candidates([user_id], k)` would return them.

        Raises:
            ValueError: ``k`` is not a positive integer.
        """
        k = check_k(k if k is not None else self.source.config.per_generator)
        user = str(user_id)
        bits: dict[str, int] = {}
        for item in self._popular(user, k):
            bits[item] = bits.get(item, 0) | _SOURCE_BIT["popularity"]
        content_scores = self._content_scores(user)
        for item in self._top_content(user, content_scores, k):
            bits[item] = bits.get(item, 0) | _SOURCE_BIT["content"]
        cf_scores = self._cf_scores(user)
        if cf_scores is not None:
            for item in self._top_cf(user, cf_scores, k):
                bits[item] = bits.get(item, 0) | _SOURCE_BIT["cf"]
        ids = list(bits)
        out = np.full((len(ids), len(SCORE_COLUMNS)), np.nan)
        out[:, 0] = [self._pop_score.get(i, np.nan) for i in ids]
        if cf_scores is not None:
            assert self._cf is not None and self._cf._item_has_data is not None
            cols = np.array([self._cf_col.get(i, -1) for i in ids], dtype=np.int64)
            ok = cols >= 0
            ok[ok] &= self._cf._item_has_data[cols[ok]]
            out[ok, 1] = cf_scores[cols[ok]]
        cols = np.array([self._c_col.get(i, -1) for i in ids], dtype=np.int64)
        out[cols >= 0, 2] = content_scores[cols[cols >= 0]]
        return Proposal(user, np.array(ids, dtype=object), out, np.array(list(bits.values()), dtype=np.int64))

    # -- one generator each (the formulas and rules of ml.candidates.popularity / content / scoring) -------------
    def _popular(self, user: str, k: int) -> list[str]:
        seen = self._pop_seen.get(user, set())
        if not seen:
            return [str(i) for i in self._pop_items[:k]]
        out: list[str] = []
        for item in self._pop_items:
            if item not in seen:
                out.append(str(item))
                if len(out) == k:
                    break
        return out

    def _content_scores(self, user: str) -> np.ndarray:
        """ContentAffinity's score of every item for the user (before excluding what they saw)."""
        row = self._c_row.get(user)
        affinity = self._c_affinity[row] if row is not None and self._c_complete[row] else self._c_platform
        return np.asarray(affinity[self._c_category] * self._c_weight, dtype=np.float64)

    def _top_content(self, user: str, scores: np.ndarray, k: int) -> list[str]:
        row = self._c_seen_row.get(user)
        if self._c_seen is not None and self._c_seen_cols is not None and row is not None:
            matrix = self._c_seen.matrix
            seen = matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]
            if len(seen):
                cols = self._c_seen_cols[seen]
                scores = scores.copy()
                scores[cols[cols >= 0]] = -np.inf
        _, cols = top_k(scores[None, :], k)
        return [str(i) for i in self._c_items[cols]]

    def _cf_scores(self, user: str) -> np.ndarray | None:
        """The CF generator's dense scores of every item for the user; None for a user it was not fitted on."""
        if self._cf is None:
            return None
        row = self._cf_row.get(user)
        if row is None:
            return None
        return np.asarray(self._cf._score_rows(np.array([row], dtype=np.int64))[0], dtype=np.float64)

    def _top_cf(self, user: str, scores: np.ndarray, k: int) -> list[str]:
        """MatrixScoringGenerator.candidates for one user: items with training data, its mask, not seen."""
        assert self._cf is not None and self._cf._item_has_data is not None and self._cf._train is not None
        eligible = scores.copy()
        eligible[~self._cf._item_has_data] = -np.inf
        mask = self._cf._candidate_mask(eligible[None, :])
        if mask is not None:
            eligible[~mask[0]] = -np.inf
        train = self._cf._train
        row = self._cf_row[user]
        eligible[train.indices[train.indptr[row] : train.indptr[row + 1]]] = -np.inf
        _, cols = top_k(eligible[None, :], k)
        return [str(i) for i in self._cf_items[cols]]

"""One user's candidates at request time: the rows of `CandidateSet.candidates([user])`, as arrays, in microseconds.

`CandidateSet.candidates` serves many users at once through frames: each generator's top k, a group-by for the
union, then every generator scores the pairs again (`CandidateSet.scores`). For one user that is tens of
milliseconds of frame building and two dense CF products. `OnlineCandidates` holds each generator's fitted state
as arrays once (built when the recommender opens) and, per request, computes each generator's scores for the user
once, takes its top k with the same `top_k`, and reads the union's scores from the same vectors; items are numbered
once (every generator's items in one vocabulary), so the union and the score look-ups are array operations. The
rows, their order (popularity's, then content's, then CF's, first proposal wins) and the scores are those of
`CandidateSet.candidates([user])`; `Proposal.frame` gives that frame, and a test checks they are equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.candidates.base import NotFittedError, check_k, top_k
from ml.candidates.scoring import MatrixScoringGenerator
from ml.candidates.union import _SOURCE_BIT, _SOURCES_OF_BITS, SCORE_COLUMNS, CandidateSet


@dataclass(frozen=True)
class Proposal:
    """One user's candidates in `CandidateSet.candidates` order.

    Attributes:
        codes: (n,) int64, each item's number in `OnlineCandidates.items`.
        content_ids: (n,) object array of item ids.
        scores: (n, 3) float64, each generator's score, columns in `SCORE_COLUMNS` order (NaN = no opinion).
        source_bits: (n,) int64, which generators proposed the item (bits of popularity, cf, content).
    """

    user_id: str
    codes: np.ndarray
    content_ids: np.ndarray
    scores: np.ndarray
    source_bits: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

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

    Attributes:
        items: (n_items,) object array: every item any generator knows, numbered (`Proposal.codes`).

    Raises:
        NotFittedError: a generator of ``candidate_set`` is not fitted.
    """

    def __init__(self, candidate_set: CandidateSet) -> None:
        self.source = candidate_set
        pop = candidate_set.popularity
        content = candidate_set.content
        if content._items is None or content._affinity is None or content._item_weight is None:
            raise NotFittedError("content is not fitted yet: call fit_content(...) first")
        assert content._platform is not None and content._item_category is not None
        cf: MatrixScoringGenerator | None = candidate_set.cf
        scores = pop.scores
        names = [scores.index.to_numpy(), content._items.to_numpy()]
        if cf is not None:
            names.append(cf.interactions.items.to_numpy())
        code: dict[str, int] = {}
        for ids in names:
            for item in ids:
                code.setdefault(str(item), len(code))
        self.items = np.array(list(code), dtype=object)
        self._code = code
        n_items = len(code)

        def codes_of(ids: np.ndarray) -> np.ndarray:
            return np.array([code[str(i)] for i in ids], dtype=np.int64)

        def column_of(ids: np.ndarray) -> np.ndarray:
            """Per item code: its column among ``ids`` (-1 when not there)."""
            out = np.full(n_items, -1, dtype=np.int64)
            out[codes_of(ids)] = np.arange(len(ids))
            return out

        # Popularity.candidates' order: descending score, ties by ascending content_id.
        order = np.lexsort((scores.index.to_numpy(dtype=str), -scores.to_numpy()))
        self._pop_ranked = codes_of(scores.index.to_numpy()[order])
        self._pop_seen = pop._seen
        self._pop_score = np.full(n_items, np.nan)
        self._pop_score[codes_of(scores.index.to_numpy())] = scores.to_numpy(dtype=np.float64)

        self._c_code = codes_of(content._items.to_numpy())
        self._c_column = column_of(content._items.to_numpy())
        self._c_weight = content._item_weight
        self._c_category = content._item_category
        self._c_platform = content._platform
        affinity = content._affinity.to_numpy(dtype=np.float64)
        self._c_affinity = affinity
        self._c_row = {str(u): n for n, u in enumerate(content._affinity.index)}
        self._c_complete = ~np.isnan(affinity).any(axis=1)
        self._c_seen = content._seen
        self._c_seen_row: dict[str, int] = {}
        self._c_seen_cols = np.empty(0, dtype=np.int64)
        if content._seen is not None:
            self._c_seen_row = {str(u): n for n, u in enumerate(content._seen.users)}
            # Column of each of the seen matrix's items among content's items (-1: not a content item).
            self._c_seen_cols = content._items.get_indexer(pd.Index(content._seen.items))

        self._cf = cf
        self._cf_row: dict[str, int] = {}
        if cf is not None:
            assert cf._item_has_data is not None
            self._cf_row = {str(u): n for n, u in enumerate(cf.interactions.users)}
            self._cf_code = codes_of(cf.interactions.items.to_numpy())
            column = column_of(cf.interactions.items.to_numpy())
            # NaN score unless the item is CF's and had training data (MatrixScoringGenerator.score_pairs).
            with_data = column >= 0
            with_data[with_data] = cf._item_has_data[column[with_data]]
            self._cf_column = np.where(with_data, column, -1)

    def positions(self, position: Mapping[str, int]) -> np.ndarray:
        """Per item code, its position in another numbering (e.g. the serving catalog's), -1 when absent."""
        return np.array([position.get(item, -1) for item in self.items], dtype=np.int64)

    def propose(self, user_id: str, k: int | None = None) -> Proposal:
        """The user's candidates, as `CandidateSet.candidates([user_id], k)` would return them.

        Raises:
            ValueError: ``k`` is not a positive integer.
        """
        k = check_k(k if k is not None else self.source.config.per_generator)
        user = str(user_id)
        content_scores = self._content_scores(user)
        cf_scores = self._cf_scores(user)
        parts = [self._popular(user, k), self._top_content(user, content_scores, k)]
        bits = [_SOURCE_BIT["popularity"], _SOURCE_BIT["content"]]
        if cf_scores is not None:
            parts.append(self._top_cf(user, cf_scores, k))
            bits.append(_SOURCE_BIT["cf"])
        proposed = np.concatenate(parts)
        unique, first, inverse = np.unique(proposed, return_index=True, return_inverse=True)
        union_bits = np.zeros(len(unique), dtype=np.int64)
        np.bitwise_or.at(union_bits, inverse, np.repeat(bits, [len(p) for p in parts]))
        order = np.argsort(first, kind="stable")  # first proposal wins, in generator order
        codes, union_bits = unique[order], union_bits[order]
        out = np.full((len(codes), len(SCORE_COLUMNS)), np.nan)
        out[:, 0] = self._pop_score[codes]
        if cf_scores is not None:
            cols = self._cf_column[codes]
            out[cols >= 0, 1] = cf_scores[cols[cols >= 0]]
        cols = self._c_column[codes]
        out[cols >= 0, 2] = content_scores[cols[cols >= 0]]
        return Proposal(user, codes, self.items[codes], out, union_bits)

    # -- one generator each (the formulas and rules of ml.candidates.popularity / content / scoring) -------------
    def _popular(self, user: str, k: int) -> np.ndarray:
        seen = self._pop_seen.get(user)
        if not seen:
            return self._pop_ranked[:k]
        unseen = self._pop_ranked[[item not in seen for item in self.items[self._pop_ranked]]]
        return unseen[:k]

    def _content_scores(self, user: str) -> np.ndarray:
        """ContentAffinity's score of every item for the user (before excluding what they saw)."""
        row = self._c_row.get(user)
        affinity = self._c_affinity[row] if row is not None and self._c_complete[row] else self._c_platform
        return np.asarray(affinity[self._c_category] * self._c_weight, dtype=np.float64)

    def _top_content(self, user: str, scores: np.ndarray, k: int) -> np.ndarray:
        row = self._c_seen_row.get(user)
        if self._c_seen is not None and row is not None:
            matrix = self._c_seen.matrix
            cols = self._c_seen_cols[matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]]
            if len(cols):
                scores = scores.copy()
                scores[cols[cols >= 0]] = -np.inf
        _, cols = top_k(scores[None, :], k)
        return np.asarray(self._c_code[cols])

    def _cf_scores(self, user: str) -> np.ndarray | None:
        """The CF generator's dense scores of every item for the user; None for a user it was not fitted on."""
        if self._cf is None:
            return None
        row = self._cf_row.get(user)
        if row is None:
            return None
        return np.asarray(self._cf._score_rows(np.array([row], dtype=np.int64))[0], dtype=np.float64)

    def _top_cf(self, user: str, scores: np.ndarray, k: int) -> np.ndarray:
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
        return np.asarray(self._cf_code[cols])

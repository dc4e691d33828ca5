"""Item-based k-nearest-neighbours: recommend items similar to what the user already chose.

Similarity is cosine over the users who interacted with each item, with a shrinkage term that damps pairs
supported by few users (Sarwar et al., "Item-based collaborative filtering recommendation algorithms", WWW 2001;
shrinkage as in Koren, "Factorization meets the neighborhood", KDD 2008):

    s(i, j) = |U_i & U_j| / (sqrt(|U_i|) * sqrt(|U_j|) + shrink)

Each item keeps only its ``neighbors`` most similar items (a sparse matrix), and a user's score for item j is the
sum of s(i, j) over the items i they interacted with, counting only j's kept neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from ml.candidates.scoring import MatrixScoringGenerator


class ItemKNN(MatrixScoringGenerator):
    """Item-item cosine similarity with shrinkage and a top-N neighbourhood per item.

    Items with no similarity to anything the user saw score 0 and are never candidates, so a user with a small
    neighbourhood may get fewer than k rows.

    Memory: the item x item co-occurrence matrix before pruning holds up to n_items^2 entries (ML-100k: 1.7k
    items, 2.8M pairs); after pruning, n_items x neighbors.
    """

    name: str = "item_knn"

    def __init__(self, neighbors: int = 100, shrink: float = 10.0, binarize: bool = True) -> None:
        super().__init__(binarize=binarize)
        if isinstance(neighbors, bool) or not isinstance(neighbors, int) or neighbors < 1:
            raise ValueError(f"neighbors must be a positive integer, got {neighbors!r}")
        if not np.isfinite(shrink) or shrink < 0:
            raise ValueError(f"shrink must be finite and >= 0, got {shrink!r}")
        self.neighbors = neighbors
        self.shrink = float(shrink)
        self._weights: sparse.csr_matrix | None = None

    def params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "shrink": self.shrink, "binarize": self.binarize}

    def _fit(self, X: sparse.csr_matrix) -> None:
        cooc = (X.T @ X).tocoo()
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel())
        off = cooc.row != cooc.col
        row, col = cooc.row[off], cooc.col[off]
        sim = cooc.data[off] / (norms[row] * norms[col] + self.shrink)
        n_items = X.shape[1]
        similarity = sparse.csr_matrix((sim, (row, col)), shape=(n_items, n_items))
        similarity.sort_indices()
        # Row j holds j's kept neighbours i; scoring needs them as column j of W, so that scores = x_u @ W.
        self._weights = _keep_top(similarity, self.neighbors).T.tocsr()

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        assert self._train is not None and self._weights is not None
        return np.asarray((self._train[rows] @ self._weights).toarray())

    def _candidate_mask(self, scores: np.ndarray) -> np.ndarray | None:
        return scores > 0


def _keep_top(matrix: sparse.csr_matrix, n: int) -> sparse.csr_matrix:
    """Keep the ``n`` largest entries of each row (ties: lower column first); zero the rest."""
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    keep = np.ones(len(data), dtype=bool)
    for r in range(matrix.shape[0]):
        lo, hi = indptr[r], indptr[r + 1]
        if hi - lo > n:
            order = np.lexsort((indices[lo:hi], -data[lo:hi]))
            row_keep = np.zeros(hi - lo, dtype=bool)
            row_keep[order[:n]] = True
            keep[lo:hi] = row_keep
    out = matrix.copy()
    out.data = np.where(keep, data, 0.0)
    out.eliminate_zeros()
    return out

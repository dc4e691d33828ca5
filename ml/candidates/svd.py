"""PureSVD: a truncated SVD of the interaction matrix, used as a ranking model.

Cremonesi, Koren and Turrin, "Performance of recommender algorithms on top-N recommendation tasks", RecSys 2010:
factor X ~ U S V^T with the top ``factors`` singular triplets (missing entries taken as 0), and score a user by
projecting their row onto the item factors and back, x_u V V^T. The decomposition is scikit-learn's
``TruncatedSVD`` with the exact ARPACK solver, seeded, so a refit gives the same scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD

from ml.candidates.scoring import MatrixScoringGenerator


class PureSVD(MatrixScoringGenerator):
    """Truncated-SVD recommender (scores ``x_u V V^T``).

    Args:
        factors: number of singular vectors kept; must be below min(n_users, n_items).
        binarize: decompose "interacted or not" instead of summed weights.
        seed: seed of ARPACK's start vector.
    """

    name: str = "pure_svd"

    def __init__(self, factors: int = 50, binarize: bool = True, seed: int = 0) -> None:
        super().__init__(binarize=binarize)
        if isinstance(factors, bool) or not isinstance(factors, int) or factors < 1:
            raise ValueError(f"factors must be a positive integer, got {factors!r}")
        self.factors = factors
        self.seed = seed
        self._item_factors: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {"factors": self.factors, "binarize": self.binarize, "seed": self.seed}

    def _fit(self, X: sparse.csr_matrix) -> None:
        if self.factors >= min(X.shape):
            raise ValueError(f"PureSVD needs factors < min(users, items) = {min(X.shape)}, got factors={self.factors}")
        svd = TruncatedSVD(n_components=self.factors, algorithm="arpack", random_state=self.seed)
        svd.fit(X)
        self._item_factors = np.ascontiguousarray(svd.components_.T)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        assert self._train is not None and self._item_factors is not None
        v = self._item_factors
        return np.asarray((self._train[rows] @ v) @ v.T)

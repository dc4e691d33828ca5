"""Implicit-feedback matrix factorization by alternating least squares.

Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008: every (user, item)
cell has a preference p = 1 if the user interacted, else 0, and a confidence c = 1 + alpha * r (r the interaction
weight, 1 when binarized). Minimise sum c (p - x_u . y_i)^2 + l2 (|x_u|^2 + |y_i|^2) by alternating exact solves:

    x_u = (Y^T Y + Y_u^T (C_u - I) Y_u + l2 I)^-1 Y_u^T c_u

where Y_u are the factors of u's items only, so each solve costs O(n_u f^2 + f^3) and the all-zero cells enter
through the shared Y^T Y. Written with numpy: one small dense solve per user and per item and sweep
(``threadpoolctl``, a scikit-learn dependency, keeps BLAS single-threaded for them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from ml.candidates.scoring import MatrixScoringGenerator


class ImplicitALS(MatrixScoringGenerator):
    """Weighted matrix factorization for implicit feedback (Hu et al. 2008), solved by ALS.

    Args:
        factors: latent dimension f.
        l2: ridge penalty on both factor matrices (> 0).
        alpha: confidence slope, c = 1 + alpha * r.
        iterations: sweeps (users then items).
        seed: seed of the initial factors (normal, sd 0.01).
        binarize: r = 1 for every interaction instead of summed weights.
    """

    name: str = "als"

    def __init__(
        self,
        factors: int = 64,
        l2: float = 1.0,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
        binarize: bool = True,
    ) -> None:
        super().__init__(binarize=binarize)
        if isinstance(factors, bool) or not isinstance(factors, int) or factors < 1:
            raise ValueError(f"factors must be a positive integer, got {factors!r}")
        if not np.isfinite(l2) or l2 <= 0:
            raise ValueError(f"l2 must be a finite positive number, got {l2!r}")
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        self.factors = factors
        self.l2 = float(l2)
        self.alpha = float(alpha)
        self.iterations = iterations
        self.seed = seed
        self._user_factors: np.ndarray | None = None
        self._item_factors: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "l2": self.l2,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "seed": self.seed,
            "binarize": self.binarize,
        }

    def _fit(self, X: sparse.csr_matrix) -> None:
        rng = np.random.default_rng(self.seed)
        n_users, n_items = X.shape
        users = rng.normal(0.0, 0.01, size=(n_users, self.factors))
        items = rng.normal(0.0, 0.01, size=(n_items, self.factors))
        by_item = X.T.tocsr()
        # Thousands of f x f solves: BLAS threads cost more than they save on such small matrices (measured 6x
        # slower with the default threads on a busy 2-core machine), so the sweeps run single-threaded.
        with threadpool_limits(limits=1, user_api="blas"):
            for _ in range(self.iterations):
                users = self._solve(X, items)
                items = self._solve(by_item, users)
        self._user_factors, self._item_factors = users, items

    def _solve(self, R: sparse.csr_matrix, fixed: np.ndarray) -> np.ndarray:
        """One half-sweep: the least-squares factors of every row of ``R`` given the other side's ``fixed``."""
        f = fixed.shape[1]
        base = fixed.T @ fixed + self.l2 * np.eye(f)
        out = np.zeros((R.shape[0], f))
        indptr, indices, data = R.indptr, R.indices, R.data
        for r in range(R.shape[0]):
            lo, hi = indptr[r], indptr[r + 1]
            if lo == hi:
                continue
            y = fixed[indices[lo:hi]]
            confidence = 1.0 + self.alpha * data[lo:hi]
            a = base + (y.T * (confidence - 1.0)) @ y
            out[r] = np.linalg.solve(a, y.T @ confidence)
        return out

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        assert self._user_factors is not None and self._item_factors is not None
        return self._user_factors[rows] @ self._item_factors.T

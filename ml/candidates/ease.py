"""EASE: a linear item-item autoencoder with a closed-form solution.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019: learn an item x item weight matrix B with
a zero diagonal that reconstructs the interaction matrix X, minimising ||X - XB||^2 + lambda ||B||^2. The solution
is, with P = (X^T X + lambda I)^-1,

    B = I - P diag(1 / diag(P)),   i.e.  B_ij = -P_ij / P_jj  (i != j),  B_jj = 0,

and a user's scores are x_u B.

``dropout`` > 0 gives the emphasized denoising variant (EDLAE; Steck, "Autoencoders that don't overfit towards
the Identity", NeurIPS 2020): training as if each input were dropped with probability p adds
p / (1 - p) * diag(X^T X) to the penalty, i.e. a per-item L2 that grows with the item's popularity, with the same
closed form (Lambda = lambda I + p / (1 - p) diagMat(diag(X^T X)) in place of lambda I).

Memory and time: X^T X, its inverse and B are dense n_items x n_items (float64, float64, float32): about
20 * n_items^2 bytes at the peak, and the inversion is O(n_items^3). 1.7k items (MovieLens-100k) take ~60 MB and a
fraction of a second; 15k items take ~4.5 GB and minutes. Above ``max_items`` the fit refuses with that advice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from scipy import sparse

from ml.candidates.scoring import MatrixScoringGenerator

#: Default ceiling on the catalog size EASE will invert (see the module docstring for the memory it needs).
MAX_ITEMS = 15_000
#: Up to this many users, scores are summed from the rows of B the users consumed (see `EASE._score_rows`).
FEW_USERS = 8


class EASE(MatrixScoringGenerator):
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form.

    Args:
        l2: the L2 penalty lambda (> 0); larger values shrink towards popularity. Tuned on a validation split.
        dropout: EDLAE's dropout probability p in [0, 1); 0 is plain EASE.
        binarize: fit on "interacted or not" (the paper's setting) instead of summed weights.
        max_items: refuse catalogs larger than this (memory grows with n_items^2).
    """

    name: str = "ease"

    def __init__(
        self, l2: float = 500.0, dropout: float = 0.0, binarize: bool = True, max_items: int = MAX_ITEMS
    ) -> None:
        super().__init__(binarize=binarize)
        if not np.isfinite(l2) or l2 <= 0:
            raise ValueError(f"l2 must be a finite positive number, got {l2!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.l2 = float(l2)
        self.dropout = float(dropout)
        self.max_items = max_items
        self._weights: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "dropout": self.dropout, "binarize": self.binarize}

    def _fit(self, X: sparse.csr_matrix) -> None:
        n_items = X.shape[1]
        if n_items > self.max_items:
            raise ValueError(
                f"EASE inverts a dense {n_items} x {n_items} matrix (~{20 * n_items**2 / 1e9:.1f} GB); the limit is "
                f"{self.max_items} items. Restrict the catalog (e.g. items with recent interactions), raise "
                "max_items if the memory is there, or use ItemKNN / ImplicitALS"
            )
        gram = np.asarray((X.T @ X).toarray(), dtype=np.float64)
        diagonal = np.diag_indices(n_items)
        gram[diagonal] += self.l2 + self.dropout / (1.0 - self.dropout) * gram[diagonal]
        precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        weights = precision / (-np.diag(precision))
        np.fill_diagonal(weights, 0.0)
        # C order: scipy's sparse @ dense copies a Fortran-ordered right operand on every call (44 MB at 2,355 items).
        self._weights = np.ascontiguousarray(weights, dtype=np.float32)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        """x_u B for the users at ``rows`` (float64, (len(rows), n_items)).

        A user row is sparse: x_u B is the sum of B's rows for the items the user consumed (times their weight).
        For a few users (a request) that gather costs microseconds, while ``sparse @ dense`` first casts all of B
        to float64 (an n_items^2 copy: 44 MB and ~8 ms at 2,355 items). Both add the same float64 products in the
        same order (the user's items in column order, as scipy's ``csr_matvecs`` does), so the scores are equal.
        """
        assert self._train is not None and self._weights is not None
        X = self._train
        if len(rows) > FEW_USERS:
            return np.asarray(X[rows] @ self._weights, dtype=np.float64)
        out = np.zeros((len(rows), self._weights.shape[1]))
        for i, row in enumerate(rows):
            lo, hi = X.indptr[row], X.indptr[row + 1]
            if hi > lo:
                # axis-0 sum of a C-ordered block adds the rows one after another, in the user's column order
                out[i] = np.sum(X.data[lo:hi, None] * self._weights[X.indices[lo:hi]], axis=0)
        return out

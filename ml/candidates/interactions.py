"""The user x item interaction matrix every collaborative-filtering generator fits on.

Rows are users, columns are items, both indexed by their string ids in sorted order, so the column order is the
``content_id`` order: a stable sort of scores by column breaks ties by ``content_id`` without another key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse


@dataclass(frozen=True)
class Interactions:
    """Implicit feedback as a sparse users x items matrix.

    Attributes:
        users: user ids (str), sorted; row ``i`` of ``matrix`` is ``users[i]``.
        items: item ids (str), sorted; column ``j`` of ``matrix`` is ``items[j]``.
        matrix: ``scipy.sparse.csr_matrix`` of shape (len(users), len(items)), float32, non-negative weights;
            a stored entry means "interacted" (explicit zeros are removed).
    """

    users: pd.Index
    items: pd.Index
    matrix: sparse.csr_matrix

    def __post_init__(self) -> None:
        if self.matrix.shape != (len(self.users), len(self.items)):
            raise ValueError(
                f"matrix shape {self.matrix.shape} does not match {len(self.users)} users x {len(self.items)} items"
            )
        if not (self.users.is_unique and self.items.is_unique):
            raise ValueError("user and item ids must be unique")

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        user_col: str = "user_id",
        item_col: str = "content_id",
        weight_col: str | None = None,
        items: Iterable[str] | None = None,
    ) -> Interactions:
        """Build the matrix from one row per interaction (e.g. clicks, ratings).

        Duplicated (user, item) rows are **summed**: three clicks on one item weigh 3 (or the sum of their
        ``weight_col`` values). Generators that want "interacted or not" binarize (they do by default).

        Args:
            df: interactions, one row each.
            user_col: column of user ids (cast to str).
            item_col: column of item ids (cast to str).
            weight_col: column of non-negative finite weights; ``None`` weighs every row 1.
            items: the item universe (e.g. the whole catalog, so items nobody touched yet get a column). Every
                item in ``df`` must be in it. ``None`` uses the items in ``df``.

        Returns:
            Interactions with users and items sorted by id.

        Raises:
            ValueError: a column is missing, an id is null, a weight is negative or not finite, or ``df``
                names items outside ``items``.
        """
        needed = [user_col, item_col] + ([weight_col] if weight_col is not None else [])
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ValueError(f"interactions frame lacks column(s) {missing}; it has {list(df.columns)}")
        for col in (user_col, item_col):
            nulls = int(df[col].isna().sum())
            if nulls:
                raise ValueError(f"{nulls} interaction row(s) have a null {col}; drop or fix them first")
        if weight_col is None:
            weights = np.ones(len(df), dtype=np.float64)
        else:
            weights = pd.to_numeric(df[weight_col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(weights) | (weights < 0)
            if bad.any():
                raise ValueError(
                    f"{int(bad.sum())} row(s) have a negative, missing or non-numeric {weight_col!r}; "
                    "implicit weights must be finite and >= 0"
                )
        user_ids = df[user_col].astype(str).to_numpy()
        item_ids = df[item_col].astype(str).to_numpy()
        users = pd.Index(np.unique(user_ids), name=user_col)
        if items is None:
            item_index = pd.Index(np.unique(item_ids), name=item_col)
        else:
            universe = np.array([str(i) for i in items], dtype=object)
            if len(set(universe)) != len(universe):
                raise ValueError("`items` contains duplicated ids")
            item_index = pd.Index(np.sort(universe), name=item_col)
        cols = item_index.get_indexer(pd.Index(item_ids))
        outside = cols < 0
        if outside.any():
            examples = sorted(set(item_ids[outside]))[:5]
            raise ValueError(
                f"{int(outside.sum())} interaction row(s) name items outside `items` (e.g. {examples}); "
                "pass the full item universe or filter the interactions"
            )
        rows = users.get_indexer(pd.Index(user_ids))
        # coo -> csr sums duplicates, which is the documented aggregation.
        matrix = sparse.coo_matrix(
            (weights, (rows, cols)), shape=(len(users), len(item_index)), dtype=np.float64
        ).tocsr()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        return cls(users=users, items=item_index, matrix=matrix.astype(np.float32))

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def user_rows(self, user_ids: Sequence[str]) -> np.ndarray:
        """Row position of each user id (int64), ``-1`` for a user not in the matrix."""
        return np.asarray(self.users.get_indexer(pd.Index([str(u) for u in user_ids])), dtype=np.int64)

    def seen(self, user_ids: Sequence[str]) -> list[set[str]]:
        """The items each user interacted with (an empty set for an unknown user), in the order given."""
        out: list[set[str]] = []
        indptr, indices = self.matrix.indptr, self.matrix.indices
        for row in self.user_rows(user_ids):
            if row < 0:
                out.append(set())
            else:
                out.append(set(self.items[indices[indptr[row] : indptr[row + 1]]]))
        return out

    def binary(self) -> sparse.csr_matrix:
        """The matrix with every stored weight set to 1 (float32): "interacted or not"."""
        out = self.matrix.copy()
        out.data = np.ones_like(out.data)
        return out

    def item_counts(self) -> pd.Series:
        """Number of distinct users per item (int64, indexed by item id): popularity for novelty and baselines."""
        counts = np.diff(self.matrix.tocsc().indptr)
        return pd.Series(counts.astype(np.int64), index=self.items, name="users")

"""The population stability index (PSI): how far a sample's distribution has moved from a reference sample's.

Both samples are cut into the same bins, fitted on the reference, and the shares compared:

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

with ``e_i`` the reference's share of bin ``i`` and ``a_i`` the current sample's (Yurdakul, "Statistical
Properties of Population Stability Index", Western Michigan University, dissertation 3208, 2018; the index comes
from credit scoring: Siddiqi, "Credit Risk Scorecards", Wiley 2006). It is the symmetrised
Kullback-Leibler divergence of the binned shares, KL(a||e) + KL(e||a) (Jeffreys' divergence), which the tests use
as a second computation.

Binning, as is usual for the index:
- numeric values: the reference's deciles (``bins`` quantile bins), each bin ``(q_{i-1}, q_i]``; cut points that
  coincide (a value shared by many rows, e.g. zero counts) merge, so a tied value always falls in one bin;
- categorical values: one bin per category seen in either sample;
- missing values (NaN, None) in a bin of their own, in both kinds: a feature that starts arriving empty is drift.

An empty bin on either side would make the logarithm infinite: its share counts as ``epsilon`` (default 1e-4, the
usual choice) instead. The shares are not renormalised after that (a change of at most ``bins * epsilon``).

What PSI looks like without any drift: for independent rows, ``n`` in the reference and ``m`` in the current
sample, and ``B`` bins, PSI is approximately ``(1/n + 1/m) * chi-square(B - 1)`` (Yurdakul 2018: to second order each
term is a term of Pearson's chi-square statistic of homogeneity), so its mean is
``(B - 1) * (1/n + 1/m)``: `no_drift_psi`. Rows that share a user (the impressions of one request) are not
independent, so the real noise of user features is larger than that figure.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical"]
#: A sample: a Series, an array or a list (NaN / None = missing).
Values = pd.Series | np.ndarray | Sequence[Any]
#: Share an empty bin counts as (the usual smoothing; see the module docstring).
DEFAULT_EPSILON = 1e-4
#: Quantile bins of a numeric feature (deciles).
DEFAULT_BINS = 10
#: Label of the missing-values bin.
MISSING = "(missing)"


@dataclass(frozen=True)
class BinShift:
    """One bin of a comparison: its label, the share of each sample in it, and its term of the PSI sum."""

    label: str
    reference_share: float
    current_share: float
    contribution: float


@dataclass(frozen=True)
class Comparison:
    """A current sample against a reference's bins.

    Attributes:
        psi: the index (>= 0; 0 for identical shares).
        bins: every bin, the missing-values bin last.
        reference_rows, current_rows: sample sizes (missing values included).
        no_drift_psi: the mean PSI of two samples of these sizes from one distribution, with independent rows.
    """

    psi: float
    bins: tuple[BinShift, ...]
    reference_rows: int
    current_rows: int
    no_drift_psi: float

    @property
    def largest_shift(self) -> BinShift:
        """The bin whose term adds most to the index."""
        return max(self.bins, key=lambda b: b.contribution)

    @property
    def missing(self) -> BinShift:
        return self.bins[-1]


@dataclass(frozen=True)
class ReferenceBins:
    """Bins fitted on a reference sample, with its count in each, to compare later samples against.

    Attributes:
        kind: ``numeric`` (quantile bins) or ``categorical`` (one bin per category).
        edges: numeric: the interior cut points, increasing; bin ``i`` holds ``edges[i-1] < x <= edges[i]``
            (the first and last bins are open-ended).
        levels: categorical: the reference's categories, sorted.
        counts: the reference's count per bin (edges + 1 numeric bins, or one per level), then its missing count.
    """

    kind: Kind
    edges: tuple[float, ...]
    levels: tuple[str, ...]
    counts: tuple[int, ...]

    @classmethod
    def fit(cls, values: Values, kind: Kind | None = None, bins: int = DEFAULT_BINS) -> ReferenceBins:
        """Fit bins on a reference sample.

        Args:
            values: the reference sample (NaN/None = missing).
            kind: ``numeric`` or ``categorical``; None infers it (numbers other than booleans are numeric).
            bins: numeric: how many quantile bins (fewer when cut points coincide).

        Raises:
            ValueError: ``bins`` below 2, or ``kind`` numeric for values that are not numbers.
        """
        if bins < 2:
            raise ValueError(f"PSI needs at least 2 bins, got {bins}")
        series = pd.Series(values)
        kind = kind or infer_kind(series)
        if kind == "categorical":
            text = _as_text(series)
            present = text.dropna()
            levels = tuple(sorted(present.unique().tolist()))
            tally = present.value_counts().reindex(levels, fill_value=0).astype(int).tolist()
            return cls("categorical", (), levels, (*tally, int(text.isna().sum())))
        numbers = _as_numbers(series)
        present = numbers[~np.isnan(numbers)]
        if present.size:
            cuts = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
            edges = tuple(float(e) for e in np.unique(cuts))
        else:
            edges = ()
        counts = np.bincount(np.searchsorted(np.asarray(edges), present, side="left"), minlength=len(edges) + 1)
        return cls("numeric", edges, (), (*counts.astype(int).tolist(), int(numbers.size - present.size)))

    @property
    def rows(self) -> int:
        return sum(self.counts)

    def labels(self) -> list[str]:
        """Readable bin labels in bin order (``<= 3``, ``(3, 7]``, ``> 7``, a category, ``(missing)``)."""
        if self.kind == "categorical":
            return [*self.levels, MISSING]
        if not self.edges:
            return ["any value", MISSING]
        edges = [f"{e:.6g}" for e in self.edges]
        inner = [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(edges)]
        return [f"<= {edges[0]}", *inner, f"> {edges[-1]}", MISSING]

    def compare(self, values: Values, epsilon: float = DEFAULT_EPSILON) -> Comparison:
        """The PSI of ``values`` against this reference (see the module docstring).

        Categories the reference never saw get bins of their own (reference share 0, counted as ``epsilon``).

        Raises:
            ValueError: an empty reference or current sample, or epsilon outside (0, 1).
        """
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        series = pd.Series(values)
        if self.rows == 0 or series.empty:
            raise ValueError(
                f"PSI needs rows on both sides: the reference has {self.rows}, the current sample {series.size}"
            )
        reference = np.asarray(self.counts, dtype=float)
        if self.kind == "categorical":
            text = _as_text(series)
            present = text.dropna()
            new = sorted(set(present.unique().tolist()) - set(self.levels))
            levels = [*self.levels, *new]
            current = [*present.value_counts().reindex(levels, fill_value=0).astype(int).tolist(), text.isna().sum()]
            reference = np.concatenate([reference[:-1], np.zeros(len(new)), reference[-1:]])
            labels = [*levels, MISSING]
        else:
            numbers = _as_numbers(series)
            present = numbers[~np.isnan(numbers)]
            placed = np.bincount(
                np.searchsorted(np.asarray(self.edges), present, side="left"), minlength=len(self.edges) + 1
            )
            current = [*placed.tolist(), numbers.size - present.size]
            labels = self.labels()
        actual = np.asarray(current, dtype=float)
        e, a = reference / reference.sum(), actual / actual.sum()
        occupied = int(((e > 0) | (a > 0)).sum())
        return Comparison(
            psi=psi_from_shares(e, a, epsilon),
            bins=tuple(
                BinShift(label, float(x), float(y), psi_term(float(x), float(y), epsilon))
                for label, x, y in zip(labels, e, a, strict=True)
            ),
            reference_rows=int(reference.sum()),
            current_rows=int(actual.sum()),
            no_drift_psi=no_drift_psi(occupied, int(reference.sum()), int(actual.sum())),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (`from_dict` reads it back)."""
        return {"kind": self.kind, "edges": list(self.edges), "levels": list(self.levels), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceBins:
        return cls(data["kind"], tuple(data["edges"]), tuple(data["levels"]), tuple(int(c) for c in data["counts"]))


def psi_term(expected: float, actual: float, epsilon: float = DEFAULT_EPSILON) -> float:
    """One bin's ``(a - e) * ln(a / e)``, an empty share counted as ``epsilon``."""
    e, a = (expected if expected > 0 else epsilon), (actual if actual > 0 else epsilon)
    return float((a - e) * np.log(a / e))


def psi_from_shares(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, epsilon: float = DEFAULT_EPSILON
) -> float:
    """PSI of two vectors of bin shares (each summing to 1), empty shares counted as ``epsilon``.

    Raises:
        ValueError: the vectors differ in length, or a share is negative.
    """
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if e.shape != a.shape or (e < 0).any() or (a < 0).any():
        raise ValueError("PSI needs two share vectors of the same length with no negative share")
    e, a = np.where(e > 0, e, epsilon), np.where(a > 0, a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(
    reference: Values,
    current: Values,
    kind: Kind | None = None,
    bins: int = DEFAULT_BINS,
    epsilon: float = DEFAULT_EPSILON,
) -> float:
    """PSI of ``current`` against ``reference`` (bins fitted on the reference; see `ReferenceBins`)."""
    return ReferenceBins.fit(reference, kind, bins).compare(current, epsilon).psi


def no_drift_psi(bins: int, reference_rows: int, current_rows: int) -> float:
    """Mean PSI of two independent samples of one distribution: ``(bins - 1) * (1/n + 1/m)`` (Yurdakul 2018)."""
    if reference_rows < 1 or current_rows < 1:
        return float("nan")
    return max(bins - 1, 0) * (1.0 / reference_rows + 1.0 / current_rows)


def infer_kind(values: pd.Series) -> Kind:
    """``numeric`` for numbers (booleans excluded), else ``categorical``."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "categorical"
    return "numeric"


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype("string").astype(object).where(values.notna(), None)


def _as_numbers(values: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"a numeric PSI needs numbers, got values like {values.dropna().head(3).tolist()}: "
            "treat the column as categorical"
        ) from None

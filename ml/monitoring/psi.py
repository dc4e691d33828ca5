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
``(B - 1) * (1/n + 1/m)``: `no_drift_psi`.

Rows that share a user (the impressions of one request, the requests of one user) or an item are not independent:
a day of 1,000 impressions from 40 users carries about 40 users' worth of information on a user feature, and its
PSI under no drift is some 25 times the figure above. `Comparison.noise_psi` is the no-drift quantile with that
taken into account, in two steps:
- each sample's bin shares get a cluster-robust covariance (`share_covariance`): the usual sandwich over clusters,
  two-way (user and item) by inclusion-exclusion (Cameron, Gelbach and Miller, "Robust inference with multiway
  clustering", Journal of Business & Economic Statistics 29(2), 2011); without clusters it is the multinomial
  covariance, and the result below is Yurdakul's;
- PSI is then, to second order, ``sum_k lambda_k * chi-square(1)`` with ``lambda_k`` the eigenvalues of
  ``D^-1/2 (V_reference + V_current) D^-1/2`` (``D``: the pooled shares), approximated by ``c * chi-square(nu)``
  with ``c = tr(M^2) / tr(M)`` and ``nu = tr(M)^2 / tr(M^2)``: Rao and Scott's second-order correction of
  Pearson's statistic for survey (clustered) samples (Rao and Scott, "On chi-squared tests for multiway
  contingency tables with cell proportions estimated from survey data", Annals of Statistics 12(1), 1984).
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
#: Replications of `no_drift_quantile` (seeded): ten or more beyond a 0.999 quantile.
NOISE_REPLICATIONS = 20_000


@dataclass(frozen=True)
class Clustering:
    """How a sample's rows are grouped, prepared once for every feature of the sample.

    Attributes:
        rows: the sample's size.
        groups: per term of the inclusion-exclusion over the ways rows are grouped (Cameron, Gelbach and Miller
            2011): its sign and each row's group code (``0 .. G - 1``): ``+user``, ``+item``, ``-user x item``.
    """

    rows: int
    groups: tuple[tuple[int, np.ndarray], ...]

    @classmethod
    def of(cls, *ways: np.ndarray | pd.Series | Sequence[Any]) -> Clustering:
        """The clustering by one or more label arrays (e.g. user ids, item ids), each one label per row; a missing
        label is a group of its own row.

        Raises:
            ValueError: no arrays, or arrays of different lengths.
        """
        if not ways or len({len(w) for w in ways}) != 1:
            raise ValueError("a clustering needs one or more label arrays of one length (one label per row)")
        rows = len(ways[0])
        codes = []
        for labels in ways:
            code = pd.factorize(pd.Series(labels), use_na_sentinel=True)[0].astype(np.int64)
            alone = code.max(initial=-1) + 1 + np.arange(rows)
            codes.append(np.where(code < 0, alone, code))
        groups = []
        for size in range(1, len(codes) + 1):
            for chosen in itertools.combinations(codes, size):
                combined = chosen[0]
                for more in chosen[1:]:
                    combined = combined * (int(more.max(initial=0)) + 1) + more
                groups.append(((-1) ** (size + 1), pd.factorize(combined)[0]))
        return cls(rows, tuple(groups))


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
        reference_effective_rows, current_effective_rows: how many independent rows each sample's shares are
            worth (`effective_rows`): the sizes themselves for independent rows, fewer when rows share a user or
            an item (the samples were given their clusters).
        epsilon: the share an empty bin counted as.
    """

    psi: float
    bins: tuple[BinShift, ...]
    reference_rows: int
    current_rows: int
    no_drift_psi: float
    reference_effective_rows: float = 0.0
    current_effective_rows: float = 0.0
    epsilon: float = DEFAULT_EPSILON

    def noise_psi(self, alpha: float, replications: int = NOISE_REPLICATIONS) -> float:
        """The PSI that two samples of these effective sizes from one distribution (the pooled shares) exceed
        with probability ``alpha`` (`no_drift_quantile`, seeded: the same comparison gives the same figure).

        Raises:
            ValueError: ``alpha`` outside (0, 1), or too few replications for it.
        """
        return no_drift_quantile(
            self._pooled(),
            self.reference_effective_rows,
            self.current_effective_rows,
            alpha,
            self.epsilon,
            replications,
        )

    def _pooled(self) -> np.ndarray:
        n, m = self.reference_rows, self.current_rows
        return np.array([(n * b.reference_share + m * b.current_share) / (n + m) for b in self.bins])

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
        covariance: the covariance of the reference's bin shares (a row per bin, in ``counts``' order), cluster-
            robust when the reference was fitted with clusters (`share_covariance`); empty: independent rows (the
            multinomial covariance, computed from ``counts``).
    """

    kind: Kind
    edges: tuple[float, ...]
    levels: tuple[str, ...]
    counts: tuple[int, ...]
    covariance: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def fit(
        cls, values: Values, kind: Kind | None = None, bins: int = DEFAULT_BINS, clusters: Clustering | None = None
    ) -> ReferenceBins:
        """Fit bins on a reference sample.

        Args:
            values: the reference sample (NaN/None = missing).
            kind: ``numeric`` or ``categorical``; None infers it (numbers other than booleans are numeric).
            bins: numeric: how many quantile bins (fewer when cut points coincide).
            clusters: how the rows are grouped: the covariance of the shares is then cluster-robust.

        Raises:
            ValueError: ``bins`` below 2, ``kind`` numeric for values that are not numbers, or a cluster array
                of another length than the sample.
        """
        if bins < 2:
            raise ValueError(f"PSI needs at least 2 bins, got {bins}")
        series = pd.Series(values)
        kind = kind or infer_kind(series)
        if kind == "categorical":
            text = _as_text(series)
            levels = tuple(sorted(text.dropna().unique().tolist()))
            fitted = cls("categorical", (), levels, ())
        else:
            numbers = _as_numbers(series)
            present = numbers[~np.isnan(numbers)]
            if present.size:
                cuts = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
                edges = tuple(float(e) for e in np.unique(cuts))
            else:
                edges = ()
            fitted = cls("numeric", edges, (), ())
        placed, width = fitted._place(series)
        counts = tuple(np.bincount(placed, minlength=width).astype(int).tolist())
        covariance = share_covariance(placed, width, clusters) if clusters is not None else np.zeros((0, 0))
        return cls(fitted.kind, fitted.edges, fitted.levels, counts, tuple(tuple(map(float, r)) for r in covariance))

    def _place(self, series: pd.Series) -> tuple[np.ndarray, int]:
        """Each value's bin index, and the number of bins: this reference's bins, then (categorical) a bin per
        category it never saw, in sorted order, then the missing-values bin."""
        if self.kind == "categorical":
            text = _as_text(series)
            present = text.dropna()
            new = sorted(set(present.unique().tolist()) - set(self.levels))
            levels = [*self.levels, *new]
            index = pd.Index(levels, dtype=object).get_indexer(text.to_numpy(dtype=object))
            width = len(levels) + 1
            return np.where(text.isna().to_numpy(), width - 1, index), width
        numbers = _as_numbers(series)
        width = len(self.edges) + 2
        placed = np.searchsorted(np.asarray(self.edges), numbers, side="left")
        return np.where(np.isnan(numbers), width - 1, placed), width

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

    def compare(
        self, values: Values, epsilon: float = DEFAULT_EPSILON, clusters: Clustering | None = None
    ) -> Comparison:
        """The PSI of ``values`` against this reference (see the module docstring).

        Categories the reference never saw get bins of their own (reference share 0, counted as ``epsilon``).

        Args:
            clusters: how the current rows are grouped, for the no-drift noise (`Comparison`).

        Raises:
            ValueError: an empty reference or current sample, epsilon outside (0, 1), or a cluster array of
                another length than the sample.
        """
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        series = pd.Series(values)
        if self.rows == 0 or series.empty:
            raise ValueError(
                f"PSI needs rows on both sides: the reference has {self.rows}, the current sample {series.size}"
            )
        placed, width = self._place(series)
        own = len(self.counts)  # the reference's bins; categories it never saw come before its missing bin
        reference = np.zeros(width)
        reference[: own - 1], reference[-1] = self.counts[:-1], self.counts[-1]
        actual = np.bincount(placed, minlength=width).astype(float)
        labels = self.labels() if self.kind == "numeric" else [*self.levels, *_new_levels(series, self), MISSING]
        e, a = reference / reference.sum(), actual / actual.sum()
        occupied = int(((e > 0) | (a > 0)).sum())
        n, m = int(reference.sum()), int(actual.sum())
        reference_covariance = np.zeros((width, width))
        keep = [*range(own - 1), width - 1]
        reference_covariance[np.ix_(keep, keep)] = self._covariance()
        pooled = (n * e + m * a) / (n + m)
        return Comparison(
            psi=psi_from_shares(e, a, epsilon),
            bins=tuple(
                BinShift(label, float(x), float(y), psi_term(float(x), float(y), epsilon))
                for label, x, y in zip(labels, e, a, strict=True)
            ),
            reference_rows=n,
            current_rows=m,
            no_drift_psi=no_drift_psi(occupied, n, m),
            reference_effective_rows=effective_rows(n, reference_covariance, pooled),
            current_effective_rows=effective_rows(m, share_covariance(placed, width, clusters), pooled),
            epsilon=epsilon,
        )

    def _covariance(self) -> np.ndarray:
        """The covariance of the reference's shares: the saved cluster-robust one, else the multinomial one."""
        if self.covariance:
            return np.asarray(self.covariance, dtype=float)
        shares = np.asarray(self.counts, dtype=float) / max(self.rows, 1)
        return (np.diag(shares) - np.outer(shares, shares)) / max(self.rows, 1)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (`from_dict` reads it back)."""
        return {
            "kind": self.kind,
            "edges": list(self.edges),
            "levels": list(self.levels),
            "counts": list(self.counts),
            "covariance": [list(row) for row in self.covariance],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceBins:
        """Read `as_dict`'s document back (one saved without a covariance counts its rows as independent)."""
        covariance = tuple(tuple(float(v) for v in row) for row in data.get("covariance", ()))
        return cls(
            data["kind"], tuple(data["edges"]), tuple(data["levels"]), tuple(int(c) for c in data["counts"]), covariance
        )


def _new_levels(series: pd.Series, reference: ReferenceBins) -> list[str]:
    return sorted(set(_as_text(series).dropna().unique().tolist()) - set(reference.levels))


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


def share_covariance(placed: np.ndarray, width: int, clusters: Clustering | None = None) -> np.ndarray:
    """Covariance (``width`` x ``width``) of a sample's bin shares, robust to rows that share clusters.

    Args:
        placed: each row's bin index, in ``0 .. width - 1``.
        width: the number of bins.
        clusters: how the rows are grouped (`Clustering`); None: independent rows.

    Returns:
        Independent rows: the multinomial covariance ``(diag(p) - p p^T) / n``. With clusters: the sandwich
        ``G / (G - 1) * sum_g u_g u_g^T / n^2``, ``u_g`` the group's bin counts minus its rows times ``p``, and
        with several ways by inclusion-exclusion over their intersections (Cameron, Gelbach and Miller 2011),
        negative eigenvalues set to 0 (their fix for a matrix that is not positive semi-definite).

    Raises:
        ValueError: no rows, or a clustering of another number of rows.
    """
    placed = np.asarray(placed, dtype=np.int64)
    n = placed.size
    if n == 0:
        raise ValueError("no rows: the covariance of bin shares needs at least one")
    shares = np.bincount(placed, minlength=width) / n
    if clusters is None:
        return (np.diag(shares) - np.outer(shares, shares)) / n
    if clusters.rows != n:
        raise ValueError(f"the clustering has {clusters.rows} rows, the sample {n}: pass one label per row")
    covariance = sum(
        (sign * _sandwich(placed, width, group, shares) for sign, group in clusters.groups),
        start=np.zeros((width, width)),
    )
    values, vectors = np.linalg.eigh(covariance)
    return (vectors * np.clip(values, 0.0, None)) @ vectors.T


def _sandwich(placed: np.ndarray, width: int, group: np.ndarray, shares: np.ndarray) -> np.ndarray:
    n, groups = placed.size, int(group.max()) + 1
    counts = np.bincount(group * width + placed, minlength=groups * width).reshape(groups, width).astype(float)
    deviations = counts - np.bincount(group, minlength=groups)[:, None] * shares[None, :]
    factor = groups / (groups - 1) if groups > 1 else 1.0
    return factor * (deviations.T @ deviations) / n**2


def effective_rows(rows: int, covariance: np.ndarray, pooled: np.ndarray) -> float:
    """How many independent rows a sample's bin shares are worth: ``(B - 1) / tr(D^-1 V)``, at most ``rows``.

    ``V`` is the sample's share covariance (`share_covariance`), ``D`` the pooled shares, ``B`` the bins with any
    pooled share. For independent rows ``tr(D^-1 V) = (B - 1) / n``, so the figure is ``n``; clustered rows give
    ``n / deff`` with ``deff`` the mean design effect of Rao and Scott's first-order correction (Rao and Scott,
    "The analysis of categorical data from complex sample surveys", JASA 76(374), 1981; Kish's effective sample
    size). Capped at ``rows``: rows laid out more evenly than chance (each page shows every position once) are
    credited no more than independent ones.
    """
    used = pooled > 0
    spread = float(np.sum(np.diag(covariance)[used] / pooled[used]))
    if used.sum() < 2 or spread <= 0:
        return float(rows)
    return float(min(rows, (used.sum() - 1) / spread))


def no_drift_quantile(
    pooled: np.ndarray,
    reference_rows: float,
    current_rows: float,
    alpha: float,
    epsilon: float = DEFAULT_EPSILON,
    replications: int = NOISE_REPLICATIONS,
    seed: int = 0,
) -> float:
    """The PSI two independent samples of ``pooled`` exceed with probability ``alpha``, by simulation.

    Both samples are drawn from the multinomial with shares ``pooled`` (rounded sizes, at least 1), the PSI of
    each pair is computed as `psi_from_shares` does (empty bins as ``epsilon``), and the ``1 - alpha`` quantile of
    the replications is returned. Simulated rather than read off ``(1/n + 1/m) chi-square(B - 1)``: on a few
    dozen effective rows bins come out empty, and their ``epsilon`` terms, which the chi-square approximation does
    not know, dominate the index.

    Raises:
        ValueError: ``alpha`` outside (0, 1), or ``replications`` too few to have ten beyond the quantile.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"the significance level must be in (0, 1), got {alpha}")
    if replications * alpha < 10:
        raise ValueError(f"{replications} replications leave fewer than 10 beyond the {1 - alpha:.4g} quantile")
    shares = np.asarray(pooled, dtype=float)
    shares = shares[shares > 0] / shares[shares > 0].sum()
    if shares.size < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    n, m = max(round(reference_rows), 1), max(round(current_rows), 1)
    e = rng.multinomial(n, shares, size=replications) / n
    a = rng.multinomial(m, shares, size=replications) / m
    e, a = np.where(e > 0, e, epsilon), np.where(a > 0, a, epsilon)
    return float(np.quantile(np.sum((a - e) * np.log(a / e), axis=1), 1.0 - alpha))


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

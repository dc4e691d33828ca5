"""Per-feature drift of one frame against a reference frame, judged against the PSI thresholds.

`fit_reference` bins every feature of a reference frame (quantile bins for numbers, one bin per category, missing
values apart; see `ml.monitoring.psi`); `compare` scores a later frame against those bins. The reference is kept
as bins and counts, not rows, so it can be saved once per model (`Reference.as_dict`) and outlive the rows it was
fitted on.

Like with like (docs/decisions.md, "Drift on young histories" and "Drift checks judge a PSI against its own
noise"):
- The current sample is one day; the reference pools several. Rows of one day share that day's circumstances
  (a smoothed CTR shrinks toward that day's platform CTR, weekday activity), so one day differs from a pooled
  window even when nothing changed. The yardstick of a feature is therefore how far *one of the
  reference's own days* lies from the rest of the reference (the largest leave-one-day-out PSI, `day_baseline`),
  and a feature is judged on its PSI in excess of that.
- Its own noise: the rows of a small history are few and share users and items, so a day's PSI against the
  reference can reach the thresholds by sampling noise alone. A feature counts only when its PSI is above what
  two samples of the same effective sizes from one distribution exceed with probability ``alpha``
  (`ml.monitoring.psi.Comparison.noise_psi`).
- A feature whose window was not yet full when the reference began (`ml.monitoring.reach`) is reported as
  ``young`` and left out of the verdict: on a young history it grows with the history's age alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ml.monitoring.config import DriftConfig
from ml.monitoring.psi import Clustering, Comparison, Kind, ReferenceBins, infer_kind, psi_from_shares
from ml.monitoring.reach import comparable

#: Order of the statuses, best first.
STATUSES = ("ok", "warn", "fail")
#: The status of a feature that cannot be compared yet (its window was filling during the reference).
YOUNG = "young"


@dataclass(frozen=True)
class Reference:
    """Bins fitted per column on a reference frame.

    Attributes:
        bins: per column, the bins and the reference's counts.
        daily_psi: per column, the median PSI of each day of the reference against the whole reference (empty
            when the reference was fitted without days): how much its own days differ.
        day_baseline: per column, the largest PSI of one day of the reference against the rest of it (the
            reference's counts minus that day's, in the same bins; empty without days): how far a single day
            can lie from a pooled window with nothing changed, the yardstick `compare` judges a day against.
    """

    bins: dict[str, ReferenceBins]
    daily_psi: dict[str, float] = field(default_factory=dict)
    day_baseline: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return max((b.rows for b in self.bins.values()), default=0)

    def select(self, columns: Iterable[str]) -> Reference:
        """The reference of some columns only."""
        keep = list(columns)
        return Reference(
            {c: self.bins[c] for c in keep},
            {c: v for c, v in self.daily_psi.items() if c in keep},
            {c: v for c, v in self.day_baseline.items() if c in keep},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "bins": {name: b.as_dict() for name, b in self.bins.items()},
            "daily_psi": dict(self.daily_psi),
            "day_baseline": dict(self.day_baseline),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        bins = {name: ReferenceBins.from_dict(b) for name, b in data["bins"].items()}
        return cls(
            bins,
            {k: float(v) for k, v in data.get("daily_psi", {}).items()},
            {k: float(v) for k, v in data.get("day_baseline", {}).items()},
        )


@dataclass(frozen=True)
class FeatureDrift:
    """One column's PSI and what it means."""

    feature: str
    status: str
    comparison: Comparison
    kind: Kind
    #: The median PSI of the reference's own days against it (NaN: not known).
    daily_psi: float = float("nan")
    #: The largest PSI of one reference day against the rest (0: not known); see `Reference.day_baseline`.
    baseline: float = 0.0
    #: The PSI sampling noise exceeds with probability ``alpha`` (`Comparison.noise_psi`; 0: not measured).
    noise: float = 0.0

    @property
    def significant(self) -> bool:
        """Whether the PSI is above what sampling noise explains (`noise`)."""
        return self.comparison.psi > self.noise

    @property
    def psi(self) -> float:
        return self.comparison.psi

    @property
    def excess(self) -> float:
        """What the status judges (>= 0): the PSI beyond what one of the reference's own days shows, or 0 when
        sampling noise explains the PSI (`significant`)."""
        return max(self.comparison.psi - self.baseline, 0.0) if self.significant else 0.0

    def describe(self) -> dict[str, Any]:
        """A flat, JSON-ready row: PSI, status, sizes, missing shares and the bin that moved most."""
        c = self.comparison
        moved = c.largest_shift
        return {
            "feature": self.feature,
            "kind": self.kind,
            "psi": round(c.psi, 4),
            "status": self.status,
            "largest_shift": f"{moved.label}: {moved.reference_share:.1%} -> {moved.current_share:.1%}",
            "missing_reference": round(c.missing.reference_share, 4),
            "missing_current": round(c.missing.current_share, 4),
            "reference_rows": c.reference_rows,
            "current_rows": c.current_rows,
            "no_drift_psi": round(c.no_drift_psi, 4),
            "reference_daily_psi": round(self.daily_psi, 4),
            "day_baseline_psi": round(self.baseline, 4),
            "excess_psi": round(self.excess, 4),
            "noise_psi": round(self.noise, 4),
            "effective_rows": f"{c.reference_effective_rows:.0f} / {c.current_effective_rows:.0f}",
        }


@dataclass(frozen=True)
class DriftReport:
    """Every compared column, the most drifted first."""

    features: tuple[FeatureDrift, ...]
    config: DriftConfig
    #: Columns whose ``fail`` was lowered to ``warn`` because the reference holds a single day (`compare`).
    capped: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """The worst status of any column that can be compared (``ok`` when there is none)."""
        judged = (f.status for f in self.features if f.status != YOUNG)
        return max(judged, key=STATUSES.index, default="ok")

    @property
    def worst(self) -> FeatureDrift | None:
        """The column with the largest PSI (young ones included: the table shows them too)."""
        return self.features[0] if self.features else None

    @property
    def most_drifted(self) -> FeatureDrift | None:
        """The comparable column with the largest excess PSI (what the verdict rests on)."""
        judged = [f for f in self.features if f.status != YOUNG]
        return max(judged, key=lambda f: f.excess) if judged else None

    def at(self, status: str) -> list[str]:
        """The columns with exactly this status, most drifted first."""
        return [f.feature for f in self.features if f.status == status]

    def rows(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self.features]


def fit_reference(
    frame: pd.DataFrame,
    columns: Sequence[str],
    categorical: Iterable[str] = (),
    bins: int = DriftConfig().bins,
    day_column: str | None = None,
    epsilon: float = DriftConfig().epsilon,
    clusters: Sequence[str] | None = None,
) -> Reference:
    """Bins for each of ``columns`` of the reference frame.

    Args:
        categorical: columns to treat as categories; the others are inferred (numbers are numeric).
        day_column: a tz-aware timestamp column: also measure each UTC day of the frame against the whole
            (`Reference.daily_psi`).
        clusters: columns naming what rows share (a user, an item), for the cluster-robust noise
            (`ml.monitoring.psi.share_covariance`); None: those of `DriftConfig.clusters` the frame has.

    Raises:
        ValueError: a column is missing from the frame (named), or the frame is empty.
    """
    _require(frame, [*columns, *([day_column] if day_column else [])], "reference")
    kinds = set(categorical)
    shared = _clusters(frame, DriftConfig().clusters if clusters is None else clusters)
    reference = Reference(
        {
            c: ReferenceBins.fit(frame[c], "categorical" if c in kinds else infer_kind(frame[c]), bins, shared)
            for c in columns
        }
    )
    if day_column is None:
        return reference
    per_day: dict[str, list[float]] = {c: [] for c in columns}
    left_out: dict[str, list[float]] = {c: [] for c in columns}
    days = list(frame.groupby(frame[day_column].dt.floor("D"), sort=True))
    for _, day in days:
        for column, binned in reference.bins.items():
            against_all = binned.compare(day[column], epsilon)
            per_day[column].append(against_all.psi)
            if len(days) > 1:
                left_out[column].append(_against_the_rest(binned, against_all, epsilon))
    return Reference(
        reference.bins,
        {c: float(np.median(v)) for c, v in per_day.items()},
        {c: float(max(v)) for c, v in left_out.items() if v},
    )


def _against_the_rest(binned: ReferenceBins, day: Comparison, epsilon: float) -> float:
    """PSI of one day of the reference against the reference without that day, in the reference's bins (the
    rest's counts are the reference's minus the day's; a day cannot add a category the reference lacks)."""
    whole = np.asarray(binned.counts, dtype=float)
    day_counts = np.asarray([b.current_share for b in day.bins], dtype=float) * day.current_rows
    rest = np.clip(whole - np.round(day_counts), 0.0, None)
    if rest.sum() == 0:
        return 0.0
    return psi_from_shares(rest / rest.sum(), day_counts / day_counts.sum(), epsilon)


def compare(
    reference: Reference,
    frame: pd.DataFrame,
    config: DriftConfig | None = None,
    history_days: float | None = None,
) -> DriftReport:
    """PSI of every reference column in ``frame``, each with its status under ``config``'s thresholds.

    One rule: a column is at a threshold when its PSI is both at least that far beyond the reference's
    `day_baseline` (0 without one) and above what sampling noise explains at ``config.alpha``
    (`FeatureDrift.noise`, with the rows of ``frame`` clustered by the `DriftConfig.clusters` it has), that is
    when its `FeatureDrift.excess` reaches the threshold; else ``ok``.

    A reference fitted per day that holds a single day (a young history's short training window) has no day
    baseline: how far one day lies from another is unknown, and a value that all of a day's rows share (a CTR
    shrunk toward that day's platform CTR) moves from day to day without anything changing. Such a column is at
    most ``warn`` (named in `DriftReport.capped`): a single day cannot tell that motion from drift, and a
    ``fail`` would ask for a retrain on it.

    Args:
        history_days: days of history before the reference began; columns whose window was longer
            (`ml.monitoring.reach.comparable`) get the status ``young`` and no say in the verdict. None: every
            column is compared.

    Raises:
        ValueError: ``frame`` is empty or lacks a reference column (named).
    """
    config = config or DriftConfig()
    _require(frame, list(reference.bins), "current")
    shared = _clusters(frame, config.clusters)
    found, capped = [], []
    for column, bins in reference.bins.items():
        comparison = bins.compare(frame[column], config.epsilon, shared)
        daily = reference.daily_psi.get(column, float("nan"))
        baseline = reference.day_baseline.get(column, 0.0)
        noise = comparison.noise_psi(config.alpha)
        judged = FeatureDrift(column, "ok", comparison, bins.kind, daily, baseline, noise)
        young = history_days is not None and not comparable(column, history_days)
        status = YOUNG if young else config.status(judged.excess)
        if status == "fail" and column in reference.daily_psi and column not in reference.day_baseline:
            status = "warn"
            capped.append(column)
        found.append(replace(judged, status=status))
    found.sort(key=lambda f: (-f.psi, f.feature))
    return DriftReport(tuple(found), config, tuple(capped))


def _clusters(frame: pd.DataFrame, names: Sequence[str]) -> Clustering | None:
    """The clustering of the frame's rows by each named column it has (None: it has none)."""
    present = [frame[name] for name in names if name in frame.columns]
    return Clustering.of(*present) if present else None


def _require(frame: pd.DataFrame, columns: Sequence[str], side: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {side} rows lack column(s) {missing}: compare frames with the same features")
    if frame.empty:
        raise ValueError(f"the {side} rows are empty: there is nothing to compare")

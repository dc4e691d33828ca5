"""Per-feature drift of one frame against a reference frame, judged against the PSI thresholds.

`fit_reference` bins every feature of a reference frame (quantile bins for numbers, one bin per category, missing
values apart; see `ml.monitoring.psi`); `compare` scores a later frame against those bins. The reference is kept
as bins and counts, not rows, so it can be saved once per model (`Reference.as_dict`) and outlive the rows it was
fitted on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.monitoring.config import DriftConfig
from ml.monitoring.psi import Comparison, Kind, ReferenceBins, infer_kind

#: Order of the statuses, best first.
STATUSES = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Reference:
    """Bins fitted per column on a reference frame.

    Attributes:
        bins: per column, the bins and the reference's counts.
        daily_psi: per column, the median PSI of each day of the reference against the whole reference (empty
            when the reference was fitted without days): how much its own days differ. A feature whose days
            differ by as much as the newest day does (e.g. a value that changes every day for many rows at once)
            is read differently from one that was steady and moved.
    """

    bins: dict[str, ReferenceBins]
    daily_psi: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return max((b.rows for b in self.bins.values()), default=0)

    def select(self, columns: Iterable[str]) -> Reference:
        """The reference of some columns only."""
        keep = list(columns)
        return Reference({c: self.bins[c] for c in keep}, {c: v for c, v in self.daily_psi.items() if c in keep})

    def as_dict(self) -> dict[str, Any]:
        return {
            "bins": {name: b.as_dict() for name, b in self.bins.items()},
            "daily_psi": dict(self.daily_psi),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        bins = {name: ReferenceBins.from_dict(b) for name, b in data["bins"].items()}
        return cls(bins, {k: float(v) for k, v in data.get("daily_psi", {}).items()})


@dataclass(frozen=True)
class FeatureDrift:
    """One column's PSI and what it means."""

    feature: str
    status: str
    comparison: Comparison
    kind: Kind
    #: The median PSI of the reference's own days against it (NaN: not known).
    daily_psi: float = float("nan")

    @property
    def psi(self) -> float:
        return self.comparison.psi

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
        }


@dataclass(frozen=True)
class DriftReport:
    """Every compared column, the most drifted first."""

    features: tuple[FeatureDrift, ...]
    config: DriftConfig

    @property
    def status(self) -> str:
        """The worst status of any column (``ok`` when there is none)."""
        return max((f.status for f in self.features), key=STATUSES.index, default="ok")

    @property
    def worst(self) -> FeatureDrift | None:
        return self.features[0] if self.features else None

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
) -> Reference:
    """Bins for each of ``columns`` of the reference frame.

    Args:
        categorical: columns to treat as categories; the others are inferred (numbers are numeric).
        day_column: a tz-aware timestamp column: also measure each UTC day of the frame against the whole
            (`Reference.daily_psi`).

    Raises:
        ValueError: a column is missing from the frame (named), or the frame is empty.
    """
    _require(frame, [*columns, *([day_column] if day_column else [])], "reference")
    kinds = set(categorical)
    reference = Reference(
        {c: ReferenceBins.fit(frame[c], "categorical" if c in kinds else infer_kind(frame[c]), bins) for c in columns}
    )
    if day_column is None:
        return reference
    per_day: dict[str, list[float]] = {c: [] for c in columns}
    for _, day in frame.groupby(frame[day_column].dt.floor("D"), sort=True):
        for column, binned in reference.bins.items():
            per_day[column].append(binned.compare(day[column], epsilon).psi)
    return Reference(reference.bins, {c: float(np.median(v)) for c, v in per_day.items()})


def compare(reference: Reference, frame: pd.DataFrame, config: DriftConfig | None = None) -> DriftReport:
    """PSI of every reference column in ``frame``, each with its status under ``config``'s thresholds.

    Raises:
        ValueError: ``frame`` is empty or lacks a reference column (named).
    """
    config = config or DriftConfig()
    _require(frame, list(reference.bins), "current")
    found = []
    for column, bins in reference.bins.items():
        comparison = bins.compare(frame[column], config.epsilon)
        daily = reference.daily_psi.get(column, float("nan"))
        found.append(FeatureDrift(column, config.status(comparison.psi), comparison, bins.kind, daily))
    found.sort(key=lambda f: (-f.psi, f.feature))
    return DriftReport(tuple(found), config)


def _require(frame: pd.DataFrame, columns: Sequence[str], side: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {side} rows lack column(s) {missing}: compare frames with the same features")
    if frame.empty:
        raise ValueError(f"the {side} rows are empty: there is nothing to compare")

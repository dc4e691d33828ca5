"""What counts as drift, and when a retrain is due: two typed objects, from code or the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ml.monitoring.psi import DEFAULT_BINS, DEFAULT_EPSILON

#: The conventional PSI thresholds: below 0.1 no significant change, 0.1 to 0.25 a moderate shift worth a look,
#: above 0.25 a significant shift (Siddiqi, "Credit Risk Scorecards", Wiley 2006; discussed in Yurdakul 2018).
PSI_WARN = 0.1
PSI_FAIL = 0.25
#: A PSI is drift only if sampling noise explains it with probability at most this (docs/decisions.md, "Drift
#: checks judge a PSI against its own noise"): one false alarm per feature in about a thousand unchanged days.
NOISE_ALPHA = 0.001
#: The columns of an impression that other impressions share: its user (and so its request) and its item.
CLUSTERS = ("user_id", "content_id")


@dataclass(frozen=True)
class DriftConfig:
    """How the drift checks bin and judge.

    Attributes:
        warn: PSI at or above which a feature (or the prediction) is reported as a warning.
        fail: PSI at or above which the check fails with ERROR severity (a retrain is requested).
        bins: quantile bins of a numeric feature (fitted on the champion's training window).
        epsilon: share an empty bin counts as.
        alpha: significance level: a PSI counts only when two samples of the same effective sizes from one
            distribution would exceed it with at most this probability (`ml.monitoring.drift.compare`).
        clusters: columns naming what rows share (a user, an item); those a frame has make the no-drift noise
            cluster-robust (`ml.monitoring.psi.share_covariance`). Not read from the environment.
    """

    warn: float = PSI_WARN
    fail: float = PSI_FAIL
    bins: int = DEFAULT_BINS
    epsilon: float = DEFAULT_EPSILON
    alpha: float = NOISE_ALPHA
    clusters: tuple[str, ...] = CLUSTERS

    def __post_init__(self) -> None:
        if not 0 < self.warn < self.fail:
            raise ValueError(
                f"the PSI thresholds must satisfy 0 < warn < fail, got warn={self.warn}, fail={self.fail}: "
                "set TAILOR_DRIFT_WARN below TAILOR_DRIFT_FAIL"
            )
        if self.bins < 2:
            raise ValueError(f"TAILOR_DRIFT_BINS must be at least 2, got {self.bins}")
        if not 0 < self.epsilon < 1 / self.bins:
            raise ValueError(f"TAILOR_DRIFT_EPSILON must be in (0, 1/bins), got {self.epsilon}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"TAILOR_DRIFT_ALPHA must be in (0, 0.5), got {self.alpha}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DriftConfig:
        """Defaults, with TAILOR_DRIFT_WARN, TAILOR_DRIFT_FAIL, TAILOR_DRIFT_BINS, TAILOR_DRIFT_EPSILON and
        TAILOR_DRIFT_ALPHA applied.

        Raises:
            ValueError: a variable that is not a number, or values out of range (the message names it).
        """
        fields = {"warn": float, "fail": float, "bins": int, "epsilon": float, "alpha": float}
        return cls(**_read(env, "TAILOR_DRIFT_", fields))

    def status(self, value: float) -> str:
        """``fail``, ``warn`` or ``ok`` for one PSI value."""
        return "fail" if value >= self.fail else "warn" if value >= self.warn else "ok"


@dataclass(frozen=True)
class RetrainPolicy:
    """When the retrain sensor asks for a new ranker (besides a failed drift check).

    Attributes:
        max_age_days: retrain when the history reaches this many days past the champion's test window (the
            history's time, not the clock's: `ml.monitoring.retrain`).
        new_days: retrain when at least this many days of labelled impressions arrived after the test window of
            the newest registered version (the newest data any training has seen).
    """

    max_age_days: float = 7.0
    new_days: int = 7

    def __post_init__(self) -> None:
        # Each bad value is named alone, with what to do (a trial read both variables for one bad value).
        if not self.max_age_days >= 0:  # also NaN
            raise ValueError(
                f"TAILOR_RETRAIN_MAX_AGE_DAYS must be a number of days >= 0 (default {type(self).max_age_days:g}), "
                f"got {self.max_age_days:g}"
            )
        if self.new_days < 1:
            raise ValueError(
                f"TAILOR_RETRAIN_NEW_DAYS must be a whole number of days >= 1 (default {type(self).new_days}), got "
                f"{self.new_days}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetrainPolicy:
        """Defaults, with TAILOR_RETRAIN_MAX_AGE_DAYS and TAILOR_RETRAIN_NEW_DAYS applied.

        Raises:
            ValueError: a variable that is not a number, or out of range (the message names it).
        """
        return cls(**_read(env, "TAILOR_RETRAIN_", {"max_age_days": float, "new_days": int}))


def _read(env: Mapping[str, str], prefix: str, fields: Mapping[str, type]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, kind in fields.items():
        raw = env.get(f"{prefix}{name.upper()}", "").strip()
        if not raw:
            continue
        try:
            values[name] = kind(raw)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"{prefix}{name.upper()}={raw!r} is not {what}") from None
    return values

"""What a ranker training run may use and spend: windows, budgets, seed. One typed object, from settings or code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ml.candidates.union import CandidateConfig

#: The largest seed numpy's ``RandomState`` (and so scikit-learn's ``random_state``) accepts.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class RankerConfig:
    """Windows are whole UTC days counted back from the newest impression, in time order:

    ``[warm-up][train][tune][calibrate][test]``. The warm-up days only feed the candidate generators (their
    history); the model trains on ``train_days``, Optuna and early stopping judge on ``tune_days``, Platt
    calibration is fitted on ``calibration_days``, and every reported metric comes from the last ``test_days``,
    which nothing was fitted or chosen on. Nothing is shuffled across time.

    Attributes:
        train_days: days of impressions to train on (0 = every day after the warm-up).
        warmup_days: at least this many days of history before the training window.
        search_trials: Optuna trials per study in total (a rerun on the same data resumes and runs the rest).
        search_timeout_s: wall-clock budget of one search, in seconds.
        max_iter: boosting iterations at most; early stopping (on the tuning window) picks fewer.
        ranking_k: cut-off of the ranking metrics (NDCG@k, recall@k, MAP@k).
        eval_users: test users the ranking metrics score (the most active, at most this many).
        seed: every random choice (model, search, sampling) derives from it: same seed, same metrics.
    """

    feature_service: str = "ranker_v1"
    train_days: int = 0
    warmup_days: int = 7
    tune_days: int = 2
    calibration_days: int = 1
    test_days: int = 3
    search_trials: int = 12
    search_timeout_s: float = 120.0
    max_iter: int = 400
    ranking_k: int = 10
    eval_users: int = 1000
    seed: int = 42
    candidates: CandidateConfig = field(default_factory=CandidateConfig)

    def __post_init__(self) -> None:
        # eval_users 0 would score no test user, and the ranking metrics would fail after the whole training run.
        at_least_one = ("warmup_days", "tune_days", "calibration_days", "test_days", "search_trials", "max_iter")
        for name in (*at_least_one, "eval_users"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.train_days < 0:
            raise ValueError(f"train_days must be at least 0 (0 = every day after the warm-up), got {self.train_days}")
        if not (math.isfinite(self.search_timeout_s) and self.search_timeout_s > 0):
            raise ValueError(f"search_timeout_s must be a number of seconds above 0, got {self.search_timeout_s}")
        # numpy's and scikit-learn's random states take 0 .. 2**32 - 1 and fail with "Seed must be between 0 and
        # 2**32 - 1" otherwise: found here, not after the warehouse build and the training data.
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED} (2**32 - 1), got {self.seed}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RankerConfig:
        """The configuration with any ``TAILOR_RANKER_<FIELD>`` variable applied (e.g. TAILOR_RANKER_SEARCH_TRIALS=5).

        Raises:
            ValueError: a variable that is not a number, or one out of its range (a seed outside 0 .. 2**32 - 1,
                a window under 1 day), naming it.
        """
        changes: dict[str, Any] = {}
        for name, kind in (
            ("train_days", int),
            ("warmup_days", int),
            ("tune_days", int),
            ("calibration_days", int),
            ("test_days", int),
            ("search_trials", int),
            ("search_timeout_s", float),
            ("max_iter", int),
            ("eval_users", int),
            ("seed", int),
        ):
            raw = env.get(f"TAILOR_RANKER_{name.upper()}")
            if raw is None or not raw.strip():  # empty: the default
                continue
            try:
                changes[name] = kind(raw)
            except ValueError:
                what = "a whole number" if kind is int else "a number"  # '1.5' is a number, not a count
                raise ValueError(f"TAILOR_RANKER_{name.upper()}={raw!r} is not {what}") from None
        try:
            return cls(**changes)
        except ValueError as exc:  # a value out of range: say which variables set it
            given = ", ".join(
                f"TAILOR_RANKER_{name.upper()}={env[f'TAILOR_RANKER_{name.upper()}']}" for name in changes
            )
            raise ValueError(f"{exc} (from {given})") from None

    @property
    def days_needed(self) -> int:
        """The fewest days of impressions a training run can work with (one training day)."""
        return self.warmup_days + max(self.train_days, 1) + self.tune_days + self.calibration_days + self.test_days

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

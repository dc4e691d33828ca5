"""One training run of the ranker: windows, candidate scores, search, fit, calibration, evaluation.

`train_ranker` returns a `TrainedRanker`: the model, the naive (position-blind) model trained the same way for
comparison, the search's history, the stored evaluation, and what the model was trained on (windows, a
fingerprint of the training rows, library versions), everything a registry records next to the model.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore

from ml.history import History
from ml.ranker.config import RankerConfig
from ml.ranker.dataset import (
    Windows,
    add_candidate_scores,
    check_trainable,
    feature_columns,
    load_training_rows,
    plan_windows,
)
from ml.ranker.evaluate import (
    candidate_rows,
    classification_metrics,
    evaluate_lists,
    reliability,
    test_users,
)
from ml.ranker.model import RankerModel
from ml.ranker.search import SearchResult, search, staged_fit

LIBRARIES = ("scikit-learn", "optuna", "feast", "pandas", "numpy", "mlflow-skinny")


@dataclass
class TrainedRanker:
    """A trained ranker with everything known about how it was made and how good it is."""

    model: RankerModel
    naive: RankerModel | None
    features: list[str]
    windows: Windows
    fingerprint: str
    search: SearchResult
    metrics: dict[str, Any]
    config: RankerConfig
    seconds: dict[str, float] = field(default_factory=dict)
    #: What the evaluation scored, kept for comparing another model on the same window (not stored).
    test_rows: pd.DataFrame | None = field(default=None, repr=False)
    candidate_rows: pd.DataFrame | None = field(default=None, repr=False)
    test_users: pd.DataFrame | None = field(default=None, repr=False)
    train_rows: pd.DataFrame | None = field(default=None, repr=False)

    def tags(self) -> dict[str, str]:
        """What a registry stores as the model version's tags."""
        return {
            "feature_service": self.config.feature_service,
            "training_window": f"{self.windows.train_start.date()}..{self.windows.tune_start.date()}",
            "test_window": f"{self.windows.test_start.date()}..{self.windows.end.date()}",
            "data_fingerprint": self.fingerprint,
            "optuna_study": self.search.study_name,
            **{f"version.{name}": _version(name) for name in LIBRARIES},
        }


def fingerprint_rows(frame: pd.DataFrame, features: list[str]) -> str:
    """SHA-256 of the rows a model trains on (ids, label, features): the same data gives the same hash."""
    digest = hashlib.sha256()
    digest.update(",".join(features).encode())
    hashed = pd.util.hash_pandas_object(frame[["impression_id", "clicked", *features]], index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def train_ranker(
    training_set: Path,
    history: History,
    store: FeatureStore,
    config: RankerConfig,
    search_dir: Path,
) -> TrainedRanker:
    """Train, tune, calibrate and evaluate a ranker on the point-in-time training set.

    Args:
        training_set: the Parquet training set (`ml.features.training`).
        history: the marts (`ml.history.load_history`), for candidate generators and ranking evaluation.
        store: the Feast store, for the features of candidates in the ranking evaluation.
        config: windows, budgets and seed.
        search_dir: where the Optuna study is kept (a rerun resumes it).

    Raises:
        TrainingDataError: too few days, an empty window, a single class, or a missing feature column.
    """
    clock: dict[str, float] = {}
    started = time.monotonic()
    rows = load_training_rows(training_set, history)
    windows = plan_windows(rows["event_timestamp"], config, history.impressions["occurred_at"].min())
    rows, candidate_sets = add_candidate_scores(rows, history, windows, config)
    for window in ("train", "tune", "calibration", "test"):
        check_trainable(rows, window)
    features = feature_columns(rows)
    train, tune = rows.loc[rows["window"] == "train"], rows.loc[rows["window"] == "tune"]
    calibration, test = rows.loc[rows["window"] == "calibration"], rows.loc[rows["window"] == "test"]
    fingerprint = fingerprint_rows(train, features)
    clock["data"] = time.monotonic() - started

    mark = time.monotonic()
    found = search(
        train,
        tune,
        features,
        search_dir,
        fingerprint,
        config.search_trials,
        config.search_timeout_s,
        config.max_iter,
        config.seed,
    )
    clock["search"] = time.monotonic() - mark
    mark = time.monotonic()
    params = {k: v for k, v in found.best_params.items() if k != "max_iter"}
    # The best trial's model when it ran in this search (a staged fit is deterministic for a seed, so a refit
    # would only repeat it); a study resumed from an earlier run refits the winner's parameters.
    model = found.model or staged_fit(train, tune, features, params, config.seed, config.max_iter)[0]
    naive, _, _ = staged_fit(
        train, tune, [f for f in features if f != "position"], params, config.seed, config.max_iter
    )
    naive.uses_position = False
    model.calibrate(calibration, calibration["clicked"])
    naive.calibrate(calibration, calibration["clicked"])
    clock["fit"] = time.monotonic() - mark

    mark = time.monotonic()
    users = test_users(history, candidate_sets["test"].as_of, windows.end, config.eval_users)
    candidates = candidate_rows(store, candidate_sets["test"], users["user_id"].tolist(), config.feature_service)
    metrics = evaluate_ranker(model, naive, test, candidates, users, history.before(windows.test_start), config, train)
    clock["evaluate"] = time.monotonic() - mark
    clock["total"] = time.monotonic() - started
    return TrainedRanker(
        model, naive, features, windows, fingerprint, found, metrics, config, clock, test, candidates, users, train
    )


def evaluate_ranker(
    model: RankerModel,
    naive: RankerModel | None,
    test: pd.DataFrame,
    candidates: pd.DataFrame,
    users: pd.DataFrame,
    known: History,
    config: RankerConfig,
    train: pd.DataFrame,
) -> dict[str, Any]:
    """The stored evaluation (see `ml.ranker.evaluate`) on the test window.

    Args:
        test: the test window's logged impressions with features and candidate scores.
        candidates: the test users' candidates with features as of the window's start (`candidate_rows`).
        users: the test users and their relevant items (`test_users`).
        known: the history as known at the window's start (catalog, popularity for novelty).
    """
    y = test["clicked"].astype(bool).to_numpy()
    calibrated = model.predict(test)
    raw = model.predict_raw(test)
    base_rate = float(train["clicked"].mean())
    classification = {
        "ranker": classification_metrics(y, calibrated),
        "ranker_uncalibrated": classification_metrics(y, raw),
        **({"naive": classification_metrics(y, naive.predict(test))} if naive is not None else {}),
        "popularity": classification_metrics(y, test["score_popularity"].fillna(base_rate).to_numpy()),
        "constant": classification_metrics(y, np.full(len(y), base_rate)),
    }
    scorers = {"ranker": model.relevance, **({"naive": naive.relevance} if naive is not None else {})}
    ranking = evaluate_lists(candidates, users, scorers, config.ranking_k, known, config.seed)
    candidate_recall = ranking.pop("candidates")
    return {
        "classification": classification,
        "ranking": ranking,
        "candidates": candidate_recall,
        "reliability": {"ranker": reliability(y, calibrated), "ranker_uncalibrated": reliability(y, raw)},
        "k": config.ranking_k,
        "test_users": len(users),
    }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"

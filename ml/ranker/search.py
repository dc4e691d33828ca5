"""Hyperparameter search with Optuna, judged on a later time window, with a trial and a wall-clock budget.

Each trial boosts in stages of `STAGE_ITERATIONS` (scikit-learn's ``warm_start``), scores the tuning window's log
loss after each stage, keeps the best stage (time-based early stopping) and reports it to Optuna's median pruner,
so a trial that is clearly worse than the others at the same stage stops early: the boosting stages are where the
time goes, so that is where pruning pays. The wall-clock budget is checked there too, after every stage: Optuna's
own ``timeout`` is only looked at between trials, and one trial on a large training set can take minutes (searches
of 198-494 s were seen against a 120 s budget). A trial the budget stops keeps its best stage so far and is
recorded as complete with ``stopped_by_budget`` set, so an overrun is at most one stage.

The study lives in a SQLite file under ``TAILOR_HOME`` and is named after the training data's fingerprint, so a
search cut short (budget, crash) resumes on the next run with the same data and only runs the trials left. A study
on new data starts from the previous study's best parameters (enqueued as its first trial).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss

from ml.ranker.model import RankerModel, fit_ranker

STAGE_ITERATIONS = 50
#: Defaults tried first when there is no earlier study: scikit-learn's, with a slower rate.
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    "max_features": 1.0,
}


@dataclass(frozen=True)
class SearchResult:
    """The chosen parameters (``max_iter`` included: the best stage) and the search's history.

    ``model`` is the best trial's fitted model when that trial ran in this search (no refit needed), else None.
    """

    study_name: str
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    trials_run_now: int
    seconds: float
    model: RankerModel | None = None


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """The search space (HistGradientBoostingClassifier parameters)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 128, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 10, 1000, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
        "max_features": trial.suggest_float("max_features", 0.5, 1.0),
    }


def staged_fit(
    train: pd.DataFrame,
    tune: pd.DataFrame,
    features: Sequence[str],
    params: dict[str, Any],
    seed: int,
    max_iter: int,
    trial: optuna.Trial | None = None,
    deadline: float | None = None,
) -> tuple[RankerModel, int, float]:
    """Boost in stages, keep the stage with the lowest tuning log loss; prune through ``trial`` if given.

    ``deadline`` is a ``time.monotonic()`` instant: past it, no further stage is boosted and the best stage so far
    is returned (the first stage always completes).

    Returns the model at the best stage, that stage's iteration count and its tuning log loss.
    """
    first = min(STAGE_ITERATIONS, max_iter)  # a cap below one stage is the cap (30 gave 50: a trial)
    model = fit_ranker(train, features, params, seed, max_iter=first)
    model.classifier.set_params(warm_start=True)
    x_train, y_train = model.matrix(train), train["clicked"].astype(bool).to_numpy()
    x_tune, y_tune = model.matrix(tune), tune["clicked"].astype(bool).to_numpy()
    best_loss, best_iter, stage, stale = math.inf, first, first, 0
    best_classifier = model.classifier
    while True:
        loss = float(log_loss(y_tune, model.classifier.predict_proba(x_tune)[:, 1], labels=[False, True]))
        if loss < best_loss - 1e-6:
            # A copy of the best stage, so that no refit is needed at the end (warm start keeps growing `model`).
            best_loss, best_iter, stale, best_classifier = loss, stage, 0, copy.deepcopy(model.classifier)
        else:
            stale += 1
        if trial is not None:
            trial.report(loss, stage)
            if trial.should_prune():
                raise optuna.TrialPruned()
        if stale >= 2 or stage >= max_iter or (deadline is not None and time.monotonic() >= deadline):
            if trial is not None:
                trial.set_user_attr("boosted_iterations", stage)
            break
        stage = min(stage + STAGE_ITERATIONS, max_iter)
        model.classifier.set_params(max_iter=stage)
        model.classifier.fit(x_train, y_train)
    best_classifier.set_params(warm_start=False)
    model.classifier = best_classifier
    model.params = {**params, "max_iter": best_iter}
    return model, best_iter, best_loss


def search(
    train: pd.DataFrame,
    tune: pd.DataFrame,
    features: Sequence[str],
    storage_dir: Path,
    fingerprint: str,
    trials: int,
    timeout_s: float,
    max_iter: int,
    seed: int,
) -> SearchResult:
    """Run (or resume) the study for this data and search space, within ``trials`` in total and ``timeout_s``
    seconds now.

    A study is resumed only for the same training data (``fingerprint``), boosting cap (``max_iter``) and seed:
    keyed by the data alone, a rerun with ``max_iter`` lowered from 400 to 50 found the old study complete, ran no
    trial and registered a copy of the previous version, past the new cap (a trial). More ``trials`` or time resume
    it; the budget is not part of the key.
    """
    storage_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{storage_dir / 'optuna.db'}"
    name = f"ranker-{fingerprint[:16]}-i{max_iter}-s{seed}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=STAGE_ITERATIONS),
    )
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    if not study.trials:
        study.enqueue_trial(_previous_best(storage, name) or DEFAULT_PARAMS)

    kept: dict[int, RankerModel] = {}
    started = time.monotonic()
    deadline = started + timeout_s

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial)
        model, best_iter, loss = staged_fit(train, tune, features, params, seed, max_iter, trial, deadline)
        trial.set_user_attr("max_iter", best_iter)
        if time.monotonic() >= deadline:
            trial.set_user_attr("stopped_by_budget", True)
        # Keep only the best model so far in memory: the winner needs no refit after the search.
        completed = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value]
        if not completed or loss < min(completed):
            kept.clear()
            kept[trial.number] = model
        return loss

    remaining = max(trials - len(done), 0)
    if remaining:
        # The budget between trials: a callback, not Optuna's ``timeout``, which would start no trial at all when
        # the budget is already spent; this way the first trial always runs (its stages stop at the deadline).
        def stop_when_spent(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
            if time.monotonic() >= deadline:
                study.stop()

        study.optimize(objective, n_trials=remaining, callbacks=[stop_when_spent], gc_after_trial=False)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(
            f"the search finished no trial within {timeout_s:.0f} s: raise the search timeout in the ranker "
            "configuration"
        )
    best = study.best_trial
    return SearchResult(
        study_name=name,
        best_params={**best.params, "max_iter": int(best.user_attrs.get("max_iter", max_iter))},
        best_value=float(best.value if best.value is not None else np.nan),
        trials=[
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "max_iter": t.user_attrs.get("max_iter"),
                "boosted_iterations": t.user_attrs.get("boosted_iterations"),
                "seconds": t.duration.total_seconds() if t.duration else None,
                "stopped_by_budget": bool(t.user_attrs.get("stopped_by_budget", False)),
            }
            for t in study.trials
        ],
        trials_run_now=len(study.trials) - len(done),
        seconds=time.monotonic() - started,
        model=kept.get(best.number),
    )


def _previous_best(storage: str, current: str) -> dict[str, Any] | None:
    """The best parameters of the most recent other study in this storage, to start a new study from."""
    summaries = [s for s in optuna.get_all_study_summaries(storage) if s.study_name != current and s.best_trial]
    if not summaries:
        return None
    latest = max(summaries, key=lambda s: s.datetime_start or pd.Timestamp.min.to_pydatetime())
    assert latest.best_trial is not None
    return dict(latest.best_trial.params)

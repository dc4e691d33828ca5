"""Drift of the champion ranker: its training window against the newest day of the training set.

The two samples are the same kind of rows: the point-in-time training set's impressions (features as of each
impression, `ml.features.training`), with the surface and the candidate generators' scores added the way the
ranker adds them (`ml.ranker.dataset.add_candidate_scores`: generators fitted before the rows' block, refitted every
`REFIT_DAYS`), so every one of the ranker's inputs is compared, and the champion's predicted click probability on
both. The feature marts would be the wrong reference: they hold one row per user or item per day, while the model
sees one row per impression (a busy user weighs more), and they lack the request-time features, the surface,
the position and the candidate scores.

- Reference: the champion's training window (its ``training_window`` tag), fitted once per version and saved
  under ``<models>/monitoring/`` (bins and counts, no rows): the training set keeps only its newest days, so the
  window's rows leave it within weeks, while the reference must stay. `save_reference` fits it when the version
  is registered (`ml.ranker.train_and_register`, on the very rows it was trained on); a check that finds none
  (a version registered before) fits it the same way from the training set, once.
- Current: the newest UTC day of impressions in the training set that is not still arriving (`newest_full_day`).
  Scoring it reads only that day's training rows and the impressions its candidate generators learn from (the
  popularity window before the day), not the whole training set and history.
- Both sides compare a rank input as a share of its day's bottom rank (`ml.monitoring.ranks.on_day_scale`), after
  the model has scored the rows on the raw rank: the bottom moves with the number of items with activity.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.candidates.union import CandidateConfig
from ml.features.training import training_set_path
from ml.history import History, history_start, load_history, trailing_start
from ml.monitoring.config import DriftConfig
from ml.monitoring.drift import DriftReport, Reference, compare, fit_reference
from ml.monitoring.ranks import on_day_scale
from ml.ranker.config import RankerConfig
from ml.ranker.dataset import CATEGORICAL, Windows, add_candidate_scores, load_training_rows
from ml.registry import CHAMPION, ModelVersion, Registry
from tailor.settings import Settings

#: The column under which the champion's predicted click probability is compared.
PREDICTION = "predicted_click_probability"
#: Bumped when the way a saved reference is built changes (older files are rebuilt).
REFERENCE_FORMAT = 5  # 5: ranks on their day's scale (ml.monitoring.ranks); 4: bins carry a covariance


class DriftUnavailable(LookupError):
    """Drift cannot be measured as things stand; the message says why and what to do."""


@dataclass(frozen=True)
class ChampionDrift:
    """The champion's features and predictions on the newest day against its training window.

    Attributes:
        version: the champion's registry version.
        reference_window: ``start..end`` (end exclusive) of the champion's training window.
        reference_rows: impressions the reference was fitted on.
        reference_days: days of the training window those impressions cover (fewer than the window's when part
            of it had left the training set before the reference was fitted).
        reference_saved: True when the reference came from the saved file, False when fitted in this call.
        current_day: the newest UTC day of impressions in the training set that is not still arriving
            (`newest_full_day`).
        history_days: days of history (impressions in the marts) before the training window began: inputs with
            a longer window are ``young`` (`ml.monitoring.reach`).
        features: PSI of every ranker input.
        prediction: PSI of the champion's calibrated P(click) at the logged positions.
    """

    version: int
    reference_window: str
    reference_rows: int
    reference_days: int
    reference_saved: bool
    current_day: date
    features: DriftReport
    prediction: DriftReport
    history_days: int = 0

    @property
    def current_rows(self) -> int:
        worst = self.prediction.worst
        return worst.comparison.current_rows if worst is not None else 0


def parse_window(text: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``2026-01-12..2026-01-26`` (a registry tag) -> the two UTC midnights.

    Raises:
        ValueError: the text is not two ISO dates joined by ``..``.
    """
    try:
        start, end = text.split("..")
        return pd.Timestamp(date.fromisoformat(start), tz="UTC"), pd.Timestamp(date.fromisoformat(end), tz="UTC")
    except ValueError:
        raise ValueError(f"{text!r} is not a window like 2026-01-12..2026-01-26") from None


def candidate_config(version: ModelVersion) -> CandidateConfig:
    """The candidate settings a version was trained with (its ``config.candidates.*`` parameters), so its
    candidate scores are recomputed the same way; defaults for any that are not recorded."""
    values: dict[str, Any] = {}
    for spec in fields(CandidateConfig):
        raw = version.params.get(f"config.candidates.{spec.name}")
        if raw is not None:
            values[spec.name] = type(getattr(CandidateConfig(), spec.name))(float(raw))
    return CandidateConfig(**values)


def scored_rows(
    rows: pd.DataFrame, history: History, start: pd.Timestamp, end: pd.Timestamp, candidates: CandidateConfig
) -> pd.DataFrame:
    """The training-set rows with ``start <= event_timestamp < end`` and the candidate scores the ranker would
    give them: generators fitted as of ``start`` and refitted every `REFIT_DAYS` (as in training)."""
    inside = rows.loc[(rows["event_timestamp"] >= start) & (rows["event_timestamp"] < end)]
    # One "train" block from start to end: the same refits as the ranker's training window.
    windows = Windows(start, end, end, end, end)
    scored, _ = add_candidate_scores(inside, history, windows, RankerConfig(candidates=candidates))
    return scored


#: A day with fewer impressions than this share of the reference's mean day is still arriving (the hours after
#: midnight, late events for a day not yet delivered): compared, a handful of rows is a PSI of several.
FULL_DAY_SHARE = 0.5


def newest_full_day(rows_per_day: pd.Series, reference_rows_per_day: float) -> pd.Timestamp:
    """The newest day (index: UTC midnights) with at least `FULL_DAY_SHARE` of the reference's mean rows per day;
    the newest day when none has (a young platform's days may all be smaller than its reference's).

    Raises:
        ValueError: no days.
    """
    if rows_per_day.empty:
        raise ValueError("no days to choose from: the training set has no impressions")
    full = rows_per_day[rows_per_day >= FULL_DAY_SHARE * reference_rows_per_day]
    return pd.Timestamp((full if not full.empty else rows_per_day).index.max())


def reference_path(models_dir: Path, version: int) -> Path:
    """Where a version's drift reference is saved: ``<models>/monitoring/drift_reference_v<N>.json``."""
    return models_dir / "monitoring" / f"drift_reference_v{version}.json"


def save_reference(
    models_dir: Path, version: int, window: str, rows: pd.DataFrame, model: Any, config: DriftConfig
) -> tuple[Reference, int]:
    """Fit a version's drift reference on its training window and save it (`reference_path`).

    Args:
        models_dir: the registry's folder.
        version: the registry version the reference belongs to.
        window: its ``training_window`` tag (``2026-01-12..2026-01-26``), recorded in the file.
        rows: the window's impressions with every input the model takes, candidate scores included, as the
            ranker was trained on them (the train rows of `ml.ranker.train_ranker`, or `scored_rows`).
        model: the version's ranker (``features``, ``predict``).
        config: the bins and epsilon of the drift checks (a check with other ones fits its own reference).

    Returns:
        The reference (every input and the predicted click probability) and the number of days its rows cover.

    Raises:
        ValueError: no rows.
    """
    if rows.empty:
        raise ValueError(f"no rows in the training window {window}: nothing to fit a drift reference on")
    features = list(model.features)
    days = int(rows["event_timestamp"].dt.floor("D").nunique())
    reference = _fit(rows, features, model, config)
    _write_reference(models_dir, version, config, features, window, reference, days)
    return reference, days


def champion_drift(
    settings: Settings,
    config: DriftConfig | None = None,
    registry: Registry | None = None,
    day: date | None = None,
) -> ChampionDrift | None:
    """Compare the champion's training window with the newest full day of the training set (None: no champion yet).

    Args:
        day: compare this UTC day instead of the newest full one (e.g. to trace when a shift began).

    Raises:
        DriftUnavailable: the training set is missing or empty, the champion lacks its window tags, its
            training window has left the training set before a reference was saved, or ``day`` has no
            impressions in the training set.
    """
    config = config or DriftConfig()
    registry = registry or Registry(settings.models_dir)
    champion = registry.alias(CHAMPION)
    if champion is None:
        return None
    window_tag = champion.tags.get("training_window")
    if not window_tag:
        raise DriftUnavailable(
            f"ranker version {champion.version} has no training_window tag: it was not registered by "
            "`ml.ranker.train_and_register`; train a new version (`tailor run`)"
        )
    start, _ = parse_window(window_tag)
    path = training_set_path(settings)
    if not path.exists():
        raise DriftUnavailable(f"{path} does not exist: build the training set first (`tailor run`)")
    per_day = _rows_per_day(path)
    if per_day.empty:
        raise DriftUnavailable(f"the training set {path} has no impressions: ingest events and run `tailor run`")
    model = registry.load(champion.version)
    features = list(model.features)

    saved = _read_reference(settings.models_dir, champion.version, config, features)
    if saved is None:
        reference, days = fit_saved_reference(settings, champion, model, config)
    else:
        reference, days = saved

    if day is None:
        current_day = newest_full_day(per_day, reference.rows / max(days, 1))
    else:
        current_day = pd.Timestamp(day, tz="UTC")
    current = current_rows(settings, champion, current_day)
    if current.empty:
        raise DriftUnavailable(f"the training set has no impressions on {current_day.date()}: pick a day it covers")
    current = on_day_scale(current.assign(**{PREDICTION: model.predict(current)}), features)
    first = history_start(settings.marts_dir)
    history_days = (start.floor("D") - first.floor("D")).days if first is not None else 0
    return ChampionDrift(
        version=champion.version,
        reference_window=window_tag,
        reference_rows=reference.rows,
        reference_days=days,
        reference_saved=saved is not None,
        current_day=current_day.date(),
        features=compare(reference.select(features), current, config, history_days),
        prediction=compare(reference.select([PREDICTION]), current, config, history_days),
        history_days=history_days,
    )


def fit_saved_reference(
    settings: Settings, version: ModelVersion, model: Any, config: DriftConfig
) -> tuple[Reference, int]:
    """The reference of a version registered without one (`save_reference` on its training window as the
    training set holds it now, rescored as the ranker scored it): reads the whole history and training set.

    Raises:
        DriftUnavailable: the training window has left the training set.
    """
    window = version.tags["training_window"]
    start, end = parse_window(window)
    history = load_history(settings.marts_dir)
    rows = load_training_rows(training_set_path(settings), history)
    scored = scored_rows(rows, history, start, end, candidate_config(version))
    if scored.empty:
        oldest = rows["event_timestamp"].min().date() if not rows.empty else "nothing"
        raise DriftUnavailable(
            f"the champion's training window {window} is no longer in the training set (it starts {oldest}) and "
            f"no reference was saved for version {version.version}: train a new version (`tailor run`), whose "
            "reference is saved when it is registered"
        )
    return save_reference(settings.models_dir, version.version, window, scored, model, config)


def current_rows(settings: Settings, version: ModelVersion, day: pd.Timestamp) -> pd.DataFrame:
    """The training set's impressions of one UTC day with the candidate scores the version's ranker would give
    them (generators fitted as of the day's start), the same rows as `scored_rows` over the whole training set
    and history, read cheaply: only the day's training rows (a Parquet filter) and the impressions from the
    popularity window before the day on (`fit_candidate_set` learns from no older impression: popularity
    counts its trailing window only, the other generators learn from consumption and the catalog, read whole).
    """
    candidates = candidate_config(version)
    end = day + timedelta(days=1)
    since = trailing_start(settings.marts_dir, day, candidates.popularity_window_days)  # days with impressions
    history = load_history(settings.marts_dir, impressions_since=since)
    rows = load_training_rows(training_set_path(settings), history, between=(day, end))
    return scored_rows(rows, history, day, end, candidates)


def _rows_per_day(path: Path) -> pd.Series:
    """Impressions per UTC day (index: midnights) in the training set, reading its timestamps only."""
    times = pd.to_datetime(pd.read_parquet(path, columns=["event_timestamp"])["event_timestamp"], utc=True)
    return times.dt.floor("D").value_counts()


def _fit(rows: pd.DataFrame, features: list[str], model: Any, config: DriftConfig) -> Reference:
    # The model is scored on the ranks as it takes them; only the comparison sees them on their day's scale.
    rows = on_day_scale(rows.assign(**{PREDICTION: np.asarray(model.predict(rows), dtype=float)}), features)
    categorical = [c for c in CATEGORICAL if c in features]
    return fit_reference(
        rows, [*features, PREDICTION], categorical, config.bins, "event_timestamp", config.epsilon, config.clusters
    )


def _read_reference(
    models_dir: Path, version: int, config: DriftConfig, features: list[str]
) -> tuple[Reference, int] | None:
    """The saved reference of a version and the days it covers, or None when absent or made with other bins,
    features or clusters."""
    path = reference_path(models_dir, version)
    try:
        saved = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    made = (saved.get("format"), saved.get("bins"), saved.get("epsilon"), saved.get("features"), saved.get("clusters"))
    if made != (REFERENCE_FORMAT, config.bins, config.epsilon, features, list(config.clusters)):
        return None
    return Reference.from_dict(saved["reference"]), int(saved["days"])


def _write_reference(
    models_dir: Path,
    version: int,
    config: DriftConfig,
    features: list[str],
    window: str,
    reference: Reference,
    days: int,
) -> None:
    path = reference_path(models_dir, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "format": REFERENCE_FORMAT,
        "version": version,
        "training_window": window,
        "days": days,
        "bins": config.bins,
        "epsilon": config.epsilon,
        "features": features,
        "clusters": list(config.clusters),
        "reference": reference.as_dict(),
    }
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(document))
    partial.replace(path)

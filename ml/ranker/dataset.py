"""The ranker's labelled rows: the point-in-time training set, cut into time windows, with the candidate scores.

Rows come from Feast's point-in-time training set (one per logged impression, features as of that moment; see
`ml.features.training`). Each row gets the request's surface and, as features, every candidate generator's score
for the (user, item) pair, from generators fitted on what was known *before the row's window began* (refitted
every `REFIT_DAYS` inside the training window), so no row is scored by a generator that saw its own click.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.candidates.union import SCORE_COLUMNS, CandidateSet, fit_candidate_set
from ml.data_days import days_of
from ml.history import History
from ml.ranker.config import RankerConfig

#: Columns of the training set that identify or label a row; everything else it holds is a feature.
SPINE_COLUMNS = ("impression_id", "user_id", "content_id", "event_timestamp", "request_at", "position", "clicked")
#: Feature-service columns that are not model inputs (a timestamp; its age is a feature already).
NOT_INPUTS = ("published_at",)
#: Categorical inputs (HistGradientBoosting's native categorical splits).
CATEGORICAL = ("category", "format", "surface")
#: Inside the training window, the candidate generators are refitted this often (days).
REFIT_DAYS = 7


class TrainingDataError(ValueError):
    """The training data cannot train a model as it stands; the message says what is missing and what to do."""


@dataclass(frozen=True)
class Windows:
    """Boundaries (UTC midnights) of the time windows, oldest first: rows with ``start <= t < end`` belong."""

    train_start: pd.Timestamp
    tune_start: pd.Timestamp
    calibration_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp

    def label(self, times: pd.Series) -> pd.Series:
        """'warmup' | 'train' | 'tune' | 'calibration' | 'test' for each timestamp."""
        edges = [self.train_start, self.tune_start, self.calibration_start, self.test_start, self.end]
        names = np.array(["warmup", "train", "tune", "calibration", "test", "after"])
        # As UTC datetime64 values: a tz-aware Series' to_numpy() is an array of Timestamp objects, which numpy
        # compares one Python call at a time (seconds for a million rows).
        instants = pd.DatetimeIndex(times).tz_convert("UTC").tz_localize(None).to_numpy("datetime64[ns]")
        bounds = pd.DatetimeIndex(edges).tz_convert("UTC").tz_localize(None).to_numpy("datetime64[ns]")
        return pd.Series(names[np.searchsorted(bounds, instants, side="right")], index=times.index)

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in vars(self).items()}


def plan_windows(times: pd.Series, config: RankerConfig, history_start: pd.Timestamp | None = None) -> Windows:
    """Lay the windows back from the newest day of ``times`` (the training set's impressions, tz-aware UTC).

    The warm-up is history the candidate generators learn from before the first training row: it may come from the
    marts (``history_start``, the first impression known) when the training set itself covers fewer days.

    Raises:
        TrainingDataError: fewer days of impressions than the windows need.
    """
    if times.empty:
        # Not "no impressions yet": landed impressions wait outside the training set until their day is complete
        # (a trial's first file had one impression and was told there was none).
        raise TrainingDataError(
            "the training set holds no impression yet: impressions join it once their day is complete "
            "(the run summary's ml/ranking_training_set line says which days wait). Ingest more events, then run "
            "`tailor run` again."
        )
    first = times.min().floor("D")
    if history_start is not None:
        first = min(first, pd.Timestamp(history_start).floor("D"))
    end = times.max().floor("D") + timedelta(days=1)
    spanned = (end - first).days
    if spanned < config.days_needed:
        raise TrainingDataError(
            f"the training set spans {spanned} day(s) but the windows need at least {config.days_needed} "
            f"({config.warmup_days} warm-up, {max(config.train_days, 1)} train, {config.tune_days} tune, "
            f"{config.calibration_days} calibration, {config.test_days} test): wait for more days, or shorten "
            "the windows with TAILOR_RANKER_WARMUP_DAYS, _TRAIN_DAYS, _TUNE_DAYS, _CALIBRATION_DAYS and _TEST_DAYS"
        )
    # The test, calibration, tuning and training days are days with impressions (`ml.data_days`), counted back from
    # the newest: a gap (one live event months after the rest) must not leave the test window that event alone.
    # Without a gap these are the calendar days before ``end``.
    days = [pd.Timestamp(d, tz="UTC") for d in sorted(days_of(times))]
    tail = config.test_days + config.calibration_days + config.tune_days
    if len(days) <= tail:
        raise TrainingDataError(
            f"the training set has impressions on {len(days)} day(s) but the test, calibration and tuning windows "
            f"need {tail} and training at least one more: wait for more days, or shorten the windows with "
            "TAILOR_RANKER_TUNE_DAYS, _CALIBRATION_DAYS and _TEST_DAYS"
        )
    test_start = days[-config.test_days]
    calibration_start = days[-(config.test_days + config.calibration_days)]
    tune_start = days[-tail]
    earliest = max(first + timedelta(days=config.warmup_days), times.min().floor("D"))
    train_start = days[max(len(days) - tail - config.train_days, 0)] if config.train_days else earliest
    if max(train_start, earliest) >= tune_start:
        raise TrainingDataError(
            f"no training day is left: the training set starts {times.min().date()} and tuning starts "
            f"{tune_start.date()}; build a longer training window (TAILOR_TRAINING_WINDOW_DAYS)"
        )
    return Windows(max(train_start, earliest), tune_start, calibration_start, test_start, end)


def load_training_rows(
    path: Path,
    history: History,
    features: Sequence[str] | None = None,
    between: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> pd.DataFrame:
    """The training set at ``path`` with each impression's surface and request id.

    Args:
        path: the Parquet written by `ml.features.training.write_training_set`.
        history: supplies surface and request_id by impression_id (it must hold the impressions read).
        features: the feature columns the model needs; each must be in the file.
        between: read only the rows with ``start <= event_timestamp < end`` (tz-aware; a Parquet filter, so
            row groups outside the range are skipped).

    Raises:
        TrainingDataError: the file is missing, or lacks a spine or feature column (named in the message).
    """
    if not path.exists():
        raise TrainingDataError(f"{path} does not exist: build the training set first (`tailor run`)")
    filters = None if between is None else [("event_timestamp", ">=", between[0]), ("event_timestamp", "<", between[1])]
    frame = pd.read_parquet(path, filters=filters)
    missing = [c for c in (*SPINE_COLUMNS, *(features or ())) if c not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"the training set {path} lacks column(s) {missing}: rebuild it with the feature service the model "
            "uses (`tailor run` rebuilds it), or train with the columns it has"
        )
    request = history.impressions[["impression_id", "surface", "request_id"]]
    rows = len(frame)
    frame = frame.merge(request, on="impression_id", how="left")
    if len(frame) != rows:  # the marts test impression_id's uniqueness; this is merge's validate="one_to_one", cheaper
        raise TrainingDataError(
            "an impression_id repeats in the published fct_impressions: rebuild the warehouse (`tailor run`)"
        )
    # In time order, ties by impression_id. Arrow sorts the two keys (already nearly in order) in milliseconds,
    # pandas' sort_values on a frame with a string key took most of this function's time.
    keys = pa.table({"t": pa.array(frame["event_timestamp"]), "i": pa.array(frame["impression_id"], pa.string())})
    order = pc.sort_indices(keys, [("t", "ascending"), ("i", "ascending")]).to_numpy()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame.take(order).reset_index(drop=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model's inputs: the feature service's columns, the position, the surface and the candidate scores."""
    service = [c for c in frame.columns if c not in (*SPINE_COLUMNS, *NOT_INPUTS, "surface", "request_id", "window")]
    service = [c for c in service if c not in SCORE_COLUMNS]
    return [*service, "surface", "position", *SCORE_COLUMNS]


def add_candidate_scores(
    frame: pd.DataFrame, history: History, windows: Windows, config: RankerConfig
) -> tuple[pd.DataFrame, dict[str, CandidateSet]]:
    """Each row with its window and every generator's score, from generators fitted before the row's block.

    Returns the frame (rows outside the windows dropped) and the candidate set fitted at each window's start
    ("tune", "calibration", "test"), which evaluation reuses to propose lists.
    """
    frame = frame.assign(window=windows.label(frame["event_timestamp"]))
    frame = frame.loc[frame["window"].isin(["train", "tune", "calibration", "test"])].copy()
    starts = [
        windows.train_start + timedelta(days=d)
        for d in range(0, (windows.tune_start - windows.train_start).days, REFIT_DAYS)
    ]
    blocks = [*starts, windows.tune_start, windows.calibration_start, windows.test_start]
    edges = [*blocks, windows.end]
    sets: dict[pd.Timestamp, CandidateSet] = {}
    for column in SCORE_COLUMNS:
        frame[column] = np.nan
    for start, stop in itertools.pairwise(edges):
        rows = (frame["event_timestamp"] >= start) & (frame["event_timestamp"] < stop)
        if not rows.any():
            continue
        sets[start] = fit_candidate_set(history, start, config.candidates)
        scores = sets[start].scores(frame.loc[rows, "user_id"].tolist(), frame.loc[rows, "content_id"].tolist())
        frame.loc[rows, list(SCORE_COLUMNS)] = scores.to_numpy()
    named = {
        name: sets[start]
        for name, start in (
            ("tune", windows.tune_start),
            ("calibration", windows.calibration_start),
            ("test", windows.test_start),
        )
        if start in sets
    }
    return frame, named


def check_trainable(frame: pd.DataFrame, window: str) -> None:
    """Raise TrainingDataError unless ``window`` has rows of both classes."""
    rows = frame.loc[frame["window"] == window, "clicked"]
    if rows.empty:
        raise TrainingDataError(
            f"the {window} window has no impressions: wait for more days or shorten the windows "
            "(TAILOR_RANKER_WARMUP_DAYS, _TRAIN_DAYS, _TUNE_DAYS, _CALIBRATION_DAYS and _TEST_DAYS)"
        )
    if rows.nunique() < 2:
        only = "clicked" if bool(rows.iloc[0]) else "not clicked"
        raise TrainingDataError(
            f"every impression in the {window} window ({len(rows):,}) is {only}: a click model needs both clicks "
            "and non-clicks. Check that click events carry their impression's request_id (docs/contract/click.md), "
            "and that the clicks were not set aside: as duplicates of an event id already used (the warning "
            "duplicates_repeat_their_event: e.g. another history ingested into this home) or quarantined "
            "(fct_rejected_rows)"
        )

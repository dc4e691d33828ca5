"""The ranker: a click model over the feature service, the position and the candidate scores.

A scikit-learn `HistGradientBoostingClassifier` learns P(click | features, position) from logged impressions,
with the position as a feature constrained to lower the click probability as it grows (the examination
effect). To rank, every candidate is scored *as if shown at position 1*: the position effect is the same for all
of them, so the order reflects relevance, not where the logging policy happened to put an item (the
"position as a feature" approach; Guo et al., "PAL: a position-bias aware learning framework for CTR prediction
in live recommender systems", RecSys 2019, compare it with their factorised variant). A naive model, trained
without the position, is kept for the comparison the benchmark reports.

Probabilities are corrected on a later window by Platt scaling on the logit of the score (a logistic regression of
the click on logit(p); Platt 1999, Niculescu-Mizil and Caruana 2005). It is strictly increasing, so the order is
the model's, with no ties; isotonic regression (Zadrozny and Elkan 2002), the other usual choice, maps the top of
the range to a few plateaus, which ties the very candidates a page is made of, and it cannot extrapolate to
position-1 scores above the logged ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from ml.ranker.dataset import CATEGORICAL, TrainingDataError

#: The position at which every candidate is scored to rank (the top of the list).
RANKING_POSITION = 1


_EPS = 1e-6


@dataclass(frozen=True)
class PlattCalibrator:
    """p -> sigmoid(slope * logit(p) + intercept), fitted by maximum likelihood on a later window."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, raw: np.ndarray, clicked: np.ndarray) -> PlattCalibrator:
        logits = _logit(raw).reshape(-1, 1)
        fitted = LogisticRegression(C=1e6, max_iter=1000).fit(logits, clicked.astype(bool))
        return cls(float(fitted.coef_[0, 0]), float(fitted.intercept_[0]))

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-(self.slope * _logit(raw) + self.intercept))))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


@dataclass
class RankerModel:
    """A fitted click model and everything needed to score new rows the same way.

    Attributes:
        features: input columns in order (categoricals included).
        categories: for each categorical column, the categories seen in training (others become missing).
        classifier: the fitted HistGradientBoostingClassifier.
        calibrator: map from raw to calibrated probability (None: uncalibrated).
        uses_position: False for the naive model, which ignores where an item was shown.
    """

    features: list[str]
    categories: dict[str, list[str]]
    classifier: HistGradientBoostingClassifier
    calibrator: PlattCalibrator | None = None
    uses_position: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    def matrix(self, frame: pd.DataFrame, position: int | None = None) -> pd.DataFrame:
        """The model's input frame from ``frame``; ``position`` overrides every row's position (e.g. 1 to rank).

        Raises:
            TrainingDataError: a feature column is missing (named in the message).
        """
        columns = dict.fromkeys(self.features)
        missing = [c for c in columns if c not in frame.columns and not (c == "position" and position is not None)]
        if missing:
            raise TrainingDataError(
                f"the rows to score lack feature column(s) {missing}: the model was trained on {self.features}"
            )
        columns_out: dict[str, Any] = {}
        for column in self.features:
            if column == "position":
                columns_out[column] = (
                    np.full(len(frame), float(position)) if position is not None else frame[column].to_numpy(float)
                )
            elif column in self.categories:
                columns_out[column] = pd.Categorical(frame[column].to_numpy(object), categories=self.categories[column])
            else:
                columns_out[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        # One constructor call: assigning columns one by one costs a copy each (milliseconds per request).
        return pd.DataFrame(columns_out, index=frame.index)

    def predict_raw(self, frame: pd.DataFrame, position: int | None = None) -> np.ndarray:
        """Uncalibrated P(click) per row (shape (n,))."""
        if len(frame) == 0:
            return np.empty(0)
        return np.asarray(self.classifier.predict_proba(self.matrix(frame, position))[:, 1])

    def predict(self, frame: pd.DataFrame, position: int | None = None) -> np.ndarray:
        """Calibrated P(click) per row: at each row's own position, or at ``position`` for every row."""
        raw = self.predict_raw(frame, position)
        return raw if self.calibrator is None or len(raw) == 0 else np.asarray(self.calibrator.predict(raw))

    def relevance(self, frame: pd.DataFrame) -> np.ndarray:
        """The ranking score: P(click) as if each row were shown at the top (the naive model ignores position)."""
        return self.predict(frame, RANKING_POSITION if self.uses_position else None)

    def calibrate(self, frame: pd.DataFrame, clicked: Sequence[bool] | np.ndarray | pd.Series) -> None:
        """Fit the correction on a later window's rows and labels (at their logged positions)."""
        self.calibrator = PlattCalibrator.fit(self.predict_raw(frame), np.asarray(clicked, dtype=bool))

    def compile(self) -> CompiledRanker:
        """The same model prepared for request-time scoring (see `CompiledRanker`).

        Raises:
            UnsupportedModelError: the classifier's fitted internals are not the ones `CompiledRanker` reads.
        """
        return CompiledRanker.from_model(self)


class UnsupportedModelError(TypeError):
    """A fitted classifier `CompiledRanker` cannot read (another estimator, or another scikit-learn layout)."""


class CompiledRanker:
    """A fitted `RankerModel` read once into arrays, to score one request's rows without pandas or validation.

    `RankerModel.predict` builds a frame of categoricals, and the classifier's `ColumnTransformer` then validates it
    and ordinal-encodes the categoricals on every call: ~8 ms for 250 rows, against well under 1 ms for the trees.
    Here the caller builds the input as a float64 matrix in the order the trees read it (`columns`: the
    ColumnTransformer's output order, categoricals first, each as its ordinal code, NaN for a missing or unknown
    category; `encode` does it), and `predict` runs the fitted trees, the classifier's own link function and the
    Platt calibration: the same probabilities as `RankerModel.predict`, which a test checks on real rows.

    It reads the fitted `HistGradientBoostingClassifier`'s predictors, bin mapper, baseline and loss (scikit-learn
    1.9's layout); `from_model` refuses any other layout with `UnsupportedModelError`, and the caller then scores
    through `RankerModel.predict`.
    """

    def __init__(self, model: RankerModel) -> None:
        classifier = model.classifier
        needed = ("_predictors", "_bin_mapper", "_baseline_prediction", "_loss", "_preprocessor")
        if not isinstance(classifier, HistGradientBoostingClassifier) or not all(
            hasattr(classifier, name) for name in needed
        ):
            raise UnsupportedModelError(
                f"cannot compile a {type(classifier).__name__} without {needed}: score with RankerModel.predict"
            )
        self.model = model
        preprocessor = classifier._preprocessor
        names = list(model.features)
        self.codes: dict[str, dict[str, float]] = {}
        if preprocessor is None:
            self.columns: tuple[str, ...] = tuple(names)
        else:
            if list(preprocessor.feature_names_in_) != names:
                raise UnsupportedModelError("the classifier was fitted on other columns than the model's features")
            order: list[str | None] = [None] * len(names)
            for name, transformer, selected in preprocessor.transformers_:
                out = preprocessor.output_indices_[name]
                picked = np.asarray(selected)
                picked = np.flatnonzero(picked) if picked.dtype == bool else picked.astype(np.int64)
                if out.stop - out.start != len(picked):
                    raise UnsupportedModelError(f"the {name!r} transformer does not map one column to one column")
                for position, column in zip(range(out.start, out.stop), picked, strict=True):
                    order[position] = names[int(column)]
                if name == "encoder":
                    if not _missing_encoded_as_nan(transformer):
                        raise UnsupportedModelError("the category encoder does not encode a missing value as NaN")
                    for column, seen in zip(picked, transformer.categories_, strict=True):
                        # A NaN among the categories is the missing value the training rows held (an item without
                        # a catalog record): the encoder gives it NaN, as `encode` does, never its index.
                        if not all(isinstance(c, str) or _is_nan(c) for c in seen):
                            raise UnsupportedModelError(f"{names[int(column)]!r} has categories that are not text")
                        allowed = set(model.categories.get(names[int(column)], []))
                        self.codes[names[int(column)]] = {
                            str(c): float(n) for n, c in enumerate(seen) if isinstance(c, str) and c in allowed
                        }
            if any(c is None for c in order):
                raise UnsupportedModelError("the classifier's preprocessor does not pass every feature to the trees")
            self.columns = tuple(str(c) for c in order)
        self.index = {name: n for n, name in enumerate(self.columns)}
        self._predictors = classifier._predictors
        self._bitsets, self._f_idx_map = classifier._bin_mapper.make_known_categories_bitsets()
        self._baseline = classifier._baseline_prediction
        self._loss = classifier._loss

    @classmethod
    def from_model(cls, model: RankerModel) -> CompiledRanker:
        """See the class docstring. Raises UnsupportedModelError."""
        return cls(model)

    def encode(self, column: str, values: np.ndarray | Sequence[Any]) -> np.ndarray:
        """One input column as the trees read it (float64): a categorical's code (NaN when missing or not seen in
        training), a number as `RankerModel.matrix` converts it (anything not numeric becomes NaN)."""
        codes = self.codes.get(column)
        if codes is not None:
            return np.array([codes.get(v, np.nan) if isinstance(v, str) else np.nan for v in values], dtype=float)
        return np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)

    def encode_value(self, column: str, value: Any) -> float:
        """`encode` for one value (the same result for a column of it)."""
        codes = self.codes.get(column)
        if codes is not None:
            return codes.get(value, np.nan) if isinstance(value, str) else np.nan
        if value is None or isinstance(value, bool | int | float | np.number):
            return np.nan if value is None else float(value)
        return float(self.encode(column, [value])[0])

    def matrix(self, frame: pd.DataFrame, position: int | None = None) -> np.ndarray:
        """The input matrix for ``frame`` (rows as `RankerModel.matrix` reads them), columns in `columns` order.

        Raises:
            TrainingDataError: a feature column is missing.
        """
        if position is None and "position" in self.index and "position" not in frame.columns:
            raise TrainingDataError("the rows to score lack feature column(s) ['position']")
        out = np.empty((len(frame), len(self.columns)))
        for n, column in enumerate(self.columns):
            if column == "position" and position is not None:
                out[:, n] = float(position)
            elif column not in frame.columns:
                raise TrainingDataError(
                    f"the rows to score lack feature column(s) [{column!r}]: the model was trained on "
                    f"{self.model.features}"
                )
            else:
                out[:, n] = self.encode(column, frame[column].to_numpy(object))
        return out

    def predict(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Calibrated P(click) per row of ``X`` ((n, len(columns)) float64, rows built with `encode`), on one
        thread by default (a request's few hundred rows cost less than OpenMP's start); a batch of many users'
        rows can take more (each row's sum over the trees is the same whatever the threads)."""
        raw = np.zeros((len(X), self._baseline.shape[-1]), dtype=self._baseline.dtype, order="F")
        raw += self._baseline
        if len(X):
            data = np.ascontiguousarray(X, dtype=np.float64)
            for per_iteration in self._predictors:
                for k, predictor in enumerate(per_iteration):
                    raw[:, k] += predictor.predict(data, self._bitsets, self._f_idx_map, threads)
        return self._probability(raw)

    def predict_variants(
        self, X: np.ndarray, column: str, values: Sequence[float], threads: int = 1
    ) -> list[np.ndarray]:
        """`predict` of ``X`` with ``column`` set to each of ``values`` (encoded), one array per value.

        A tree that never splits on ``column`` gives every variant the same output, so it runs once for all of
        them (e.g. the batch's two surfaces); each variant's sum over the trees is taken in the same order as
        `predict`'s, so the results equal `predict` of each variant bit for bit. ``X`` is changed (its ``column``
        holds the last value).
        """
        at = self.index[column]
        raws = [np.zeros((len(X), self._baseline.shape[-1]), dtype=self._baseline.dtype, order="F") for _ in values]
        for raw in raws:
            raw += self._baseline
        if len(X) and len(values):
            data = np.ascontiguousarray(X, dtype=np.float64)
            data[:, at] = values[0]
            for per_iteration in self._predictors:
                for k, predictor in enumerate(per_iteration):
                    nodes = predictor.nodes
                    if not np.any((nodes["feature_idx"] == at) & (nodes["is_leaf"] == 0)):
                        shared = predictor.predict(data, self._bitsets, self._f_idx_map, threads)
                        for raw in raws:
                            raw[:, k] += shared
                        continue
                    for raw, value in zip(raws, values, strict=True):
                        data[:, at] = value
                        raw[:, k] += predictor.predict(data, self._bitsets, self._f_idx_map, threads)
            X[:, at] = data[:, at]
        return [self._probability(raw) for raw in raws]

    def _probability(self, raw: np.ndarray) -> np.ndarray:
        """The link function and the calibration of raw tree sums ((n, 1))."""
        probability = np.asarray(self._loss.predict_proba(raw)[:, 1])
        calibrator = self.model.calibrator
        if calibrator is None or len(probability) == 0:
            return probability
        return np.asarray(calibrator.predict(probability))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _missing_encoded_as_nan(encoder: Any) -> bool:
    """Whether the fitted OrdinalEncoder gives a missing value NaN (scikit-learn's HistGradientBoosting sets
    ``encoded_missing_value=np.nan``, so the trees send it down their missing-value branch)."""
    return _is_nan(getattr(encoder, "encoded_missing_value", None))


def fit_ranker(
    train: pd.DataFrame,
    features: Sequence[str],
    params: Mapping[str, Any],
    seed: int,
    uses_position: bool = True,
    max_iter: int | None = None,
) -> RankerModel:
    """Fit the click model on ``train`` (rows with ``clicked``).

    Args:
        params: HistGradientBoostingClassifier parameters (learning_rate, max_leaf_nodes, ...).
        uses_position: False drops the position feature (the naive model).
        max_iter: boosting iterations (overrides ``params``).

    Raises:
        TrainingDataError: no rows, one class only, or a missing feature column.
    """
    if train.empty:
        raise TrainingDataError("no training rows: the training window holds no impressions")
    labels = train["clicked"].astype(bool).to_numpy()
    if labels.all() or not labels.any():
        raise TrainingDataError(
            "the training rows are all "
            + ("clicked" if labels.all() else "unclicked")
            + ": a click model needs both. Check that clicks carry their impression's request_id"
        )
    columns = [c for c in features if uses_position or c != "position"]
    categories = {c: sorted(train[c].dropna().astype(str).unique().tolist()) for c in columns if c in CATEGORICAL}
    model = RankerModel(columns, categories, _classifier(columns, params, seed, max_iter), None, uses_position)
    model.params = dict(params)
    model.classifier.fit(model.matrix(train), labels)
    return model


def _classifier(
    columns: Sequence[str], params: Mapping[str, Any], seed: int, max_iter: int | None
) -> HistGradientBoostingClassifier:
    settings = {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 50, "l2_regularization": 1.0}
    settings.update({k: v for k, v in params.items() if k != "max_iter"})
    return HistGradientBoostingClassifier(
        **settings,
        max_iter=max_iter or int(params.get("max_iter", 200)),
        categorical_features="from_dtype",
        # The click probability never rises further down the list (examination only falls with position).
        monotonic_cst={"position": -1} if "position" in columns else None,
        # Early stopping is done by the caller on a later time window: the built-in one holds out a *random*
        # share of the training rows, which would leak later days into the choice.
        early_stopping=False,
        random_state=seed,
    )

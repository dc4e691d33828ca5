"""The request-time forms of the candidate generators and the ranker give exactly what their frame forms give.

`recommend` serves from `OnlineCandidates` (one user's candidates as arrays), EASE's few-user scoring and
`CompiledRanker` (the ranker's trees read once); batch pages, training and evaluation use `CandidateSet.candidates`,
the dense EASE product and `RankerModel.predict`. The references here are those public paths on the same inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ml.candidates import EASE, Interactions
from ml.candidates.content import ContentAffinity
from ml.candidates.online import OnlineCandidates
from ml.candidates.popularity import Popularity
from ml.candidates.union import CandidateConfig, CandidateSet, fit_candidate_set
from ml.history import History
from ml.ranker.model import RANKING_POSITION, PlattCalibrator, RankerModel, UnsupportedModelError, fit_ranker

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """Tiny fits and predictions: on a busy 2-core machine OpenMP's threads cost seconds, one thread milliseconds."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _interactions(seed: int, users: int = 60, items: int = 40, weighted: bool = False) -> Interactions:
    rng = np.random.default_rng(seed)
    pairs = {(f"u{u:03d}", f"c{c:03d}") for u in range(users) for c in rng.choice(items, rng.integers(1, 12))}
    frame = pd.DataFrame(sorted(pairs), columns=["user_id", "content_id"])
    frame["w"] = rng.integers(1, 5, len(frame)).astype(float)
    return Interactions.from_frame(frame, weight_col="w" if weighted else None)


@pytest.mark.parametrize("binarize", [True, False])
def test_ease_scores_a_few_users_exactly_as_the_dense_product(binarize: bool) -> None:
    """The gather over a user's consumed rows of B adds the same float64 products in the same order as scipy's
    sparse x dense product: equal bit for bit, not just close."""
    model = EASE(l2=3.0, binarize=binarize).fit(_interactions(1, weighted=not binarize))
    assert model._train is not None and model._weights is not None
    dense = np.asarray(model._train @ model._weights.astype(np.float64))
    for rows in ([0], [5, 17], list(range(8))):
        got = model._score_rows(np.array(rows))
        np.testing.assert_array_equal(got, dense[rows])
    assert model._score_rows(np.arange(40)).shape == (40, model.interactions.n_items)  # the batch path


def _history(seed: int) -> History:
    """Impressions, consumption and a catalog of 30 items in 3 categories over 10 days."""
    rng = np.random.default_rng(seed)
    n = 3000
    items = [f"c{c:02d}" for c in range(30)]
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u:02d}" for u in rng.integers(0, 40, n)],
            "content_id": rng.choice(items, n),
            "occurred_at": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 10 * 24 * 60, n)],
            "clicked": rng.random(n) < 0.2,
            "surface": rng.choice(["home", "feed"], n),
            "position": 1,
        }
    )
    frame["clicked_at"] = frame["occurred_at"].where(frame["clicked"])
    frame["impression_id"] = [f"i{n}" for n in range(len(frame))]
    frame["request_id"] = frame["impression_id"]
    clicked = frame.loc[frame["clicked"]].drop_duplicates(["user_id", "content_id"])
    viewed = frame.sample(200, random_state=seed).drop_duplicates(["user_id", "content_id"])
    consumed = pd.concat([clicked, viewed]).drop_duplicates(["user_id", "content_id"])
    interactions = pd.DataFrame(
        {
            "user_id": consumed["user_id"],
            "content_id": consumed["content_id"],
            "first_consumed_at": consumed["occurred_at"],
            "first_clicked_at": consumed["clicked_at"],
            "clicks": consumed["clicked"].astype(int),
            "views": 1,
        }
    )
    content = pd.DataFrame(
        {
            "content_id": items,
            "category": [("news", "sport", "food")[c % 3] for c in range(30)],
            "format": "article",
            "published_at": [T0 + timedelta(hours=7 * c) for c in range(30)],
        }
    )
    return History(frame, interactions, content)


@pytest.mark.parametrize("k", [1, 4, 25])
def test_one_users_candidates_are_the_candidate_sets_rows(k: int) -> None:
    """Same rows, same order (popularity's, content's, then CF's; first proposal wins), same scores and sources,
    for users CF knows, users only content knows, and users nobody knows."""
    fitted = fit_candidate_set(_history(2), T0 + timedelta(days=8))
    online = OnlineCandidates(fitted)
    assert fitted.seen is not None
    users = [*fitted.seen.users, "u39", "ghost"]
    for user in users:
        expected = fitted.candidates([user], k)
        got = online.propose(user, k)
        pd.testing.assert_frame_equal(got.frame(), expected, check_exact=True)
        assert len(got) == len(expected) > 0


def test_the_default_k_is_the_candidate_sets() -> None:
    fitted = fit_candidate_set(_history(3), T0 + timedelta(days=8))
    user = str(fitted.seen.users[0]) if fitted.seen is not None else "u00"
    pd.testing.assert_frame_equal(OnlineCandidates(fitted).propose(user).frame(), fitted.candidates([user]))


def test_fitting_on_the_popularity_window_is_fitting_on_everything_before() -> None:
    """`fit_candidate_set` reads only popularity's trailing window of impressions; every generator comes out as if
    fitted on the whole history before the moment (the reference built here the plain way, from `before`)."""
    history = _history(4)
    moment = T0 + timedelta(days=9, hours=5)
    config = CandidateConfig(popularity_window_days=3)
    fitted = fit_candidate_set(history, moment, config)
    known = history.before(moment)
    catalog = known.content["content_id"].astype(str)
    consumed = known.interactions.loc[known.interactions["content_id"].isin(set(catalog)), ["user_id", "content_id"]]
    seen = Interactions.from_frame(consumed, items=catalog)
    popularity = Popularity(3, config.popularity_prior_impressions).fit_impressions(
        known.impressions, now=moment, seen=seen
    )
    content = ContentAffinity(half_life_hours=config.content_half_life_hours).fit_content(
        known.clicks(), known.content, popularity.scores, moment, seen=seen
    )
    reference = CandidateSet(pd.Timestamp(moment), popularity, EASE(l2=config.cf_l2).fit(seen), content, seen, config)
    users = [*map(str, seen.users), "ghost"]
    pairs = pd.MultiIndex.from_product([users, catalog.tolist()]).to_frame(index=False)
    got = fitted.scores(pairs[0].tolist(), pairs[1].tolist())
    pd.testing.assert_frame_equal(got, reference.scores(pairs[0].tolist(), pairs[1].tolist()), check_exact=True)
    assert got["score_popularity"].notna().any() and got["score_cf"].notna().any()


def _ranker(features: list[str], calibrated: bool, missing_categories: bool = False) -> RankerModel:
    """A small ranker on rows where the click depends on a number, the category and the position;
    ``missing_categories``: some training rows have no category (items without a catalog record)."""
    rng = np.random.default_rng(4)
    n = 1500
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "category": rng.choice(["news", "sport", "food"], n),
            "surface": rng.choice(["home", "feed"], n),
            "position": rng.integers(1, 10, n).astype(float),
        }
    )
    frame.loc[rng.random(n) < 0.05, "x"] = np.nan
    if missing_categories:
        frame.loc[rng.random(n) < 0.1, "category"] = None
    logit = frame["x"].fillna(0) + (frame["category"] == "sport") - 0.2 * frame["position"]
    frame["clicked"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    with threadpool_limits(limits=1, user_api="openmp"):  # module fixtures start before the autouse one
        model = fit_ranker(frame, features, {"min_samples_leaf": 20}, seed=1, max_iter=15)
    if calibrated:
        model.calibrate(frame.iloc[:500], frame["clicked"].iloc[:500])
    return model


@pytest.fixture(scope="module")
def rankers() -> dict[str, RankerModel]:
    full = ["x", "category", "surface", "position"]
    return {
        "calibrated": _ranker(full, calibrated=True),
        "uncalibrated": _ranker(full, calibrated=False),
        "numbers only": _ranker(["x", "position"], calibrated=True),
        "trained with missing categories": _ranker(full, calibrated=True, missing_categories=True),
    }


def _rows_to_score() -> pd.DataFrame:
    """Rows with what serving meets: unseen and missing categories, missing numbers, numbers as objects."""
    return pd.DataFrame(
        {
            "x": [0.3, np.nan, -1.2, 2.0, None, 0.0, 5.0],
            "category": ["sport", "news", "unseen", None, "food", "sport", "news"],
            "surface": ["home", "feed", "home", "home", "elsewhere", "feed", "home"],
            "position": [3.0, 1.0, 2.0, 9.0, 4.0, 1.0, 7.0],
        },
    ).astype({"x": object})


# "trained with missing categories": scikit-learn then lists NaN among the encoder's categories (found by a trial
# whose items had no category on their first day: every page fell back to the slower frame path).
@pytest.mark.parametrize("kind", ["calibrated", "uncalibrated", "trained with missing categories"])
def test_the_compiled_ranker_scores_as_the_classifiers_predict_proba(
    kind: str, rankers: dict[str, RankerModel]
) -> None:
    model = rankers[kind]
    compiled = model.compile()
    rows = _rows_to_score()
    assert compiled.columns[:2] == ("category", "surface")  # the ColumnTransformer puts categoricals first
    for position in (None, RANKING_POSITION):
        expected = model.classifier.predict_proba(model.matrix(rows, position))[:, 1]
        if model.calibrator is not None:
            expected = model.calibrator.predict(expected)
        got = compiled.predict(compiled.matrix(rows, position))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got, model.predict(rows, position), rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        compiled.predict(compiled.matrix(rows, RANKING_POSITION)), model.relevance(rows), rtol=1e-12, atol=0
    )


def test_encoding_one_value_is_encoding_a_column_of_it(rankers: dict[str, RankerModel]) -> None:
    model = rankers["uncalibrated"]
    compiled = model.compile()
    for column, values in (("category", ["food", "unseen", None]), ("x", [1.5, None, 3, True, "2.5"])):
        for value in values:
            one = compiled.encode_value(column, value)
            column_of_it = compiled.encode(column, [value, value])
            np.testing.assert_array_equal(column_of_it, [one, one])
    assert compiled.encode_value("category", "food") == model.categories["category"].index("food")


def test_a_model_without_categoricals_compiles_too(rankers: dict[str, RankerModel]) -> None:
    model = rankers["numbers only"]
    assert model.classifier._preprocessor is None
    rows = _rows_to_score()
    compiled = model.compile()
    assert compiled.columns == ("x", "position")
    np.testing.assert_allclose(
        compiled.predict(compiled.matrix(rows, RANKING_POSITION)), model.relevance(rows), rtol=1e-12, atol=0
    )


def test_an_estimator_it_cannot_read_is_refused_with_the_way_out() -> None:
    X = sparse.random(50, 2, density=1.0, random_state=0).toarray()
    other = LogisticRegression().fit(X, np.arange(50) % 2)
    model = RankerModel(["a", "b"], {}, other, PlattCalibrator(1.0, 0.0))  # type: ignore[arg-type]
    with pytest.raises(UnsupportedModelError, match=r"RankerModel\.predict"):
        model.compile()


def test_a_missing_column_is_the_same_clear_error(rankers: dict[str, RankerModel]) -> None:
    from ml.ranker.dataset import TrainingDataError

    model = rankers["uncalibrated"]
    with pytest.raises(TrainingDataError, match=r"lack feature column\(s\) \['x'\]"):
        model.compile().matrix(_rows_to_score().drop(columns="x"), RANKING_POSITION)


def test_surface_variants_equal_predict_of_each_surface_and_differ_where_the_surface_matters() -> None:
    """`CompiledRanker.predict_variants` runs a tree that never splits on the column once for every value, and the
    others once per value: each variant equals `predict` of that value bit for bit, and a model whose clicks depend
    on the surface scores the surfaces apart (the integration test's champion may not reach its surface splits)."""
    rng = np.random.default_rng(9)
    n = 2000
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "surface": rng.choice(["home", "feed"], n),
            "position": rng.integers(1, 10, n).astype(float),
        }
    )
    logit = frame["x"] + 1.5 * (frame["surface"] == "feed") - 0.2 * frame["position"]
    frame["clicked"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    with threadpool_limits(limits=1, user_api="openmp"):
        model = fit_ranker(frame, ["x", "surface", "position"], {"min_samples_leaf": 20}, seed=1, max_iter=15)
    compiled = model.compile()
    X = compiled.matrix(frame.head(300), RANKING_POSITION)
    values = [compiled.encode_value("surface", s) for s in ("home", "feed")]
    variants = compiled.predict_variants(X.copy(), "surface", values)
    for value, got in zip(values, variants, strict=True):
        X[:, compiled.index["surface"]] = value
        assert got.tolist() == compiled.predict(X).tolist()
    assert (variants[1] > variants[0]).mean() > 0.9  # feed clicks more, as planted

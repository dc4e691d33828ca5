"""Collaborative-filtering candidate generators: the candidate contract, behaviour on planted structure, and each
model against an independent computation of its formula (ridge regressions for EASE, scikit-learn cosine for
item-kNN, a full numpy SVD for PureSVD, the dense normal equations for ALS)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics.pairwise import cosine_similarity

from ml.candidates import (
    CANDIDATE_COLUMNS,
    EASE,
    CandidateGenerator,
    ImplicitALS,
    Interactions,
    ItemKNN,
    NotFittedError,
    PureSVD,
)
from ml.candidates.base import top_k
from ml.candidates.scoring import MatrixScoringGenerator

pytestmark = pytest.mark.unit


def make_generators() -> list[MatrixScoringGenerator]:
    return [
        EASE(l2=5.0),
        ItemKNN(neighbors=50, shrink=0.0),
        PureSVD(factors=3, seed=0),
        ImplicitALS(factors=8, l2=0.5, alpha=5.0, iterations=10, seed=0),
    ]


GENERATOR_IDS = ["ease", "item_knn", "pure_svd", "als"]


def block_world(seed: int = 0) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """Three user groups, each interacting only with its own block of items (60% of it, at random).

    Blocks differ in size so their leading singular values differ (no mixing between blocks in an SVD).
    """
    rng = np.random.default_rng(seed)
    rows, user_block, item_block = [], {}, {}
    for b, (n_users, n_items) in enumerate([(30, 20), (25, 15), (20, 12)]):
        items = [f"b{b}_i{j:02d}" for j in range(n_items)]
        item_block.update(dict.fromkeys(items, b))
        for u in range(n_users):
            user = f"b{b}_u{u:02d}"
            user_block[user] = b
            chosen = rng.choice(items, size=int(0.6 * n_items), replace=False)
            rows += [(user, item) for item in chosen]
    return pd.DataFrame(rows, columns=["user_id", "content_id"]), user_block, item_block


@pytest.fixture(scope="module")
def world() -> tuple[Interactions, dict[str, int], dict[str, int]]:
    df, user_block, item_block = block_world()
    return Interactions.from_frame(df), user_block, item_block


# -- Interactions ---------------------------------------------------------------------------------------------------


def test_from_frame_sums_duplicates_and_sorts_ids() -> None:
    df = pd.DataFrame({"user_id": [2, 1, 1, 1], "content_id": ["b", "a", "a", "c"], "w": [1.0, 2.0, 0.5, 0.0]})
    counted = Interactions.from_frame(df)
    assert list(counted.users) == ["1", "2"] and list(counted.items) == ["a", "b", "c"]
    assert counted.matrix.dtype == np.float32
    assert counted.matrix.toarray().tolist() == [[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    weighted = Interactions.from_frame(df, weight_col="w")
    # A zero weight is no interaction at all.
    assert weighted.matrix.toarray().tolist() == [[2.5, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert weighted.seen(["1", "2", "nobody"]) == [{"a"}, {"b"}, set()]
    assert counted.item_counts().to_dict() == {"a": 1, "b": 1, "c": 1}


def test_from_frame_with_an_item_universe() -> None:
    df = pd.DataFrame({"user_id": ["u"], "content_id": ["b"]})
    inter = Interactions.from_frame(df, items=["c", "b", "a"])
    assert list(inter.items) == ["a", "b", "c"]
    assert inter.matrix.toarray().tolist() == [[0.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="name items outside `items`"):
        Interactions.from_frame(df, items=["a"])


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"user_id": ["u"], "item": ["a"]}), {}, r"lacks column\(s\) \['content_id'\]"),
        (pd.DataFrame({"user_id": [None], "content_id": ["a"]}), {}, "null user_id"),
        (pd.DataFrame({"user_id": ["u"], "content_id": ["a"], "w": [-1.0]}), {"weight_col": "w"}, "negative"),
        (pd.DataFrame({"user_id": ["u"], "content_id": ["a"], "w": ["x"]}), {"weight_col": "w"}, "non-numeric"),
    ],
)
def test_from_frame_bad_input(frame: pd.DataFrame, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Interactions.from_frame(frame, **kwargs)


# -- the candidate contract -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("generator", make_generators(), ids=GENERATOR_IDS)
def test_candidates_keep_the_contract(generator: MatrixScoringGenerator, world) -> None:
    inter, _, _ = world
    assert isinstance(generator, CandidateGenerator)
    users = ["b0_u01", "b2_u05", "stranger", "b0_u01"]
    out = generator.fit(inter).candidates(users, k=4)
    assert tuple(out.columns) == CANDIDATE_COLUMNS
    # Unknown users get no rows; duplicates are served once; users keep the input order.
    assert list(dict.fromkeys(out["user_id"])) == ["b0_u01", "b2_u05"]
    for _, group in out.groupby("user_id", sort=False):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert group["score"].is_monotonic_decreasing
        assert len(group) == 4
    assert (out["generator"] == generator.name).all()
    assert out["rank"].dtype == np.int64 and out["score"].dtype == np.float64


@pytest.mark.parametrize("generator", make_generators(), ids=GENERATOR_IDS)
def test_block_users_get_candidates_from_their_own_block(generator: MatrixScoringGenerator, world) -> None:
    inter, user_block, item_block = world
    out = generator.fit(inter).candidates(list(inter.users), k=3)
    assert len(out) == 3 * inter.n_users
    assert (out["user_id"].map(user_block) == out["content_id"].map(item_block)).all()


@pytest.mark.parametrize("generator", make_generators(), ids=GENERATOR_IDS)
def test_exclude_seen(generator: MatrixScoringGenerator, world) -> None:
    inter, _, _ = world
    users = list(inter.users)
    generator.fit(inter)
    seen = dict(zip(users, inter.seen(users), strict=True))
    fresh = generator.candidates(users, k=4)
    assert not any(item in seen[user] for user, item in zip(fresh["user_id"], fresh["content_id"], strict=True))
    # Without exclusion the same ranking comes back with the seen items in it; dropping them gives the above.
    everything = generator.candidates(users, k=inter.n_items, exclude_seen=False)
    is_seen = np.array(
        [item in seen[u] for u, item in zip(everything["user_id"], everything["content_id"], strict=True)]
    )
    assert is_seen.any()
    unseen = everything[~is_seen].groupby("user_id", sort=False).head(4)
    cols = ["user_id", "content_id", "score"]
    pd.testing.assert_frame_equal(unseen[cols].reset_index(drop=True), fresh[cols].reset_index(drop=True))


def test_ties_are_broken_by_content_id() -> None:
    # Items "y" and "x" have identical histories, so every user who saw "m" scores them equally.
    df = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u2", "u2", "u3", "u4"],
            "content_id": ["m", "y", "x", "m", "y", "x", "m", "z"],
        }
    )
    knn = ItemKNN(neighbors=10, shrink=0.0).fit(Interactions.from_frame(df))
    out = knn.candidates(["u3"], k=2)
    assert out["content_id"].tolist() == ["x", "y"]
    assert out["score"].iloc[0] == out["score"].iloc[1]
    # Same result whatever the row order of the input.
    shuffled = ItemKNN(neighbors=10, shrink=0.0).fit(Interactions.from_frame(df.sample(frac=1.0, random_state=3)))
    pd.testing.assert_frame_equal(shuffled.candidates(["u3"], k=2), out)


def test_top_k_selection() -> None:
    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.5, -np.inf],
            [-np.inf, -np.inf, 1.0, -np.inf, np.nan],
        ]
    )
    rows, cols = top_k(scores, 3)
    # Row 0: 0.9 first, then the tie at 0.5 in column order; row 1: only one finite score.
    assert rows.tolist() == [0, 0, 0, 1]
    assert cols.tolist() == [1, 0, 2, 2]
    assert top_k(np.empty((0, 4)), 2)[0].size == 0


def test_item_knn_gives_fewer_rows_when_the_neighbourhood_is_small() -> None:
    df = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "content_id": ["a", "b", "a", "c"]})
    out = ItemKNN(neighbors=10, shrink=0.0).fit(Interactions.from_frame(df)).candidates(["u2", "u3"], k=5)
    # u2 saw "a", whose only neighbour is "b"; "c" co-occurs with nothing.
    assert out[["user_id", "content_id"]].values.tolist() == [["u2", "b"]]


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_k(k, world) -> None:
    inter, _, _ = world
    with pytest.raises(ValueError, match="k must be a positive integer"):
        EASE().fit(inter).candidates(["b0_u01"], k=k)


def test_not_fitted_and_bad_arguments(world) -> None:
    inter, _, _ = world
    with pytest.raises(NotFittedError, match="call fit"):
        ItemKNN().candidates(["b0_u01"], k=3)
    with pytest.raises(ValueError, match="not the single string"):
        EASE().fit(inter).candidates("b0_u01", k=3)
    with pytest.raises(TypeError, match="takes an Interactions"):
        EASE().fit(pd.DataFrame())  # type: ignore[arg-type]
    empty = Interactions.from_frame(pd.DataFrame({"user_id": [], "content_id": []}))
    with pytest.raises(ValueError, match="empty interaction matrix"):
        EASE().fit(empty)
    with pytest.raises(ValueError, match="limit is 10 items"):
        EASE(max_items=10).fit(inter)
    with pytest.raises(ValueError, match="factors < min"):
        PureSVD(factors=47).fit(inter)
    for make in (
        lambda: EASE(l2=0),
        lambda: EASE(dropout=1.0),
        lambda: ItemKNN(neighbors=0),
        lambda: ImplicitALS(alpha=-1),
    ):
        with pytest.raises(ValueError):
            make()


def test_unknown_users_only_get_an_empty_frame(world) -> None:
    inter, _, _ = world
    out = EASE().fit(inter).candidates(["nobody"], k=3)
    assert out.empty and tuple(out.columns) == CANDIDATE_COLUMNS


def test_score_pairs_match_candidate_scores(world) -> None:
    inter, _, _ = world
    model = EASE(l2=5.0).fit(inter)
    cands = model.candidates(["b0_u01", "b1_u03"], k=3)
    scores = model.score_pairs(cands["user_id"].tolist(), cands["content_id"].tolist())
    np.testing.assert_allclose(scores, cands["score"].to_numpy())
    assert np.isnan(model.score_pairs(["nobody", "b0_u01"], ["b0_i01", "no-such-item"])).all()
    with pytest.raises(ValueError, match="one of each per pair"):
        model.score_pairs(["b0_u01"], [])


# -- each model against an independent computation -------------------------------------------------------------------


def small_matrix(seed: int = 4) -> tuple[Interactions, np.ndarray]:
    rng = np.random.default_rng(seed)
    dense = (rng.random((40, 12)) < 0.3).astype(float)
    dense[0, :] = 1.0  # every item has at least one interaction
    rows, cols = np.nonzero(dense)
    df = pd.DataFrame({"user_id": [f"u{r:02d}" for r in rows], "content_id": [f"i{c:02d}" for c in cols]})
    return Interactions.from_frame(df), dense


def all_scores(model: MatrixScoringGenerator, inter: Interactions) -> np.ndarray:
    users = np.repeat(inter.users.to_numpy(), inter.n_items)
    items = np.tile(inter.items.to_numpy(), inter.n_users)
    return model.score_pairs(list(users), list(items)).reshape(inter.n_users, inter.n_items)


def test_ease_weights_are_the_constrained_ridge_regressions() -> None:
    # EASE's column j is the ridge regression of item j on all other items (zero diagonal), penalty lambda.
    inter, X = small_matrix()
    l2 = 3.0
    model = EASE(l2=l2).fit(inter)
    expected = np.zeros((X.shape[1], X.shape[1]))
    for j in range(X.shape[1]):
        others = [i for i in range(X.shape[1]) if i != j]
        expected[others, j] = Ridge(alpha=l2, fit_intercept=False).fit(X[:, others], X[:, j]).coef_
    np.testing.assert_allclose(all_scores(model, inter), X @ expected, atol=1e-5)


def test_edlae_is_ease_with_a_popularity_scaled_penalty() -> None:
    # Dropout p adds p / (1 - p) * |U_i| to item i's penalty: ridge with per-feature penalties, solved by scaling
    # feature i by 1 / sqrt(penalty_i) and using a unit penalty.
    inter, X = small_matrix()
    l2, p = 2.0, 0.3
    penalty = l2 + p / (1 - p) * X.sum(axis=0)
    expected = np.zeros((X.shape[1], X.shape[1]))
    for j in range(X.shape[1]):
        others = [i for i in range(X.shape[1]) if i != j]
        scale = 1 / np.sqrt(penalty[others])
        coef = Ridge(alpha=1.0, fit_intercept=False).fit(X[:, others] * scale, X[:, j]).coef_
        expected[others, j] = coef * scale
    np.testing.assert_allclose(all_scores(EASE(l2=l2, dropout=p).fit(inter), inter), X @ expected, atol=1e-5)


def test_item_knn_is_cosine_similarity_without_pruning() -> None:
    inter, X = small_matrix()
    sim = cosine_similarity(X.T)
    np.fill_diagonal(sim, 0.0)
    model = ItemKNN(neighbors=X.shape[1], shrink=0.0).fit(inter)
    np.testing.assert_allclose(all_scores(model, inter), X @ sim, atol=1e-12)
    # With shrinkage: |U_i & U_j| / (sqrt|U_i| sqrt|U_j| + 2).
    co = X.T @ X
    norms = np.sqrt(np.diag(co))
    shrunk = co / (np.outer(norms, norms) + 2.0)
    np.fill_diagonal(shrunk, 0.0)
    np.testing.assert_allclose(all_scores(ItemKNN(neighbors=12, shrink=2.0).fit(inter), inter), X @ shrunk)


def test_item_knn_keeps_only_the_top_neighbours() -> None:
    inter, X = small_matrix()
    sim = cosine_similarity(X.T)
    np.fill_diagonal(sim, 0.0)
    kept = np.zeros_like(sim)
    for j in range(sim.shape[0]):  # item j keeps its 3 most similar items (ties: lower index)
        order = sorted(range(sim.shape[0]), key=lambda i: (-sim[j, i], i))[:3]
        kept[order, j] = sim[j, order]
    model = ItemKNN(neighbors=3, shrink=0.0).fit(inter)
    np.testing.assert_allclose(all_scores(model, inter), X @ kept, atol=1e-12)


def test_pure_svd_equals_a_full_numpy_svd() -> None:
    inter, X = small_matrix()
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    v = vt[:4].T
    np.testing.assert_allclose(all_scores(PureSVD(factors=4).fit(inter), inter), X @ v @ v.T, atol=1e-8)


def weighted_loss(X: np.ndarray, users: np.ndarray, items: np.ndarray, l2: float, alpha: float) -> float:
    confidence = 1 + alpha * X
    preference = (X > 0).astype(float)
    return float((confidence * (preference - users @ items.T) ** 2).sum() + l2 * ((users**2).sum() + (items**2).sum()))


def test_als_solves_the_weighted_normal_equations_and_descends() -> None:
    inter, X = small_matrix()
    l2, alpha = 0.5, 4.0
    losses = []
    for iterations in (1, 2, 4, 8):
        model = ImplicitALS(factors=5, l2=l2, alpha=alpha, iterations=iterations, seed=1).fit(inter)
        users, items = model._user_factors, model._item_factors
        assert users is not None and items is not None
        losses.append(weighted_loss(X, users, items, l2, alpha))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(losses))
    # The last half-sweep solved every item exactly given the users: (U^T C_i U + l2 I) y_i = U^T C_i p_i.
    assert users is not None and items is not None
    for i in range(X.shape[1]):
        c = 1 + alpha * X[:, i]
        lhs = (users.T * c) @ users + l2 * np.eye(5)
        np.testing.assert_allclose(lhs @ items[i], users.T @ (c * (X[:, i] > 0)), atol=1e-8)


def test_refits_are_deterministic(world) -> None:
    inter, _, _ = world
    users = list(inter.users)[:10]
    for make in (lambda: ImplicitALS(factors=8, seed=3), lambda: PureSVD(factors=3, seed=3)):
        pd.testing.assert_frame_equal(make().fit(inter).candidates(users, 5), make().fit(inter).candidates(users, 5))

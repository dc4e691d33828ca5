"""`recommend` and the batch pages on a small history built by `tailor run` (warehouse, Feast, ranker, pages).

What a platform relies on: the page is never empty, the rules hold on every page, the holdout never sees the
model, a consumed item never comes back, a slow model falls back to the cached page and says so, an unknown user
gets the cold-start page, a click streamed seconds ago changes the next page, the features served equal
Feast's for the same moment, and the request path's scores and cold-start pages equal what the frame path and
the full history give.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ml.history import history_end
from ml.recommend import Recommendation, RecommendationInputError, Recommender, ServingConfig, batch
from ml.recommend.serving import (
    MODEL_PATH_BUSY,
    MODEL_WORKERS,
    RECENT_VIEW,
    SESSION_BOOST,
    recent_window,
    user_features_at,
)
from tailor.settings import Settings
from tests.conftest import copy_home, tailor_cli

pytestmark = pytest.mark.integration

RULES = ServingConfig().rules
_tailor = tailor_cli


@pytest.fixture(scope="module")
def built(served_home: Settings) -> Settings:
    return served_home


@pytest.fixture(scope="module")
def own_home(served_home: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy for the tests that change the home (stream a click, rewrite the batch pages)."""
    return copy_home(served_home, tmp_path_factory.mktemp("own"))


@pytest.fixture(scope="module")
def recommender(built: Settings) -> Recommender:
    return Recommender.open(built, ServingConfig(budget_ms=5000))


@pytest.fixture(scope="module")
def pages(built: Settings) -> pd.DataFrame:
    return pd.read_parquet(built.marts_dir / "batch_recommendations.parquet")


def _consumed(settings: Settings) -> set[tuple[str, str]]:
    frame = pd.read_parquet(settings.marts_dir / "fct_user_content_interactions.parquet")
    return set(zip(frame["user_id"], frame["content_id"], strict=True))


def test_every_batch_page_keeps_the_rules(built: Settings, pages: pd.DataFrame) -> None:
    category = pd.read_parquet(built.marts_dir / "dim_content.parquet").set_index("content_id")["category"]
    assert not pages.empty
    for (user, surface), page in pages.groupby(["user_id", "surface"]):
        assert page["rank"].tolist() == list(range(1, len(page) + 1)) and len(page) == 10, (user, surface)
        assert page["content_id"].is_unique
        assert page["content_id"].map(category).value_counts().max() <= RULES.max_per_category
        assert (page["slot_kind"] == "personalized").sum() <= RULES.max_personalized
        if page["policy"].iloc[0] == "holdout":
            assert set(page["slot_kind"]) <= {"popular", "editorial"}, "a holdout user saw the model"
        explore = page.loc[page["slot_kind"] == "explore", "propensity"]
        assert ((explore > 0) & (explore < 1)).all()
        # The explore slot logs its pool (the action set): it holds the item, 1 / propensity items, none of the
        # page's model slots; other slots log none.
        personalized = set(page.loc[page["slot_kind"] == "personalized", "content_id"])
        for item, propensity, pool in page.loc[
            page["slot_kind"] == "explore", ["content_id", "propensity", "explore_pool"]
        ].itertuples(index=False):
            assert item in pool and len(pool) * propensity == pytest.approx(1) and not personalized & set(pool)
        assert page.loc[page["slot_kind"] != "explore", "explore_pool"].isna().all()
    consumed = _consumed(built)
    shown = set(zip(pages["user_id"], pages["content_id"], strict=True))
    assert not (shown & consumed), "a consumed item came back"
    pools = pages.dropna(subset="explore_pool")
    offered = {(u, c) for u, pool in zip(pools["user_id"], pools["explore_pool"], strict=True) for c in pool}
    assert offered and not (offered & consumed), "an explore pool offered a consumed item"


def test_holdout_is_the_registered_experiments_hash(pages: pd.DataFrame) -> None:
    from tailor.assignment import assign_variant

    users = pages.drop_duplicates("user_id")
    expected = [
        assign_variant("personalization_holdout", u, ["holdout", "personalized"], [0.1, 0.9]) for u in users["user_id"]
    ]
    assert users["variant"].tolist() == expected
    assert 0.03 < (users["variant"] == "holdout").mean() < 0.2


def test_a_known_user_gets_the_models_page(recommender: Recommender, pages: pd.DataFrame) -> None:
    user = pages.loc[pages["policy"] == "personalized", "user_id"].iloc[0]
    result = recommender.recommend(user, k=10, surface="home")
    assert result.served_by == "model" and result.fallback_reason is None
    assert result.model_version is not None and not result.holdout
    assert len(result.items) == 10 and all(item.reason for item in result.items)
    assert {i.slot_kind for i in result.items} >= {"personalized"}
    for item in result.items:
        assert (item.explore_pool is not None) == (item.slot_kind == "explore")
        assert item.explore_pool is None or (item.content_id in item.explore_pool and item.propensity < 1)
    payload = json.loads(json.dumps(result.as_dict()))
    assert payload["served_by"] == "model" and len(payload["items"]) == 10


def test_a_slow_model_falls_back_to_the_cached_page_and_says_so(built: Settings, pages: pd.DataFrame) -> None:
    slow = Recommender.open(built, ServingConfig(budget_ms=50))
    slow.before_scoring = lambda rows: time.sleep(0.3)
    user = pages.loc[pages["policy"] == "personalized", "user_id"].iloc[0]
    result = slow.recommend(user, k=10, surface="feed")
    assert result.served_by == "cached"
    assert "50 ms budget" in (result.fallback_reason or "")
    cached = pages.loc[(pages["user_id"] == user) & (pages["surface"] == "feed")].sort_values("rank")
    assert [i.content_id for i in result.items] == cached["content_id"].tolist()
    assert result.latency_ms < 250


def test_the_cached_page_leaves_out_items_published_after_its_time_and_names_its_own_version(
    built: Settings, pages: pd.DataFrame
) -> None:
    """Found by a new user: a cached page asked for at a moment inside the history held items published after it
    (the batch pages are the history end's), and it named the current champion, not the version that scored it."""
    slow = Recommender.open(built, ServingConfig(budget_ms=50))
    slow.before_scoring = lambda rows: time.sleep(0.3)
    user = pages.loc[pages["policy"] == "personalized", "user_id"].iloc[0]
    cached = pages.loc[(pages["user_id"] == user) & (pages["surface"] == "feed")].sort_values("rank")
    content = pd.read_parquet(built.marts_dir / "dim_content.parquet", columns=["content_id", "published_at"])
    published = dict(zip(content["content_id"], pd.to_datetime(content["published_at"], utc=True), strict=True))
    on_page = sorted(published[c] for c in cached["content_id"])
    moment = on_page[len(on_page) // 2]  # half of the page was published later than this
    earlier = slow.recommend(user, k=10, surface="feed", now=moment.to_pydatetime())
    assert earlier.served_by == "cached" and earlier.items
    assert all(published[i.content_id] <= moment for i in earlier.items)
    assert [i.content_id for i in earlier.items] == [c for c in cached["content_id"] if published[c] <= moment]
    # Before any of its items was published the cached page has nothing left: popular items, and a note says why.
    before_all = (on_page[0] - pd.Timedelta(seconds=1)).to_pydatetime()
    emptied = slow.recommend(user, k=10, surface="feed", now=before_all)
    assert emptied.served_by == "popular" and emptied.fallback_reason is not None
    assert "budget" in emptied.fallback_reason
    assert any("the cached page for this user had none left to show" in note for note in emptied.notes)
    assert all(published.get(i.content_id, before_all) <= before_all for i in emptied.items)
    # The version that scored the page, even after another version became champion.
    slow.model_version = "999"
    assert slow.recommend(user, k=10, surface="feed").model_version == str(cached["model_version"].iloc[0])
    # More than a cached page holds: the note names that limit, not the page rules.
    many = slow.recommend(user, k=30, surface="feed")
    assert many.served_by == "cached" and len(many.items) <= 10
    assert any("the cached page holds no more" in note for note in many.notes), many.notes


def test_a_cold_start_user_gets_the_popular_page_not_a_cached_one(built: Settings, pages: pd.DataFrame) -> None:
    recommender = Recommender.open(built)
    cold = [
        u for u in pages.loc[pages["policy"] == "personalized", "user_id"].unique() if not recommender.has_history(u)
    ]
    if not cold:
        pytest.skip("every user with a page has a history on this home")
    page = recommender.recommend(cold[0], k=10)
    assert page.served_by == "popular" and page.fallback_reason == "cold start: no click or view by this user yet"
    assert page.model_version is None and {i.slot_kind for i in page.items} <= {"popular", "editorial"}


def test_busy_model_workers_shed_load_to_the_cached_page(built: Settings, pages: pd.DataFrame) -> None:
    """Model paths past their budget keep running; while every worker is on one, a new request does not queue
    behind them (its budget would be gone before it started) but takes the cached page at once."""
    slow = Recommender.open(built, ServingConfig(budget_ms=50))
    slow.before_scoring = lambda rows: time.sleep(1.0)
    users = pages.loc[pages["policy"] == "personalized", "user_id"].drop_duplicates().tolist()
    first = [slow.recommend(user, k=10) for user in users[:MODEL_WORKERS]]  # each leaves a worker busy for ~1 s
    assert all("50 ms budget" in (page.fallback_reason or "") for page in first)
    shed = slow.recommend(users[MODEL_WORKERS], k=10)
    assert shed.served_by == "cached" and shed.fallback_reason == MODEL_PATH_BUSY
    assert shed.latency_ms < 50  # no wait for a worker
    time.sleep(1.5)  # the slow paths finish and free their workers
    slow.before_scoring = None
    slow.config = ServingConfig(budget_ms=5000)
    assert slow.recommend(users[0], k=10).served_by == "model"


def test_unknown_and_holdout_users_get_the_popular_page(recommender: Recommender, pages: pd.DataFrame) -> None:
    unknown = recommender.recommend("u-never-seen", k=5)
    assert unknown.served_by == "popular" and "cold start" in (unknown.fallback_reason or "")
    assert len(unknown.items) == 5 and {i.slot_kind for i in unknown.items} <= {"popular", "editorial"}
    holdout_user = pages.loc[pages["policy"] == "holdout", "user_id"].iloc[0]
    held = recommender.recommend(holdout_user, k=10)
    assert held.holdout and held.served_by == "popular" and held.variants == {"personalization_holdout": "holdout"}
    assert {i.slot_kind for i in held.items} <= {"popular", "editorial"}


def test_a_short_page_or_a_missing_explore_slot_says_why(recommender: Recommender, pages: pd.DataFrame) -> None:
    """Found by a new user: pages shorter than k, and live pages without the explore slot (nothing fresh "now"
    in a history that ended months ago), came back without a word."""
    explored = pages.loc[(pages["policy"] == "personalized") & (pages["slot_kind"] == "explore")].iloc[0]
    at_end = pd.Timestamp(explored["generated_at"]).to_pydatetime()
    user, surface = str(explored["user_id"]), str(explored["surface"])
    page = recommender.recommend(user, k=10, surface=surface, now=at_end)
    assert page.served_by == "model" and page.notes == []
    assert [i.slot_kind for i in page.items].count("explore") == 1
    later = recommender.recommend(user, k=10, surface=surface, now=at_end + timedelta(days=30))
    assert later.served_by == "model" and not any(i.slot_kind == "explore" for i in later.items)
    assert len(later.notes) == 1 and later.notes[0].startswith("no explore slot: no eligible item was published in")
    k = len(recommender.catalog.ids)
    wide = recommender.recommend(user, k=k, surface=surface, now=at_end)
    assert 0 < len(wide.items) < k
    assert wide.notes[0] == (
        f"{len(wide.items)} of the {k} items asked for: the page rules allow no more (at most "
        f"{recommender.config.rules.max_per_category} per category, never an item the user already consumed)"
    )
    per_category = pd.Series([i.category for i in wide.items]).value_counts()
    assert per_category.max() <= recommender.config.rules.max_per_category


@pytest.mark.parametrize(
    ("user", "k", "message"),
    [
        ("u0000001", 0, "k must be a positive integer"),
        ("u0000001", -3, "k must be a positive integer"),
        ("u0000001", 10**6, "more than the"),
        ("", 10, "user_id is empty or blank"),
        ("  \t", 10, "user_id is empty or blank"),
        ("u" * 129, 10, "at most 128"),
    ],
)
def test_bad_requests_are_clear_errors(recommender: Recommender, user: str, k: int, message: str) -> None:
    with pytest.raises(RecommendationInputError, match=message):
        recommender.recommend(user, k=k)


@pytest.mark.parametrize("now", [datetime(9999, 12, 31, 23, 59, 59), datetime(1, 1, 1, tzinfo=UTC)])
def test_a_time_outside_the_contracts_years_is_a_clear_error(recommender: Recommender, now: datetime) -> None:
    """Year 9999 overflowed the model path's date arithmetic: a page from the popular list, with an OverflowError
    for the reason (found by a trial)."""
    with pytest.raises(RecommendationInputError, match="outside the years 2000-2999"):
        recommender.recommend("u0000001", now=now)


def test_the_command_line_reports_errors_and_prints_json(built: Settings) -> None:
    bad = _tailor(built.home, "recommend", "u0000001", "-k", "0")
    assert bad.returncode == 1 and "k must be a positive integer" in bad.stderr
    bad_moment = _tailor(built.home, "recommend", "u0000001", "--at", "yesterday")
    assert bad_moment.returncode == 1 and "--at 'yesterday' is not an ISO 8601 time" in bad_moment.stderr
    far = _tailor(built.home, "recommend", "u0000001", "--at", "9999-12-31T23:59:59")
    assert far.returncode == 1 and "--at 9999-12-31T23:59:59 is outside the years 2000-2999" in far.stderr
    end = history_end(built.marts_dir)
    assert end is not None
    at = end.isoformat()  # a page as of the simulated history's end, when its newest items are fresh
    good = _tailor(built.home, "recommend", "u0000002", "--surface", "feed", "--at", at, "--json")
    assert good.returncode == 0, good.stderr
    assert "Warning" not in good.stderr, good.stderr  # no library's deprecation notice (sqlglotrs's, once)
    payload = json.loads(good.stdout)
    assert payload["surface"] == "feed" and len(payload["items"]) == 10 and payload["schema_version"] == 1
    assert not [note for note in payload["notes"] if note.startswith("no explore slot")]


def test_an_unreachable_online_store_still_gets_a_page(built: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real failure: the Redis configuration pointing at a port where nothing listens."""
    from tailor.settings import FEATURE_REPO_DIR

    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(FEATURE_REPO_DIR / "feature_store.redis.yaml"))
    monkeypatch.setenv("TAILOR_FEAST_REDIS", "127.0.0.1:1")
    down = Recommender.open(built, ServingConfig(budget_ms=2000))
    result = down.recommend("u0000003", k=10)
    assert result.served_by == "popular" and len(result.items) == 10
    assert result.fallback_reason


def test_served_features_equal_feasts_for_the_same_moment(built: Settings, recommender: Recommender) -> None:
    from ml.features import online_features

    user = "u0000005"
    now = datetime.now(UTC)
    assert recommender.candidates is not None
    proposed = recommender.candidates.candidates([user]).head(40)
    served = recommender.feature_rows(recommender._user_features(user, now), proposed, "home", now)
    rows = [{"user_id": user, "content_id": c, "request_at": now} for c in proposed["content_id"]]
    feast = online_features(recommender.store, rows, "ranker_v1")
    # Where Feast's status says the streamed window is stale, the page uses what a training set has there: nulls.
    stale = feast["status"].str.contains(RECENT_VIEW)
    for name in (f.name for f in recommender.store.get_feature_view(RECENT_VIEW).features):
        if name in feast.columns:
            feast[name] = feast[name].astype(object).where(~stale, None)
    compared = [c for c in feast.columns if c not in ("user_id", "content_id", "status", "request_at")]
    assert set(compared) <= set(served.columns) | {"published_at"}
    for column in compared:
        if column == "published_at":
            continue
        left, right = served[column].reset_index(drop=True), feast[column].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(left):  # Feast gives None where a number is missing; we give NaN
            pd.testing.assert_series_equal(
                left.astype(float), pd.to_numeric(right).astype(float), check_names=False, rtol=1e-9
            )
        else:
            assert left.tolist() == right.tolist(), column


def test_streamed_recent_activity_counts_only_inside_its_30_minute_window(built: Settings, tmp_path: Path) -> None:
    """Found by a new user: a click streamed, then the consumer stopped, and pages an hour later still said
    "because you just read ..."; Feast's online read returns a row whatever its age. The page uses it from its
    event time to 30 minutes after, else nulls (what the training set's point-in-time join has)."""
    home = copy_home(built, tmp_path)
    recommender = Recommender.open(home)
    store, refs = recommender.store, recommender.user_refs
    user = sorted(recommender.consumed)[0]
    written = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store.write_to_online_store(
        RECENT_VIEW,
        pd.DataFrame(
            {
                "user_id": [user],
                "event_timestamp": [pd.Timestamp(written)],
                "impressions_30m": [4],
                "clicks_30m": [2],
                "views_30m": [1],
                "conversions_30m": [0],
                "dwell_seconds_30m": [35.0],
                "clicked_categories_30m": [["sports", "news"]],
                "last_clicked_category": ["sports"],
                "clicked_items_30m": [[]],
            }
        ),
    )
    names = [r.split(":")[-1] for r in refs if r.startswith(f"{RECENT_VIEW}:")]
    other = [r.split(":")[-1] for r in refs if not r.startswith(f"{RECENT_VIEW}:")]
    # The window is the view's TTL in the registry (feature_repo/recent_activity.py), not a copy of it.
    window = recent_window(store)
    assert window == recommender.recent_window == timedelta(minutes=30)
    inside = user_features_at(store, refs, [user], written + timedelta(minutes=10), window)[user]
    assert "clicked_categories_30m" in names and inside["clicked_categories_30m"] == ["sports", "news"]
    assert all(inside[name] is not None for name in names)
    # A row stamped a little after the moment still counts (the consumer stamps rows with its clock on write).
    assert user_features_at(store, refs, [user], written - timedelta(minutes=1), window)[user] == inside
    # A longer view TTL would keep the row: the check follows the registry.
    assert user_features_at(store, refs, [user], written + timedelta(minutes=31), timedelta(hours=1))[user] == inside
    for moment in (written + timedelta(minutes=31), written - timedelta(minutes=10)):
        outside = user_features_at(store, refs, [user], moment, window)[user]
        assert all(outside[name] is None for name in names), moment
        assert {name: outside[name] for name in other} == {name: inside[name] for name in other}
    # And the page: a session boost and "because you just read sports" only inside the window.
    just_read = recommender.recommend(user, k=10, now=written + timedelta(minutes=10))
    an_hour_later = recommender.recommend(user, k=10, now=written + timedelta(hours=1))
    assert just_read.served_by == an_hour_later.served_by == "model"
    assert not any("just read" in item.reason for item in an_hour_later.items)


def test_the_cached_page_leaves_out_an_item_clicked_in_the_streamed_window(
    built: Settings, pages: pd.DataFrame, tmp_path: Path
) -> None:
    """A slow model's fallback, the cached page, leaves out what the user clicked in the last 30 minutes (the
    streamed `recent_activity` row), as the model's page does; once the click has left the window it is back."""
    home = copy_home(built, tmp_path)
    slow = Recommender.open(home, ServingConfig(budget_ms=50))
    slow.before_scoring = lambda rows: time.sleep(0.3)
    user = pages.loc[pages["policy"] == "personalized", "user_id"].iloc[0]
    cached = pages.loc[(pages["user_id"] == user) & (pages["surface"] == "feed")].sort_values("rank")
    clicked = cached["content_id"].tolist()[:2]
    written = datetime.now(UTC).replace(microsecond=0)
    row = {name: [0] for name in ("impressions_30m", "clicks_30m", "views_30m", "conversions_30m")}
    slow.store.write_to_online_store(
        RECENT_VIEW,
        pd.DataFrame(
            {
                "user_id": [user],
                "event_timestamp": [pd.Timestamp(written)],
                **row,
                "dwell_seconds_30m": [0.0],
                "clicked_categories_30m": [["x"]],
                "last_clicked_category": ["x"],
                "clicked_items_30m": [clicked],
            }
        ),
    )
    inside = slow.recommend(user, k=10, surface="feed", now=written + timedelta(minutes=10))
    assert inside.served_by == "cached"
    assert [i.content_id for i in inside.items] == cached["content_id"].tolist()[2:]
    outside = slow.recommend(user, k=10, surface="feed", now=written + timedelta(minutes=31))
    assert [i.content_id for i in outside.items] == cached["content_id"].tolist()


def test_the_request_path_scores_as_the_model_does_on_feature_rows(built: Settings, recommender: Recommender) -> None:
    """The request path (generators as arrays, the compiled trees, the item half of the input built at open) gives
    the candidates and scores of the frame path every batch page uses: `CandidateSet.candidates`, `feature_rows`
    and the champion's public `relevance`, for the same user, surface and moment."""
    assert recommender.model is not None and recommender.candidates is not None
    assert recommender._inputs is not None, "the request path fell back to frames"
    now = datetime.now(UTC)
    users = sorted(recommender.consumed)[:12]
    for user, surface in zip(users, ["home", "feed"] * 6, strict=True):
        features = recommender._user_features(user, now)
        index, ids, scores = recommender.model_scores(user, features, surface, now)
        rows = recommender.feature_rows(features, recommender.candidates.candidates([user]), surface, now)
        assert ids.tolist() == rows["content_id"].tolist()
        assert [recommender.catalog.ids[i] for i in index] == ids.tolist()
        expected = recommender.model.relevance(rows)
        assert len(scores) > 50
        pd.testing.assert_series_equal(pd.Series(scores), pd.Series(expected), rtol=1e-12, atol=0)


def test_batch_pages_through_the_compiled_trees_equal_the_frame_path(
    recommender: Recommender, pages: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch pages ranked a block of users at a time through the compiled trees (`Recommender.rank_users`)
    are the pages of the frame path (`CandidateSet.candidates`, `feature_rows`, `RankerModel.relevance`) for the
    same users and moment: items, order, scores, slot kinds, reasons, propensities, explore pools; and the pages
    `tailor run` published are those too."""
    assert recommender.compiled, "the batch pages fell back to frames"
    monkeypatch.setattr(batch, "BLOCK_USERS", 16)  # several blocks, a last one shorter
    users = sorted(pages["user_id"].unique())
    assert len(users) > 3 * 16
    now = pages["generated_at"].iloc[0].to_pydatetime()
    fast = batch.batch_pages(recommender, users, 10, now)
    reference = batch.batch_pages(recommender, users, 10, now, compiled=False)
    assert (reference["slot_kind"] == "personalized").sum() > 10 * len(users)
    assert reference["explore_pool"].notna().sum() > len(users)
    pd.testing.assert_frame_equal(fast, reference, check_exact=False, rtol=1e-12, atol=0)
    assert fast["content_id"].tolist() == reference["content_id"].tolist()
    published = pages[["user_id", "surface", "rank", "content_id", "slot_kind", "reason", "propensity"]]
    assert published.to_numpy().tolist() == reference[published.columns].to_numpy().tolist()
    pd.testing.assert_series_equal(pages["score"], reference["score"], rtol=1e-12, atol=0)


def test_surface_variants_share_trees_and_equal_predict(recommender: Recommender) -> None:
    """`CompiledRanker.predict_variants` (trees that never split on the surface run once for both surfaces)
    gives each surface exactly `predict`'s probabilities, and the champion does split on the surface somewhere (so the
    variants do run some trees apart)."""
    scorer = recommender._scorer
    assert scorer is not None and recommender.candidates is not None
    at = scorer.index["surface"]
    splits = [
        bool(((p.nodes["feature_idx"] == at) & (p.nodes["is_leaf"] == 0)).any()) for i in scorer._predictors for p in i
    ]
    assert any(splits), "no tree reads the surface: the variants would not differ"
    users = sorted(recommender.consumed)[:6]
    now = datetime.now(UTC)
    features = batch._user_features(recommender, users, now)
    rows = pd.concat(
        recommender.feature_rows(features[u], group, "home", now)
        for u, group in recommender.candidates.candidates(users).groupby("user_id", sort=False)
    )
    X = scorer.matrix(rows, position=1)
    # Every surface the model knows and a missing one. Whether two of them score apart depends on whether these
    # rows reach a node that splits on the surface: since the content profile's features changed the small world's
    # model, its surface splits sit on paths these rows do not take, so only the equality with predict is asserted.
    values = [*sorted({*scorer.codes["surface"].values()}), float("nan")]
    variants = scorer.predict_variants(X.copy(), "surface", values)
    for value, got in zip(values, variants, strict=True):
        X[:, at] = value
        assert got.tolist() == scorer.predict(X).tolist()


def test_batch_rankings_boost_a_session_click_as_the_frame_path_does(recommender: Recommender) -> None:
    """`rank_users` applies the session boost of a category clicked in the last 30 minutes as the frame path
    does (no served-home user has one: it is given here), and without a compiled champion the batch pages come
    from frames."""
    users = sorted(recommender.consumed)[:40]
    now = datetime.now(UTC)
    features = batch._user_features(recommender, users, now)
    clicked = recommender.catalog.category_names[:2]
    for user in users[::2]:
        features[user] = {**features[user], "clicked_categories_30m": list(clicked)}
    fast = recommender.rank_users(users, features, ("home", "feed"), now)
    reference = batch._frame_rankings(recommender, users, features, ("home", "feed"), now)
    assert fast.keys() == reference.keys() and len(fast) == 2 * len(users)
    for key, ranked in fast.items():
        assert list(ranked.content_ids) == list(reference[key].content_ids), key
        pd.testing.assert_series_equal(
            pd.Series(ranked.scores), pd.Series(reference[key].scores), rtol=1e-12, atol=0, obj=str(key)
        )
    plain = recommender.rank_users(users, batch._user_features(recommender, users, now), ("home",), now)
    changed = [u for u in users[::2] if list(plain[(u, "home")].scores) != list(fast[(u, "home")].scores)]
    assert len(changed) >= 0.8 * len(users[::2])  # the boost was applied (to users with candidates in them)
    inputs = recommender._inputs
    try:
        recommender._inputs = None  # a champion the compiled path cannot read
        assert not recommender.compiled
        with pytest.raises(LookupError, match="not compiled"):
            recommender.rank_users(users, features, ("home",), now)
        framed = batch.batch_pages(recommender, users[:8], 10, now)
    finally:
        recommender._inputs = inputs
    pd.testing.assert_frame_equal(framed, batch.batch_pages(recommender, users[:8], 10, now))


def test_serving_aggregates_equal_the_full_history(built: Settings, recommender: Recommender) -> None:
    """What `Recommender.open` now reads through DuckDB aggregates (consumed sets, the cold-start pages) equals
    what the full history in pandas gives (`load_history`, the computation it replaced)."""
    from ml.history import load_history

    history = load_history(built.marts_dir)
    consumed = {str(u): set(items) for u, items in history.interactions.groupby("user_id")["content_id"]}
    assert recommender.consumed == consumed
    users = pd.read_parquet(built.marts_dir / "dim_users.parquet", columns=["user_id", "country"])
    recent = history.impressions.loc[history.impressions["occurred_at"] >= history.end - pd.Timedelta(days=7)]
    recent = recent.merge(users, on="user_id", how="left")

    def ranked(frame: pd.DataFrame) -> tuple[list[str], list[float]]:
        per_item = frame.groupby("content_id")["clicked"].agg(["sum", "count"])
        prior = per_item["sum"].sum() / max(per_item["count"].sum(), 1)
        score = ((per_item["sum"] + 100 * prior) / (per_item["count"] + 100)).sort_values(
            ascending=False, kind="stable"
        )
        return score.index.astype(str).tolist(), score.to_numpy().tolist()

    expected = {"all": ranked(recent)}
    expected |= {f"surface:{s}": ranked(group) for s, group in recent.groupby("surface")}
    expected |= {f"country:{c}": ranked(g) for c, g in recent.groupby("country") if g["clicked"].sum() >= 20}
    got = {name: (list(r.content_ids), list(r.scores)) for name, r in recommender.segment_popular.items()}
    assert list(got) == list(expected) and len(got) > 3
    for name, (ids, scores) in expected.items():
        assert got[name][0] == ids, name
        assert got[name][1] == pytest.approx(scores, rel=1e-12), name


def test_a_click_streamed_seconds_ago_changes_the_next_page(own_home: Settings, redis_url: str) -> None:
    """`tailor stream publish` a click, `tailor stream consume --once`: the user's next page (same moment, so the
    same exploration draw) lifts the clicked category and says why, and no longer shows the clicked item (the marts
    learn of the click only at the next `tailor run`)."""
    built = own_home
    recommender = Recommender.open(built, ServingConfig(budget_ms=5000))
    now = datetime.now(UTC)
    user, before = _personalized_page(recommender, now)
    assert not any(item.reason.startswith("because you just read") for item in before.items)
    # The category of the lowest personalized item that differs from the first one's: the boost has room to act.
    personalized = [item for item in before.items if item.slot_kind == "personalized"]
    clicked = next(item for item in reversed(personalized) if item.category != personalized[0].category)
    category = clicked.category
    assert category is not None
    events = built.home / "click.jsonl"
    occurred = (now.replace(microsecond=0)).isoformat().replace("+00:00", "Z")
    events.write_text(
        json.dumps(
            {
                "event_id": f"streamed-click-{user}",
                "event_type": "click",
                "user_id": user,
                "content_id": clicked.content_id,
                "occurred_at": occurred,
                "request_id": "r-streamed",
            }
        )
        + "\n"
    )
    stream = f"tailor:test-recommend:{time.time_ns()}"
    published = _tailor(built.home, "stream", "publish", str(events), "--redis", redis_url, "--stream", stream)
    assert published.returncode == 0, published.stdout + published.stderr
    consumed = _tailor(built.home, "stream", "consume", "--redis", redis_url, "--stream", stream, "--once")
    assert consumed.returncode == 0, consumed.stdout + consumed.stderr

    after = recommender.recommend(user, k=10, now=now)
    assert after.served_by == "model"
    boosted = [item for item in after.items if item.reason == f"because you just read {category}"]
    assert boosted and all(item.category == category for item in boosted)

    # The boost multiplies the clicked category's scores (ml.recommend.serving.SESSION_BOOST), nothing else's.
    was = {item.content_id: item.score for item in before.items if item.slot_kind == "personalized"}
    for item in after.items:
        if item.content_id in was and item.slot_kind == "personalized":
            factor = SESSION_BOOST if item.category == category else 1.0
            assert item.score == pytest.approx(was[item.content_id] * factor, rel=1e-9), item

    # The clicked item is gone from the next pages: the model's, and the cached one a slow model falls back to.
    assert clicked.content_id in {item.content_id for item in before.items}
    assert clicked.content_id not in {item.content_id for item in after.items}
    assert clicked.content_id not in recommender.consumed.get(user, set())  # known only from the stream


def _personalized_page(recommender: Recommender, now: datetime) -> tuple[str, Recommendation]:
    """A user the model serves whose page mixes categories (so a boost can reorder it), and that page."""
    for user in sorted(recommender.consumed):
        page = recommender.recommend(user, k=10, now=now)
        personalized = [item for item in page.items if item.slot_kind == "personalized"]
        if page.served_by == "model" and len({item.category for item in personalized}) > 1:
            return user, page
    raise AssertionError("no personalized user with a mixed page in the test world")


def test_the_latency_benchmark_runs(own_home: Settings, tmp_path: Path) -> None:
    """bench/bench_recommend.py on a home (it rewrites the batch pages as a run would)."""
    built = own_home
    output = tmp_path / "recommend.json"
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_recommend.py"
    args = ["--home", str(built.home), "--requests", "40", "--naive-repeats", "2", "--candidates", "200"]
    done = subprocess.run(
        [sys.executable, str(bench), *args, "--output", str(output)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.read_text())
    deployed, wide = result["recommend"]["deployed_candidates"], result["recommend"]["about_200_candidates"]
    assert deployed["served_by"] == {"model": 40} and wide["served_by"] == {"model": 40}
    assert wide["candidates_per_request"]["mean"] >= deployed["candidates_per_request"]["mean"]
    assert 0 < deployed["p50_ms"] <= deployed["p99_ms"]
    assert result["feast_get_online_features"]["user_ranker_v1_features_1_row"]["n"] == 40
    assert result["batch"]["users"] > 0 and result["batch"]["seconds_per_1000_users"] > 0

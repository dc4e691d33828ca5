"""`recommend` and the batch pages on a small history built by `tailor run` (warehouse, Feast, ranker, pages).

What a platform relies on: the page is never empty, the rules hold on every page, the holdout never sees the
model, a consumed item never comes back, a slow model falls back to the cached page and says so, an unknown user
gets the cold-start page, a click streamed seconds ago changes the next page, and the features served equal
Feast's for the same moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ml.recommend import RecommendationInputError, Recommender, ServingConfig
from tailor.settings import Settings, get_settings

pytestmark = pytest.mark.integration

TAILOR = str(Path(sys.executable).parent / "tailor")
RULES = ServingConfig().rules


def _tailor(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "TAILOR_HOME": str(home),
        "TAILOR_RANKER_SEARCH_TRIALS": "2",
        "TAILOR_RANKER_SEARCH_TIMEOUT_S": "60",
        "TAILOR_RANKER_EVAL_USERS": "50",
        **(env or {}),
    }
    return subprocess.run([TAILOR, *args], env=full_env, capture_output=True, text=True, check=False, timeout=1500)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("recommend") / "home"
    made = _tailor(home, "generate", "--users", "150", "--days", "16", "--seed", "3")
    assert made.returncode == 0, made.stderr
    ran = _tailor(home, "run", "--quiet")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    yield get_settings(home)


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
    consumed = _consumed(built)
    shown = set(zip(pages["user_id"], pages["content_id"], strict=True))
    assert not (shown & consumed), "a consumed item came back"


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


def test_unknown_and_holdout_users_get_the_popular_page(recommender: Recommender, pages: pd.DataFrame) -> None:
    unknown = recommender.recommend("u-never-seen", k=5)
    assert unknown.served_by == "popular" and "cold start" in (unknown.fallback_reason or "")
    assert len(unknown.items) == 5 and {i.slot_kind for i in unknown.items} <= {"popular", "editorial"}
    holdout_user = pages.loc[pages["policy"] == "holdout", "user_id"].iloc[0]
    held = recommender.recommend(holdout_user, k=10)
    assert held.holdout and held.served_by == "popular" and held.variants == {"personalization_holdout": "holdout"}
    assert {i.slot_kind for i in held.items} <= {"popular", "editorial"}


@pytest.mark.parametrize(
    ("user", "k", "message"),
    [
        ("u0000001", 0, "k must be a positive integer"),
        ("u0000001", -3, "k must be a positive integer"),
        ("u0000001", 10**6, "more than the"),
        ("", 10, "user_id is empty"),
        ("  \t", 10, "user_id is empty"),
        ("u" * 129, 10, "at most 128"),
    ],
)
def test_bad_requests_are_clear_errors(recommender: Recommender, user: str, k: int, message: str) -> None:
    with pytest.raises(RecommendationInputError, match=message):
        recommender.recommend(user, k=k)


def test_the_command_line_reports_errors_and_prints_json(built: Settings) -> None:
    bad = _tailor(built.home, "recommend", "u0000001", "-k", "0")
    assert bad.returncode == 1 and "k must be a positive integer" in bad.stderr
    good = _tailor(built.home, "recommend", "u0000002", "--surface", "feed", "--json")
    assert good.returncode == 0, good.stderr
    payload = json.loads(good.stdout)
    assert payload["surface"] == "feed" and len(payload["items"]) == 10 and payload["schema_version"] == 1


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
    served = recommender.feature_rows(recommender._user_features(user), proposed, "home", now)
    rows = [{"user_id": user, "content_id": c, "request_at": now} for c in proposed["content_id"]]
    feast = online_features(recommender.store, rows, "ranker_v1")
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

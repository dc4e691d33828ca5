"""The Feast repository's definitions and the pure parts of ml.features, without any store."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from feast import FeatureService, FeatureView, OnDemandFeatureView
from feast.types import Array, Float64, Int64, String, UnixTimestamp

from ml.features.health import _same
from ml.features.materialize import OVERLAP, plan
from ml.features.online import UnknownFeatureError, _split
from tailor.feature_store import (
    FEAST_YAML_ENV,
    FeatureStoreConfigError,
    config_dict,
    feast_env,
    feature_store_problem,
    feature_store_yaml,
    load_config,
)
from tailor.settings import DBT_PROJECT_DIR, FEATURE_REPO_DIR, get_settings

pytestmark = pytest.mark.unit

BATCH_VIEWS = {"user_engagement", "user_category_affinity", "content_profile", "content_popularity"}
MODULES = ("entities", "data_sources", "user_features", "content_features", "ranking_features")
# How the dbt contracts spell the types Feast declares.
DBT_TYPES = {
    Int64: "bigint",
    Float64: "double",
    String: "varchar",
    UnixTimestamp: "timestamp with time zone",
    Array(String): "varchar[]",
    Array(Float64): "double[]",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """The feature_repo modules, imported the way `feast apply` does (top-level names, the folder on sys.path)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAILOR_HOME", str(home))
        patch.syspath_prepend(str(FEATURE_REPO_DIR))
        for name in MODULES:
            sys.modules.pop(name, None)
        yield {name: importlib.import_module(name) for name in MODULES}
        for name in MODULES:
            sys.modules.pop(name, None)


def _objects(repo: dict[str, ModuleType], kind: type) -> list[Any]:
    found = {id(v): v for module in repo.values() for v in vars(module).values() if isinstance(v, kind)}
    return list(found.values())


def _batch_views(repo: dict[str, ModuleType]) -> list[FeatureView]:
    return [v for v in _objects(repo, FeatureView) if not isinstance(v, OnDemandFeatureView)]


def test_feast_features_match_the_dbt_contracts(repo: dict[str, ModuleType]) -> None:
    """Each feature is a column of the mart its source reads, with the contract's type: a rename or a type change
    on one side fails here, not at materialization time."""
    spec = yaml.safe_load((DBT_PROJECT_DIR / "models/marts/features/_features__models.yml").read_text())
    contracts = {m["name"]: {c["name"]: c["data_type"] for c in m["columns"]} for m in spec["models"]}
    views = _batch_views(repo)
    assert {v.name for v in views} == BATCH_VIEWS
    for view in views:
        model = Path(view.batch_source.path).stem
        assert view.batch_source.path == str(get_settings().marts_dir / f"{model}.parquet")
        columns = contracts[model]
        assert columns[view.batch_source.timestamp_field] == "timestamp with time zone"
        for feature in view.features:
            assert columns.get(feature.name) == DBT_TYPES[feature.dtype], f"{view.name}:{feature.name}"


def test_every_feature_has_a_description_and_an_owner(repo: dict[str, ModuleType]) -> None:
    for view in _batch_views(repo):
        assert view.description and view.owner, view.name
        for feature in view.features:
            assert feature.description, f"{view.name}:{feature.name}"
            assert feature.tags.get("owner"), f"{view.name}:{feature.name}"
    # On-demand outputs cannot carry them on the field (Feast rejects it at apply): the view's tags hold them.
    [on_demand] = _objects(repo, OnDemandFeatureView)
    assert on_demand.tags["owner"]
    for feature in on_demand.features:
        assert on_demand.tags.get(f"feature:{feature.name}"), feature.name


def test_daily_snapshots_outlive_a_day_and_stale_counts_expire(repo: dict[str, ModuleType]) -> None:
    """A daily row must stay valid until the next day's arrives (more than a day), and activity counts must not
    be served for long after the daily run stopped. The catalog's versions never expire (Feast: TTL 0): a record
    holds until the next one, however old."""
    ttls = {v.name: v.ttl for v in _batch_views(repo)}
    daily = {name: ttl for name, ttl in ttls.items() if name != "content_profile"}
    assert all(ttl is not None and ttl > timedelta(days=1) for ttl in daily.values())
    assert ttls["user_engagement"] <= timedelta(days=2)
    assert ttls["content_popularity"] <= timedelta(days=2)
    assert ttls["content_profile"] == timedelta(0)
    sources = {v.name: Path(v.batch_source.path).stem for v in _batch_views(repo)}
    assert sources["content_profile"] == "fct_content_profile"
    assert {sources[name] for name in daily} <= {"fct_user_features_daily", "fct_content_features_daily"}


def test_ranker_v1_has_unique_feature_names(repo: dict[str, ModuleType]) -> None:
    [service] = _objects(repo, FeatureService)
    assert service.name == "ranker_v1"
    assert service.tags["version"] == "1"
    names = [f.name for projection in service.feature_view_projections for f in projection.features]
    assert len(names) == len(set(names))  # get_online_features(features=service) works without full names
    assert {"clicks_7d", "content_clicks_7d", "category", "content_age_hours", "category_affinity"} <= set(names)


def _context(repo: dict[str, ModuleType], **columns: list[Any]) -> dict[str, list[Any]]:
    udf = repo["ranking_features"].ranking_context.feature_transformation.udf
    return udf(columns)


def test_content_age_is_hours_from_publication_to_the_request(repo: dict[str, ModuleType]) -> None:
    request = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    out = _context(
        repo,
        request_at=[request, request.replace(tzinfo=None), request, None],
        # Naive = UTC (the offline store); aware (the online store); unknown item.
        published_at=[datetime(2026, 1, 10, 0, 0), datetime(2026, 1, 9, 12, 0, tzinfo=UTC), None, datetime(2026, 1, 1)],
        category=["news"] * 4,
        affinity_categories=[[]] * 4,
        affinity_shares=[[]] * 4,
    )
    assert out["content_age_hours"] == [12.0, 24.0, None, None]


def test_category_affinity_is_the_users_share_of_clicks_in_that_category(repo: dict[str, ModuleType]) -> None:
    out = _context(
        repo,
        request_at=[datetime(2026, 1, 10, tzinfo=UTC)] * 4,
        published_at=[datetime(2026, 1, 1)] * 4,
        category=["tech", "sports", "news", None],
        affinity_categories=[["news", "tech"], ["news", "tech"], [], ["news"]],
        affinity_shares=[[0.75, 0.25], [0.75, 0.25], [], [1.0]],
    )
    # Clicked tech a quarter of the time; never sports; no clicks at all, or no category: unknown.
    assert out["category_affinity"] == [0.25, 0.0, None, None]


def test_config_resolves_every_path_under_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FEAST_YAML_ENV, raising=False)
    monkeypatch.setenv("TAILOR_HOME", "/somewhere/else")  # the Settings passed in win over the environment
    config = load_config(get_settings(tmp_path))
    assert config.project == "tailor"
    assert config.registry.path == str(tmp_path / "feast" / "registry.db")
    assert config.online_store.type == "sqlite"
    assert config.online_store.path == str(tmp_path / "feast" / "online_store.db")


def test_redis_is_selected_by_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FEAST_YAML_ENV, str(FEATURE_REPO_DIR / "feature_store.redis.yaml"))
    monkeypatch.delenv("TAILOR_FEAST_REDIS", raising=False)
    with pytest.raises(FeatureStoreConfigError, match=r"uses \$\{TAILOR_FEAST_REDIS\}, which is not set"):
        load_config(get_settings(tmp_path))
    monkeypatch.setenv("TAILOR_FEAST_REDIS", "127.0.0.1:6390,db=3")
    config = load_config(get_settings(tmp_path))
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "127.0.0.1:6390,db=3"
    # Its own registry: what was materialized into SQLite says nothing about Redis.
    assert config.registry.path == str(tmp_path / "feast" / "registry_redis.db")


@pytest.mark.parametrize(
    ("address", "wrong"),
    [
        ("", "TAILOR_FEAST_REDIS is empty"),
        ("   ", "TAILOR_FEAST_REDIS is empty"),
        ("127.0.0.1:abc", "TAILOR_FEAST_REDIS='127.0.0.1:abc': '127.0.0.1:abc' is not HOST:PORT"),
        ("127.0.0.1", "'127.0.0.1' is not HOST:PORT"),
        ("127.0.0.1:0,db=1", "'127.0.0.1:0' is not HOST:PORT with a port from 1 to 65535"),
        ("redis://127.0.0.1:6379", "'redis://127.0.0.1:6379' is not HOST:PORT"),
    ],
)
def test_a_redis_address_feast_cannot_read_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str, wrong: str
) -> None:
    """Found by a trial: an empty TAILOR_FEAST_REDIS failed as "unexpected ValidationError", and 127.0.0.1:abc
    after the whole dbt build as int()'s ValueError, or inside `recommend` as a store that was down."""
    monkeypatch.setenv(FEAST_YAML_ENV, str(FEATURE_REPO_DIR / "feature_store.redis.yaml"))
    monkeypatch.setenv("TAILOR_FEAST_REDIS", address)
    settings = get_settings(tmp_path)
    with pytest.raises(FeatureStoreConfigError, match=re.escape(wrong)):
        config_dict(settings)
    assert "e.g. 127.0.0.1:6379" in (feature_store_problem(settings) or "")
    for good in ("127.0.0.1:6390", "127.0.0.1:6390,db=3,password=x", "10.0.0.1:7000,10.0.0.2:7001"):
        monkeypatch.setenv("TAILOR_FEAST_REDIS", good)
        assert feature_store_problem(settings) is None


def test_a_registry_never_applied_with_the_configuration_in_use_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a re-check trial: with the Redis yaml before any `tailor run` with it, `recommend` said only that the
    feature store "did not answer" (FeatureServiceNotFoundException)."""
    from ml.features.repo import registry_problem

    monkeypatch.setenv(FEAST_YAML_ENV, str(FEATURE_REPO_DIR / "feature_store.redis.yaml"))
    monkeypatch.setenv("TAILOR_FEAST_REDIS", "127.0.0.1:6390")
    settings = get_settings(tmp_path)
    settings.feast_dir.mkdir(parents=True)
    (settings.feast_dir / ".applied-feature_store").write_text("x")  # the SQLite default was applied, not Redis
    assert registry_problem(settings) == (
        "this home's features were never registered with feature_store.redis.yaml (the configuration in use): "
        "`tailor run` with it registers them and loads its online store"
    )
    (settings.feast_dir / ".applied-feature_store.redis").write_text("x")
    assert registry_problem(settings) is None
    monkeypatch.delenv(FEAST_YAML_ENV)
    monkeypatch.setenv("TAILOR_ENGINE", "spark")
    spark = get_settings(tmp_path)  # only duckdb's files applied: the engine is the problem, and said so
    assert (registry_problem(spark) or "").startswith("this home's features were registered for TAILOR_ENGINE=duckdb")


def test_a_missing_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FEAST_YAML_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(FeatureStoreConfigError, match=r"nope\.yaml, which does not exist"):
        feature_store_yaml()


def test_first_materialization_backfills_later_ones_overlap_the_recomputed_days(repo: dict[str, ModuleType]) -> None:
    view = repo["user_features"].user_engagement_fv.__copy__()
    oldest, newest = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 29, tzinfo=UTC)
    assert plan(view, (oldest, newest)) == ("backfill", oldest, newest)
    view.materialization_intervals = [(oldest, datetime(2026, 1, 28, tzinfo=UTC))]
    assert plan(view, (oldest, newest)) == ("incremental", datetime(2026, 1, 28, tzinfo=UTC) - OVERLAP, newest)
    # Nothing new since: the newest days are still reloaded (dbt may have corrected them).
    view.materialization_intervals = [(oldest, newest)]
    assert plan(view, (oldest, newest)) == ("incremental", newest - OVERLAP, newest)
    view.materialization_intervals = [(oldest, datetime(2026, 1, 3, tzinfo=UTC))]
    assert plan(view, (oldest, newest))[1] == oldest  # never before the data starts


def test_online_and_offline_values_compare_as_a_model_sees_them() -> None:
    assert _same(None, float("nan")) and _same(np.nan, None)
    assert _same(0.1 + 0.2, 0.3) and not _same(0.3, 0.31)
    assert _same(np.int64(3), 3) and not _same(3, 4)
    assert _same(["news", "tech"], np.array(["news", "tech"], dtype=object))
    assert not _same(["news"], ["news", "tech"]) and _same(None, [])
    aware = pd.Timestamp("2026-01-05 10:00:00", tz="UTC")
    assert _same(aware, datetime(2026, 1, 5, 10, 0)) and not _same(aware, datetime(2026, 1, 5, 10, 0, 1))


@pytest.mark.parametrize("ref", ["clicks_7d", "user_engagement:", ":clicks_7d"])
def test_a_malformed_feature_reference_says_how_to_write_one(ref: str) -> None:
    with pytest.raises(UnknownFeatureError, match="write 'view:feature'"):
        _split(ref)


def test_the_engine_selects_the_offline_store_and_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TAILOR_ENGINE=spark: feature_store.spark.yaml (Spark offline store, local[2], UTC, no UI; its own registry,
    the same online store) and SparkSources over Spark's table folders; the default stays DuckDB over the files.
    A FEAST_FS_YAML_FILE_PATH whose offline store is not the engine's is refused, saying what to use."""
    monkeypatch.delenv(FEAST_YAML_ENV, raising=False)
    duck, spark = get_settings(tmp_path), replace(get_settings(tmp_path), engine="spark")
    assert feature_store_yaml("duckdb").name == "feature_store.yaml"
    assert feature_store_yaml("spark").name == "feature_store.spark.yaml"
    config = load_config(spark)
    assert config.offline_store.type == "spark" and load_config(duck).offline_store.type == "duckdb"
    conf = config.offline_store.spark_conf
    assert conf["spark.master"] == "local[2]" and conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.ui.enabled"] == "false" and "-Duser.timezone=UTC" in conf["spark.driver.extraJavaOptions"]
    assert config.registry.path == str(tmp_path / "feast" / "registry_spark.db")
    assert config.online_store.path == load_config(duck).online_store.path
    env = feast_env(spark)
    assert env["TAILOR_ENGINE"] == "spark" and env[FEAST_YAML_ENV] == str(FEATURE_REPO_DIR / "feature_store.spark.yaml")

    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    monkeypatch.syspath_prepend(str(FEATURE_REPO_DIR))
    for engine, kind, folder in (("spark", "SparkSource", spark.spark_marts_dir), ("duckdb", "FileSource", None)):
        monkeypatch.setenv("TAILOR_ENGINE", engine)
        sys.modules.pop("data_sources", None)
        sources = importlib.import_module("data_sources")
        source = sources.user_features_source
        assert type(source).__name__ == kind
        expected = folder / "fct_user_features_daily" if folder else duck.marts_dir / "fct_user_features_daily.parquet"
        assert source.path == str(expected) and source.timestamp_field == "event_timestamp"
    sys.modules.pop("data_sources", None)

    monkeypatch.setenv(FEAST_YAML_ENV, str(FEATURE_REPO_DIR / "feature_store.redis.yaml"))
    monkeypatch.setenv("TAILOR_FEAST_REDIS", "127.0.0.1:6390")
    with pytest.raises(FeatureStoreConfigError, match=r"TAILOR_ENGINE=spark reads features with Feast's spark offline"):
        load_config(spark)
    assert load_config(duck).online_store.type == "redis"


@pytest.mark.parametrize(
    "script",
    [
        "from tailor.feature_store import open_store; from tailor.settings import get_settings; "
        "open_store(get_settings())",
        # What each step of a run the Dagster UI launches does in a process of its own (a trial's UI log held the
        # sqlglotrs warning 127 times).
        "import orchestration.definitions",
    ],
    ids=["open_store", "definitions"],
)
def test_opening_the_store_or_the_definitions_prints_no_known_warning(tmp_path: Path, script: str) -> None:
    """An ML engineer's script that opens the store sees no warning it cannot act on: sqlglot's import-time
    "sqlglotrs is deprecated" came through Feast's own "once" filter (found in a benchmark's output)."""
    import subprocess

    from tailor.settings import TELEMETRY_OFF

    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": "/usr/bin:/bin", **TELEMETRY_OFF, "TAILOR_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr

"""The benchmarks that need services (Redis, the feature server, the HTTP service) still run at a tiny size, as
docs/benchmarks.md tells a reader to run them (a module of its own, so it runs beside test_bench_smoke.py under
pytest-xdist). They measure nothing; the committed figures must come out untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailor.settings import Settings
from tests.conftest import SERVED_ENV

pytestmark = pytest.mark.integration


def test_feature_store(run_bench: Any, tmp_path: Path, redis_url: str) -> None:
    # It empties Redis databases between passes, so it starts a redis-server of its own; `redis_url` only makes
    # this test skip (or fail in CI) where the binary is missing, as every Redis test does.
    result = run_bench(
        "bench_feature_store.py",
        *("--impressions", "2000", "--iterations-1", "20", "--iterations-100", "5", "--repeats", "1"),
        *("--workdir", str(tmp_path)),
        output_flag="--out",
    )
    impressions = result["history"]["impressions"]
    assert impressions >= 2000
    for store in ("sqlite", "redis"):
        backend = result["backends"][store]
        materialization, online = backend["materialization"], backend["online"]["1_entities"]
        # What Feast wrote matches the marts, and the raw copy it is timed against holds the same rows.
        assert materialization["entity_rows"] > 0 and all(materialization["checks"].values()), store
        assert online["checks"]["http_equals_inprocess"] is True, store  # feast serve answered like in-process
        assert {"feast_inprocess_ranker_v1", "raw_ranker_v1", "feast_http"} <= set(online["timings"]), store
        assert all(t["n"] == 20 for t in online["timings"].values()), store
    # Every impression is a row except the day in progress's, which waits until it is complete (ml.data_days).
    training = result["training_set"]
    assert training["rows"] == training["window_impressions"] > 0
    assert training["window_impressions"] + training["impressions_waiting"] == impressions
    assert training["window_days"] >= 1


def test_stream(run_bench: Any, redis_url: str) -> None:
    result = run_bench("bench_stream.py", "--events", "500", "--clicks", "5", "--redis-url", redis_url)
    assert [r["online_store"] for r in result["results"]] == ["sqlite", "redis"]
    for store in result["results"]:
        assert store["publish_events_per_s"] > 0
        assert 0 < store["click_to_online_ms_p50"] <= store["click_to_online_ms_max"]


def test_service(
    run_bench: Any, tmp_path: Path, redis_url: str, served_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It kills its online store's Redis for the fallback figures, so it starts a redis-server of its own; `redis_url`
    # only makes this test skip (or fail in CI) where the binary is missing, as every Redis test does. The history
    # is a copy of the served home (the same 150-user world its --smoke would simulate and train again), run under
    # the settings it was built with, so that its champion is kept (the bench refuses a copy that trains again).
    for name, value in SERVED_ENV.items():
        monkeypatch.setenv(name, value)
    result = run_bench("bench_service.py", "--smoke", "--home-from", str(served_home.home), "--workdir", str(tmp_path))
    assert result["history"]["copied_from"] == str(served_home.home)
    assert [level["concurrency"] for level in result["levels"]] == [1, 2]
    for level in result["levels"]:
        for side in ("service", "feast_serve"):
            assert level[side]["errors"] == 0 and level[side]["requests"] > 0, (level["concurrency"], side)
    assert result["goal_check"]["service_p99_ms"] > 0 and result["goal_check"]["errors"] == 0
    fallbacks = result["fallbacks"]
    assert fallbacks["cold_start_popular"]["errors"] == 0
    assert fallbacks["online_store_down_popular"]["served_by"] == {
        "popular": fallbacks["online_store_down_popular"]["requests"]
    }
    assert result["click_to_changed_page"]["clicks"] == 1

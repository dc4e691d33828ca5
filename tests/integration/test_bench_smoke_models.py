"""The model, recommendation and experiment-decision benchmarks still run, at a tiny size, as docs/benchmarks.md
tells a reader to run them (the pipeline benchmarks are in test_bench_smoke.py; a module of its own so the two
sets run side by side under pytest-xdist). They measure nothing; the committed figures must come out untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailor.settings import Settings

pytestmark = pytest.mark.integration


def test_ranker_on_a_served_home(run_bench: Any, served_home: Settings) -> None:
    result = run_bench(
        "bench_ranker.py",
        *("--home", str(served_home.home), "--trials", "2", "--timeout", "60", "--eval-users", "50"),
        *("--ceiling-samples", "5000"),
    )
    classification = result["classification"]
    assert {"ranker", "naive", "popularity", "oracle"} <= set(classification)
    assert 0.5 < classification["oracle"]["auc"] <= 1.0 and 0.0 < classification["ranker"]["auc"] <= 1.0
    lists = result["lists_truth"]
    assert lists["oracle"]["truth_ndcg_at_k"] == pytest.approx(1.0)  # the truth ranks itself perfectly
    assert 0.0 <= lists["random"]["truth_ndcg_at_k"] < 1.0
    # The learnable ceiling knows less than the oracle (unshown items' quality, users' exact tastes).
    assert 0.0 < lists["ceiling"]["truth_ndcg_at_k"] < 1.0
    assert 0.5 < classification["ceiling"]["auc"] <= 1.0
    assert result["ceiling"]["effective_samples_of_list_users"]["min"] >= 1.0
    # The printed tables name the rows as docs/benchmarks.md does (a trial looked for "naive" there).
    printed = [line.split("  ")[0] for line in run_bench.stdout.splitlines()]
    assert {"position-blind model", "learnable ceiling", "CF (EASE) alone"} <= set(printed), run_bench.stdout


def test_movielens(run_bench: Any) -> None:
    """Reads MovieLens-100k from the recbole 1.2.1 wheel (fetched once into ~/.cache/tailor, as the bench says)."""
    result = run_bench("bench_movielens.py", "--smoke")
    assert result["smoke"] is True and result["data"]["users"] == 120
    models = result["results"]["user"]["models"]
    assert {"ease", "als", "item_knn", "pure_svd"} <= set(models)
    assert all(0.0 < model["test"]["ndcg_at_k"] <= 1.0 for model in models.values())
    assert result["results"]["user"]["choice"]["pick"] in models


def test_sequential_aa(run_bench: Any) -> None:
    result = run_bench(
        "bench_sequential_aa.py", *("--worlds", "1", "--experiments", "4", "--users", "200", "--days", "8")
    )
    assert result["trials"] == 4 and result["worlds"] == 1
    for rule in ("rule_planned", "rule_unplanned", "naive_daily_holm", "planned_read_only"):
        assert 0.0 <= result[rule]["rate"] <= 1.0, rule


def test_closed_loop(run_bench: Any, tmp_path: Path) -> None:
    result = run_bench("bench_closed_loop.py", "--smoke", "--workdir", str(tmp_path))
    assert result["pages"]["users"] > 0
    every = result["true_ctr_on_the_same_requests"]["all_requests"]
    assert every["requests"] > 0
    assert {"served", "holdout", "oracle", "popularity", "random", "logging"} <= set(every)
    assert every["oracle"] > every["random"]  # the truth's own pages beat random ones on the same requests
    assert result["holdout_lift"]["true_absolute_lift"] is not None


def test_app_first_render(run_bench: Any, served_home: Settings) -> None:
    """Time to first render of every app page in Debian's chromium (needs /usr/bin/chromium, as the e2e tests)."""
    result = run_bench("bench_app.py", "--home", str(served_home.home), "--label", "served", "--repeats", "1")
    pages = result["homes"]["served"]["pages"]
    assert set(pages) == {"overview", "experiments", "preview", "health"}
    assert all(page["cold_median_s"] > 0 and page["warm_median_s"] > 0 for page in pages.values())


def test_startup_on_a_served_home(run_bench: Any, served_home: Settings) -> None:
    # Every case but import_from_source, which compiles the whole stack in both modes (about a minute, and the
    # same import as import_with_pyc under two environment variables).
    cases = "import,import_with_pyc,recommend,online_read"
    result = run_bench(
        "bench_startup.py", "--home", str(served_home.home), "--repeats", "1", "--calls", "5", "--cases", cases
    )
    assert set(result["results"]) == set(cases.split(",")) and result["bytecode_cpu_saved_s"] is None
    for case in result["results"].values():
        assert case["skipped"]["wall_s"] > 0 and case["kept"]["cpu_s"] > 0
    assert result["results"]["online_read"]["skipped"]["ms_per_call"] > 0

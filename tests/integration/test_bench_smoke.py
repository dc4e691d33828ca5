"""Every benchmark in bench/ still runs, at a tiny size, exactly as docs/benchmarks.md tells a reader to run it.

The figures in docs/benchmarks.md must be reproducible from a fresh clone after `make install`; these runs catch a
benchmark that no longer starts (a renamed model or function, a missing dependency such as gbstats) long before
someone needs to rerun it. They measure nothing: each writes its results into the test's folder, and the committed
figures in bench/results/ must come out untouched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tailor.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_simulator(run_bench: Any) -> None:
    result = run_bench("bench_simulator.py", "--events", "3000", "--days", "3")
    [run] = result["runs"]
    assert 1500 < run["events_written"] < 4500  # users are sized for the requested events
    assert run["events_per_second"] > 0 and run["event_bytes"] > 0


def test_bandit(run_bench: Any) -> None:
    result = run_bench("bench_bandit.py", "--users", "100", "--days", "7", "--replications", "2", "--resamples", "2")
    assert [s["environment"].split(" ")[0] for s in result["bandit"]] == ["exp_feed_ranker"] * 5 + ["exp_aa_feed"]
    for scenario in result["bandit"]:
        assert set(scenario["policies"]) == {"thompson", "fixed 50/50"}
    offpolicy = result["offpolicy"]
    logged = offpolicy["policies"]["logging policy"]["on_the_simulated_log"]
    # Evaluating the logging policy on its own log weights every request by 1: IPS is the observed CTR.
    assert logged["ips"]["value"] == pytest.approx(offpolicy["observed_ctr"], rel=1e-12)


def test_experiments_next_to_gbstats_and_the_experiment_marts(run_bench: Any, tmp_path: Path) -> None:
    result = run_bench(
        "bench_experiments.py",
        *("--experiments", "3", "--repeats", "1", "--events", "3000", "--workdir", str(tmp_path)),
    )
    analysis = result["analysis"]
    assert analysis["comparisons"] == 15
    agreement = analysis["agreement"]
    # gbstats 0.8.0 runs on the project's numpy/pandas/scipy and agrees with Tailor (docs/benchmarks.md).
    assert agreement["gbstats_errors"] == 0
    for kind in ("proportion", "mean_cuped", "ratio", "ratio_cuped"):
        assert agreement[kind]["same_significance_at_alpha"] == 1.0, kind
        assert max(agreement[kind]["max_diff_in_ci_halfwidths"].values()) < 0.1, kind
    dbt = result["dbt"]
    assert set(dbt["experiment_models_s"]) == {
        "fct_experiment_units",
        "dim_experiments",
        "int_experiment_unit_days",
        "fct_experiment_stats",
        "fct_experiment_daily_stats",
        "fct_experiment_novelty_stats",
    }
    assert dbt["experiments"] >= 1 and dbt["exposed_units"] > 0 and dbt["stats_rows"] > 0
    assert dbt["events_accepted"] <= dbt["events_received"]


def test_pipeline(run_bench: Any, tmp_path: Path) -> None:
    # `tailor run` on the same files is what tests/e2e/test_cli.py runs; here it would double the time.
    result = run_bench("bench_pipeline.py", "--events", "3000", "--skip-tailor-run", "--workdir", str(tmp_path))
    [row] = result["results"]
    accepted = row["accepted_events"]
    assert 0 < accepted["tailor"] <= row["events_received"]
    # The hand-written script keeps the few rows the contract quarantines, so it accepts a little more.
    assert accepted["tailor"] <= accepted["handwritten"] <= 1.05 * accepted["tailor"]
    assert row["sessions"]["tailor"] > 0 and row["user_days"]["tailor"] > 0
    assert row["tailor_run_s"] is None


def test_dbt_commits(run_bench: Any, tmp_path: Path) -> None:
    result = run_bench("bench_dbt_commits.py", "--smoke", "--workdir", str(tmp_path))
    [build] = result["builds"]
    assert build["rev"] == "HEAD" and build["nodes"] >= 100  # every model, test and unit test of the project
    assert build["cpu_s"] > 0 and build["slowest_models_s"]
    # The commit's worktree is removed again: nothing is left checked out beside the repository.
    listed = subprocess.run(["git", "worktree", "list"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert str(tmp_path) not in listed.stdout


def test_control_chars(run_bench: Any, tmp_path: Path) -> None:
    from simulator import SimulationConfig, simulate
    from tailor.ingest import ingest_paths
    from tailor.settings import get_settings

    home = get_settings(tmp_path / "landed")
    simulate(SimulationConfig(users=5, days=1, seed=3), tmp_path / "generated")
    ingest_paths([tmp_path / "generated" / "events"], home, check_rows=False)
    result = run_bench("bench_control_chars.py", "--home", str(home.home), "--lines", "2000")
    assert result["lines"] >= 1000
    assert set(result["cpu_s"]) == {"per_field", "raw_prefilter", "raw_prefilter_then_fields"}


def test_calibration(run_bench: Any, tmp_path: Path) -> None:
    result = run_bench(
        "calibrate_experiments.py",
        *("--simulations", "2", "--demo-simulations", "1", "--scratch", str(tmp_path)),
        output_flag="--out",
    )
    small, demo = result["small_worlds"], result["demo_worlds"]
    assert small["simulations"] == 2 and demo["simulations"] == 1
    # The ranker's planted x1.08 on clicks, read from the simulator's truth: a true CTR lift a little below +8%.
    ranker = small["pairs"]["exp_feed_ranker/ctr"]["relative"]
    assert ranker["covered"] <= 2 and 0.05 < ranker["true_effect_mean"] < 0.08


def test_run_cost(run_bench: Any, tmp_path: Path) -> None:
    result = run_bench("bench_run_cost.py", "--smoke", "--workdir", str(tmp_path))
    [size] = result["results"]
    runs = {run["run"]: run for run in size["runs"]}
    assert list(runs) == ["first run", "new day", "nothing new"]
    for name, run in runs.items():
        steps = run["steps"]
        # Steps come from the Dagster run, not from a list in the script: the graph's assets are all there.
        assert {"landing", "warehouse", "feast__registry", "feast__online_store", "ml__ranking_training_set"} <= set(
            steps
        ), name
        assert all(step["status"] == "success" for step in steps.values()), name
        baseline = steps["landing"]["seconds"] + steps["warehouse"]["seconds"]
        assert run["landing_plus_dbt_s"] == pytest.approx(baseline, abs=0.02)
        assert run["ratio_wall_to_landing_plus_dbt"] == pytest.approx(run["wall_s"] / baseline, abs=0.02)
        assert run["steps_total_s"] <= run["wall_s"]
    training = {
        name: run["steps"]["ml__ranking_training_set"]["metadata"]["ml/ranking_training_set"]
        for name, run in runs.items()
    }
    assert training["first run"]["action"] == "built" and training["first run"]["rows"] > 0
    assert training["new day"]["rows_built"] > 0 and training["new day"]["rows"] > training["first run"]["rows"]
    # Nothing new: every feature asset says it had nothing to do.
    quiet = runs["nothing new"]["steps"]
    for step, key in (
        ("feast__registry", "feast/registry"),
        ("feast__online_store", "feast/online_store"),
        ("ml__ranking_training_set", "ml/ranking_training_set"),
    ):
        assert quiet[step]["metadata"][key]["action"] == "up to date", step
    assert training["nothing new"]["rows_built"] == 0

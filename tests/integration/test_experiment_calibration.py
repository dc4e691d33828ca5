"""The experiment statistics against effects planted in the simulator (issue 4, "Correctness").

Repeated small simulations with fixed seeds (deterministic), analysed by ``evaluation.calibration``: the
same harness as ``bench/calibrate_experiments.py``, which runs 1,000+ seeds. The true effect of every
comparison comes from the exact click and conversion probabilities in the ground truth, not from the data.

Every seed re-randomizes the split (``calibration_config(resalt=True)``): with the simulator's fixed experiment
ids all seeds share one split, and the bench showed that this repeats one split's imbalance as a bias.
Seeds were fixed before the first run and are not chosen to pass. With 120 worlds a single pair's coverage has
a binomial standard error of ~2%, so the 95% +- 2% band is asserted on the pooled trials (600) and each planted
pair gets a 3-standard-error floor; the bench's 1,000 seeds pin every pair down to +-0.7%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evaluation.calibration import (
    CupedTrial,
    Outcome,
    Trial,
    aa_holm_p,
    calibration_config,
    realised_reduction,
    run_many,
)

pytestmark = pytest.mark.integration

SMALL_SEEDS = range(120)  # 1,000 users x 14 days each, ~0.5 s per world on an idle 2-core machine
DEMO_SEEDS = range(500, 515)  # the demo's size: 2,000 users x 28 days
PLANTED = ("exp_feed_ranker/ctr", "exp_checkout_nudge/conversion")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return run_many(SMALL_SEEDS, calibration_config, scratch=tmp_path_factory.mktemp("calibration-small"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return run_many(
        DEMO_SEEDS,
        partial(calibration_config, users=2_000, days=28),
        scratch=tmp_path_factory.mktemp("calibration-demo"),
    )


def _pair(trials: Sequence[Trial], name: str) -> list[Trial]:
    return [t for t in trials if f"{t.experiment_id}/{t.metric}" == name]


def _coverage(trials: Sequence[Trial], kind: str) -> tuple[float, int]:
    known = [c for c in (t.covers(kind) for t in trials) if c is not None]
    return sum(known) / len(known), len(known)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_95_percent_intervals_cover_the_true_effect_95_percent_of_the_time(small: Outcome, kind: str) -> None:
    """Every experiment x metric whose true effect the truth gives (two planted effects, three nulls)."""
    coverage, n = _coverage(small.trials, kind)
    assert n == 5 * len(SMALL_SEEDS)
    assert 0.93 <= coverage <= 0.97, f"{kind} coverage {coverage:.3f} over {n} intervals"


@pytest.mark.parametrize("name", PLANTED)
def test_each_planted_effect_is_covered_and_estimated_without_bias(small: Outcome, name: str) -> None:
    trials = _pair(small.trials, name)
    coverage, n = _coverage(trials, "relative")
    assert coverage >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / n), f"{name}: relative coverage {coverage:.3f} of {n}"
    errors = np.array([t.relative - t.true_relative for t in trials if t.true_relative is not None])
    assert abs(errors.mean()) < 3 * errors.std(ddof=1) / math.sqrt(len(errors)), f"{name}: biased by {errors.mean()}"


def test_true_effects_are_the_planted_multipliers_after_clipping_and_saturation(small: Outcome) -> None:
    """The truth is not the planted multiplier - 1: a clipped attractiveness cannot rise by 8%, and a user
    with several sessions converts at 1 - prod(1 - p), which grows by less than p does."""
    ctr = np.array([t.true_relative for t in _pair(small.trials, "exp_feed_ranker/ctr")], dtype=float)
    conversion = np.array([t.true_relative for t in _pair(small.trials, "exp_checkout_nudge/conversion")], dtype=float)
    assert ctr.min() > 0.07 and ctr.max() < 0.08
    assert conversion.min() > 0.06 and conversion.max() < 0.10
    assert all(t.true_relative == 0 for t in _pair(small.trials, "exp_aa_feed/ctr"))


def _most_significant_allowed(runs: int) -> int:
    """Significant A/A runs a 5% family-wise error allows: the 99.9% quantile of Binomial(runs, 0.05), so a
    calibrated test fails 0.1% of the time. (The first version allowed 2 of 15, a 3.6% false alarm, and its first
    run after re-salting hit it with 3; the 600-seed bench puts the rate at 4.8%.)"""
    return int(stats.binom.ppf(0.999, runs, 0.05))


def test_demo_sized_aa_is_not_significant_after_holm_in_the_large_majority_of_seeds(demo: Outcome) -> None:
    """Holm across the A/A's metrics (ctr, conversion) at the demo's size: at least 11 of 15 seeds clean."""
    significant = [seed for seed in DEMO_SEEDS if aa_holm_p(_seed(demo.trials, seed), "exp_aa_feed") < 0.05]
    assert len(significant) <= _most_significant_allowed(len(DEMO_SEEDS)), f"significant after Holm: {significant}"


def test_aa_family_wise_error_after_holm_is_about_5_percent(small: Outcome) -> None:
    """The same over 120 small worlds, where the rule has teeth: it fails a 15% family-wise error 81% of the
    time. Without correction, two metrics at 5% each would be significant in ~10% of runs."""
    significant = [seed for seed in SMALL_SEEDS if aa_holm_p(_seed(small.trials, seed), "exp_aa_feed") < 0.05]
    assert len(significant) <= _most_significant_allowed(len(SMALL_SEEDS)), f"significant after Holm: {significant}"


def _seed(trials: Sequence[Trial], seed: int) -> list[Trial]:
    return [t for t in trials if t.seed == seed]


def test_cuped_reports_a_reduction_equal_to_the_squared_pre_post_correlation(demo: Outcome) -> None:
    """cuped_compare's variance reduction against rho^2 computed by numpy from the same users."""
    for c in demo.cuped:
        assert c.variance_reduction == pytest.approx(c.rho2, abs=0.02), f"{c.experiment_id}/{c.metric} seed {c.seed}"
    clicks = [c.rho2 for c in demo.cuped if c.metric == "clicks"]
    assert min(clicks) > 0.3, "clicks before and after exposure are strongly correlated (activity varies per user)"


def test_cuped_really_removes_rho2_of_the_variance_across_simulations(small: Outcome) -> None:
    """Independent of the formula: the spread of CUPED estimates around the truth across 120 worlds against the
    spread of raw estimates. For a bivariate normal, Var(log ratio of sample variances) = 4 rho^2 / n, so the
    realised reduction may stray from rho^2 by about 2 (1 - rho^2) sqrt(rho^2 / n); we allow 3 of those."""
    groups: dict[str, list[CupedTrial]] = {}
    for c in small.cuped:
        if c.true_absolute is not None:
            groups.setdefault(f"{c.experiment_id}/{c.metric}", []).append(c)
    assert len(groups) == 7
    for name, cs in groups.items():
        rho2 = float(np.mean([c.rho2 for c in cs]))
        tolerance = 3 * 2 * (1 - rho2) * math.sqrt(rho2 / len(cs))
        realised = realised_reduction(cs)
        assert realised == pytest.approx(rho2, abs=tolerance), f"{name}: realised {realised:.3f}, rho^2 {rho2:.3f}"
    covered = [c.covers() for cs in groups.values() for c in cs]
    assert 0.93 <= sum(bool(x) for x in covered) / len(covered) <= 0.97, "CUPED intervals cover the truth"


def test_units_match_the_simulators_own_tallies(tmp_path: Path) -> None:
    """The harness's per-user impressions and clicks add up to what the simulator says it drew after exposure."""
    import json

    from evaluation.simulated_units import unit_metrics
    from simulator import simulate

    out = tmp_path / "world"
    simulate(calibration_config(seed=3, users=400, days=10, resalt=False), out)
    units = unit_metrics(out)
    truth = json.loads((out / "_truth" / "truth.json").read_text())
    ranker = next(e for e in truth["experiments"] if e["experiment_id"] == "exp_feed_ranker")
    for arm in ranker["arms"]:
        rows = units[(units["experiment_id"] == "exp_feed_ranker") & (units["variant"] == arm["variant"])]
        assert len(rows) == arm["users_exposed"]
        # The ranker runs on every surface, so every post-exposure impression is one of its exposed impressions.
        assert rows["impressions"].sum() == arm["impressions_after_exposure"]
        assert rows["clicks"].sum() == arm["clicks_after_exposure"]


def test_units_read_json_lines_with_faults_exactly_as_clean_parquet(tmp_path: Path) -> None:
    """Duplicates, late and malformed rows (the demo's JSON Lines) change nothing: same seed, same units."""
    from evaluation.simulated_units import unit_metrics
    from simulator import SimulationConfig, simulate

    simulate(calibration_config(seed=5, users=400, days=10, resalt=False), tmp_path / "clean")
    simulate(SimulationConfig(users=400, days=10, seed=5), tmp_path / "demo_format")
    clean, faulty = unit_metrics(tmp_path / "clean"), unit_metrics(tmp_path / "demo_format")
    assert len(clean) > 500
    pd.testing.assert_frame_equal(clean, faulty)


def test_truth_columns_are_the_expectations_of_the_measured_metrics(tmp_path: Path) -> None:
    """Summed over users, clicks and conversions land within 3 standard deviations of the summed
    probabilities the truth gives for them (Bernoulli draws: variance sum p (1 - p))."""
    from evaluation.simulated_units import unit_metrics
    from simulator import simulate

    simulate(calibration_config(seed=11, users=2_000, days=28), tmp_path / "world")
    units = unit_metrics(tmp_path / "world")
    for experiment, rows in units.groupby("experiment_id"):
        p = rows["p_converted"].to_numpy()
        z = (rows["converted"].sum() - p.sum()) / math.sqrt((p * (1 - p)).sum())
        assert abs(z) < 3, f"{experiment}: conversions {rows['converted'].sum()} vs expected {p.sum():.1f}"
        # Clicks: the per-impression variance is below the per-impression mean, so sqrt(expected) bounds the sd.
        z = (rows["clicks"].sum() - rows["expected_clicks"].sum()) / math.sqrt(rows["expected_clicks"].sum())
        assert abs(z) < 3, f"{experiment}: clicks {rows['clicks'].sum()} vs expected {rows['expected_clicks'].sum()}"


def test_every_seed_draws_a_new_split() -> None:
    """Re-salting makes each seed a new randomization; the simulator's own ids give the same split every time."""
    from simulator.world import build_world

    resalted = [build_world(calibration_config(seed, users=2_000, days=2)).arms for seed in (1, 2)]
    fixed = [build_world(calibration_config(seed, users=2_000, days=2, resalt=False)).arms for seed in (1, 2)]
    assert 0.45 < (resalted[0] == resalted[1]).mean() < 0.55
    assert (fixed[0] == fixed[1]).all()

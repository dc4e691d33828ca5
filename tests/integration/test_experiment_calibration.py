"""The experiment statistics against effects planted in the simulator (issue 4, "Correctness").

Repeated small simulations with fixed seeds (deterministic), analysed by ``evaluation.calibration``: the
same harness as ``bench/calibrate_experiments.py``, which runs 1,000+ seeds. The true effect of every
comparison comes from the exact click and conversion probabilities in the ground truth, not from the data.

Every seed re-randomizes the split (``calibration_config(resalt=True)``): with the simulator's fixed experiment
ids all seeds share one split, and the bench showed that this repeats one split's imbalance as a bias.
Seeds were fixed before the first run and are not chosen to pass. With 120 worlds a single pair's coverage has
a binomial standard error of ~2%, so the 95% +- 2% band is asserted on the pooled trials (600) and each planted
pair gets a 3-standard-error floor; the bench's 1,000 seeds pin every pair down to +-0.7%.

The small worlds also carry 11 extra A/A experiments (independent splits of the same users, no behaviour
change): 1,440 A/A trials for the family-wise error after Holm, enough that the same count without the
correction fails the bound (asserted on the same trials). Coverage and CUPED are read on the demo's experiments.
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
    EXTRA_AA_PREFIX,
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
EXTRA_AA = 11  # more A/A experiments per small world: 12 x 120 = 1,440 A/A trials
AA_EXPERIMENTS = ("exp_aa_feed", *(f"{EXTRA_AA_PREFIX}{i:02d}" for i in range(EXTRA_AA)))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return run_many(
        SMALL_SEEDS,
        partial(calibration_config, extra_aa=EXTRA_AA),
        scratch=tmp_path_factory.mktemp("calibration-small"),
    )


def _demo_experiments(trials: Sequence[Trial]) -> list[Trial]:
    return [t for t in trials if not t.experiment_id.startswith(EXTRA_AA_PREFIX)]


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
    coverage, n = _coverage(_demo_experiments(small.trials), kind)
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
    """Holm across the A/A's metrics (ctr, conversion) at the demo's size: at least 11 of 15 seeds clean. This is
    the demo's own claim; 15 worlds cannot tell a missing correction from chance (the next test can)."""
    significant = [seed for seed in DEMO_SEEDS if aa_holm_p(_seed(demo.trials, seed), "exp_aa_feed") < 0.05]
    assert len(significant) <= _most_significant_allowed(len(DEMO_SEEDS)), f"significant after Holm: {significant}"


def test_aa_family_wise_error_after_holm_is_at_most_5_percent_and_the_bound_catches_no_correction(
    small: Outcome,
) -> None:
    """Holm across ctr and conversion on 1,440 A/A trials (12 A/A experiments x 120 small worlds). The bound
    allows 99 (6.9%). Without the correction ("either metric at 5%", ~10%) the same trials give far more, which
    this test asserts too: remove Holm and it fails. The binomial bound treats the trials as independent; those of
    one world share users but have independent splits, so their statistics are uncorrelated under the null
    (bench/bench_sequential_aa.py compares binomial and world-clustered standard errors)."""
    corrected, uncorrected = [], []
    for seed in SMALL_SEEDS:
        trials = _seed(small.trials, seed)
        for experiment in AA_EXPERIMENTS:
            ps = [t.absolute_p for t in trials if t.experiment_id == experiment]
            assert len(ps) == 2, (seed, experiment)
            corrected.append(aa_holm_p(trials, experiment) < 0.05)
            uncorrected.append(min(ps) < 0.05)
    runs = len(SMALL_SEEDS) * len(AA_EXPERIMENTS)
    assert len(corrected) == runs == 1_440
    allowed = _most_significant_allowed(runs)
    assert sum(corrected) <= allowed, f"{sum(corrected)} of {runs} A/A trials significant after Holm"
    assert sum(uncorrected) > allowed, f"uncorrected: {sum(uncorrected)} of {runs}, the bound would not catch it"


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


# ---------------------------------------------------------------- daily looks through the real marts

DAILY_AA_SEED, DAILY_AA_EXPERIMENTS = 7, 100


@pytest.fixture(scope="module")
def daily_aa_marts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One world with 100 A/A experiments, landed with ingest and built by dbt (every model and test)."""
    from evaluation.daily_aa import aa_world_config
    from simulator import simulate
    from tailor.ingest import ingest_paths
    from tailor.settings import get_settings
    from tests.conftest import run_dbt

    root = tmp_path_factory.mktemp("daily-aa")
    simulate(aa_world_config(DAILY_AA_SEED, DAILY_AA_EXPERIMENTS), root / "generated")
    settings = get_settings(root / "home")
    ingest_paths([root / "generated"], settings)
    run_dbt(settings, "build")
    return settings.marts_dir


def test_daily_decisions_on_cumulative_marts_keep_the_family_wise_error_and_the_naive_rule_does_not(
    daily_aa_marts: Path,
) -> None:
    """100 A/A experiments judged every day on fct_experiment_daily_stats (units join over time, per-unit totals
    grow), each a family of 4 metrics: with a planned size (one read at it) and without, the rule calls a winner
    in at most 12 (the 99.9% quantile of Binomial(100, 0.05)); the naive daily fixed-horizon Holm p, what an
    unplanned experiment got before, exceeds that bound on the same looks (~22%), so the test fails without the
    sequential method. bench/bench_sequential_aa.py measures the same on 4,000 experiments."""
    from evaluation.daily_aa import false_positives

    trials = false_positives(
        pd.read_parquet(daily_aa_marts / "fct_experiment_daily_stats.parquet"),
        pd.read_parquet(daily_aa_marts / "fct_experiment_stats.parquet"),
        pd.read_parquet(daily_aa_marts / "dim_experiments.parquet"),
    )
    assert len(trials) == DAILY_AA_EXPERIMENTS and trials["read_reached"].all()
    assert trials["days"].min() >= 12  # every experiment is looked at on at least 12 days
    allowed = _most_significant_allowed(len(trials))
    for rule in ("rule_planned", "rule_unplanned"):
        assert trials[rule].sum() <= allowed, f"{rule}: {trials[rule].sum()} of {len(trials)}"
    assert trials["naive_daily_holm"].sum() > allowed, f"naive: {trials['naive_daily_holm'].sum()} of {len(trials)}"


def test_experiment_results_and_daily_results_agree_on_the_marts(daily_aa_marts: Path) -> None:
    """The two assets' functions on the same marts: the overall decisions are the last day's."""
    from ml.experiments.results import compute_daily_results, compute_results

    overall = compute_results(daily_aa_marts)
    daily = compute_daily_results(daily_aa_marts)
    last = daily[daily["as_of_date"] == daily["as_of_date"].max()]
    keys = ["experiment_id", "metric", "variant"]
    columns = [*keys, "decision", "decision_basis", "decided_on"]
    pd.testing.assert_frame_equal(
        overall[columns].sort_values(keys).reset_index(drop=True),
        last[columns].sort_values(keys).reset_index(drop=True),
    )
    assert overall.loc[~overall["is_control"], "decision"].notna().all()

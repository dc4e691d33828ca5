"""Thompson sampling: P(best) against a closed form and Monte Carlo, regret against a fixed split on known truths.

References: Evan Miller's closed form for P(p_b > p_a) with Beta posteriors ("Formulas for Bayesian A/B
testing", 2015), the expected regret of a fixed split (n * sum_a w_a * gap_a), and the simulator's planted
click model (truth.json and the impressions truth table).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import special

from evaluation.simulator_truth import experiment_environment
from ml.experiments.bandit import (
    BanditEnvironment,
    BetaPrior,
    compare_policies,
    fixed_split_regret,
    next_allocation,
    prob_best,
    prob_best_exact,
    prob_best_mc,
    run_policy,
)
from simulator import SimulationConfig, SimulationResult, simulate

pytestmark = pytest.mark.unit

FIFTY_FIFTY = (0.5, 0.5)


def miller_b_beats_a(alpha_a: int, beta_a: int, alpha_b: int, beta_b: int) -> float:
    """P(p_b > p_a) = sum_{i<alpha_b} B(alpha_a + i, beta_a + beta_b) / ((beta_b + i) B(1 + i, beta_b) B(alpha_a,
    beta_a)), for integer alpha_b (Evan Miller 2015)."""
    i = np.arange(alpha_b, dtype=np.float64)
    log_terms = (
        special.betaln(alpha_a + i, beta_a + beta_b)
        - np.log(beta_b + i)
        - special.betaln(1 + i, beta_b)
        - special.betaln(alpha_a, beta_a)
    )
    return float(np.exp(log_terms).sum())


# ---------------------------------------------------------------- P(best)


@pytest.mark.parametrize("seed", range(12))
def test_two_arm_prob_best_equals_the_closed_form(seed: int) -> None:
    rng = np.random.default_rng(seed)
    trials = rng.integers(1, 3000, size=2)
    successes = np.array([rng.integers(0, n + 1) for n in trials])
    exact = prob_best_exact(successes, trials)  # uniform prior: alpha = 1 + s, beta = 1 + n - s
    reference = miller_b_beats_a(
        1 + successes[0], 1 + trials[0] - successes[0], 1 + successes[1], 1 + trials[1] - successes[1]
    )
    assert exact[1] == pytest.approx(reference, abs=1e-9)
    assert exact[0] == pytest.approx(1 - reference, abs=1e-9)


def test_closed_form_with_an_informative_prior_and_large_counts() -> None:
    """Beta(2, 30) prior and 140k impressions per arm: the posteriors are narrow peaks far from 0.5."""
    prior = BetaPrior(2, 30)
    s, n = np.array([9_000, 9_130]), np.array([140_000, 140_000])
    exact = prob_best_exact(s, n, prior)
    reference = miller_b_beats_a(2 + 9_000, 30 + 131_000, 2 + 9_130, 30 + 130_870)
    assert exact[1] == pytest.approx(reference, abs=1e-9)
    assert 0.8 < reference < 0.9  # a case where the answer is neither 0.5 nor 1, so the check has teeth


def test_monte_carlo_agrees_with_integration_for_three_arms() -> None:
    s, n = [30, 36, 41], [600, 610, 640]
    exact = prob_best_exact(s, n)
    draws = 400_000
    mc = prob_best_mc(s, n, draws=draws, rng=3)
    se = np.sqrt(exact * (1 - exact) / draws)
    assert np.all(np.abs(mc - exact) < 5 * se)
    assert exact.sum() == pytest.approx(1.0, abs=1e-8)
    # Seeded: the same call gives the same shares (a dashboard does not flicker on refresh).
    assert np.array_equal(prob_best_mc(s, n, draws=1000, rng=5), prob_best_mc(s, n, draws=1000, rng=5))


def test_identical_arms_are_equally_likely_best() -> None:
    assert prob_best([5, 5, 5], [100, 100, 100]) == pytest.approx([1 / 3] * 3, abs=1e-9)
    assert prob_best([0, 0], [0, 0], method="mc") == pytest.approx([0.5, 0.5], abs=0.02)


def test_next_allocation_splits_a_batch_by_prob_best() -> None:
    s, n = [40, 55], [1000, 1000]
    counts = next_allocation(s, n, batch_size=1_000_000, rng=1)
    assert counts.sum() == 1_000_000
    assert counts / 1_000_000 == pytest.approx(prob_best_exact(s, n), abs=0.002)


def test_bad_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="arm 1: successes must be between 0 and trials, got 12 of 10"):
        prob_best([1, 12], [10, 10])
    with pytest.raises(ValueError, match="at least two arms"):
        prob_best([1], [10])
    with pytest.raises(ValueError, match="prior alpha and beta must be positive"):
        BetaPrior(0, 1)
    with pytest.raises(ValueError, match="method must be 'exact' or 'mc'"):
        prob_best([1, 2], [10, 10], method="guess")  # type: ignore[arg-type]
    env = BanditEnvironment.from_rates([0.1, 0.2], [10])
    with pytest.raises(ValueError, match="a fixed split needs 2 non-negative weights"):
        run_policy(env, (0.5, 0.3, 0.2))
    with pytest.raises(ValueError, match="batch_ends must be increasing"):
        BanditEnvironment(np.full((5, 2), 0.1), np.array([3, 2, 5]), ("a", "b"))


# ---------------------------------------------------------------- regret against fixed rates


def test_thompson_regret_is_far_below_a_fixed_split_when_arms_differ() -> None:
    env = BanditEnvironment.from_rates([0.05, 0.06], batch_sizes=[2_000] * 10)
    result = compare_policies(env, {"thompson": "thompson", "50/50": FIFTY_FIFTY}, replications=30)
    fixed, ts = result["50/50"], result["thompson"]
    # A fixed split loses half of the gap on every pull: 20,000 * 0.01 / 2 = 100 clicks.
    assert fixed_split_regret(env, FIFTY_FIFTY) == pytest.approx(100.0)
    assert fixed.expected_regret_mean == pytest.approx(100.0, abs=3 * fixed.expected_regret_sd / np.sqrt(30) + 1e-9)
    assert ts.expected_regret_mean < 0.5 * fixed.expected_regret_mean
    assert ts.realized_regret_mean < 0.6 * fixed.realized_regret_mean
    assert ts.best_arm_share_mean > 0.7
    assert fixed.best_arm_share_mean == pytest.approx(0.5, abs=0.01)


def test_traffic_moves_to_the_better_arm_batch_by_batch() -> None:
    env = BanditEnvironment.from_rates([0.05, 0.07], batch_sizes=[2_000] * 10)
    run = run_policy(env, "thompson", seed=4)
    assert run.shares_by_batch[0] == pytest.approx([0.5, 0.5])  # no data: the prior says nothing
    assert run.shares_by_batch[-1][1] > 0.99
    assert np.all(np.diff(run.regret_by_batch) >= 0)
    assert run.pulls.sum() == env.pulls
    assert run.posterior_mean == pytest.approx([0.05, 0.07], abs=0.01)
    # Re-allocating more often loses fewer clicks in the first (uninformed) batch.
    hourly = env.with_batch_size(250)
    assert hourly.batch_ends[0] == 250 and hourly.batch_ends[-1] == env.pulls and len(hourly.batch_ends) == 80
    assert run_policy(hourly, "thompson", seed=4).expected_regret < run.expected_regret


def test_on_an_aa_test_thompson_is_not_worse_than_a_fixed_split() -> None:
    """Equal arms: no regret either way, and no arm is favoured on average. Nearly equal arms: Thompson's
    regret stays at or below the fixed split's (it cannot lose more than the tiny gap allows)."""
    aa = BanditEnvironment.from_rates([0.06, 0.06], batch_sizes=[1_500] * 10)
    result = compare_policies(aa, {"thompson": "thompson", "50/50": FIFTY_FIFTY}, replications=30)
    assert result["thompson"].expected_regret_mean == result["50/50"].expected_regret_mean == 0.0
    # With equal means the "best" arm is arm 0, so best_arm_share is arm 0's share of the traffic.
    assert result["thompson"].best_arm_share_mean == pytest.approx(0.5, abs=0.06)
    clicks = result["thompson"].successes_mean
    assert clicks == pytest.approx(0.06 * aa.pulls, abs=4 * np.sqrt(0.06 * 0.94 * aa.pulls / 30))

    near = BanditEnvironment.from_rates([0.060, 0.0606], batch_sizes=[1_500] * 10)
    result = compare_policies(near, {"thompson": "thompson", "50/50": FIFTY_FIFTY}, replications=30)
    assert result["thompson"].expected_regret_mean <= 1.05 * result["50/50"].expected_regret_mean


# ---------------------------------------------------------------- the simulator's planted click model


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(SimulationConfig(users=600, days=12), tmp_path_factory.mktemp("bandit_world"))


def test_environment_follows_the_truth_of_the_ctr_experiment(world: SimulationResult) -> None:
    doc = json.loads(world.truth_path.read_text())
    spec = next(e for e in doc["experiments"] if e["experiment_id"] == "exp_feed_ranker")
    env = experiment_environment(world.out_dir, "exp_feed_ranker")
    assert env.arm_names == ("control", "treatment")
    assert len(env.batch_ends) == doc["period"]["days"] - spec["start_day_index"]
    # Every exposed impression is a pull, and nothing else.
    exposed = sum(a["impressions_after_exposure"] for a in spec["arms"])
    assert env.pulls == exposed
    # Control = the click model without the effect: the truth's no-effect CTR over all exposed impressions.
    no_effect = sum(a["ctr_expected_without_effect"] * a["impressions_after_exposure"] for a in spec["arms"])
    assert env.arm_means[0] == pytest.approx(no_effect / exposed, rel=1e-9)
    # Treatment = x1.08 on attract, a bit less after clipping at 1.
    assert 1.07 < env.arm_means[1] / env.arm_means[0] <= 1.08
    # Each pull's probability is the one the simulator drew that impression's click from, for the user's own arm.
    imp = pq.read_table(world.out_dir / "_truth" / "impressions.parquet").to_pandas()
    users = pq.read_table(world.out_dir / "_truth" / "users.parquet").to_pandas()
    arm = imp.user_id.map(dict(zip(users.user_id, users.variant_exp_feed_ranker, strict=True)))
    pulls = (imp.pool_day >= date.fromisoformat(spec["start_date"])) & imp.surface.isin(spec["surfaces"])
    order = np.lexsort((imp.occurred_at[pulls].to_numpy(), imp.pool_day[pulls].to_numpy()))
    p_click, own_arm = imp.p_click[pulls].to_numpy()[order], (arm[pulls] == "treatment").to_numpy(dtype=int)[order]
    own_p = env.probabilities[np.arange(env.pulls), own_arm]
    assert own_p == pytest.approx(p_click, rel=1e-12, abs=0)


def test_thompson_beats_fifty_fifty_on_the_simulated_experiment(world: SimulationResult) -> None:
    env = experiment_environment(world.out_dir, "exp_feed_ranker", multipliers=(1.0, 1.2))
    result = compare_policies(env, {"thompson": "thompson", "50/50": FIFTY_FIFTY}, replications=10)
    assert result["50/50"].expected_regret_mean == pytest.approx(fixed_split_regret(env, FIFTY_FIFTY), rel=0.02)
    assert result["thompson"].expected_regret_mean < 0.5 * result["50/50"].expected_regret_mean
    assert result["thompson"].best_arm_share_mean > 0.75


def test_the_aa_experiment_has_identical_arms(world: SimulationResult) -> None:
    env = experiment_environment(world.out_dir, "exp_aa_feed")
    assert np.array_equal(env.probabilities[:, 0], env.probabilities[:, 1])
    assert run_policy(env, "thompson").expected_regret == 0.0


def test_environment_errors_name_the_fix(world: SimulationResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no experiment 'exp_nope' in this simulation; it has \['exp_feed_ranker'"):
        experiment_environment(world.out_dir, "exp_nope")
    with pytest.raises(ValueError, match="changes conversions, not clicks"):
        experiment_environment(world.out_dir, "exp_checkout_nudge")
    with pytest.raises(ValueError, match="need one positive multiplier each"):
        experiment_environment(world.out_dir, "exp_feed_ranker", multipliers=(1.0,))
    with pytest.raises(FileNotFoundError, match="pass the output folder of `tailor generate`"):
        experiment_environment(tmp_path, "exp_feed_ranker")

"""Off-policy estimates against known truths: a synthetic logged bandit and the simulator's top slot.

References: the target policy's exact value (sum of pi * p on the synthetic, the click model on the simulator),
the spread of the estimates over repeated draws, and the sample mean (the logging policy's own estimate).
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scipy import stats

from evaluation.simulator_truth import (
    TopSlotLog,
    epsilon_greedy_oracle_policy,
    estimate_policy,
    greedy_oracle_policy,
    load_top_slot_log,
    logging_policy,
    softmax_policy,
    tabulate,
    uniform_policy,
)
from ml.experiments.offpolicy import importance_weights, ips, replay, snips
from simulator import SimulationConfig, SimulationResult, simulate

pytestmark = pytest.mark.unit

# A logged bandit with 5 actions: a skewed logging policy and a target that favours what logging rarely shows.
REWARD = np.array([0.02, 0.05, 0.10, 0.20, 0.40])
LOGGING = np.array([0.40, 0.30, 0.15, 0.10, 0.05])
TARGET = np.array([0.05, 0.05, 0.20, 0.30, 0.40])
TRUE_VALUE = float(TARGET @ REWARD)


def draw_log(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n logged decisions: rewards, logging and target propensities of the logged actions."""
    action = rng.choice(len(LOGGING), size=n, p=LOGGING)
    reward = (rng.random(n) < REWARD[action]).astype(float)
    return reward, LOGGING[action], TARGET[action]


# ---------------------------------------------------------------- synthetic known truth


def test_ips_and_snips_are_unbiased_and_their_intervals_cover() -> None:
    rng = np.random.default_rng(0)
    runs, n = 2_000, 1_500
    estimates: dict[str, list[float]] = {"ips": [], "snips": []}
    ses: dict[str, list[float]] = {"ips": [], "snips": []}
    covered = {"ips": 0, "snips": 0}
    for _ in range(runs):
        r, mu, pi = draw_log(rng, n)
        for est in (ips(r, mu, pi), snips(r, mu, pi)):
            estimates[est.estimator].append(est.value)
            ses[est.estimator].append(est.se)
            covered[est.estimator] += est.covers(TRUE_VALUE)
    for name in ("ips", "snips"):
        values = np.array(estimates[name])
        # Unbiased: the mean of 2,000 estimates is within 3 standard errors of the truth.
        assert abs(values.mean() - TRUE_VALUE) < 3 * values.std() / np.sqrt(runs), name
        # The reported standard error matches the actual spread of the estimates.
        assert np.mean(ses[name]) == pytest.approx(values.std(), rel=0.08), name
        assert 0.935 <= covered[name] / runs <= 0.965, name
    # SNIPS is the less variable of the two here (large weights on rare actions).
    assert np.std(estimates["snips"]) < np.std(estimates["ips"])


def test_the_logging_policy_estimates_its_own_observed_ctr() -> None:
    r, mu, _ = draw_log(np.random.default_rng(1), 5_000)
    for est in (ips(r, mu, mu), snips(r, mu, mu)):
        assert est.value == pytest.approx(r.mean(), abs=1e-15)
        assert est.effective_sample_size == pytest.approx(5_000)


def test_snips_is_shift_invariant_and_ips_is_not() -> None:
    r, mu, pi = draw_log(np.random.default_rng(2), 3_000)
    assert snips(r + 1, mu, pi).value == pytest.approx(snips(r, mu, pi).value + 1, abs=1e-12)
    w = pi / mu
    assert ips(r + 1, mu, pi).value == pytest.approx(ips(r, mu, pi).value + w.mean(), abs=1e-12)
    assert w.mean() != pytest.approx(1.0, abs=1e-3)  # so the two statements differ


def test_replay_with_uniform_logging_keeps_exactly_the_matching_events() -> None:
    """Li et al. (2011): uniform logging over K actions, a deterministic target, M = K: keep the matches."""
    rng = np.random.default_rng(3)
    k, n = 5, 20_000
    action = rng.integers(0, k, n)
    reward = (rng.random(n) < REWARD[action]).astype(float)
    target_action = 3
    pi = (action == target_action).astype(float)
    est = replay(reward, np.full(n, 1 / k), pi, max_ratio=k, rng=99)
    matched = reward[action == target_action]
    assert est.effective_sample_size == len(matched)
    assert est.value == pytest.approx(matched.mean(), abs=1e-15)
    assert est.covers(REWARD[target_action])


def test_replay_is_unbiased_under_a_skewed_logging_policy() -> None:
    rng = np.random.default_rng(4)
    max_ratio = float((TARGET / LOGGING).max())
    values = []
    for run in range(400):
        r, mu, pi = draw_log(rng, 2_000)
        values.append(replay(r, mu, pi, max_ratio, rng=run).value)
    assert abs(np.mean(values) - TRUE_VALUE) < 3 * np.std(values) / np.sqrt(len(values))


def test_bad_logs_get_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"decision 1: logging propensity must be in \(0, 1\], got 0.0"):
        importance_weights([0.5, 0.0], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"decision 0: target propensity must be in \[0, 1\], got 1.5"):
        importance_weights([0.5, 0.5], [1.5, 0.5])
    with pytest.raises(ValueError, match="need one reward per logged decision: 3 rewards, 2 propensities"):
        ips([1, 0, 1], [0.5, 0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"pi / mu = 8 > max_ratio = 2: max_ratio must bound"):
        replay([1, 0], [0.1, 0.5], [0.8, 0.5], max_ratio=2)
    with pytest.raises(ValueError, match="replay kept 1 of 2 decisions"):
        replay([1, 0], [0.5, 0.5], [1.0, 0.0], max_ratio=2, rng=0)
    with pytest.raises(ValueError, match="probability 0 to every logged action"):
        snips([1, 0], [0.5, 0.5], [0.0, 0.0])


# ---------------------------------------------------------------- the simulator's top slot


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(SimulationConfig(users=600, days=12), tmp_path_factory.mktemp("offpolicy_world"))


@pytest.fixture(scope="module")
def log(world: SimulationResult) -> TopSlotLog:
    return load_top_slot_log(world.out_dir)


def test_the_log_holds_every_request_with_the_click_probability_it_was_drawn_from(
    world: SimulationResult, log: TopSlotLog
) -> None:
    imp = pq.read_table(world.out_dir / "_truth" / "impressions.parquet", columns=["position", "p_click", "clicked"])
    top = imp.filter(pc.equal(imp["position"], 1))
    assert log.requests == top.num_rows == world.as_dict()["clean_events_by_type"]["impression"] // 10
    # The attract formula recomputed from truth.json and the truth tables gives the simulator's exact p_click.
    value = np.concatenate([d.value[np.arange(len(d.logged)), d.logged] for d in log.days])
    assert value == pytest.approx(top["p_click"].to_numpy(), rel=1e-12, abs=0)
    assert log.rewards.sum() == pc.sum(top["clicked"].cast("int64")).as_py()
    for d in log.days:
        assert d.propensity.sum() == pytest.approx(1.0, abs=1e-12)


def test_logged_items_follow_the_recorded_propensities(log: TopSlotLog) -> None:
    """How often each (day, item) was shown first, against its recorded propensity."""
    hit = np.concatenate([(d.logged[:, None] == np.arange(len(d.propensity))).ravel() for d in log.days])
    recorded = np.concatenate([np.tile(d.propensity, len(d.logged)) for d in log.days])
    assert _binned_chisquare_p(recorded, hit) > 0.001
    # The check has power: the propensities of another temperature are rejected.
    other = np.concatenate([np.tile(_softmax(d.score, 0.7), len(d.logged)) for d in log.days])
    assert _binned_chisquare_p(other, hit) < 1e-6


def test_the_logging_policy_estimate_equals_the_observed_ctr(log: TopSlotLog) -> None:
    est = estimate_policy(log, logging_policy)
    for name in ("ips", "snips", "replay"):
        assert est[name].value == pytest.approx(log.rewards.mean(), abs=1e-12), name


POLICIES = {
    "uniform": uniform_policy,
    "softmax T=0.5": softmax_policy(0.5),
    "greedy oracle": greedy_oracle_policy,
    "eps-greedy 0.3": epsilon_greedy_oracle_policy(0.3),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_estimates_on_the_simulated_log_match_the_true_ctr(log: TopSlotLog, name: str) -> None:
    """One logged history: each estimate lies within 3 standard errors of the truth (the 95% intervals are
    checked for coverage over repeated draws below; a single draw misses them 5% of the time)."""
    policy = POLICIES[name]
    truth = log.true_value(policy)
    for estimator, est in estimate_policy(log, policy).items():
        assert abs(est.value - truth) < 3 * est.se, (estimator, est.value, truth, est.se)
    assert truth != pytest.approx(log.rewards.mean(), abs=0.01)  # the targets differ from the logged policy


def test_intervals_cover_the_true_ctr_over_repeated_logs(log: TopSlotLog) -> None:
    rng = np.random.default_rng(5)
    policies = {name: tabulate(log, POLICIES[name]) for name in ("uniform", "softmax T=0.5")}
    truths = {name: log.true_value(p) for name, p in policies.items()}
    runs = 300
    covered = {(name, est): 0 for name in policies for est in ("ips", "snips")}
    for _ in range(runs):
        again = log.resample(rng)
        for name, policy in policies.items():
            r, mu, pi = again.rewards, again.logging_propensity, again.target_propensity(policy)
            covered[name, "ips"] += ips(r, mu, pi).covers(truths[name])
            covered[name, "snips"] += snips(r, mu, pi).covers(truths[name])
    for key, hits in covered.items():
        assert 0.92 <= hits / runs <= 0.98, (key, hits / runs)


def test_a_target_that_is_not_a_distribution_is_refused(log: TopSlotLog) -> None:
    with pytest.raises(ValueError, match="probabilities over the pool that sum to 1"):
        log.true_value(lambda d: np.full(d.value.shape, 0.5))


def _softmax(score: np.ndarray, temperature: float) -> np.ndarray:
    w = np.exp((score - score.max()) / temperature)
    return w / w.sum()


def _binned_chisquare_p(claimed: np.ndarray, hit: np.ndarray, bins: int = 20) -> float:
    """Chi-square p-value of observed hits against claimed probabilities, over bins of equal expected count
    (sorted by the claimed probability, so the bins stay large enough for the chi-square approximation)."""
    order = np.argsort(claimed, kind="stable")
    cum = np.cumsum(claimed[order])
    which = np.minimum((cum / cum[-1] * bins).astype(int), bins - 1)
    observed = np.bincount(which, weights=hit[order].astype(float), minlength=bins)
    expected = np.bincount(which, weights=claimed[order], minlength=bins)
    return float(stats.chisquare(observed, expected).pvalue)

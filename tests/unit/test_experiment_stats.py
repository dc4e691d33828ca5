"""Experiment statistics against independent references: scipy, statsmodels and known-truth simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from ml.experiments import MeanStats, compare_means, srm_test

pytestmark = pytest.mark.unit


def _stats(values: np.ndarray) -> MeanStats:
    return MeanStats(n=len(values), sum=float(values.sum()), sum_squares=float((values**2).sum()))


@pytest.mark.parametrize("seed", range(20))
def test_absolute_difference_equals_scipy_and_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control = rng.lognormal(1.0, 0.8, size=int(rng.integers(30, 3000)))
    treatment = rng.lognormal(1.05, 1.1, size=int(rng.integers(30, 3000)))
    result = compare_means(_stats(control), _stats(treatment), alpha=0.05)
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert result.absolute_p == pytest.approx(welch.pvalue, rel=1e-9, abs=1e-12)
    low, high = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(alpha=0.05, usevar="unequal")
    assert result.absolute_ci[0] == pytest.approx(low, rel=1e-9)
    assert result.absolute_ci[1] == pytest.approx(high, rel=1e-9)


def test_proportions_are_means_of_zero_one_data() -> None:
    rng = np.random.default_rng(1)
    control = (rng.random(5000) < 0.050).astype(float)
    treatment = (rng.random(5200) < 0.056).astype(float)
    from_counts = compare_means(
        MeanStats.of_proportion(len(control), int(control.sum())),
        MeanStats.of_proportion(len(treatment), int(treatment.sum())),
    )
    assert from_counts.absolute_p == pytest.approx(stats.ttest_ind(treatment, control, equal_var=False).pvalue)


def test_relative_lift_interval_covers_the_true_lift_95_percent_of_the_time() -> None:
    """2,000 simulated experiments with a known +5% lift: the delta-method 95% interval covers it ~95% of runs."""
    rng = np.random.default_rng(7)
    true_lift, covered, runs = 0.05, 0, 2000
    for _ in range(runs):
        control = rng.gamma(2.0, 5.0, size=800)  # mean 10
        treatment = rng.gamma(2.0, 5.0 * (1 + true_lift), size=800)
        low, high = compare_means(_stats(control), _stats(treatment)).relative_ci
        covered += low <= true_lift <= high
    assert 0.935 <= covered / runs <= 0.965


def test_an_aa_test_is_significant_about_alpha_of_the_time() -> None:
    rng = np.random.default_rng(11)
    runs = 2000
    hits = sum(
        compare_means(_stats(rng.normal(3, 2, 400)), _stats(rng.normal(3, 2, 400))).absolute_p < 0.05
        for _ in range(runs)
    )
    assert 0.04 <= hits / runs <= 0.06


def test_srm_equals_scipy_chisquare_and_flags_only_strong_imbalance() -> None:
    for observed, weights in (([5100, 4900], [1, 1]), ([3020, 2950, 4030], [0.3, 0.3, 0.4])):
        result = srm_test(observed, weights)
        expected = np.array(weights) / sum(weights) * sum(observed)
        reference = stats.chisquare(observed, expected)
        assert result.chi2 == pytest.approx(reference.statistic, rel=1e-12)
        assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert not srm_test([5100, 4900], [1, 1]).mismatch  # p = 0.046: noise at this size
    assert srm_test([5300, 4700], [1, 1]).mismatch  # p < 0.001


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: MeanStats(n=1, sum=1.0, sum_squares=1.0), "at least 2 units"),
        (lambda: MeanStats.of_proportion(10, 11), "successes must be between"),
        (lambda: compare_means(MeanStats(10, 10.0, 10.0), MeanStats(10, 10.0, 10.0)), "the metric is constant"),
        (lambda: srm_test([10, 10], [1]), "one weight per variant"),
        (lambda: srm_test([10, 10], [1, 0]), "weights must be positive"),
    ],
)
def test_bad_input_says_what_is_wrong(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_holm_and_bh_equal_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    from ml.experiments.multiple import benjamini_hochberg, holm

    rng = np.random.default_rng(3)
    for size in (1, 2, 5, 17):
        p = list(rng.uniform(0, 0.2, size))
        assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12)
        assert benjamini_hochberg(p) == pytest.approx(list(multipletests(p, method="fdr_bh")[1]), rel=1e-12)


def _paired(x: np.ndarray, y: np.ndarray) -> object:
    from ml.experiments.cuped import PairedStats

    return PairedStats(n=len(x), sum_x=float(x.sum()), sum_x2=float((x**2).sum()), sum_y=float(y.sum()),
                       sum_y2=float((y**2).sum()), sum_xy=float((x * y).sum()))  # fmt: skip


def test_cuped_equals_ols_with_a_centered_covariate_and_cuts_variance_by_rho_squared() -> None:
    import statsmodels.api as sm

    from ml.experiments.cuped import cuped_compare

    rng = np.random.default_rng(5)
    n_c, n_t, rho = 4000, 4200, 0.7
    x = rng.normal(10, 3, n_c + n_t)
    noise = rng.normal(0, 3 * np.sqrt(1 - rho**2) / rho, n_c + n_t)
    treated = np.r_[np.zeros(n_c), np.ones(n_t)]
    y = x + noise + 0.25 * treated  # corr(x, y) = rho within each arm; true effect 0.25
    result = cuped_compare(_paired(x[:n_c], y[:n_c]), _paired(x[n_c:], y[n_c:]))  # type: ignore[arg-type]
    design = sm.add_constant(np.column_stack([treated, x - x.mean()]))
    ols = sm.OLS(y, design).fit()
    assert result.absolute == pytest.approx(ols.params[1], rel=1e-9)
    assert result.theta == pytest.approx(ols.params[2], rel=1e-9)
    assert result.variance_reduction == pytest.approx(rho**2, abs=0.03)
    assert result.absolute_ci[0] < 0.25 < result.absolute_ci[1]


def _ratio_stats(num: np.ndarray, den: np.ndarray) -> object:
    from ml.experiments.ratio import RatioStats

    return RatioStats(n=len(num), sum_num=float(num.sum()), sum_num2=float((num**2).sum()),
                      sum_den=float(den.sum()), sum_den2=float((den**2).sum()),
                      sum_num_den=float((num * den).sum()))  # fmt: skip


def _users(rng: np.random.Generator, n: int, ctr: float) -> tuple[np.ndarray, np.ndarray]:
    """Users with heavy-tailed impression counts and their own click propensity (correlated impressions)."""
    impressions = rng.negative_binomial(2, 0.1, n) + 1
    propensity = rng.beta(2, 2 * (1 - ctr) / ctr, n)
    return rng.binomial(impressions, propensity).astype(float), impressions.astype(float)


def test_ratio_interval_covers_the_truth_where_an_impression_level_interval_does_not() -> None:
    """2,000 simulated A/A experiments on CTR, randomized by user (true difference 0): the delta-method interval
    covers it ~95% of the time, while a naive binomial interval over impressions (ignoring that one user's
    impressions are correlated) is visibly too narrow."""
    from ml.experiments.ratio import compare_ratios

    rng = np.random.default_rng(13)
    runs, covered, naive_covered = 2000, 0, 0
    for _ in range(runs):
        clicks_c, imps_c = _users(rng, 400, 0.05)
        clicks_t, imps_t = _users(rng, 400, 0.05)
        result = compare_ratios(_ratio_stats(clicks_c, imps_c), _ratio_stats(clicks_t, imps_t))  # type: ignore[arg-type]
        low, high = result.absolute_ci
        covered += low <= 0.0 <= high
        p_c, p_t = clicks_c.sum() / imps_c.sum(), clicks_t.sum() / imps_t.sum()
        naive_se = np.sqrt(p_c * (1 - p_c) / imps_c.sum() + p_t * (1 - p_t) / imps_t.sum())
        naive_covered += abs(p_t - p_c) <= 1.96 * naive_se
    assert 0.935 <= covered / runs <= 0.965
    assert naive_covered / runs < 0.90


def test_sample_size_matches_the_arcsine_closed_form_and_delivers_the_power() -> None:
    from ml.experiments.power import minimum_detectable_effect, sample_size_per_variant

    n = sample_size_per_variant(0.05, 0.01)
    # Cohen's h; 2 asin(sqrt(p)) has variance 1/n, so a difference of two groups of n has variance 2/n.
    h = 2 * np.arcsin(np.sqrt(0.06)) - 2 * np.arcsin(np.sqrt(0.05))
    assert n == int(np.ceil(2 * ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / h) ** 2))
    assert sample_size_per_variant(0.05, 0.2, relative=True) == n  # +20% of 5% is +1 point
    assert minimum_detectable_effect(0.05, n) == pytest.approx(0.01, rel=2e-3)
    # Simulated experiments with that n and a true +1 point detect it about 80% of the time.
    rng = np.random.default_rng(17)
    runs = 2000
    detected = 0
    for _ in range(runs):
        c, t = rng.binomial(n, 0.05), rng.binomial(n, 0.06)
        detected += compare_means(MeanStats.of_proportion(n, c), MeanStats.of_proportion(n, t)).absolute_p < 0.05
    assert 0.77 <= detected / runs <= 0.83


def test_chance_to_win_and_expected_loss_equal_monte_carlo() -> None:
    from ml.experiments.bayesian import bayesian_readout

    rng = np.random.default_rng(19)
    for estimate, se in ((0.02, 0.01), (-0.005, 0.004), (0.0, 1.5)):
        draws = rng.normal(estimate, se, 2_000_000)
        result = bayesian_readout(estimate, se)
        assert result.chance_to_win == pytest.approx((draws > 0).mean(), abs=1.5e-3)
        assert result.expected_loss_treatment == pytest.approx(np.maximum(-draws, 0).mean(), rel=1e-2, abs=1e-6)
        assert result.expected_loss_control == pytest.approx(np.maximum(draws, 0).mean(), rel=1e-2, abs=1e-6)


def test_planning_refuses_impossible_targets() -> None:
    from ml.experiments.power import sample_size_per_variant

    with pytest.raises(ValueError, match="choose a smaller --mde"):
        sample_size_per_variant(0.9, 0.2)
    with pytest.raises(ValueError, match="baseline must be a rate"):
        sample_size_per_variant(1.5, 0.01)


def test_peeking_daily_inflates_the_naive_test_but_not_the_confidence_sequence() -> None:
    """2,000 simulated A/A experiments, looked at after each of 20 days: declaring a winner the first day the
    naive 95% interval excludes 0 happens far more than 5% of the time; with the confidence sequence it stays
    at or below 5%."""
    from ml.experiments.sequential import confidence_sequence

    rng = np.random.default_rng(23)
    runs, days, per_day = 2000, 20, 100
    control = rng.normal(0, 1, (runs, days * per_day)).cumsum(axis=1)
    treatment = rng.normal(0, 1, (runs, days * per_day)).cumsum(axis=1)
    naive_hits = np.zeros(runs, dtype=bool)
    sequence_hits = np.zeros(runs, dtype=bool)
    for day in range(1, days + 1):
        n = day * per_day
        diff = (treatment[:, n - 1] - control[:, n - 1]) / n
        se = np.sqrt(2 / n)  # known unit variance in both arms
        naive_hits |= np.abs(diff) > 1.96 * se
        for run in np.flatnonzero(~sequence_hits):
            low, high = confidence_sequence(float(diff[run]), float(se), n=2 * n, planned_n=2 * days * per_day)
            sequence_hits[run] = low > 0 or high < 0
    assert naive_hits.mean() > 0.15  # peeking 20 times: the naive false-positive rate is several times alpha
    assert sequence_hits.mean() <= 0.05
    # ... without being uselessly wide: at the planned size it is about 1.5x the fixed-horizon interval.
    low, high = confidence_sequence(0.0, 1.0, n=4000, planned_n=4000)
    assert 1.3 < high / 1.96 < 1.7

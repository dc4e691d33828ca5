"""The learnable ceiling (evaluation.learnable_ceiling): its priors against quadrature, its posterior against an
exact two-category integral and against planted tastes, and its click model against the simulator's own."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import integrate, stats

import evaluation.learnable_ceiling as ceiling_module
from evaluation.learnable_ceiling import (
    LearnableCeiling,
    TastePrior,
    p_click_day_by_day,
    posterior_taste,
    quality_prior_factor,
)
from evaluation.ranking_truth import TruthClickModel, _ids, truth_ranking_metrics
from evaluation.simulator_truth import moments_ms, read_truth
from simulator import SimulationConfig, simulate

DEMO_WEIGHTS = np.array([1.6, 1.4, 1.2, 0.7, 0.9, 1.3, 0.9, 0.7, 0.9, 0.8, 0.9, 0.7])
DEMO_PRIOR = TastePrior(alpha=3.0 * DEMO_WEIGHTS / DEMO_WEIGHTS.sum(), k=12.0, exponent=0.6)


def test_prior_mean_factor_equals_quadrature() -> None:
    total = DEMO_PRIOR.alpha.sum()
    for c, a in enumerate(DEMO_PRIOR.alpha):
        pdf = stats.beta(a, total - a).pdf
        expected, _ = integrate.quad(lambda x, pdf=pdf: (12.0 * x) ** 0.6 * pdf(x), 0, 1, limit=200)
        assert DEMO_PRIOR.mean_factor()[c] == pytest.approx(expected, rel=1e-6)


def test_quality_prior_factor_equals_quadrature() -> None:
    def doc(distribution: str) -> dict[str, Any]:
        return {
            "catalog": {"quality": {"distribution": distribution, "a": 2.5, "b": 3.0}},
            "click_model": {"attract": {"quality_mean": 0.5, "quality_exponent": 0.7}},
        }

    expected, _ = integrate.quad(lambda q: (q / 0.5) ** 0.7 * stats.beta(2.5, 3.0).pdf(q), 0, 1)
    assert quality_prior_factor(doc("beta")) == pytest.approx(expected, rel=1e-7)
    with pytest.raises(ValueError, match="only beta"):
        quality_prior_factor(doc("lognormal"))


def _two_categories(n0: int, n1: int, clicks0: int, seed: int) -> tuple[np.ndarray, ...]:
    """One user's impressions of two categories: examine by position, a unit attract up to 0.9 for category 0 (so
    the clip binds: 0.9 times a factor up to 5 ** 0.6 = 2.6 exceeds 1), ``clicks0`` clicks on category 0's top
    slots and one on category 1."""
    rng = np.random.default_rng(seed)
    n = n0 + n1
    categories = np.r_[np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)]
    examine = (1.0 / rng.integers(1, 11, size=n)) ** 0.8
    unit = np.where(categories == 0, 0.9, 0.2) * rng.uniform(0.6, 1.0, size=n)
    clicked = np.zeros(n, dtype=bool)
    clicked[np.flatnonzero((categories == 0) & (examine > 0.3))[:clicks0]] = True
    clicked[n0 + 5] = True
    return categories, examine, unit, clicked


TWO = TastePrior(alpha=np.array([0.8, 1.7]), k=5.0, exponent=0.6)


def _exact_two_categories(
    categories: np.ndarray, examine: np.ndarray, unit: np.ndarray, clicked: np.ndarray, clip: float
) -> list[float]:
    """The posterior mean factors by numerical integration: with two categories the Dirichlet is a Beta(0.8, 1.7)
    on the first share x. Substituting x = u ** (1 / 0.8) makes the Beta density's x ** -0.2 pole flat, and the
    trapezoid rule on 20,001 points of u then integrates the exact Bernoulli likelihood (a wall where a non-click
    at p = 1 becomes impossible included, to O(1e-4))."""
    u = np.linspace(0.0, 1.0, 20_001)
    x = u ** (1 / 0.8)
    loglik = np.empty(len(x))
    for first in range(0, len(x), 1_000):
        share = x[first : first + 1_000]
        factor = np.where(categories[:, None] == 0, (5.0 * share) ** 0.6, (5.0 * (1 - share)) ** 0.6)
        p = examine[:, None] * np.minimum(clip, factor * unit[:, None])
        with np.errstate(divide="ignore"):  # log 0 = -inf: an impossible outcome
            loglik[first : first + 1_000] = np.log(np.where(clicked[:, None], p, 1 - p)).sum(axis=0)
    weight = np.exp(loglik - loglik.max()) * (1 - x) ** 0.7  # times x ** -0.2 dx = du / 0.8, a constant
    evidence = np.trapezoid(weight, u)
    return [
        float(np.trapezoid((5.0 * x) ** 0.6 * weight, u) / evidence),
        float(np.trapezoid((5.0 * (1 - x)) ** 0.6 * weight, u) / evidence),
    ]


def test_posterior_equals_the_exact_integral_for_two_categories() -> None:
    """Importance sampling (a user with 70 impressions) against quadrature of the exact Bernoulli likelihood."""
    categories, examine, unit, clicked = _two_categories(40, 30, 14, seed=3)
    exact = _exact_two_categories(categories, examine, unit, clicked, clip=1.0)
    # The clip binds here: without it the answer moves well beyond the tolerance below.
    assert abs(_exact_two_categories(categories, examine, unit, clicked, clip=np.inf)[0] / exact[0] - 1) > 0.03
    users = np.zeros(len(categories), dtype=np.int64)
    posterior = posterior_taste(users, categories, examine, unit, clicked, 2, TWO, samples=200_000, seed=1)
    assert not posterior.mcmc.any()
    np.testing.assert_allclose(posterior.factors[0], exact, rtol=0.01)
    # The second user logged nothing: the prior mean (a Monte Carlo mean of 200,000 draws).
    np.testing.assert_allclose(posterior.factors[1], TWO.mean_factor(), rtol=0.01)
    assert posterior.effective_samples[1] == pytest.approx(200_000)
    assert posterior.effective_samples[0] < 200_000


def test_a_heavy_users_posterior_goes_through_mcmc_and_equals_the_exact_integral() -> None:
    """3,000 impressions make the posterior far narrower than 300 prior draws are dense: importance sampling
    degenerates (a few draws carry the weight) and the MCMC stage must give the quadrature's answer."""
    categories, examine, unit, clicked = _two_categories(1_800, 1_200, 300, seed=4)
    exact = _exact_two_categories(categories, examine, unit, clicked, clip=1.0)
    users = np.zeros(len(categories), dtype=np.int64)
    only_is = posterior_taste(users, categories, examine, unit, clicked, 1, TWO, samples=300, min_effective=0)
    assert only_is.effective_samples[0] < 30
    posterior = posterior_taste(users, categories, examine, unit, clicked, 1, TWO, samples=300, seed=2)
    assert posterior.mcmc[0] and posterior.effective_samples[0] > 300
    np.testing.assert_allclose(posterior.factors[0], exact, rtol=0.005)


def test_interpolated_likelihood_equals_the_exact_one_on_the_same_draws() -> None:
    """The grid and its first-order tail against the exact Bernoulli likelihood at each of the same 64 draws."""
    categories, examine, unit, clicked = _two_categories(40, 30, 6, seed=3)
    users = np.zeros(len(categories), dtype=np.int64)
    got = posterior_taste(users, categories, examine, unit, clicked, 1, TWO, samples=64, seed=2, min_effective=0)
    factors = (5.0 * np.random.default_rng(2).dirichlet(TWO.alpha, size=64)) ** 0.6  # the same draws
    p = examine[:, None] * np.minimum(1.0, unit[:, None] * factors[:, categories].T)
    with np.errstate(divide="ignore"):
        loglik = np.where(clicked[:, None], np.log(p), np.log1p(-p)).sum(axis=0)
    w = np.exp(loglik - loglik.max())
    np.testing.assert_allclose(got.factors[0], w @ factors / w.sum(), rtol=1e-3)


def test_posterior_means_are_calibrated_on_planted_tastes() -> None:
    """Known truth: tastes drawn from the prior, clicks from the click model. A posterior mean is the conditional
    expectation of the truth, so regressing the true factor on it gives a slope near 1, and it beats both the
    prior mean and the raw clicks-over-expected ratio in squared error."""
    rng = np.random.default_rng(11)
    n_users, per_user = 600, 150
    true = DEMO_PRIOR.k * rng.dirichlet(DEMO_PRIOR.alpha, size=n_users)
    true_factor = true**DEMO_PRIOR.exponent
    users = np.repeat(np.arange(n_users), per_user)
    categories = rng.choice(12, size=len(users), p=DEMO_WEIGHTS / DEMO_WEIGHTS.sum())
    examine = (1.0 / rng.integers(1, 11, size=len(users))) ** 0.8
    unit = 0.3 * rng.uniform(0.4, 1.6, size=len(users))
    p = examine * np.minimum(1.0, true_factor[users, categories] * unit)
    clicked = rng.random(len(users)) < p
    posterior = posterior_taste(users, categories, examine, unit, clicked, n_users, DEMO_PRIOR, samples=20_000)
    assert 0 < posterior.mcmc.sum() < n_users  # both stages took part
    estimate, truth = posterior.factors.ravel(), true_factor.ravel()
    slope = np.polyfit(estimate, truth, 1)[0]
    assert 0.9 < slope < 1.1
    expected = np.zeros((n_users, 12))
    np.add.at(expected, (users, categories), examine * unit)
    clicks = np.zeros((n_users, 12))
    np.add.at(clicks, (users, categories), clicked)
    raw = np.divide(clicks, expected, out=np.zeros_like(clicks), where=expected > 0).ravel()
    mse = float(np.mean((estimate - truth) ** 2))
    assert mse < 0.8 * float(np.mean((np.tile(DEMO_PRIOR.mean_factor(), n_users) - truth) ** 2))
    assert mse < 0.8 * float(np.mean((raw - truth) ** 2))


def test_mcmc_stage_recovers_heavy_users_tastes() -> None:
    """Known truth with much data per user (2,000 impressions): importance sampling alone collapses onto single
    prior draws; with the MCMC stage the error falls to a fraction of it."""
    rng = np.random.default_rng(5)
    n_users, per_user = 60, 2_000
    true_factor = (DEMO_PRIOR.k * rng.dirichlet(DEMO_PRIOR.alpha, size=n_users)) ** DEMO_PRIOR.exponent
    users = np.repeat(np.arange(n_users), per_user)
    categories = rng.choice(12, size=len(users), p=DEMO_WEIGHTS / DEMO_WEIGHTS.sum())
    examine = (1.0 / rng.integers(1, 11, size=len(users))) ** 0.8
    unit = 0.3 * rng.uniform(0.4, 1.6, size=len(users))
    clicked = rng.random(len(users)) < examine * np.minimum(1.0, true_factor[users, categories] * unit)
    args = (users, categories, examine, unit, clicked, n_users, DEMO_PRIOR)
    only_is = posterior_taste(*args, min_effective=0)
    both = posterior_taste(*args)
    assert both.mcmc.all() and np.median(both.effective_samples) > 100
    mse_is = float(np.mean((only_is.factors - true_factor) ** 2))
    mse = float(np.mean((both.factors - true_factor) ** 2))
    assert mse < mse_is / 3


def test_posterior_refuses_mismatched_input() -> None:
    one = np.zeros(3)
    with pytest.raises(ValueError, match="one value per impression"):
        posterior_taste(np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.int64), one, one, one, 1, DEMO_PRIOR)
    with pytest.raises(ValueError, match=r"user indices must be in \[0, 1\)"):
        posterior_taste(np.array([0, 1, 0]), np.zeros(3, dtype=np.int64), one, one, one, 1, DEMO_PRIOR)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ceiling")
    # quality_exponent 0.5: the prior mean quality factor of an unseen item is then 0.976, not 1.
    simulate(SimulationConfig(users=300, days=10, seed=5, quality_exponent=0.5), out)
    return out


def test_ceiling_uses_the_simulators_click_model(small: Path) -> None:
    """With the true taste factor in place of the posterior, the ceiling's formula gives back every logged
    P(click): the likelihood it conditions on is the one the clicks were drawn from."""
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas()
    users, items = _ids(imp["user_id"].tolist(), "u"), _ids(imp["content_id"].tolist(), "c")
    ms = pd.to_datetime(imp["occurred_at"], utc=True).dt.as_unit("ms").astype("int64").to_numpy()
    unit = truth.items.unit_attract(items, ms) * imp["experiment_multiplier"].to_numpy()
    factor = truth.taste[users, truth.items.category[items]]
    np.testing.assert_allclose(imp["examine"] * np.minimum(1.0, factor * unit), imp["p_click"], rtol=1e-12)


def test_ceiling_knows_only_what_was_shown_before_its_moment(small: Path) -> None:
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas()
    imp["occurred_at"] = pd.to_datetime(imp["occurred_at"], utc=True)
    moment = imp["occurred_at"].min().floor("D") + pd.Timedelta(days=7)
    ceiling = LearnableCeiling.as_of(truth, moment, samples=2_000)
    before, after = imp[imp["occurred_at"] < moment], imp[imp["occurred_at"] >= moment]
    shown = set(before["content_id"])
    new = after.loc[~after["content_id"].isin(shown)].iloc[0]
    old = after.loc[after["content_id"].isin(shown)].iloc[0]
    assert ceiling.shown.sum() == len(shown)
    # The same user, the same moment: a shown item's true quality, an unseen one's prior mean.
    user, at = old["user_id"], old["occurred_at"]
    got = ceiling.attract([user, user], [old["content_id"], new["content_id"]], [at, at])
    i_old, i_new = _ids([old["content_id"], new["content_id"]], "c")
    ms = np.array([at.value // 1_000_000] * 2)
    unit = truth.items.unit_attract(np.array([i_old, i_new]), ms, quality=False)
    taste = ceiling.taste.factors[_ids([user], "u")[0], truth.items.category[[i_old, i_new]]]
    prior_quality = quality_prior_factor(read_truth(small))
    assert prior_quality == pytest.approx(0.976, abs=0.001)
    expected = taste * unit * np.array([truth.items.quality_factor[i_old], prior_quality])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Unknown ids are NaN, not an error.
    assert np.isnan(ceiling.attract(["u9999999", "nobody"], [old["content_id"]] * 2, [at, at])).all()
    assert np.isnan(ceiling.p_click(["e000000000000"])).all()


def test_day_by_day_probabilities_use_each_days_own_past(small: Path) -> None:
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas()
    imp["occurred_at"] = pd.to_datetime(imp["occurred_at"], utc=True)
    last_two = imp[imp["occurred_at"] >= imp["occurred_at"].max().floor("D") - pd.Timedelta(days=1)]
    got = p_click_day_by_day(truth, [*last_two["event_id"], "e000000000000"], samples=2_000)
    assert np.isnan(got[-1])
    got = got[:-1]
    for day, rows in last_two.groupby(last_two["occurred_at"].dt.floor("D")):
        alone = LearnableCeiling.as_of(truth, day, samples=2_000).p_click(rows["event_id"].tolist())
        np.testing.assert_array_equal(got[last_two.index.get_indexer(rows.index)], alone)
    assert np.isfinite(got).all() and ((got > 0) & (got <= 1)).all()


def test_truth_attract_parts_and_was_shown(small: Path) -> None:
    """The three parts the benchmark's gap decomposition sets apart multiply back to the logged attract."""
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas().head(500)
    taste, quality, rest = truth.attract_parts(
        [*imp["user_id"], "nobody"], [*imp["content_id"], "c0000001"], [*imp["occurred_at"], imp["occurred_at"].iloc[0]]
    )
    np.testing.assert_allclose(
        np.minimum(1.0, taste[:-1] * quality[:-1] * rest[:-1]), imp["attract_without_experiments"], rtol=1e-12
    )
    assert np.isnan(taste[-1]) and np.isnan(quality[-1]) and np.isnan(rest[-1])
    at = pd.to_datetime(imp["occurred_at"], utc=True)
    ceiling = LearnableCeiling.as_of(truth, at.min() + pd.Timedelta(milliseconds=1), samples=1_000)
    shown = ceiling.was_shown([imp["content_id"].iloc[int(np.argmin(at.to_numpy()))], "c9999999", "x"])
    assert shown.tolist() == [True, False, False]


def test_prior_is_read_from_the_truth(small: Path) -> None:
    prior = TastePrior.from_truth(read_truth(small))
    np.testing.assert_allclose(prior.alpha, DEMO_PRIOR.alpha, rtol=1e-12)
    assert (prior.k, prior.exponent) == (DEMO_PRIOR.k, DEMO_PRIOR.exponent)


def test_as_of_conditions_on_exactly_the_impressions_before_its_moment(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What reaches the posterior: the rows before the moment, each with the simulator's own click probability
    when the true taste is put back (so examine, unit attract and the experiment multiplier are all right)."""
    seen: dict[str, np.ndarray] = {}
    real = ceiling_module.posterior_taste

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(zip(("users", "categories", "examine", "unit", "clicked"), args[:5], strict=True))
        return real(*args, **kwargs)

    monkeypatch.setattr(ceiling_module, "posterior_taste", spy)
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas()
    at = pd.to_datetime(imp["occurred_at"], utc=True)
    moment = at.min().floor("D") + pd.Timedelta(days=7)
    LearnableCeiling.as_of(truth, moment, samples=500, seed=0)
    before = imp[(at < moment).to_numpy()]
    assert len(seen["users"]) == len(before) < len(imp)
    factor = truth.taste[seen["users"], seen["categories"]]
    np.testing.assert_allclose(seen["examine"] * np.minimum(1.0, factor * seen["unit"]), before["p_click"], rtol=1e-12)
    np.testing.assert_array_equal(seen["clicked"], before["clicked"])


def test_p_click_with_the_true_taste_and_quality_is_the_logged_one(small: Path) -> None:
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas()
    ceiling = LearnableCeiling.as_of(truth, "2000-01-01", samples=100)
    assert not ceiling.shown.any() and not ceiling.taste.mcmc.any()  # nothing before 2000: the prior alone
    knows_all = replace(ceiling, taste=replace(ceiling.taste, factors=truth.taste), shown=np.ones_like(ceiling.shown))
    np.testing.assert_allclose(knows_all.p_click(imp["event_id"].tolist()), imp["p_click"], rtol=1e-12)


def test_a_moment_must_be_a_time(small: Path) -> None:
    truth = TruthClickModel.from_folder(small)
    with pytest.raises(ValueError, match="needs a moment"):
        LearnableCeiling.as_of(truth, pd.NaT, samples=100)
    ceiling = LearnableCeiling.as_of(truth, "2000-01-01", samples=100)
    with pytest.raises(ValueError, match="missing one"):
        ceiling.attract(["u0000001"], ["c0000001"], [None])


def test_the_oracle_and_the_ceiling_read_moments_alike(small: Path) -> None:
    # One conversion serves both: naive times are UTC, a sub-millisecond part is floored (the oracle's used to
    # raise on it), a missing moment is refused with the same message.
    assert moments_ms(["1970-01-01T00:00:01.0019Z", pd.Timestamp("1970-01-01 00:00:02")]).tolist() == [1001, 2000]
    truth = TruthClickModel.from_folder(small)
    ceiling = LearnableCeiling.as_of(truth, "2000-01-01", samples=100)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas().head(3)
    later = pd.to_datetime(imp["occurred_at"], utc=True) + pd.Timedelta(microseconds=700)
    args = (imp["user_id"].tolist(), imp["content_id"].tolist())
    np.testing.assert_array_equal(truth.attract(*args, later), truth.attract(*args, imp["occurred_at"]))
    for model in (truth, ceiling):
        with pytest.raises(ValueError, match="missing one"):
            model.attract(["u0000001"], ["c0000001"], [None])


def test_a_user_none_of_whose_candidates_a_baseline_scores_has_no_spearman_and_no_warning(small: Path) -> None:
    # Baselines score a candidate they know nothing of as -inf. All -inf is all tied: no Spearman for that user,
    # and no RuntimeWarning (the range test computed -inf - -inf = NaN, which numpy warned about on every run).
    truth = TruthClickModel.from_folder(small)
    rows = pd.DataFrame({"user_id": ["u1"] * 4 + ["u2"] * 3})
    attract = np.array([0.1, 0.2, 0.3, 0.4, 0.3, 0.2, 0.1])
    score = np.array([-np.inf, 1.0, 2.0, 3.0, -np.inf, -np.inf, -np.inf])  # u1 in the true order, unscored last
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = truth_ranking_metrics(rows, score, attract, truth, k=2)
    assert got["spearman_with_truth"] == pytest.approx(1.0) and got["users"] == 2
    assert got["truth_ndcg_at_k"] == pytest.approx(np.mean([1.0, 1.0]))  # u2's tie keeps row order: 0.3, 0.2

"""The learnable ceiling (evaluation.learnable_ceiling): its priors against quadrature, its posterior against an
exact two-category integral and against planted tastes, and its click model against the simulator's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import integrate, stats

from evaluation.learnable_ceiling import (
    LearnableCeiling,
    TastePrior,
    p_click_day_by_day,
    posterior_taste,
    quality_prior_factor,
)
from evaluation.ranking_truth import TruthClickModel, _ids
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


def test_posterior_equals_the_exact_integral_for_two_categories() -> None:
    """With two categories the Dirichlet is a Beta on the first share, so the posterior mean is a 1-D integral of
    the exact Bernoulli likelihood (clip included: a unit attract up to 0.9 times a factor up to 5 ** 0.6 = 2.6
    exceeds 1)."""
    prior = TastePrior(alpha=np.array([0.8, 1.7]), k=5.0, exponent=0.6)
    rng = np.random.default_rng(3)
    n = 70
    categories = np.r_[np.zeros(40, dtype=np.int64), np.ones(30, dtype=np.int64)]
    examine = (1.0 / rng.integers(1, 11, size=n)) ** 0.8
    unit = np.where(categories == 0, 0.9, 0.2) * rng.uniform(0.6, 1.0, size=n)
    clicked = np.zeros(n, dtype=bool)
    clicked[np.flatnonzero((categories == 0) & (examine > 0.3))[:14]] = True  # clicks on category 0's top slots
    clicked[45] = True  # one on category 1

    def posterior_mean(clip: float) -> list[float]:
        def likelihood(x: float) -> float:
            factor = np.where(categories == 0, (5.0 * x) ** 0.6, (5.0 * (1 - x)) ** 0.6)
            p = examine * np.minimum(clip, factor * unit)
            return float(np.prod(np.where(clicked, p, 1 - p)))

        density = stats.beta(0.8, 1.7).pdf
        evidence, _ = integrate.quad(lambda x: likelihood(x) * density(x), 0, 1, limit=400)
        return [
            integrate.quad(lambda x: (5.0 * x) ** 0.6 * likelihood(x) * density(x), 0, 1, limit=400)[0] / evidence,
            integrate.quad(lambda x: (5.0 * (1 - x)) ** 0.6 * likelihood(x) * density(x), 0, 1, limit=400)[0]
            / evidence,
        ]

    exact = posterior_mean(1.0)
    # The clip binds here: without it the answer moves well beyond the tolerance below.
    assert abs(posterior_mean(np.inf)[0] / exact[0] - 1) > 0.03
    users = np.r_[np.zeros(n, dtype=np.int64)]
    posterior = posterior_taste(users, categories, examine, unit, clicked, 2, prior, samples=200_000, seed=1)
    np.testing.assert_allclose(posterior.factors[0], exact, rtol=0.01)
    # The second user logged nothing: the prior mean (a Monte Carlo mean of 200,000 draws).
    np.testing.assert_allclose(posterior.factors[1], prior.mean_factor(), rtol=0.01)
    assert posterior.effective_samples[1] == pytest.approx(200_000)
    assert posterior.effective_samples[0] < 200_000


def test_posterior_means_are_calibrated_on_planted_tastes() -> None:
    """Known truth: tastes drawn from the prior, clicks from the click model. A posterior mean is the conditional
    expectation of the truth, so regressing the true factor on it gives a slope near 1, and it beats both the
    prior mean and the raw clicks-over-expected ratio in squared error."""
    rng = np.random.default_rng(11)
    n_users, per_user = 1_500, 150
    true = DEMO_PRIOR.k * rng.dirichlet(DEMO_PRIOR.alpha, size=n_users)
    true_factor = true**DEMO_PRIOR.exponent
    users = np.repeat(np.arange(n_users), per_user)
    categories = rng.choice(12, size=len(users), p=DEMO_WEIGHTS / DEMO_WEIGHTS.sum())
    examine = (1.0 / rng.integers(1, 11, size=len(users))) ** 0.8
    unit = 0.3 * rng.uniform(0.4, 1.6, size=len(users))
    p = examine * np.minimum(1.0, true_factor[users, categories] * unit)
    clicked = rng.random(len(users)) < p
    posterior = posterior_taste(users, categories, examine, unit, clicked, n_users, DEMO_PRIOR, samples=20_000)
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


def test_posterior_refuses_mismatched_input() -> None:
    one = np.zeros(3)
    with pytest.raises(ValueError, match="one value per impression"):
        posterior_taste(np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.int64), one, one, one, 1, DEMO_PRIOR)
    with pytest.raises(ValueError, match=r"user indices must be in \[0, 1\)"):
        posterior_taste(np.array([0, 1, 0]), np.zeros(3, dtype=np.int64), one, one, one, 1, DEMO_PRIOR)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ceiling")
    simulate(SimulationConfig(users=300, days=10, seed=5), out)
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
    # The same user, the same moment: a shown item's true quality, an unseen one's prior mean (1 for Beta(2.5,
    # 2.5) and exponent 1).
    user, at = old["user_id"], old["occurred_at"]
    got = ceiling.attract([user, user], [old["content_id"], new["content_id"]], [at, at])
    i_old, i_new = _ids([old["content_id"], new["content_id"]], "c")
    ms = np.array([at.value // 1_000_000] * 2)
    unit = truth.items.unit_attract(np.array([i_old, i_new]), ms, quality=False)
    taste = ceiling.taste.factors[_ids([user], "u")[0], truth.items.category[[i_old, i_new]]]
    expected = np.minimum(1.0, taste * unit * np.array([truth.items.quality_factor[i_old], 1.0]))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Unknown ids are NaN, not an error.
    assert np.isnan(ceiling.attract(["u9999999", "nobody"], [old["content_id"]] * 2, [at, at])).all()
    assert np.isnan(ceiling.p_click(["e000000000000"])).all()


def test_day_by_day_probabilities_use_each_days_own_past(small: Path) -> None:
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas()
    imp["occurred_at"] = pd.to_datetime(imp["occurred_at"], utc=True)
    last_two = imp[imp["occurred_at"] >= imp["occurred_at"].max().floor("D") - pd.Timedelta(days=1)]
    got = p_click_day_by_day(truth, last_two["event_id"].tolist(), last_two["occurred_at"].tolist(), samples=2_000)
    for day, rows in last_two.groupby(last_two["occurred_at"].dt.floor("D")):
        alone = LearnableCeiling.as_of(truth, day, samples=2_000).p_click(rows["event_id"].tolist())
        np.testing.assert_array_equal(got[last_two.index.get_indexer(rows.index)], alone)
    assert np.isfinite(got).all() and ((got > 0) & (got <= 1)).all()


def test_truth_factors_and_was_shown(small: Path) -> None:
    """The two latent parts the benchmark's gap decomposition divides out multiply back to the logged attract."""
    truth = TruthClickModel.from_folder(small)
    imp = pq.read_table(small / "_truth" / "impressions.parquet").to_pandas().head(500)
    taste, quality = truth.factors([*imp["user_id"], "nobody"], [*imp["content_id"], "c0000001"])
    items = _ids(imp["content_id"].tolist(), "c")
    ms = pd.to_datetime(imp["occurred_at"], utc=True).dt.as_unit("ms").astype("int64").to_numpy()
    unit = truth.items.unit_attract(items, ms, quality=False)
    np.testing.assert_allclose(
        np.minimum(1.0, taste[:-1] * quality[:-1] * unit), imp["attract_without_experiments"], rtol=1e-12
    )
    assert np.isnan(taste[-1]) and np.isnan(quality[-1])
    at = pd.to_datetime(imp["occurred_at"], utc=True)
    ceiling = LearnableCeiling.as_of(truth, at.min() + pd.Timedelta(milliseconds=1), samples=1_000)
    shown = ceiling.was_shown([imp["content_id"].iloc[int(np.argmin(at.to_numpy()))], "c9999999", "x"])
    assert shown.tolist() == [True, False, False]

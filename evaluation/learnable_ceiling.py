"""The learnable ceiling: how close a model could come to the oracle with what the logs reveal.

The oracle (``evaluation.ranking_truth``) ranks by the true attract, base * taste_factor(user, category) *
quality_factor(item) * freshness(age) * drift (truth.json "click_model"). No learner can reach it: a user's taste
shows only through their clicks (a median of 7 in the demo's first 25 days, over 12 categories), and an item never
shown has no click at all. The ceiling replaces each unknown by the best estimate the logs allow, computed with the
truth's own formula and priors:

- **taste**: each user's posterior mean taste factor given all their logged impressions before a moment, under the
  simulator's prior (taste ~ Dirichlet(taste_alpha_total * category_weights / sum), factor = (K * taste) **
  taste_exponent; truth.json "users", "click_model"), with each impression's exact likelihood P(click) =
  examine(position) * min(1, taste_factor * unit attract * experiment multiplier), where everything but the taste
  factor is taken as known. Computed by self-normalised importance sampling from the prior (one set of Dirichlet
  draws for every user; each user's effective sample size is kept);
- **quality**: the true quality factor of every item shown at least once before the moment; for an item never
  shown, the prior mean E[(q / quality_mean) ** e] with q ~ Beta(a, b), which is B(a + e, b) / B(a, b) /
  quality_mean ** e;
- **freshness, drift, the examination curve and experiment multipliers**: exact.

It is generous where it matters: a model does not know the examination curve, the freshness curve or any item's
quality, and has to learn them from the same logs. It leaves out two weak signals a model could in principle add:
dwell time, which grows with taste (truth.json "dwell_model"), and conversions. It ranks by the posterior mean of
the unclipped attract (the clip at 1 binds only for the strongest tastes at position 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse
from scipy.special import betaln

from evaluation.ranking_truth import TruthClickModel, _ids
from evaluation.simulator_truth import _epoch_ms, read_truth

#: Smallest probability a log-likelihood term is taken at (an impossible outcome scores log(1e-300), not -inf, so
#: interpolating between grid points stays finite).
_TINY = 1e-300


@dataclass(frozen=True)
class TastePrior:
    """The simulator's prior on a user's taste: Dirichlet(alpha) shares, factor = (k * share) ** exponent."""

    alpha: np.ndarray  # (categories,)
    k: float
    exponent: float

    @classmethod
    def from_truth(cls, doc: dict[str, Any]) -> TastePrior:
        """From truth.json: config.taste_alpha_total, config.category_weights, click_model.attract.K and
        taste_exponent."""
        config = doc["config"]
        weights = np.asarray(config["category_weights"], dtype=np.float64)
        attract = doc["click_model"]["attract"]
        return cls(
            alpha=float(config["taste_alpha_total"]) * weights / weights.sum(),
            k=float(attract["K"]),
            exponent=float(attract["taste_exponent"]),
        )

    def mean_factor(self) -> np.ndarray:
        """(categories,) prior mean taste factor: each share is Beta(alpha_c, sum(alpha) - alpha_c), so
        E[(k * share) ** e] = k ** e * B(alpha_c + e, rest) / B(alpha_c, rest)."""
        rest = self.alpha.sum() - self.alpha
        return np.asarray(
            self.k**self.exponent * np.exp(betaln(self.alpha + self.exponent, rest) - betaln(self.alpha, rest))
        )


@dataclass(frozen=True)
class TastePosterior:
    """Each user's posterior mean taste factor per category, and how many prior draws carried it."""

    factors: np.ndarray  # (users, categories)
    effective_samples: np.ndarray  # (users,), (sum w) ** 2 / sum w ** 2 of the importance weights


def posterior_taste(
    users: np.ndarray,
    categories: np.ndarray,
    examine: np.ndarray,
    unit_attract: np.ndarray,
    clicked: np.ndarray,
    n_users: int,
    prior: TastePrior,
    *,
    samples: int = 20_000,
    seed: int = 0,
    grid_points: int = 400,
) -> TastePosterior:
    """Posterior mean taste factors of ``n_users`` users from their logged impressions.

    Args:
        users, categories: (n,) user index in [0, n_users) and true category index of each impression's item.
        examine: (n,) examination probability of each impression's position.
        unit_attract: (n,) attract of the impression for a taste factor of 1, experiment multipliers included,
            before the clip: P(click) = examine * min(1, taste_factor * unit_attract).
        clicked: (n,) whether it was clicked.
        n_users: rows of the result; a user without impressions gets the prior mean.
        prior: the taste prior.
        samples: Dirichlet draws for the importance sampler (shared by all users).
        seed: for the draws.
        grid_points: each (user, category)'s log-likelihood is computed exactly on this many taste factors
            (log-spaced over the draws' range) and interpolated linearly in log(factor) for each draw.

    Returns:
        factors (n_users, categories) and each user's effective sample size.

    Raises:
        ValueError: arrays of different lengths, or indices out of range.
    """
    n = len(users)
    if not all(len(a) == n for a in (categories, examine, unit_attract, clicked)):
        raise ValueError("users, categories, examine, unit_attract and clicked must have one value per impression")
    n_categories = len(prior.alpha)
    if n and (users.min() < 0 or users.max() >= n_users or categories.min() < 0 or categories.max() >= n_categories):
        raise ValueError(f"user indices must be in [0, {n_users}) and category indices in [0, {n_categories})")
    rng = np.random.default_rng(seed)
    draws = prior.k * rng.dirichlet(prior.alpha, size=samples)
    factors = np.maximum(draws, _TINY) ** prior.exponent  # (samples, categories)
    log_grid = np.linspace(np.log(factors.min()), np.log(factors.max()), grid_points)
    loglik = _loglik_grid(users, categories, examine, unit_attract, clicked, n_users, n_categories, np.exp(log_grid))
    step = log_grid[1] - log_grid[0]
    position = (np.log(factors) - log_grid[0]) / step
    left = np.clip(np.floor(position).astype(np.int64), 0, grid_points - 2)
    frac = np.clip(position - left, 0.0, 1.0)
    out = np.empty((n_users, n_categories))
    ess = np.empty(n_users)
    for start in range(0, n_users, 256):
        block = loglik[start : start + 256]  # (block users, categories, grid)
        logw = np.zeros((block.shape[0], samples))
        for c in range(n_categories):
            logw += block[:, c, left[:, c]] * (1 - frac[:, c]) + block[:, c, left[:, c] + 1] * frac[:, c]
        logw -= logw.max(axis=1, keepdims=True)
        weights = np.exp(logw)
        weights /= weights.sum(axis=1, keepdims=True)
        out[start : start + len(block)] = weights @ factors
        ess[start : start + len(block)] = 1.0 / np.square(weights).sum(axis=1)
    return TastePosterior(out, ess)


def _loglik_grid(
    users: np.ndarray,
    categories: np.ndarray,
    examine: np.ndarray,
    unit_attract: np.ndarray,
    clicked: np.ndarray,
    n_users: int,
    n_categories: int,
    grid: np.ndarray,
) -> np.ndarray:
    """(users, categories, grid) Bernoulli log-likelihood of each user's impressions of each category, for each
    taste factor on the grid."""
    group = users.astype(np.int64) * n_categories + categories.astype(np.int64)
    member = sparse.csr_matrix(
        (np.ones(len(group)), (group, np.arange(len(group)))), shape=(n_users * n_categories, len(group))
    )
    out = np.empty((n_users * n_categories, len(grid)))
    hit = np.asarray(clicked, dtype=bool)[:, None]
    for start in range(0, len(grid), 16):
        t = grid[start : start + 16]
        p = examine[:, None] * np.minimum(1.0, unit_attract[:, None] * t[None, :])
        terms = np.where(hit, np.log(np.maximum(p, _TINY)), np.log(np.maximum(1.0 - p, _TINY)))
        out[:, start : start + len(t)] = member @ terms
    return out.reshape(n_users, n_categories, len(grid))


def quality_prior_factor(doc: dict[str, Any]) -> float:
    """E[(q / quality_mean) ** e] for q ~ Beta(a, b) (truth.json catalog.quality and click_model.attract):
    B(a + e, b) / B(a, b) / quality_mean ** e."""
    spec = doc["catalog"]["quality"]
    if spec.get("distribution") != "beta":
        raise ValueError(f"quality prior {spec.get('distribution')!r} is not supported: only beta")
    attract = doc["click_model"]["attract"]
    a, b, e = float(spec["a"]), float(spec["b"]), float(attract["quality_exponent"])
    return float(np.exp(betaln(a + e, b) - betaln(a, b)) / float(attract["quality_mean"]) ** e)


@dataclass(frozen=True)
class LearnableCeiling:
    """The best estimate of attract the logs before ``before`` allow (see the module's docstring)."""

    truth: TruthClickModel
    before: pd.Timestamp
    taste: TastePosterior
    shown: np.ndarray  # (items,) bool: shown at least once before `before`
    quality_prior: float

    @classmethod
    def as_of(cls, truth: TruthClickModel, before: Any, *, samples: int = 20_000, seed: int = 0) -> LearnableCeiling:
        """From every logged impression before ``before`` (a UTC moment) in the truth's impressions table."""
        moment = pd.Timestamp(before)
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        doc = read_truth(truth.folder)
        table = pq.read_table(
            truth.folder / "impressions.parquet",
            columns=["user_id", "content_id", "occurred_at", "examine", "experiment_multiplier", "clicked"],
        )
        table = table.filter(pa.array(_epoch_ms(table["occurred_at"]) < moment.value // 1_000_000))
        ms = _epoch_ms(table["occurred_at"])
        users = _ids(table["user_id"].to_pylist(), "u")
        items = _ids(table["content_id"].to_pylist(), "c")
        if (users < 0).any() or (items < 0).any():
            raise ValueError("the truth's impressions name users or items the simulation does not know")
        unit = truth.items.unit_attract(items, ms) * table["experiment_multiplier"].to_numpy()
        posterior = posterior_taste(
            users,
            truth.items.category[items],
            table["examine"].to_numpy(),
            unit,
            table["clicked"].to_numpy(zero_copy_only=False),
            len(truth.taste),
            TastePrior.from_truth(doc),
            samples=samples,
            seed=seed,
        )
        shown = np.zeros(len(truth.items.category), dtype=bool)
        shown[items] = True
        return cls(truth, moment, posterior, shown, quality_prior_factor(doc))

    def attract(self, user_ids: Sequence[str], content_ids: Sequence[str], moments: Sequence[Any]) -> np.ndarray:
        """The ceiling's attract (P(click) at the top, no experiments) per (user, item, moment); NaN for ids the
        simulation does not know."""
        users, items = _ids(list(user_ids), "u"), _ids(list(content_ids), "c")
        ms = _moments_ms(moments)
        return self._estimate(users, items, ms, np.ones(len(users)))

    def was_shown(self, content_ids: Sequence[str]) -> np.ndarray:
        """Whether each item had an impression before the ceiling's moment (False for an unknown id)."""
        items = _ids(list(content_ids), "c")
        ok = (items >= 0) & (items < len(self.shown))
        return ok & self.shown[np.where(ok, items, 0)]

    def effective_samples(self, user_ids: Sequence[str]) -> np.ndarray:
        """Each user's effective sample size in the taste posterior (NaN for an unknown id): near the number of
        draws for a user with little data, low (down to 1) where the posterior is narrow and few draws carry it."""
        users = _ids(list(user_ids), "u")
        ok = (users >= 0) & (users < len(self.taste.effective_samples))
        return np.where(ok, self.taste.effective_samples[np.where(ok, users, 0)], np.nan)

    def p_click(self, impression_ids: Sequence[str]) -> np.ndarray:
        """The ceiling's P(click) of logged impressions: examine(position) * min(1, posterior taste factor * unit
        attract * experiment multiplier), unseen items' quality at the prior mean; NaN for unknown ids."""
        table = pq.read_table(
            self.truth.folder / "impressions.parquet",
            columns=["event_id", "user_id", "content_id", "occurred_at", "examine", "experiment_multiplier"],
        ).to_pandas()
        table = table.set_index("event_id").reindex(list(impression_ids))
        known = table["user_id"].notna().to_numpy()
        users = _ids(table["user_id"].fillna("").tolist(), "u")
        items = _ids(table["content_id"].fillna("").tolist(), "c")
        ms = np.zeros(len(table), dtype=np.int64)
        ms[known] = _moments_ms(table.loc[known, "occurred_at"].tolist())
        attract = self._estimate(users, items, ms, table["experiment_multiplier"].fillna(1.0).to_numpy())
        return np.where(known, table["examine"].to_numpy(dtype=float) * attract, np.nan)

    def _estimate(self, users: np.ndarray, items: np.ndarray, ms: np.ndarray, mult: np.ndarray) -> np.ndarray:
        ok = (users >= 0) & (users < len(self.taste.factors)) & (items >= 0) & (items < len(self.shown))
        out = np.full(len(users), np.nan)
        u, i = users[ok], items[ok]
        quality = np.where(self.shown[i], self.truth.items.quality_factor[i], self.quality_prior)
        unit = self.truth.items.unit_attract(i, ms[ok], quality=False) * quality
        out[ok] = np.minimum(1.0, self.taste.factors[u, self.truth.items.category[i]] * unit * mult[ok])
        return out


def _moments_ms(moments: Sequence[Any]) -> np.ndarray:
    stamps = pd.to_datetime(pd.Series(list(moments)), utc=True)
    return np.asarray(stamps.dt.as_unit("ms").astype("int64").to_numpy(), dtype=np.int64)


def p_click_day_by_day(
    truth: TruthClickModel,
    impression_ids: Sequence[str],
    occurred_at: Sequence[Any],
    *,
    samples: int = 20_000,
    seed: int = 0,
) -> np.ndarray:
    """The ceiling's P(click) of logged impressions, each from the logs before its own UTC day: a model whose
    features are refreshed daily (Tailor's are) knows the days before an impression, not its day.

    Args:
        impression_ids, occurred_at: (n,) the impressions and when they happened.

    Returns:
        (n,) probabilities, NaN for ids the truth does not hold.
    """
    days = pd.to_datetime(pd.Series(list(occurred_at)), utc=True).dt.floor("D")
    ids = np.asarray(list(impression_ids), dtype=object)
    out = np.full(len(ids), np.nan)
    for day in sorted(days.unique()):
        rows = np.flatnonzero((days == day).to_numpy())
        out[rows] = LearnableCeiling.as_of(truth, day, samples=samples, seed=seed).p_click(ids[rows].tolist())
    return out

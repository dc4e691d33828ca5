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
  draws for every user), and by MCMC for the users with much data, for whom those draws are too sparse (see
  ``posterior_taste``);
- **quality**: the true quality factor of every item shown at least once before the moment; for an item never
  shown, the prior mean E[(q / quality_mean) ** e] with q ~ Beta(a, b), which is B(a + e, b) / B(a, b) /
  quality_mean ** e;
- **freshness, drift, the examination curve and experiment multipliers**: exact.

It is generous where it matters: a model does not know the examination curve, the freshness curve or any item's
quality, and has to learn them from the same logs; it also reads each item's true category (3% of new items are
mislabelled in the logs until corrected), counts late events at the time they happened, and uses the simulator's
exact priors. It leaves out two weak signals a model could in principle add: dwell time, which grows with taste
(truth.json "dwell_model"), and conversions. Its ranking score is the posterior mean taste factor times the rest
of attract, unclipped (the clip at 1 binds only for the strongest tastes; clipping would tie those items); its
P(click) clips that estimate at 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import sparse
from scipy.special import betaln

from evaluation.ranking_truth import TruthClickModel, _ids
from evaluation.simulator_truth import _epoch_ms, moments_ms, read_truth

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
    """Each user's posterior mean taste factor per category, and how well the sampler carried it."""

    factors: np.ndarray  # (users, categories)
    #: (users,) importance sampling: (sum w) ** 2 / sum w ** 2 of the prior draws' weights; MCMC (where that was
    #: below ``min_effective``): the batch-means effective size of the chain, the smallest over categories.
    effective_samples: np.ndarray
    mcmc: np.ndarray  # (users,) bool: the user's posterior came from the MCMC stage


#: The likelihood is tabulated for taste factors from this one up (log-spaced); below it, it is extended exactly to
#: first order (every click is then far from the clip: n * log t - t * sum of the non-clicks' examine * attract).
_GRID_LOW = 1e-3


@dataclass(frozen=True)
class _LogLikelihood:
    """Each (user, category)'s Bernoulli log-likelihood as a function of the user's taste factor t for it."""

    grid: np.ndarray  # (users, categories, points) at log t = start + i * step
    clicks: np.ndarray  # (users, categories)
    exposure: np.ndarray  # (users, categories): sum of examine * unit attract over the non-clicked impressions
    start: float
    step: float

    @classmethod
    def tabulate(
        cls,
        users: np.ndarray,
        categories: np.ndarray,
        examine: np.ndarray,
        unit_attract: np.ndarray,
        clicked: np.ndarray,
        shape: tuple[int, int],
        high: float,
        points: int,
    ) -> _LogLikelihood:
        group = users.astype(np.int64) * shape[1] + categories.astype(np.int64)
        cells = shape[0] * shape[1]
        member = sparse.csr_matrix((np.ones(len(group)), (group, np.arange(len(group)))), shape=(cells, len(group)))
        hit = np.asarray(clicked, dtype=bool)
        log_t = np.linspace(np.log(_GRID_LOW), np.log(max(high, 2 * _GRID_LOW)), points)
        out = np.empty((cells, points))
        for first in range(0, points, 16):
            t = np.exp(log_t[first : first + 16])
            p = examine[:, None] * np.minimum(1.0, unit_attract[:, None] * t[None, :])
            terms = np.where(hit[:, None], np.log(np.maximum(p, _TINY)), np.log(np.maximum(1.0 - p, _TINY)))
            out[:, first : first + len(t)] = member @ terms
        clicks = np.bincount(group, weights=hit.astype(float), minlength=cells)
        exposure = np.bincount(group, weights=np.where(hit, 0.0, examine * unit_attract), minlength=cells)
        return cls(
            out.reshape(*shape, points),
            clicks.reshape(shape),
            exposure.reshape(shape),
            float(log_t[0]),
            float(log_t[1] - log_t[0]),
        )

    def at(self, rows: np.ndarray, category: int, log_t: np.ndarray) -> np.ndarray:
        """(len(rows), m): the log-likelihood of users ``rows`` for ``category`` at the taste factors exp(log_t),
        (m,), the same for every user. Linear interpolation in log t on the grid, exact to first order in t below it,
        the top value above it (t cannot exceed k ** exponent)."""
        grid = self.grid[rows, category]  # (r, points)
        position = (log_t - self.start) / self.step
        left = np.clip(np.floor(position).astype(np.int64), 0, grid.shape[1] - 2)
        frac = np.clip(position - left, 0.0, 1.0)
        inside = grid[:, left] * (1 - frac) + grid[:, left + 1] * frac
        below = self._below(rows, category, log_t[None, :])
        return np.asarray(np.where(log_t < self.start, below, inside))

    def of_rows(self, rows: np.ndarray) -> _LogLikelihood:
        """The same functions for users ``rows`` only (row i of the result is user rows[i])."""
        return _LogLikelihood(
            np.ascontiguousarray(self.grid[rows]), self.clicks[rows], self.exposure[rows], self.start, self.step
        )

    def each(self, log_t: np.ndarray) -> np.ndarray:
        """(users,): each user's log-likelihood at their own taste factors exp(log_t), (users, categories), summed
        over categories (the MCMC's call, once per proposal)."""
        users, categories, points = self.grid.shape
        flat = self.grid.reshape(users * categories, points)
        x = log_t.ravel()
        position = (x - self.start) / self.step
        left = np.clip(np.floor(position).astype(np.int64), 0, points - 2)
        frac = np.clip(position - left, 0.0, 1.0)
        cell = np.arange(users * categories)
        inside = flat[cell, left] * (1 - frac) + flat[cell, left + 1] * frac
        below = (
            flat[:, 0]
            + self.clicks.ravel() * (x - self.start)
            - self.exposure.ravel() * (np.exp(x) - np.exp(self.start))
        )
        return np.asarray(np.where(x < self.start, below, inside).reshape(users, categories).sum(axis=1))

    def _below(self, rows: np.ndarray, category: int, log_t: np.ndarray) -> np.ndarray:
        # n * log t - t * exposure, anchored at the grid's first point.
        return np.asarray(
            self.grid[rows, category, :1]
            + self.clicks[rows, category][:, None] * (log_t - self.start)
            - self.exposure[rows, category][:, None] * (np.exp(log_t) - np.exp(self.start))
        )


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
    min_effective: float = 30.0,
    sweeps: int = 3_000,
) -> TastePosterior:
    """Posterior mean taste factors of ``n_users`` users from their logged impressions.

    Two stages. Importance sampling from the prior, one set of ``samples`` Dirichlet draws for every user: exact
    for users with little data, but a user with much data puts nearly all the weight on a few draws (a posterior
    narrower than the draws' spacing). Users whose effective sample size is below ``min_effective`` are redone by
    MCMC: Metropolis-within-Gibbs on y = log g, where g_c ~ Gamma(alpha_c, 1) independently and the shares are
    g / sum(g) (the standard Gamma construction of the Dirichlet), each coordinate's proposal scale adapted to an
    acceptance rate of 0.44 during the first third of ``sweeps`` (Roberts and Rosenthal, "Examples of adaptive
    MCMC", 2009), all those users' chains run side by side, the posterior mean averaged over the rest.

    Args:
        users, categories: (n,) user index in [0, n_users) and true category index of each impression's item.
        examine: (n,) examination probability of each impression's position.
        unit_attract: (n,) attract of the impression for a taste factor of 1, experiment multipliers included,
            before the clip: P(click) = examine * min(1, taste_factor * unit_attract).
        clicked: (n,) whether it was clicked.
        n_users: rows of the result; a user without impressions gets the prior mean.
        prior: the taste prior.
        samples: prior draws for the importance sampler.
        seed: for the draws and the chains.
        grid_points: each (user, category)'s log-likelihood is tabulated exactly at this many taste factors
            (log-spaced from 1e-3 to k ** exponent) and interpolated linearly in log t.
        min_effective: users below this effective sample size go to the MCMC stage (0: never).
        sweeps: MCMC sweeps (one update of every coordinate each).

    Returns:
        factors (n_users, categories), each user's effective sample size and which users the MCMC stage did.

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
    shares = rng.dirichlet(prior.alpha, size=samples)
    log_factors = prior.exponent * np.log(np.maximum(prior.k * shares, _TINY))  # (samples, categories)
    loglik = _LogLikelihood.tabulate(
        users, categories, examine, unit_attract, clicked, (n_users, n_categories), prior.k**prior.exponent, grid_points
    )
    factors = np.exp(log_factors)
    out = np.empty((n_users, n_categories))
    mean_share = np.empty((n_users, n_categories))
    ess = np.empty(n_users)
    for first in range(0, n_users, 256):
        rows = np.arange(first, min(first + 256, n_users))
        logw = np.zeros((len(rows), samples))
        for c in range(n_categories):
            logw += loglik.at(rows, c, log_factors[:, c])
        logw -= logw.max(axis=1, keepdims=True)
        weights = np.exp(logw)
        weights /= weights.sum(axis=1, keepdims=True)
        out[rows] = weights @ factors
        mean_share[rows] = weights @ shares
        ess[rows] = 1.0 / np.square(weights).sum(axis=1)
    redo = np.flatnonzero(ess < min_effective)
    if len(redo):
        out[redo], ess[redo] = _mcmc(loglik, redo, mean_share[redo], prior, sweeps, rng)
    mcmc = np.zeros(n_users, dtype=bool)
    mcmc[redo] = True
    return TastePosterior(out, ess, mcmc)


def _mcmc(
    loglik: _LogLikelihood,
    rows: np.ndarray,
    start_share: np.ndarray,
    prior: TastePrior,
    sweeps: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean taste factors of users ``rows`` by adaptive Metropolis-within-Gibbs (see posterior_taste),
    and each one's batch-means effective sample size (the smallest over categories)."""
    n_categories = len(prior.alpha)
    log_k = np.log(prior.k)

    mine = loglik.of_rows(rows)

    def log_posterior(y: np.ndarray) -> np.ndarray:
        log_share = y - np.logaddexp.reduce(y, axis=1, keepdims=True)
        log_prior = np.sum(prior.alpha * y - np.exp(y), axis=1)
        return np.asarray(log_prior + mine.each(prior.exponent * (log_k + log_share)))

    y = np.log(np.maximum(start_share, 1e-12)) + np.log(prior.alpha.sum())
    current = log_posterior(y)
    scale = np.ones((len(rows), n_categories))
    burn = sweeps // 3
    kept = np.zeros((sweeps - burn, len(rows), n_categories))
    for sweep in range(sweeps):
        for c in range(n_categories):
            proposal = y.copy()
            proposal[:, c] += scale[:, c] * rng.standard_normal(len(rows))
            candidate = log_posterior(proposal)
            accept = np.log(rng.random(len(rows))) < candidate - current
            y[accept] = proposal[accept]
            current[accept] = candidate[accept]
            if sweep < burn:
                scale[:, c] *= np.exp((accept - 0.44) / np.sqrt(sweep + 1))
        if sweep >= burn:
            share = np.exp(y - np.logaddexp.reduce(y, axis=1, keepdims=True))
            kept[sweep - burn] = (prior.k * share) ** prior.exponent
    mean = kept.mean(axis=0)
    batches = kept[: (len(kept) // 20) * 20].reshape(20, -1, len(rows), n_categories).mean(axis=1)
    iid = kept.var(axis=0)
    between = batches.var(axis=0, ddof=1) * (len(kept) // 20)
    ess = np.where(between > 0, len(kept) * iid / np.maximum(between, 1e-300), len(kept)).min(axis=1)
    return mean, ess


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
class _Logs:
    """The truth's logged impressions as arrays, read once: a ceiling stands at any moment by filtering them."""

    doc: dict[str, Any]
    ms: np.ndarray  # (n,) int64 ms since the epoch
    users: np.ndarray  # (n,) user index
    items: np.ndarray  # (n,) item index
    examine: np.ndarray
    multiplier: np.ndarray
    clicked: np.ndarray

    @classmethod
    def read(cls, truth: TruthClickModel) -> _Logs:
        """Raises ValueError where the impressions name users or items the truth's own tables do not hold."""
        table = pq.read_table(
            truth.folder / "impressions.parquet",
            columns=["user_id", "content_id", "occurred_at", "examine", "experiment_multiplier", "clicked"],
        )
        users = _ids(table["user_id"].to_pylist(), "u")
        items = _ids(table["content_id"].to_pylist(), "c")
        if (users < 0).any() or (users >= len(truth.taste)).any():
            raise ValueError("the truth's impressions name users its users table does not hold")
        if (items < 0).any() or (items >= len(truth.items.category)).any():
            raise ValueError("the truth's impressions name items its content table does not hold")
        return cls(
            read_truth(truth.folder),
            _epoch_ms(table["occurred_at"]),
            users,
            items,
            table["examine"].to_numpy(),
            table["experiment_multiplier"].to_numpy(),
            table["clicked"].to_numpy(zero_copy_only=False),
        )


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
        """From every logged impression before ``before`` (a UTC moment; a naive one is read as UTC) in the truth's
        impressions table.

        Raises:
            ValueError: ``before`` is not a moment (NaT), or the truth's impressions name users or items its own
                tables do not hold.
        """
        moment = _utc_moment(before)
        return cls._standing_at(truth, _Logs.read(truth), moment, samples, seed)

    @classmethod
    def _standing_at(
        cls, truth: TruthClickModel, logs: _Logs, moment: pd.Timestamp, samples: int, seed: int
    ) -> LearnableCeiling:
        """The ceiling from the rows of ``logs`` before ``moment`` (UTC)."""
        before = logs.ms * 1_000_000 < moment.value
        users, items = logs.users[before], logs.items[before]
        unit = truth.items.unit_attract(items, logs.ms[before]) * logs.multiplier[before]
        posterior = posterior_taste(
            users,
            truth.items.category[items],
            logs.examine[before],
            unit,
            logs.clicked[before],
            len(truth.taste),
            TastePrior.from_truth(logs.doc),
            samples=samples,
            seed=seed,
        )
        shown = np.zeros(len(truth.items.category), dtype=bool)
        shown[items] = True
        return cls(truth, moment, posterior, shown, quality_prior_factor(logs.doc))

    def attract(self, user_ids: Sequence[str], content_ids: Sequence[str], moments: Sequence[Any]) -> np.ndarray:
        """The ceiling's ranking score per (user, item, moment): its estimate of attract at the top, without
        experiments and without the clip at 1 (clipping would tie the strongest candidates); NaN for ids the
        simulation does not know."""
        users, items = _ids(list(user_ids), "u"), _ids(list(content_ids), "c")
        return self._estimate(users, items, moments_ms(moments), np.ones(len(users)))

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
        table = self.truth.impressions(
            impression_ids, ["user_id", "content_id", "occurred_at", "examine", "experiment_multiplier"]
        )
        known = table["user_id"].notna().to_numpy()
        users = _ids(table["user_id"].fillna("").tolist(), "u")
        items = _ids(table["content_id"].fillna("").tolist(), "c")
        ms = np.zeros(len(table), dtype=np.int64)
        ms[known] = moments_ms(table.loc[known, "occurred_at"].tolist())
        attract = self._estimate(users, items, ms, table["experiment_multiplier"].fillna(1.0).to_numpy())
        return np.where(known, table["examine"].to_numpy(dtype=float) * np.minimum(1.0, attract), np.nan)

    def _estimate(self, users: np.ndarray, items: np.ndarray, ms: np.ndarray, mult: np.ndarray) -> np.ndarray:
        ok = (users >= 0) & (users < len(self.taste.factors)) & (items >= 0) & (items < len(self.shown))
        out = np.full(len(users), np.nan)
        u, i = users[ok], items[ok]
        quality = np.where(self.shown[i], self.truth.items.quality_factor[i], self.quality_prior)
        unit = self.truth.items.unit_attract(i, ms[ok], quality=False) * quality
        out[ok] = self.taste.factors[u, self.truth.items.category[i]] * unit * mult[ok]
        return out


def p_click_day_by_day(
    truth: TruthClickModel, impression_ids: Sequence[str], *, samples: int = 20_000, seed: int = 0
) -> np.ndarray:
    """The ceiling's P(click) of logged impressions, each from the logs before its own UTC day (when it happened,
    read from the truth): a model whose features are refreshed daily (Tailor's are) knows the days before an
    impression, not its day.

    Returns:
        (n,) probabilities, NaN for ids the truth does not hold.
    """
    at = pd.to_datetime(truth.impressions(impression_ids, ["occurred_at"])["occurred_at"], utc=True)
    days = at.dt.floor("D").to_numpy()
    ids = np.asarray(list(impression_ids), dtype=object)
    out = np.full(len(ids), np.nan)
    known_days = sorted(pd.unique(days[~pd.isna(days)]))
    if not known_days:
        return out
    logs = _Logs.read(truth)  # once for every day
    for day in known_days:
        rows = np.flatnonzero(days == day)
        ceiling = LearnableCeiling._standing_at(truth, logs, _utc_moment(day), samples, seed)
        out[rows] = ceiling.p_click(ids[rows].tolist())
    return out


def _utc_moment(value: Any) -> pd.Timestamp:
    """``value`` as a UTC timestamp (a naive one read as UTC).

    Raises:
        ValueError: it is not a moment (NaT).
    """
    moment = pd.Timestamp(value)
    if pd.isna(moment):
        raise ValueError(f"the ceiling needs a moment to stand at, got {value!r}")
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")

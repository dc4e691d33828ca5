"""Thompson sampling over variants with Beta-Bernoulli posteriors, and a harness that measures its regret.

Each arm's success rate (a click per impression, a conversion per user) gets a Beta(alpha + successes,
beta + failures) posterior. Thompson sampling serves each unit the arm whose posterior draw is highest, so an
arm's traffic share equals P(arm is best | data): traffic moves to the better arm as evidence builds up, while
every arm keeps some traffic until the posteriors separate (Thompson 1933; Chapelle and Li 2011).

Allocation happens in batches (a day, in Tailor: the warehouse runs daily), with the posterior frozen within a
batch. Drawing one posterior sample per unit with a frozen posterior is the same as drawing the arm from the
P(best) distribution, which is what `next_allocation` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import integrate, special

Method = Literal["exact", "mc"]
# "thompson", or fixed traffic weights per arm (e.g. (0.5, 0.5) for a classic A/B split).
Policy = Literal["thompson"] | tuple[float, ...]


@dataclass(frozen=True)
class BetaPrior:
    """Beta(alpha, beta) prior on every arm's success rate; Beta(1, 1) is uniform on [0, 1]."""

    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.beta > 0):
            raise ValueError(f"prior alpha and beta must be positive, got Beta({self.alpha}, {self.beta})")


def posterior(
    successes: Sequence[float] | np.ndarray, trials: Sequence[float] | np.ndarray, prior: BetaPrior = BetaPrior()
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior Beta parameters per arm: (prior.alpha + successes, prior.beta + trials - successes)."""
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if s.ndim != 1 or s.shape != n.shape:
        raise ValueError(f"successes and trials need one number per arm, got shapes {s.shape} and {n.shape}")
    if len(s) < 2:
        raise ValueError(f"a bandit needs at least two arms, got {len(s)}")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(n))):
        raise ValueError("successes and trials must be finite numbers")
    bad = np.flatnonzero((s < 0) | (s > n))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"arm {i}: successes must be between 0 and trials, got {s[i]:g} of {n[i]:g}")
    return prior.alpha + s, prior.beta + n - s


def prob_best_exact(
    successes: Sequence[float] | np.ndarray, trials: Sequence[float] | np.ndarray, prior: BetaPrior = BetaPrior()
) -> np.ndarray:
    """P(arm k has the highest rate) per arm, by one-dimensional numerical integration.

    P(k best) = integral over x of f_k(x) * prod_{j != k} F_j(x) dx, with f and F the Beta posterior densities
    and distribution functions. Integrated over arm k's central 1 - 2e-12 posterior mass, where the integrand
    lives (quad over [0, 1] can miss a narrow peak), so the result is accurate to about 1e-10.
    """
    a, b = posterior(successes, trials, prior)
    out = np.empty(len(a))
    log_norm = special.betaln(a, b)
    for k in range(len(a)):
        others = [j for j in range(len(a)) if j != k]

        # scipy.special rather than stats.beta: ~50x faster per call, and quad calls this hundreds of times.
        def integrand(x: float, k: int = k, others: list[int] = others) -> float:
            density = np.exp(special.xlogy(a[k] - 1, x) + special.xlog1py(b[k] - 1, -x) - log_norm[k])
            return float(density * np.prod(special.betainc(a[others], b[others], x)))

        lo, hi = special.betaincinv(a[k], b[k], 1e-12), special.betaincinv(a[k], b[k], 1 - 1e-12)
        mode = float(np.clip((a[k] - 1) / max(a[k] + b[k] - 2, 1e-12), lo, hi))
        value, _ = integrate.quad(integrand, lo, hi, points=[mode], limit=200, epsabs=1e-13, epsrel=1e-10)
        out[k] = value
    return out


def prob_best_mc(
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
    prior: BetaPrior = BetaPrior(),
    draws: int = 20_000,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """P(arm k has the highest rate) per arm, by Monte Carlo: the share of joint posterior draws each arm wins.

    Seeded (``rng``) so a dashboard shows the same number on every refresh; the standard error of each share
    is at most 0.5 / sqrt(draws).
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    a, b = posterior(successes, trials, prior)
    gen = np.random.default_rng(rng)
    samples = gen.beta(a, b, size=(draws, len(a)))
    return np.bincount(samples.argmax(axis=1), minlength=len(a)) / draws


def prob_best(
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
    prior: BetaPrior = BetaPrior(),
    method: Method = "exact",
) -> np.ndarray:
    """P(arm is best) per arm: the Thompson sampling traffic shares (see `prob_best_exact`, `prob_best_mc`)."""
    if method == "exact":
        return prob_best_exact(successes, trials, prior)
    if method == "mc":
        return prob_best_mc(successes, trials, prior)
    raise ValueError(f"method must be 'exact' or 'mc', got {method!r}")


def next_allocation(
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
    batch_size: int,
    prior: BetaPrior = BetaPrior(),
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Units per arm for the next batch under Thompson sampling: Multinomial(batch_size, P(best))."""
    if batch_size < 0:
        raise ValueError(f"batch_size must not be negative, got {batch_size}")
    shares = _normalised(prob_best_exact(successes, trials, prior))
    return np.random.default_rng(rng).multinomial(batch_size, shares)


# ---------------------------------------------------------------- simulation against a known truth


@dataclass(frozen=True)
class BanditEnvironment:
    """Arms with known success probabilities, pull by pull, grouped into allocation batches.

    Attributes:
        probabilities: (pulls, arms) P(success) if pull t is served arm a. Rows may differ (each pull can be
            a different impression with its own click probability) or repeat (fixed rates).
        batch_ends: End index (exclusive) of each batch in time order; the last equals the number of pulls.
        arm_names: One name per arm.
        name: What the environment is, for reports.
    """

    probabilities: np.ndarray
    batch_ends: np.ndarray
    arm_names: tuple[str, ...]
    name: str = "environment"

    def __post_init__(self) -> None:
        p, ends = self.probabilities, self.batch_ends
        if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] < 1:
            raise ValueError(f"probabilities must be (pulls, arms) with at least 2 arms, got shape {p.shape}")
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError("probabilities must lie in [0, 1]")
        if len(self.arm_names) != p.shape[1]:
            raise ValueError(f"need {p.shape[1]} arm names, got {len(self.arm_names)}")
        if len(ends) == 0 or ends[-1] != p.shape[0] or np.any(np.diff(np.concatenate([[0], ends])) <= 0):
            raise ValueError("batch_ends must be increasing and end at the number of pulls")

    @classmethod
    def from_rates(
        cls, rates: Sequence[float], batch_sizes: Sequence[int], arm_names: Sequence[str] | None = None
    ) -> BanditEnvironment:
        """Fixed success rates per arm, the same for every pull."""
        sizes = np.asarray(batch_sizes, dtype=np.int64)
        if len(sizes) == 0 or np.any(sizes <= 0):
            raise ValueError(f"batch_sizes must be positive, got {list(batch_sizes)}")
        p = np.broadcast_to(np.asarray(rates, dtype=np.float64), (int(sizes.sum()), len(rates)))
        names = tuple(arm_names) if arm_names is not None else tuple(f"arm_{i}" for i in range(len(rates)))
        return cls(p, np.cumsum(sizes), names, name=f"fixed rates {list(rates)}")

    def with_batch_size(self, size: int) -> BanditEnvironment:
        """The same pulls, re-allocated every ``size`` pulls instead (e.g. hourly rather than daily)."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        ends = np.append(np.arange(size, self.pulls, size), self.pulls)
        return replace(self, batch_ends=ends, name=f"{self.name}, re-allocated every {size:,} pulls")

    @property
    def pulls(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def arm_means(self) -> np.ndarray:
        """Mean success probability of each arm over all pulls (what a fixed split would measure)."""
        return np.asarray(self.probabilities.mean(axis=0))

    @property
    def best_arm(self) -> int:
        return int(np.argmax(self.arm_means))


@dataclass(frozen=True)
class BanditRun:
    """One run of a policy through an environment.

    expected_regret: sum over pulls of p(best arm) - p(chosen arm), the clicks lost in expectation against
        serving the arm with the best mean all along.
    realized_regret: clicks the best arm would have got on the same random draws minus the clicks got.
    """

    policy: str
    pulls: np.ndarray  # per arm
    successes: np.ndarray  # per arm
    expected_regret: float
    realized_regret: float
    best_arm_share: float
    shares_by_batch: np.ndarray  # (batches, arms): planned traffic share of each batch
    regret_by_batch: np.ndarray  # cumulative expected regret at each batch end
    posterior_alpha: np.ndarray
    posterior_beta: np.ndarray

    @property
    def posterior_mean(self) -> np.ndarray:
        return self.posterior_alpha / (self.posterior_alpha + self.posterior_beta)


def run_policy(
    env: BanditEnvironment, policy: Policy, seed: int = 0, prior: BetaPrior = BetaPrior(), method: Method = "exact"
) -> BanditRun:
    """Play ``policy`` through ``env`` batch by batch: allocate, observe, update the posterior.

    Two policies run with the same ``seed`` see the same random numbers (one uniform per pull for the arm
    choice, one for the outcome: success if u < p), so their difference is the policy's, not the luck's.
    """
    n_arms = env.probabilities.shape[1]
    fixed = _fixed_shares(policy, n_arms)
    gen = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    choice_u, outcome_u = gen.random(env.pulls), gen.random(env.pulls)
    best = env.best_arm
    successes, trials = np.zeros(n_arms), np.zeros(n_arms)
    shares_by_batch, regret_by_batch = [], []
    regret = realized = 0.0
    start = 0
    for end in env.batch_ends:
        shares = fixed if fixed is not None else _normalised(prob_best(successes, trials, prior, method))
        arm = np.minimum(np.searchsorted(np.cumsum(shares), choice_u[start:end], side="right"), n_arms - 1)
        p = env.probabilities[start:end]
        p_chosen = np.take_along_axis(p, arm[:, None], axis=1)[:, 0]
        won = outcome_u[start:end] < p_chosen
        successes += np.bincount(arm, weights=won, minlength=n_arms)
        trials += np.bincount(arm, minlength=n_arms)
        regret += float((p[:, best] - p_chosen).sum())
        realized += float((outcome_u[start:end] < p[:, best]).sum() - won.sum())
        shares_by_batch.append(shares)
        regret_by_batch.append(regret)
        start = int(end)
    alpha, beta = posterior(successes, trials, prior)
    return BanditRun(
        policy=_policy_name(policy),
        pulls=trials.astype(np.int64),
        successes=successes.astype(np.int64),
        expected_regret=regret,
        realized_regret=realized,
        best_arm_share=float(trials[best] / trials.sum()),
        shares_by_batch=np.array(shares_by_batch),
        regret_by_batch=np.array(regret_by_batch),
        posterior_alpha=alpha,
        posterior_beta=beta,
    )


@dataclass(frozen=True)
class PolicySummary:
    """A policy over many replications of the same environment (mean and standard deviation across runs)."""

    policy: str
    replications: int
    expected_regret_mean: float
    expected_regret_sd: float
    realized_regret_mean: float
    realized_regret_sd: float
    best_arm_share_mean: float
    successes_mean: float
    posterior_mean: tuple[float, ...]  # averaged over runs

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def compare_policies(
    env: BanditEnvironment,
    policies: Mapping[str, Policy],
    replications: int = 100,
    seed: int = 0,
    prior: BetaPrior = BetaPrior(),
) -> dict[str, PolicySummary]:
    """Run every policy ``replications`` times (replication r uses seed + r for all policies) and summarise."""
    if replications < 2:
        raise ValueError(f"replications must be at least 2, got {replications}")
    out = {}
    for name, policy in policies.items():
        runs = [run_policy(env, policy, seed + r, prior) for r in range(replications)]
        regret = np.array([r.expected_regret for r in runs])
        realized = np.array([r.realized_regret for r in runs])
        out[name] = PolicySummary(
            policy=name,
            replications=replications,
            expected_regret_mean=float(regret.mean()),
            expected_regret_sd=float(regret.std(ddof=1)),
            realized_regret_mean=float(realized.mean()),
            realized_regret_sd=float(realized.std(ddof=1)),
            best_arm_share_mean=float(np.mean([r.best_arm_share for r in runs])),
            successes_mean=float(np.mean([r.successes.sum() for r in runs])),
            posterior_mean=tuple(float(x) for x in np.mean([r.posterior_mean for r in runs], axis=0)),
        )
    return out


def fixed_split_regret(env: BanditEnvironment, weights: Sequence[float]) -> float:
    """Expected regret of a fixed split in closed form: sum over pulls and arms of w_a * (p_best - p_a)."""
    shares = _fixed_shares(tuple(weights), env.probabilities.shape[1])
    assert shares is not None
    gap = env.probabilities[:, env.best_arm : env.best_arm + 1] - env.probabilities
    return float((gap.sum(axis=0) * shares).sum())


def _fixed_shares(policy: Policy, n_arms: int) -> np.ndarray | None:
    if policy == "thompson":
        return None
    if isinstance(policy, str):
        raise ValueError(f"policy must be 'thompson' or a tuple of traffic weights, got {policy!r}")
    weights = np.asarray(policy, dtype=np.float64)
    if weights.shape != (n_arms,) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"a fixed split needs {n_arms} non-negative weights, not all 0; got {list(policy)}")
    return weights / weights.sum()


def _policy_name(policy: Policy) -> str:
    return policy if isinstance(policy, str) else "fixed " + "/".join(f"{w:g}" for w in policy)


def _normalised(shares: np.ndarray) -> np.ndarray:
    # Quadrature leaves sums off 1 by ~1e-10; clip tiny negatives before normalising.
    shares = np.clip(shares, 0, None)
    return shares / shares.sum()

"""Environments with a known truth, read from a simulation's ``_truth/`` folder (``tailor generate``).

Evaluation code only: the pipeline never reads ``_truth/``. Two things are built from it:

- A bandit environment for one experiment: every impression on its surfaces from its start, with the exact
  click probability each arm would have had, examine(position) * min(1, attract_without_experiments * m_arm),
  so rewards come from the planted click model, not from a summary rate.
- The top slot as a logged bandit: position 1 of every request, its logged item drawn from the day's candidate
  pool with a known propensity (``pool.parquet``), and the true click probability of every pool item for that
  request, recomputed from truth.json's attract formula. A target policy's true CTR is then exact.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.experiments.bandit import BanditEnvironment
from ml.experiments.offpolicy import OffPolicyEstimate, ips, replay, snips

_DAY_MS = 86_400_000


def read_truth(truth_dir: Path) -> dict[str, Any]:
    """truth.json of a simulation (``truth_dir`` is the ``_truth`` folder or the simulation's output folder)."""
    folder = _truth_folder(truth_dir)
    return dict(json.loads((folder / "truth.json").read_text()))


# ---------------------------------------------------------------- bandit environment of one experiment


def experiment_environment(
    truth_dir: Path, experiment_id: str, multipliers: Sequence[float] | None = None
) -> BanditEnvironment:
    """The impressions of a ctr (or A/A) experiment as a bandit: one pull per impression, one batch per UTC day.

    Args:
        truth_dir: The simulation's ``_truth`` folder (or its parent).
        experiment_id: An experiment of the simulation, e.g. ``exp_feed_ranker``.
        multipliers: Effect of each arm on attract; defaults to the planted ones. Passing others asks "what if
            the treatment had done x" over the same impressions and users.

    Other experiments' effects are left out (attract_without_experiments), so the arms differ by this
    experiment's multipliers only.
    """
    folder = _truth_folder(truth_dir)
    doc = read_truth(folder)
    spec = _experiment(doc, experiment_id)
    if spec["target"] == "conversion":
        raise ValueError(
            f"{experiment_id} changes conversions, not clicks: the bandit environment rewards clicks per "
            "impression. Choose a ctr or A/A experiment."
        )
    arms = tuple(spec["variants"])
    mult = np.asarray(multipliers if multipliers is not None else [a["multiplier"] for a in spec["arms"]], float)
    if mult.shape != (len(arms),) or np.any(mult <= 0):
        raise ValueError(f"{experiment_id} has arms {list(arms)}: need one positive multiplier each, got {mult}")
    table = _impressions(folder, ["occurred_at", "pool_day", "surface", "examine", "attract_without_experiments"])
    # The simulator's rule: requests on the experiment's surfaces, from sessions of its start day on (pool_day is
    # the session's day, so a session that began before the start's midnight stays out, as in the simulator).
    day = table["pool_day"].to_numpy(zero_copy_only=False).astype("datetime64[D]").astype(np.int64)
    start_day = np.datetime64(spec["start_date"], "D").astype(np.int64)
    keep = (day >= start_day) & np.isin(table["surface"].to_numpy(zero_copy_only=False), spec["surfaces"])
    if not keep.any():
        raise ValueError(f"{experiment_id} has no impressions after its start {spec['start_at']}")
    # Days in order, and within a day the time order of the impressions.
    order = np.lexsort((_epoch_ms(table["occurred_at"])[keep], day[keep]))
    examine = table["examine"].to_numpy()[keep][order]
    attract = table["attract_without_experiments"].to_numpy()[keep][order]
    # min(1, clip(base) * m) equals clip(base * m) of the click model: when base >= 1 both sides are 1.
    p = examine[:, None] * np.minimum(1.0, attract[:, None] * mult[None, :])
    batch_day = day[keep][order]
    ends = np.flatnonzero(np.diff(batch_day)) + 1
    batch_ends = np.append(ends, len(batch_day))
    label = "/".join(f"{m:g}" for m in mult)
    return BanditEnvironment(p, batch_ends, arms, name=f"{experiment_id} (multipliers {label})")


# ---------------------------------------------------------------- the top slot as a logged bandit


@dataclass(frozen=True)
class TopSlotDay:
    """One day of top-slot decisions.

    Attributes:
        day: The UTC day whose candidate pool was used.
        content_ids: The pool (the actions).
        score: The logged policy's score of each pool item.
        propensity: The logged policy's probability of putting each pool item at position 1.
        value: (requests, pool) true P(click at position 1) had that item been shown to that request.
        logged: (requests,) index into the pool of the item actually shown at position 1.
        clicked: (requests,) whether it was clicked.
    """

    day: date
    content_ids: np.ndarray
    score: np.ndarray
    propensity: np.ndarray
    value: np.ndarray
    logged: np.ndarray
    clicked: np.ndarray


# A target policy maps a day to (requests, pool) probabilities of each item at position 1 (rows sum to 1).
TargetPolicy = Callable[[TopSlotDay], np.ndarray]


@dataclass(frozen=True)
class TopSlotLog:
    """Every request's top slot, day by day, with known propensities and true click probabilities."""

    days: tuple[TopSlotDay, ...]

    @property
    def requests(self) -> int:
        return sum(len(d.logged) for d in self.days)

    @property
    def rewards(self) -> np.ndarray:
        return np.concatenate([d.clicked for d in self.days]).astype(np.float64)

    @property
    def logging_propensity(self) -> np.ndarray:
        return np.concatenate([d.propensity[d.logged] for d in self.days])

    def target_propensity(self, policy: TargetPolicy) -> np.ndarray:
        """pi(logged action | request) for each logged decision."""
        return np.concatenate([_check(policy(d))[np.arange(len(d.logged)), d.logged] for d in self.days])

    def true_value(self, policy: TargetPolicy) -> float:
        """The policy's exact expected CTR at position 1 over these requests (no sampling noise)."""
        total = sum(float((_check(policy(d)) * d.value).sum()) for d in self.days)
        return total / self.requests

    def max_ratio(self, policy: TargetPolicy) -> float:
        """max over requests and pool items of pi / mu: the bound replay needs."""
        return max(float((_check(policy(d)) / d.propensity[None, :]).max()) for d in self.days)

    def resample(self, rng: np.random.Generator) -> TopSlotLog:
        """The same requests replayed: new top-slot items from the logged policy, new clicks from the truth.

        For checking estimators over repeated draws (bias, interval coverage) on the simulated world.
        """
        days = []
        for d in self.days:
            cdf = np.cumsum(d.propensity)
            logged = np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(len(d.logged)), side="right"), len(cdf) - 1)
            clicked = rng.random(len(logged)) < d.value[np.arange(len(logged)), logged]
            days.append(replace(d, logged=logged, clicked=clicked))
        return TopSlotLog(tuple(days))


def logging_policy(d: TopSlotDay) -> np.ndarray:
    """The logged policy itself (softmax of the pool scores)."""
    return np.broadcast_to(d.propensity, d.value.shape)


def uniform_policy(d: TopSlotDay) -> np.ndarray:
    """Any pool item with equal probability."""
    return np.full(d.value.shape, 1.0 / d.value.shape[1])


def greedy_oracle_policy(d: TopSlotDay) -> np.ndarray:
    """The truly most attractive pool item for each request (needs the truth: an upper bound, not a product)."""
    out = np.zeros(d.value.shape)
    out[np.arange(len(out)), d.value.argmax(axis=1)] = 1.0
    return out


def softmax_policy(temperature: float) -> TargetPolicy:
    """The logged policy's scores at another temperature (below 1: sharper, above: flatter)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")

    def policy(d: TopSlotDay) -> np.ndarray:
        w = np.exp((d.score - d.score.max()) / temperature)
        return np.broadcast_to(w / w.sum(), d.value.shape)

    return policy


def epsilon_greedy_oracle_policy(epsilon: float) -> TargetPolicy:
    """The greedy oracle with probability 1 - epsilon, a uniformly drawn pool item otherwise."""
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    return lambda d: (1 - epsilon) * greedy_oracle_policy(d) + epsilon * uniform_policy(d)


def tabulate(log: TopSlotLog, policy: TargetPolicy) -> TargetPolicy:
    """The same policy with its probabilities computed once per day (they do not depend on what was logged),
    for evaluating it on many resampled logs of the same requests."""
    table = {d.day: _check(np.asarray(policy(d))) for d in log.days}
    return lambda d: table[d.day]


def estimate_policy(
    log: TopSlotLog, policy: TargetPolicy, alpha: float = 0.05, seed: int = 0
) -> dict[str, OffPolicyEstimate]:
    """IPS, SNIPS and replay estimates of a target policy's top-slot CTR from the log."""
    r, mu, pi = log.rewards, log.logging_propensity, log.target_propensity(policy)
    out = {"ips": ips(r, mu, pi, alpha), "snips": snips(r, mu, pi, alpha)}
    # Replay raises when it keeps too few decisions: then it has nothing to say about this policy on this log.
    with contextlib.suppress(ValueError):
        out["replay"] = replay(r, mu, pi, log.max_ratio(policy), rng=seed, alpha=alpha)
    return out


def load_top_slot_log(truth_dir: Path) -> TopSlotLog:
    """Position 1 of every request, joined to its day's pool, with the truth's click probabilities.

    The value of showing item i to request x at the top is examine(1) * clip(base_attract * taste_factor(user,
    category) * quality_factor * freshness(age) * experiment_multiplier, 0, 1), from truth.json's click model
    and the users and content truth tables (the same formula the simulator drew the clicks from).
    """
    folder = _truth_folder(truth_dir)
    doc = read_truth(folder)
    model = doc["click_model"]
    pool_path = folder / "pool.parquet"
    if not pool_path.exists():
        raise FileNotFoundError(
            f"{pool_path} is missing: this simulation predates logged propensities. Generate it again."
        )
    columns = ["position", "user_id", "content_id", "occurred_at", "pool_day", "experiment_multiplier", "clicked"]
    imp = _impressions(folder, columns)
    imp = imp.filter(pc.equal(imp["position"], 1))
    pool = pq.read_table(pool_path)
    item = _Items.read(folder, doc)
    taste = _taste_factors(folder, doc)
    examine_top = float(model["examine"]["by_position"]["1"])

    imp_day = imp["pool_day"].to_numpy(zero_copy_only=False).astype("datetime64[D]")
    pool_day = pool["day"].to_numpy(zero_copy_only=False).astype("datetime64[D]")
    user = _index(imp["user_id"])
    shown = _index(imp["content_id"])
    ms = _epoch_ms(imp["occurred_at"])
    mult = imp["experiment_multiplier"].to_numpy()
    clicked = imp["clicked"].to_numpy(zero_copy_only=False)
    pool_items = _index(pool["content_id"])
    score, propensity = pool["score"].to_numpy(), pool["propensity_first"].to_numpy()

    days = []
    for day in np.unique(imp_day):
        rows, members = np.flatnonzero(imp_day == day), np.flatnonzero(pool_day == day)
        items = pool_items[members]
        position = {int(c): i for i, c in enumerate(items)}
        logged = np.array([position[int(c)] for c in shown[rows]], dtype=np.int64)
        attract = item.attract(taste[user[rows]], items, ms[rows], mult[rows])
        days.append(
            TopSlotDay(
                day=day.astype(date),
                content_ids=items,
                score=score[members],
                propensity=propensity[members],
                value=examine_top * attract,
                logged=logged,
                clicked=clicked[rows],
            )
        )
    return TopSlotLog(tuple(days))


@dataclass(frozen=True)
class _Items:
    """What the attract formula needs per item, with the formula's parameters."""

    category: np.ndarray
    quality_factor: np.ndarray
    published_ms: np.ndarray
    model: dict[str, Any]
    drift: tuple[int, int, float] | None = None  # category index, from (epoch ms), multiplier

    @classmethod
    def read(cls, folder: Path, doc: dict[str, Any]) -> _Items:
        content = pq.read_table(folder / "content.parquet")
        order = np.argsort(_index(content["content_id"]))  # row i = item index i
        categories = list(doc["catalog"]["categories"])
        attract = doc["click_model"]["attract"]
        names = content["category"].to_numpy(zero_copy_only=False)[order]
        quality = content["quality"].to_numpy()[order]
        drift = attract.get("drift_multiplier", {})
        return cls(
            category=np.array([categories.index(c) for c in names]),
            quality_factor=(quality / attract["quality_mean"]) ** attract["quality_exponent"],
            published_ms=_epoch_ms(content["published_at"])[order],
            model=attract,
            drift=(
                categories.index(drift["category"]),
                _epoch_ms(pa.chunked_array([pa.array([drift["from_at"]]).cast(pa.timestamp("ms", tz="UTC"))]))[0],
                float(drift["attract_multiplier"]),
            )
            if drift.get("planted")
            else None,
        )

    def attract(self, taste: np.ndarray, items: np.ndarray, ms: np.ndarray, mult: np.ndarray) -> np.ndarray:
        """(requests, items) attract for requests with taste factors ``taste`` (requests, categories): truth.json's
        formula, the planted drift (``drift_multiplier``) included."""
        fresh = self._freshness(items[None, :], ms[:, None])
        base = self.model["base_attract"] * taste[:, self.category[items]] * self.quality_factor[items][None, :] * fresh
        return np.clip(base * self._drift(items[None, :], ms[:, None]) * mult[:, None], 0, 1)

    def unit_attract(self, items: np.ndarray, ms: np.ndarray, *, quality: bool = True) -> np.ndarray:
        """base_attract * quality_factor * freshness * drift per (item, epoch ms) pair: attract for a taste factor
        of 1, before experiments and the clip to [0, 1]. ``quality=False`` leaves the quality factor out (1)."""
        base = self.model["base_attract"] * (self.quality_factor[items] if quality else 1.0)
        return np.asarray(base * self._freshness(items, ms) * self._drift(items, ms))

    def _freshness(self, items: np.ndarray, ms: np.ndarray) -> np.ndarray:
        a = self.model
        age_hours = np.maximum(ms - self.published_ms[items], 0) / 3_600_000
        return np.asarray(
            a["freshness_floor"] + (1 - a["freshness_floor"]) * 0.5 ** (age_hours / a["freshness_half_life_hours"])
        )

    def _drift(self, items: np.ndarray, ms: np.ndarray) -> np.ndarray | float:
        if self.drift is None:
            return 1.0
        category, from_ms, multiplier = self.drift
        return np.where((self.category[items] == category) & (ms >= from_ms), multiplier, 1.0)


def _taste_factors(folder: Path, doc: dict[str, Any]) -> np.ndarray:
    """(users, categories) taste factor (K * taste) ** taste_exponent, row i = user index i."""
    users = pq.read_table(folder / "users.parquet")
    categories = doc["catalog"]["categories"]
    attract = doc["click_model"]["attract"]
    taste = np.column_stack([users[f"taste_{c}"].to_numpy() for c in categories])
    order = np.argsort(_index(users["user_id"]))
    return np.asarray((attract["K"] * taste[order]) ** attract["taste_exponent"])


def _check(pi: np.ndarray) -> np.ndarray:
    if np.any(pi < 0) or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-9):
        raise ValueError("a target policy must give each request probabilities over the pool that sum to 1")
    return pi


def _truth_folder(path: Path) -> Path:
    path = Path(path)
    folder = path if (path / "truth.json").exists() else path / "_truth"
    if not (folder / "truth.json").exists():
        raise FileNotFoundError(
            f"no truth.json in {path} or {path / '_truth'}: pass the output folder of `tailor generate`"
        )
    return folder


def _experiment(doc: dict[str, Any], experiment_id: str) -> dict[str, Any]:
    for spec in doc["experiments"]:
        if spec["experiment_id"] == experiment_id:
            return dict(spec)
    known = [e["experiment_id"] for e in doc["experiments"]]
    raise ValueError(f"no experiment {experiment_id!r} in this simulation; it has {known}")


def _impressions(folder: Path, columns: list[str]) -> pa.Table:
    path = folder / "impressions.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the simulation ran without impression truth (write_impression_truth=False)"
        )
    return pq.read_table(path, columns=columns)


def _epoch_ms(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy())


def moments_ms(moments: Sequence[Any] | pd.Series) -> np.ndarray:
    """Milliseconds since the epoch (int64) of moments given as anything pandas reads as a time (naive = UTC);
    a sub-millisecond part is floored (the simulator's clock counts whole milliseconds).

    Raises:
        ValueError: a moment is missing (None, NaT).
    """
    stamps = pd.to_datetime(pd.Series(list(moments)), utc=True)
    if stamps.isna().any():
        raise ValueError("every moment must be a time: got a missing one (NaT)")
    return np.asarray(stamps.dt.as_unit("ms").astype("int64").to_numpy(), dtype=np.int64)


def _index(ids: pa.ChunkedArray) -> np.ndarray:
    """Index of simulator ids like u0000042 / c0000042 (numbered from 1)."""
    digits = pc.utf8_slice_codeunits(ids, 1)
    return np.asarray(pc.cast(digits, pa.int64()).to_numpy()) - 1

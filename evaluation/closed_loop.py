"""Reading the closed loop's truth: what the served pages were truly worth, and the true holdout lift.

A continued simulation that served the pipeline's pages (``tailor generate --continue --policy cached``) writes,
per request, the true expected clicks of the page served and of the holdout, oracle, popularity, random and
logging pages on the same request (``_truth/continued/requests-*.parquet``), and truth.json's ``closed_loop``
summarises them, with the true CTR of each arm of ``personalization_holdout``. Benchmarks and tests compare the
pipeline's measurements (``tailor experiments``) with these. Reads `_truth/` files only.

The explore slots of the served pages are logged bandit decisions (the item, its propensity and the pool it was
drawn from); `explore_decisions` values every pool item with the truth and `explore_estimates` puts the IPS and
SNIPS estimate of any target policy over the pools next to that policy's true value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evaluation.ranking_truth import TruthClickModel
from evaluation.simulator_truth import _truth_folder, read_truth
from ml.experiments.offpolicy import ips, snips

#: Page kinds valued on every request of a continued day, as in the requests table's columns.
PAGE_KINDS: tuple[str, ...] = ("served", "holdout", "oracle", "popularity", "random", "logging")


@dataclass(frozen=True)
class ClosedLoopTruth:
    """The closed-loop truth of a simulation: per-request values and truth.json's summary.

    Attributes:
        requests: One row per request of the continued days (columns as truth.json's
            ``tables.continued_requests.columns``).
        summary: truth.json's ``closed_loop``.
        slate_size: Slots of the counterfactual pages.
    """

    requests: pd.DataFrame
    summary: dict[str, Any]
    slate_size: int

    @classmethod
    def from_folder(cls, path: Path) -> ClosedLoopTruth:
        """Read a simulation's truth (its output folder or its ``_truth`` folder).

        Raises:
            FileNotFoundError: no truth, or the simulation was never continued.
        """
        folder = _truth_folder(path)
        doc = read_truth(folder)
        paths = sorted((folder / "continued").glob("requests-*.parquet"))
        if not paths or "closed_loop" not in doc:
            raise FileNotFoundError(
                f"{folder} has no closed-loop truth: continue the simulation first (tailor generate --continue)"
            )
        table = pa.concat_tables([pq.read_table(p) for p in paths])
        return cls(table.to_pandas(), dict(doc["closed_loop"]), int(doc["session_model"]["slate_size"]))

    def true_ctr(self, kind: str, rows: pd.Series | None = None) -> float:
        """True CTR (expected clicks per slot) of one page kind over some requests (all by default).

        Slots: the impressions shown for ``served``, ``holdout_slots`` for ``holdout``, the slate size for the
        others. Raises ValueError for an unknown kind or no requests.
        """
        if kind not in PAGE_KINDS:
            raise ValueError(f"unknown page kind {kind!r}: one of {list(PAGE_KINDS)}")
        frame = self.requests if rows is None else self.requests.loc[rows]
        if frame.empty:
            raise ValueError("no requests to value")
        slots = {"served": frame["impressions"].sum(), "holdout": frame["holdout_slots"].sum()}
        return float(frame[f"expected_clicks_{kind}"].sum() / slots.get(kind, len(frame) * self.slate_size))

    def holdout_arms(self) -> dict[str, dict[str, Any]]:
        """truth.json's per-arm figures of ``personalization_holdout`` (true and observed CTR, exposures)."""
        return {arm["variant"]: dict(arm) for arm in self.summary["personalization_holdout"]["arms"]}

    @property
    def true_lift(self) -> float | None:
        """True CTR of the personalized arm minus the holdout's (what the experiment's ctr difference estimates)."""
        value = self.summary["personalization_holdout"]["true_absolute_lift"]
        return None if value is None else float(value)


@dataclass(frozen=True)
class ExploreDecisions:
    """The explore slots a continued run served from a batch file, one row per decision (a page's explore slot),
    each valued by the truth.

    A page's explore item is drawn once, when the batch runs, and shown on every request of the served days; the
    page is therefore the unit of randomization, and its reward is the click rate of its explore impressions.

    Attributes:
        frame: One row per decision served at least once: ``user_id``, ``surface``, ``rank``, ``content_id`` (the
            logged item), ``propensity``, ``pool`` (the logged action set), ``logged`` (the logged item's index in
            the pool), ``impressions``, ``clicks`` and ``reward`` (clicks / impressions).
        values: Per decision, (pool size,) true expected CTR of each pool item in that slot: examine(rank) *
            attract(user, item, moment) (experiment multipliers in), averaged over the decision's impressions.
        pages_with_explore: Explore slots in the batch file (served or not).
        max_p_click_error: Largest |value of the logged item - the simulator's own p_click| over the impressions:
            0 up to rounding when the truth is read right.
    """

    frame: pd.DataFrame
    values: list[np.ndarray]
    pages_with_explore: int
    max_p_click_error: float


def explore_decisions(pages: pd.DataFrame, impressions: pd.DataFrame, model: TruthClickModel) -> ExploreDecisions:
    """Join the batch file's explore slots with the impressions that served them, and value every pool item.

    Args:
        pages: Batch recommendations (``ml.recommend.batch.COLUMNS``): explore rows need ``explore_pool``.
        impressions: A continued run's impression truth served from ``pages`` (``_truth/continued/impressions-*``:
            user_id, surface, position, content_id, clicked, examine, occurred_at, experiment_multiplier, p_click).
        model: The simulation's click model (`evaluation.ranking_truth.TruthClickModel`).

    Raises:
        ValueError: an explore row without its pool, or whose pool does not hold its item, disagrees with its
            propensity (1 / pool size) or names items the simulation does not know: the log cannot support
            off-policy estimates.
    """
    explore = pages.loc[pages["slot_kind"] == "explore"]
    if "explore_pool" not in explore.columns:
        raise ValueError("the pages have no explore_pool column: write them with ml.recommend.batch (the action set)")
    users = [str(u) for u in explore["user_id"]]
    surfaces = [str(s) for s in explore["surface"]]
    ranks = [int(r) for r in explore["rank"]]
    items = [str(c) for c in explore["content_id"]]
    propensities = [float(p) for p in explore["propensity"]]
    pools: list[list[str]] = []
    for user, surface, item, propensity, raw in zip(
        users, surfaces, items, propensities, explore["explore_pool"].tolist(), strict=True
    ):
        pool = [] if raw is None else [str(c) for c in raw]
        if item not in pool or abs(len(pool) * propensity - 1) > 1e-9:
            raise ValueError(
                f"explore slot of {user} on {surface}: its pool {pool!r} must hold {item!r} and have 1 / propensity "
                f"= {1 / propensity:g} items (write the pages with ml.recommend.batch, which logs the pool)"
            )
        unknown = [c for c, i in zip(pool, _indices(pool, "c"), strict=True) if i >= len(model.items.category)]
        if unknown:
            raise ValueError(f"explore slot of {user} on {surface}: items {unknown} are not in the simulation")
        pools.append(pool)
    slots = pd.DataFrame({"user_id": users, "surface": surfaces, "position": ranks, "content_id": items})
    slots["decision"] = np.arange(len(slots))
    served = impressions.merge(slots, on=["user_id", "surface", "position", "content_id"])
    rows: list[dict[str, Any]] = []
    values: list[np.ndarray] = []
    error = 0.0
    for n, shown in served.groupby("decision", sort=True):
        d = int(str(n))
        pool = pools[d]
        logged = pool.index(items[d])
        ms = pd.to_datetime(shown["occurred_at"], utc=True).dt.as_unit("ms").astype("int64").to_numpy()
        taste = np.repeat(model.taste[_indices([users[d]], "u")], len(shown), axis=0)
        grid = shown["examine"].to_numpy(dtype=np.float64)[:, None] * model.items.attract(
            taste, _indices(pool, "c"), ms, shown["experiment_multiplier"].to_numpy(dtype=np.float64)
        )
        error = max(error, float(np.abs(grid[:, logged] - shown["p_click"].to_numpy(dtype=np.float64)).max()))
        values.append(grid.mean(axis=0))
        clicks = int(shown["clicked"].sum())
        rows.append(
            {
                "user_id": users[d],
                "surface": surfaces[d],
                "rank": ranks[d],
                "content_id": items[d],
                "propensity": propensities[d],
                "pool": pool,
                "logged": logged,
                "impressions": len(shown),
                "clicks": clicks,
                "reward": clicks / len(shown),
            }
        )
    columns = ["user_id", "surface", "rank", "content_id", "propensity", "pool", "logged", "impressions", "clicks"]
    frame = pd.DataFrame(rows, columns=[*columns, "reward"])
    return ExploreDecisions(frame, values, len(explore), error)


def explore_estimates(
    rewards: Sequence[float] | np.ndarray,
    propensity: Sequence[float] | np.ndarray,
    logged: Sequence[int] | np.ndarray,
    target: Sequence[np.ndarray],
    values: Sequence[np.ndarray],
    alpha: float = 0.05,
) -> dict[str, Any]:
    """IPS and SNIPS (`ml.experiments.offpolicy`) of one target policy over logged decisions, next to its truth.

    Args:
        rewards: (n,) reward of each decision (e.g. a page's explore click rate).
        propensity: (n,) the logging policy's probability of the logged action.
        logged: (n,) index of the logged action in its decision's action set.
        target: Per decision, the target policy's probabilities over the action set (sum 1).
        values: Per decision, the true expected reward of every action (same length as its ``target``).

    Returns:
        ``truth`` (mean over decisions of target . values: the target's true value on the same decisions) and, for
        ``ips`` and ``snips``: value, se, ci, n, effective_sample_size, ``error`` (value - truth) and ``covers``.

    Raises:
        ValueError: lengths disagree, a target is not a distribution, or what `ml.experiments.offpolicy` refuses.
    """
    if not len(rewards) == len(propensity) == len(logged) == len(target) == len(values):
        raise ValueError("need one reward, propensity, logged index, target and value vector per decision")
    pi = []
    for n, (p, v, a) in enumerate(zip(target, values, logged, strict=True)):
        if len(p) != len(v) or not 0 <= a < len(p) or np.any(np.asarray(p) < 0) or abs(float(np.sum(p)) - 1) > 1e-9:
            raise ValueError(f"decision {n}: the target must be a distribution over the {len(v)} actions")
        pi.append(float(p[a]))
    truth = float(np.mean([float(np.dot(p, v)) for p, v in zip(target, values, strict=True)]))
    out: dict[str, Any] = {"truth": truth, "decisions": len(pi)}
    for estimate in (ips(rewards, propensity, pi, alpha), snips(rewards, propensity, pi, alpha)):
        out[estimate.estimator] = {
            **estimate.as_dict(),
            "ci": list(estimate.ci),
            "error": estimate.value - truth,
            "covers": estimate.covers(truth),
        }
        del out[estimate.estimator]["estimator"]
    return out


def _indices(ids: Sequence[str], prefix: str) -> np.ndarray:
    """Index of simulator ids like c0000042 (numbered from 1). Raises ValueError for any other id."""
    out = []
    for value in ids:
        text = str(value)
        if not (text.startswith(prefix) and text[1:].isdigit()):
            raise ValueError(f"{text!r} is not a simulator id ({prefix} followed by digits)")
        out.append(int(text[1:]) - 1)
    return np.array(out, dtype=np.int64)

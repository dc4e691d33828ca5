"""Batch recommendations: every active user's page on every surface, after each training run.

The same steps as `recommend`'s model path, vectorised over users: one candidate call for everyone, one online
read of all users' features, one scoring call, then the business rules page by page. The pages are written as
Parquet (one row per slot, `BATCH_FILE`, and one row per user with arrays, `BY_USER_FILE`, the source of Feast's
`cached_recommendations` view) and into Feast's online store, so `recommend` can fall back to them. The explore
slot's pool (the action set) is a column of `BATCH_FILE` only: it is logged for off-policy evaluation, not served,
so the Feast view does not carry it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.recommend.rules import Ranked
from ml.recommend.serving import (
    BATCH_FILE,
    HOLDOUT_ARMS,
    HOLDOUT_EXPERIMENT,
    HOLDOUT_WEIGHTS,
    SESSION_BOOST,
    SURFACES,
    Recommender,
)
from tailor.assignment import assign_variants

BY_USER_FILE = "batch_recommendations_by_user.parquet"
CACHED_VIEW = "cached_recommendations"
COLUMNS = (
    "user_id",
    "surface",
    "rank",
    "content_id",
    "score",
    "slot_kind",
    "reason",
    "propensity",
    "policy",
    "variant",
    "model_version",
    "generated_at",
    "explore_pool",
)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run wrote."""

    users: int
    rows: int
    holdout_users: int
    seconds_pages: float
    seconds_online: float
    path: Path


def batch_pages(
    recommender: Recommender, user_ids: Sequence[str], k: int, now: datetime, surfaces: Sequence[str] = SURFACES
) -> pd.DataFrame:
    """The pages of ``user_ids`` on ``surfaces`` as rows with `COLUMNS` (holdout users: the popular page).

    ``explore_pool`` is the explore slot's action set (the items its uniform draw chose from, freshest first;
    ``propensity`` = 1 / its length), as the Open Bandit Dataset logs the candidates with each decision; None on
    other slots.
    """
    users = list(dict.fromkeys(str(u) for u in user_ids))
    arms = np.array(HOLDOUT_ARMS)[assign_variants(HOLDOUT_EXPERIMENT, users, list(HOLDOUT_ARMS), list(HOLDOUT_WEIGHTS))]
    variant = dict(zip(users, arms, strict=True))
    personalized = [u for u in users if variant[u] == "personalized"]
    ranked: dict[tuple[str, str], Ranked] = {}
    features: dict[str, dict[str, object]] = {}
    if recommender.model is not None and recommender.candidates is not None and personalized:
        features = _user_features(recommender, personalized)
        proposed = recommender.candidates.candidates(personalized)
        for surface in surfaces:
            per_user = [
                recommender.feature_rows(features[str(u)], group, surface, now)
                for u, group in proposed.groupby("user_id", sort=False)
            ]
            rows: pd.DataFrame = pd.concat(per_user, ignore_index=True)
            scores = recommender.model.relevance(rows)
            categories = rows["category"].to_numpy()
            for user, index in rows.groupby("user_id", sort=False).indices.items():
                clicked = features[str(user)].get("clicked_categories_30m")
                recent = [str(c) for c in clicked] if isinstance(clicked, list) else []
                boost = np.where(np.isin(categories[index], recent), SESSION_BOOST, 1.0) if recent else 1.0
                s = scores[index] * boost
                best_first = np.argsort(-s, kind="stable")
                ranked[(str(user), surface)] = Ranked(
                    rows["content_id"].to_numpy()[index[best_first]].tolist(), s[best_first].tolist()
                )
    out = []
    for user in users:
        holdout = variant[user] == "holdout"
        for surface in surfaces:
            page_ranked = ranked.get((user, surface))
            if holdout or page_ranked is None:
                items = recommender.assemble(user, k, surface, now, Ranked([], []), True, set(), {})
                version = ""
            else:
                items = recommender.assemble(user, k, surface, now, page_ranked, False, set(), features.get(user, {}))
                version = recommender.model_version or ""
            for item in items:
                out.append(
                    (
                        user,
                        surface,
                        item.rank,
                        item.content_id,
                        item.score,
                        item.slot_kind,
                        item.reason,
                        item.propensity,
                        "holdout" if holdout else "personalized",
                        variant[user],
                        version,
                        now,
                        None if item.explore_pool is None else list(item.explore_pool),
                    )
                )
    frame = pd.DataFrame(out, columns=list(COLUMNS))
    frame["rank"] = frame["rank"].astype("int32")
    frame["generated_at"] = pd.to_datetime(frame["generated_at"], utc=True)
    return frame


def by_user(pages: pd.DataFrame, surfaces: Sequence[str] = SURFACES) -> pd.DataFrame:
    """One row per user with each surface's page as arrays: the source of the `cached_recommendations` view."""
    parts = []
    for surface in surfaces:
        of_surface = pages.loc[pages["surface"] == surface].sort_values(["user_id", "rank"])
        grouped = of_surface.groupby("user_id", sort=True)
        parts.append(
            pd.DataFrame(
                {
                    f"{surface}_content_ids": grouped["content_id"].agg(list),
                    f"{surface}_scores": grouped["score"].agg(list),
                    f"{surface}_slot_kinds": grouped["slot_kind"].agg(list),
                    f"{surface}_reasons": grouped["reason"].agg(list),
                    f"{surface}_propensities": grouped["propensity"].agg(list),
                }
            )
        )
    wide = pd.concat(parts, axis=1)
    meta = pages.groupby("user_id")[["model_version", "generated_at"]].max()
    return wide.join(meta).reset_index()


def write_batch(recommender: Recommender, user_ids: Sequence[str], k: int, now: datetime) -> BatchSummary:
    """Compute, publish as Parquet (atomically) and load into the online store. Returns what was written."""
    started = time.perf_counter()
    pages = batch_pages(recommender, user_ids, k, now)
    marts = recommender.settings.marts_dir
    path = marts / BATCH_FILE
    _write_parquet(pages, path)
    wide = by_user(pages)
    _write_parquet(wide, marts / BY_USER_FILE)
    seconds_pages = time.perf_counter() - started
    started = time.perf_counter()
    recommender.store.write_to_online_store(CACHED_VIEW, wide)
    return BatchSummary(
        users=int(pages["user_id"].nunique()),
        rows=len(pages),
        holdout_users=int(pages.loc[pages["policy"] == "holdout", "user_id"].nunique()),
        seconds_pages=seconds_pages,
        seconds_online=time.perf_counter() - started,
        path=path,
    )


def _user_features(recommender: Recommender, users: Sequence[str]) -> dict[str, dict[str, object]]:
    response = recommender.store.get_online_features(
        features=recommender.user_refs, entity_rows=[{"user_id": u} for u in users]
    )
    values = response.to_dict()
    names = [ref.split(":")[-1] for ref in recommender.user_refs]
    return {u: {name: values[name][n] for name in names} for n, u in enumerate(users)}


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "explore_pool" in table.column_names:
        # A list of strings even when no page has an explore slot (all None would infer a null column).
        table = table.set_column(
            table.column_names.index("explore_pool"),
            "explore_pool",
            table["explore_pool"].cast(pa.list_(pa.string())),
        )
    pq.write_table(table, partial)
    partial.replace(path)

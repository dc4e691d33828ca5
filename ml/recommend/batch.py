"""Batch recommendations: every active user's page on every surface, after each training run.

The same steps as `recommend`'s model path, a block of users at a time (`BLOCK_USERS`): one online read of the
block's user features, each user's candidates as arrays (`OnlineCandidates`), one input matrix for the block scored
by the compiled trees once per surface (`Recommender.rank_users`), then the business rules page by page. A
champion the compiled path cannot read is scored through frames (`feature_rows`, `RankerModel.relevance`), which
give the same pages (a test compares them).

The pages are written as Parquet (one row per slot, `BATCH_FILE`, and one row per user with arrays,
`BY_USER_FILE`, the source of Feast's `cached_recommendations` view) and into Feast's online store, so `recommend`
can fall back to them. The explore slot's pool (the action set) is a column of `BATCH_FILE` only: it is logged for
off-policy evaluation, not served, so the Feast view does not carry it.
"""

from __future__ import annotations

import os
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
    user_features_at,
)
from tailor.assignment import assign_variants

BY_USER_FILE = "batch_recommendations_by_user.parquet"
CACHED_VIEW = "cached_recommendations"
#: Users ranked at once by the compiled path: one input matrix of ~250 rows per user and surface.
BLOCK_USERS = 512
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
    recommender: Recommender,
    user_ids: Sequence[str],
    k: int,
    now: datetime,
    surfaces: Sequence[str] = SURFACES,
    compiled: bool = True,
) -> pd.DataFrame:
    """The pages of ``user_ids`` on ``surfaces`` as rows with `COLUMNS` (holdout users: the popular page).

    ``explore_pool`` is the explore slot's action set (the items its uniform draw chose from, freshest first;
    ``propensity`` = 1 / its length), as the Open Bandit Dataset logs the candidates with each decision; None on
    other slots.

    Users are ranked `BLOCK_USERS` at a time through the compiled trees (`Recommender.rank_users`: one input
    matrix per block, the item half encoded when the recommender opened), so memory holds one block's rows and
    rankings. ``compiled=False``, or a champion the compiled path cannot read, ranks through frames instead
    (`CandidateSet.candidates`, `Recommender.feature_rows`, `RankerModel.relevance`): the same pages, the
    reference the tests compare with.
    """
    users = list(dict.fromkeys(str(u) for u in user_ids))
    arms = np.array(HOLDOUT_ARMS)[assign_variants(HOLDOUT_EXPERIMENT, users, list(HOLDOUT_ARMS), list(HOLDOUT_WEIGHTS))]
    variant = dict(zip(users, arms, strict=True))
    model_path = recommender.model is not None and recommender.candidates is not None
    if not (compiled and model_path and recommender.compiled):
        personalized = [u for u in users if variant[u] == "personalized"]
        features: dict[str, dict[str, object]] = {}
        ranked: dict[tuple[str, str], Ranked] = {}
        if model_path and personalized:
            features = _user_features(recommender, personalized, now)
            ranked = _frame_rankings(recommender, personalized, features, surfaces, now)
        return _frame(_page_rows(recommender, users, variant, ranked, features, k, surfaces, now))
    out: list[tuple[object, ...]] = []
    threads = os.cpu_count() or 1
    for start in range(0, len(users), BLOCK_USERS):
        block = users[start : start + BLOCK_USERS]
        personalized = [u for u in block if variant[u] == "personalized"]
        features = _user_features(recommender, personalized, now) if personalized else {}
        ranked = recommender.rank_users(personalized, features, surfaces, now, threads=threads)
        out.extend(_page_rows(recommender, block, variant, ranked, features, k, surfaces, now))
    return _frame(out)


def _frame_rankings(
    recommender: Recommender,
    personalized: Sequence[str],
    features: dict[str, dict[str, object]],
    surfaces: Sequence[str],
    now: datetime,
) -> dict[tuple[str, str], Ranked]:
    """Every user's ranking per surface through frames (`feature_rows`, `RankerModel.relevance`)."""
    assert recommender.model is not None and recommender.candidates is not None
    ranked: dict[tuple[str, str], Ranked] = {}
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
    return ranked


def _page_rows(
    recommender: Recommender,
    users: Sequence[str],
    variant: dict[str, str],
    ranked: dict[tuple[str, str], Ranked],
    features: dict[str, dict[str, object]],
    k: int,
    surfaces: Sequence[str],
    now: datetime,
) -> list[tuple[object, ...]]:
    """The business rules over each user's rankings (`Recommender.assemble`): one tuple per slot, `COLUMNS`."""
    out: list[tuple[object, ...]] = []
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
    return out


def _frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
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


def _user_features(recommender: Recommender, users: Sequence[str], now: datetime) -> dict[str, dict[str, object]]:
    return user_features_at(recommender.store, recommender.user_refs, users, now, recommender.recent_window)


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

"""The union of candidate generators that feeds the ranker: each proposes items, the ranker orders them all.

`fit_candidate_set` fits every generator on what was known before a moment (`History.before`): popularity over
the trailing days, collaborative filtering on who consumed what, and content affinity. `CandidateSet.candidates`
returns one row per (user, item) proposed by any generator, with every generator's score for it (NaN where a
generator has no opinion) and which generators proposed it; `CandidateSet.scores` gives the same scores for any
(user, item) pairs, e.g. the logged impressions the ranker trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.candidates.base import check_k
from ml.candidates.content import ContentAffinity
from ml.candidates.ease import EASE
from ml.candidates.interactions import Interactions
from ml.candidates.popularity import Popularity
from ml.candidates.scoring import MatrixScoringGenerator
from ml.data_days import window_start
from ml.history import History

#: The ranker's features from the candidate stage, in order.
SCORE_COLUMNS = ("score_popularity", "score_cf", "score_content")


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each generator proposes, and the generators' settings."""

    per_generator: int = 100
    popularity_window_days: int = 7
    popularity_prior_impressions: float = 100.0
    cf_l2: float = 200.0
    content_half_life_hours: float = 72.0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class CandidateSet:
    """Generators fitted as of one moment."""

    as_of: pd.Timestamp
    popularity: Popularity
    cf: MatrixScoringGenerator | None
    content: ContentAffinity
    seen: Interactions | None
    config: CandidateConfig = field(default_factory=CandidateConfig)

    def candidates(self, user_ids: Sequence[str], k: int | None = None) -> pd.DataFrame:
        """Every item any generator proposes to each user (at most ``k`` per generator), never one they consumed.

        Returns:
            Frame with user_id, content_id, the `SCORE_COLUMNS` (NaN where a generator has no opinion) and
            ``sources`` (the generators that proposed the pair, comma-separated, in a fixed order).
        """
        k = check_k(k if k is not None else self.config.per_generator)
        parts = [self.popularity.candidates(user_ids, k), self.content.candidates(user_ids, k)]
        if self.cf is not None:
            parts.append(self.cf.candidates(user_ids, k))
        proposed = pd.concat(parts, ignore_index=True)
        # One bit per generator, summed per pair: a numeric group-by instead of joining strings per group.
        bits = proposed["generator"].map(_source_name).map(_SOURCE_BIT)
        pairs = proposed.assign(bits=bits).groupby(["user_id", "content_id"], sort=False)["bits"].sum().reset_index()
        pairs["sources"] = pairs.pop("bits").map(_SOURCES_OF_BITS)
        scores = self.scores(pairs["user_id"].tolist(), pairs["content_id"].tolist())
        return pd.concat([pairs[["user_id", "content_id"]], scores, pairs[["sources"]]], axis=1)

    def scores(self, user_ids: Sequence[str], content_ids: Sequence[str]) -> pd.DataFrame:
        """Each generator's score for each (user, item) pair, as the `SCORE_COLUMNS` (NaN = no opinion)."""
        pop = self.popularity.scores.reindex([str(c) for c in content_ids]).to_numpy(dtype=np.float64)
        cf = self.cf.score_pairs(user_ids, content_ids) if self.cf is not None else np.full(len(content_ids), np.nan)
        content = self.content.score_pairs(user_ids, content_ids)
        return pd.DataFrame({"score_popularity": pop, "score_cf": cf, "score_content": content})


_SOURCE_ORDER = ["popularity", "cf", "content"]
_SOURCE_BIT = {name: 1 << n for n, name in enumerate(_SOURCE_ORDER)}
_SOURCES_OF_BITS = {
    bits: ",".join(name for name in _SOURCE_ORDER if bits & _SOURCE_BIT[name])
    for bits in range(1, 1 << len(_SOURCE_ORDER))
}


def _source_name(generator: str) -> str:
    if generator.startswith("popularity"):
        return "popularity"
    return "content" if generator == "content" else "cf"


def fit_candidate_set(
    history: History, as_of: datetime | pd.Timestamp, config: CandidateConfig | None = None
) -> CandidateSet:
    """Fit the generators on what ``history`` knew just before ``as_of``.

    Collaborative filtering (EASE, the pick of docs/decisions.md) learns from every item consumed (clicked or
    viewed); content affinity from clicks; popularity from the trailing window of impressions. With no
    consumption at all yet, there is no CF generator and the others still serve.
    """
    config = config or CandidateConfig()
    moment = pd.Timestamp(as_of)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    # Of the impressions, only popularity's trailing window is read: cut them to it before `before` copies what
    # it keeps (the ranker fits a set per weekly block, and a copy of every impression each time cost more than
    # the fits at 1M impressions).
    impressions = history.impressions
    span = timedelta(days=config.popularity_window_days)
    start = window_start(moment.to_pydatetime(), span, history.impression_days)  # days with data (ml.data_days)
    recent = impressions.loc[impressions["occurred_at"] >= start]
    known = History(recent, history.interactions, history.content).before(moment)
    catalog = known.content["content_id"].astype(str)
    consumed = known.interactions[["user_id", "content_id"]]
    consumed = consumed.loc[consumed["content_id"].isin(set(catalog))]
    seen = Interactions.from_frame(consumed, items=catalog) if len(consumed) else None
    popularity = Popularity(config.popularity_window_days, config.popularity_prior_impressions).fit_impressions(
        known.impressions, now=moment.to_pydatetime(), seen=seen
    )
    content = ContentAffinity(half_life_hours=config.content_half_life_hours).fit_content(
        known.clicks(), known.content, popularity.scores, moment.to_pydatetime(), seen=seen
    )
    cf = EASE(l2=config.cf_l2).fit(seen) if seen is not None else None
    return CandidateSet(moment, popularity, cf, content, seen, config)

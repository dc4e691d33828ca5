"""Business rules applied after ranking: what a page may hold, and the exploration slot.

A page of ``k`` slots is assembled from three ordered lists (the model's ranking, the popular list, fresh items to
explore), under these rules, each configurable (`PageRules`):

- never an item the user already consumed (clicked or viewed), on any slot;
- never an item not yet published at the page's time (a page previewed at a moment inside the history, e.g.
  `tailor recommend --at`, must not show what was published later; lists fitted on the whole history hold such
  items);
- at most ``max_per_category`` items of one category on the page;
- at most ``max_personalized`` model slots (over-personalization cap): the rest are popular items, or editorial
  picks (the newest items) when the popular list runs out;
- ``explore_slots`` exploration slot(s) at ``explore_position``: one item drawn uniformly at random from the
  ``explore_pool`` freshest eligible items, its propensity (1 / pool size) and the pool itself (the action set,
  ``RecommendedItem.explore_pool``) logged with it, so the logs stay usable for off-policy estimates of any other
  choice from the pool (epsilon-greedy style uniform exploration over a small fresh pool);
- holdout users get the non-personalized page: popular (then editorial), nothing from the model, no exploration.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace

import numpy as np

from ml.recommend.result import RecommendedItem

Reason = Callable[[str, str | None], str]


@dataclass(frozen=True)
class PageRules:
    """The rules' settings (environment: ``TAILOR_RECOMMEND_<NAME>``, e.g. TAILOR_RECOMMEND_MAX_PER_CATEGORY=2)."""

    max_per_category: int = 3
    max_personalized: int = 8
    explore_slots: int = 1
    explore_position: int = 3
    explore_pool: int = 20

    def __post_init__(self) -> None:
        # Each broken bound named alone (a trial read three constraints for one value out of range).
        lowest = {"max_per_category": 1, "max_personalized": 0, "explore_slots": 0, "explore_position": 1,
                  "explore_pool": 1}  # fmt: skip
        broken = [f"{name} must be at least {low}, got {getattr(self, name)}" for name, low in lowest.items()
                  if getattr(self, name) < low]  # fmt: skip
        if broken:
            raise ValueError("; ".join(broken))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PageRules:
        """Defaults overridden by TAILOR_RECOMMEND_* variables. Raises ValueError for a non-integer value."""
        env = os.environ if env is None else env
        changes = {}
        for name in ("max_per_category", "max_personalized", "explore_slots", "explore_position", "explore_pool"):
            raw = env.get(f"TAILOR_RECOMMEND_{name.upper()}")
            if raw is not None and raw.strip():  # empty: the default
                try:
                    changes[name] = int(raw)
                except ValueError:
                    raise ValueError(f"TAILOR_RECOMMEND_{name.upper()}={raw!r} is not an integer") from None
        try:
            return cls(**changes)
        except ValueError as error:
            names = ", ".join(f"TAILOR_RECOMMEND_{n.upper()}={v}" for n, v in changes.items())
            raise ValueError(f"{names}: {error}") from None


@dataclass(frozen=True)
class Ranked:
    """An ordered list of (item, score), best first."""

    content_ids: Sequence[str]
    scores: Sequence[float]


def assemble_page(
    k: int,
    personalized: Ranked,
    popular: Ranked,
    fresh: Ranked,
    editorial: Ranked,
    consumed: set[str],
    category_of: Mapping[str, str],
    rules: PageRules,
    rng: np.random.Generator,
    reasons: Mapping[str, Reason],
    holdout: bool = False,
    unpublished: Set[str] = frozenset(),
) -> list[RecommendedItem]:
    """The page of at most ``k`` slots (fewer only when every list is exhausted).

    Args:
        personalized: the model's ranking (ignored for holdout users).
        popular: the non-personalized ranking (popular on the surface or in the user's segment).
        fresh: the newest items, newest first: the exploration pool is its first ``rules.explore_pool`` eligible.
        editorial: the fill when nothing else is left (e.g. newest items by editors' choice).
        consumed: items the user clicked or viewed: never shown.
        category_of: item -> category, for the per-category cap (unknown items count as their own category).
        reasons: slot kind -> function (content_id, category) -> the reason shown to the user.
        holdout: the non-personalized page (popular, then editorial).
        unpublished: items published after the page's time: never shown, from any list.
    """
    page: list[RecommendedItem | None] = [None] * k
    taken: set[str] = set()
    per_category: dict[str, int] = {}

    def allowed(item: str) -> bool:
        category = category_of.get(item, f"?{item}")
        return (
            item not in consumed
            and item not in taken
            and item not in unpublished
            and per_category.get(category, 0) < rules.max_per_category
        )

    def put(
        slot: int, item: str, score: float, kind: str, propensity: float = 1.0, pool: tuple[str, ...] | None = None
    ) -> None:
        category = category_of.get(item)
        taken.add(item)
        key = category if category is not None else f"?{item}"
        per_category[key] = per_category.get(key, 0) + 1
        page[slot] = RecommendedItem(
            content_id=item,
            rank=slot + 1,
            score=float(score),
            slot_kind=kind,  # type: ignore[arg-type]
            reason=reasons[kind](item, category),
            propensity=float(propensity),
            category=category,
            explore_pool=pool,
        )

    explore_at: list[int] = []
    if not holdout and rules.explore_slots and k >= 2:
        first = min(rules.explore_position, k) - 1
        explore_at = list(range(first, min(first + rules.explore_slots, k)))
    free = [s for s in range(k) if s not in explore_at]

    if not holdout:
        budget = min(rules.max_personalized, len(free))
        slots = iter(free[:budget])
        slot = next(slots, None)
        for item, score in zip(personalized.content_ids, personalized.scores, strict=True):
            if slot is None:
                break
            if allowed(item):
                put(slot, item, score, "personalized")
                slot = next(slots, None)

    for slot in explore_at:
        pool = [item for item in fresh.content_ids if allowed(item)][: rules.explore_pool]
        if pool:
            choice = pool[int(rng.integers(len(pool)))]
            score = dict(zip(fresh.content_ids, fresh.scores, strict=True))[choice]
            put(slot, choice, score, "explore", 1 / len(pool), tuple(pool))

    for source, kind in ((popular, "popular"), (editorial, "editorial")):
        empty = [s for s in range(k) if page[s] is None]
        if not empty:
            break
        slots = iter(empty)
        slot = next(slots, None)
        for item, score in zip(source.content_ids, source.scores, strict=True):
            if slot is None:
                break
            if allowed(item):
                put(slot, item, score, kind)
                slot = next(slots, None)
    filled = [item for item in page if item is not None]
    return [replace(item, rank=n) for n, item in enumerate(filled, start=1)]

"""Extend a world past its last day, for continued runs (``continue_simulation``).

The original world is always re-derived from its config and seed (``build_world``), then extended day by day:
each extra day's new items, profile changes and label corrections come from that day's own random stream
(``SeedSequence([seed, EXTEND_STREAM, day])``). So the world at day ``d`` does not depend on how the continued
days were split into runs: continuing twice by N days draws exactly what continuing once by 2N days draws.
Users are not extended: nobody signs up after the original period.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simulator.config import SimulationConfig
from simulator.world import (
    PUBLISH_FROM_MS,
    PUBLISH_SPAN_MS,
    Catalog,
    Versions,
    World,
    label_changes,
    profile_changes,
    shares,
    versions_from,
)

# Stream tag of the extension (after world.py's WORLD_STREAM, BEHAVIOUR_STREAM, FAULT_STREAM).
EXTEND_STREAM = 3


def extend_world(world: World, days: int) -> World:
    """The world covering ``days`` days from ``start_date`` (``days >= world.days``).

    Args:
        world: A world as ``build_world`` made it (or already extended).
        days: Total days to cover, original period included.

    Returns:
        A new world: the catalog gains each extra day's items (ids continue after the last one), the user and
        content versions gain the extra days' rows, and ``final_country``/``final_plan`` move to the new end.

    Raises:
        ValueError: ``days`` is shorter than what the world already covers.
    """
    if days < world.days:
        raise ValueError(f"cannot shrink a world of {world.days} days to {days}")
    c = world.config
    catalog = world.catalog
    country, plan = world.users.final_country.copy(), world.users.final_plan.copy()
    label = current_labels(catalog, world.content_versions)
    user_parts: list[tuple[np.ndarray, ...]] = []
    content_parts: list[tuple[np.ndarray, ...]] = []
    for day in range(world.days, days):
        rng = np.random.default_rng(np.random.SeedSequence([c.seed, EXTEND_STREAM, day]))
        first = len(catalog)
        catalog = _concat(catalog, _fresh_items(c, rng, world.day_start_ms(day)))
        label = np.concatenate([label, catalog.label[first:]])
        new = np.arange(first, len(catalog))
        content_parts.append((np.full(len(new), day), catalog.published_ms[new], new, label[new], catalog.format[new]))
        content_parts.append(label_changes(c, rng, world.start_ms, day, catalog, label))
        user_parts.append(profile_changes(c, rng, world.start_ms, day, world.users.signup_ms, country, plan))
    if not user_parts:
        return world
    return replace(
        world,
        catalog=catalog,
        users=replace(world.users, final_country=country, final_plan=plan),
        user_versions=_append(world.user_versions, versions_from(user_parts)),
        content_versions=_append(world.content_versions, versions_from(content_parts)),
        days=days,
    )


def current_labels(catalog: Catalog, versions: Versions) -> np.ndarray:
    """Each item's category label after the last version row (its publish label when it has none)."""
    label = catalog.label.copy()
    # The last row of each item wins: versions are in (file day, updated_at) order.
    last = len(versions.entity) - 1 - np.unique(versions.entity[::-1], return_index=True)[1]
    label[versions.entity[last]] = versions.a[last]
    return label


def _fresh_items(c: SimulationConfig, rng: np.random.Generator, day_start_ms: int) -> Catalog:
    """One day's new items, drawn like the original period's (same distributions, the day's own stream)."""
    count = int(rng.poisson(c.new_items_per_day))
    k = len(c.categories)
    published = np.sort(day_start_ms + PUBLISH_FROM_MS + rng.random(count) * PUBLISH_SPAN_MS).astype(np.int64)
    category = rng.choice(k, size=count, p=shares(c.category_weights)).astype(np.int16)
    wrong = rng.random(count) < c.mislabel_rate
    label = np.where(wrong, (category + rng.integers(1, k, size=count)) % k, category).astype(np.int16)
    quality = rng.beta(*c.quality_beta, size=count)
    estimate = np.clip(quality + rng.normal(0, c.policy_quality_noise, size=count), 0, 1)
    fmt = rng.choice(len(c.format_weights), size=count, p=shares(c.format_weights)).astype(np.int8)
    return Catalog(published, category, label, fmt, quality, estimate)


def _concat(a: Catalog, b: Catalog) -> Catalog:
    return Catalog(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in Catalog.__dataclass_fields__))


def _append(a: Versions, b: Versions) -> Versions:
    return Versions(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in Versions.__dataclass_fields__))

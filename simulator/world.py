"""The simulated world: users, catalog, latent tastes and qualities, profile histories, experiment arms.

Everything here is drawn once, up front, from the seed; behaviour then plays out day by day against it. The
latent parts (tastes, activity, quality, true categories, arms) are what the ground truth reveals and what a
good recommender should recover from the events alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from simulator.config import COUNTRIES, SimulationConfig
from simulator.formatting import DAY_MS
from tailor.assignment import assign_variants

# Stream tags for np.random.SeedSequence([seed, tag, ...]): one independent stream per purpose.
WORLD_STREAM, BEHAVIOUR_STREAM, FAULT_STREAM = 0, 1, 2
# New items are published during editorial hours (UTC).
PUBLISH_FROM_MS, PUBLISH_SPAN_MS = 6 * 3_600_000, 16 * 3_600_000


@dataclass(frozen=True)
class Users:
    """One row per user; index i is user ``u{i+1:07d}``. Ids are in signup order."""

    signup_ms: np.ndarray
    country: np.ndarray  # index into World.countries, at signup
    plan: np.ndarray  # index into World.plans, at signup
    final_country: np.ndarray
    final_plan: np.ndarray
    activity: np.ndarray  # expected sessions per day before the weekday factor
    taste: np.ndarray  # (users, categories), rows sum to 1
    taste_factor: np.ndarray  # (users, categories): (K * taste) ** taste_exponent

    def __len__(self) -> int:
        return len(self.signup_ms)


@dataclass(frozen=True)
class Catalog:
    """One row per item; index j is item ``c{j+1:07d}``. Ids are in publish order."""

    published_ms: np.ndarray
    category: np.ndarray  # true category (drives behaviour)
    label: np.ndarray  # category written at publish (sometimes wrong, corrected later)
    format: np.ndarray
    quality: np.ndarray  # latent quality in (0, 1)
    quality_estimate: np.ndarray  # the logged policy's noisy view of quality

    def __len__(self) -> int:
        return len(self.published_ms)


@dataclass(frozen=True)
class Versions:
    """Rows of a dimension file: which entity, when it became true, the attributes, and the file's day."""

    day: np.ndarray  # delivery day index (file) of the row
    at_ms: np.ndarray  # updated_at
    entity: np.ndarray  # user or item index
    a: np.ndarray  # users: country; content: category label
    b: np.ndarray  # users: plan; content: format


@dataclass(frozen=True)
class World:
    """Everything drawn before the first day, plus the vocabularies used to render it."""

    config: SimulationConfig
    start_ms: int
    countries: tuple[str, ...]
    country_offset_hours: np.ndarray
    currencies: tuple[str, ...]
    country_currency: np.ndarray
    plans: tuple[str, ...]
    formats: tuple[str, ...]
    users: Users
    catalog: Catalog
    user_versions: Versions
    content_versions: Versions
    arms: np.ndarray  # (experiments, users) arm index
    experiment_start_day: tuple[int, ...]
    days: int = 0  # days the world covers: config.days, more once extended for a continued run

    def __post_init__(self) -> None:
        if self.days == 0:
            object.__setattr__(self, "days", self.config.days)

    def day_start_ms(self, day: int) -> int:
        return self.start_ms + day * DAY_MS


def build_world(config: SimulationConfig) -> World:
    """Draw the world of a config (deterministic for its seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, WORLD_STREAM]))
    start_ms = int(datetime(*config.start_date.timetuple()[:3], tzinfo=UTC).timestamp() * 1000)
    countries = tuple(code for code, _ in config.country_weights)
    currencies = tuple(sorted({COUNTRIES[c][1] for c in countries}))
    users = _users(config, rng, start_ms)
    catalog = _catalog(config, rng, start_ms)
    user_versions, final_country, final_plan = _user_versions(config, rng, start_ms, users)
    users = replace(users, final_country=final_country, final_plan=final_plan)
    user_ids = [f"u{i + 1:07d}" for i in range(config.users)]
    arms = np.stack(
        [assign_variants(e.experiment_id, user_ids, e.variants, e.weights) for e in config.experiments]
    ) if config.experiments else np.zeros((0, config.users), dtype=np.int8)  # fmt: skip
    return World(
        config=config,
        start_ms=start_ms,
        countries=countries,
        country_offset_hours=np.array([COUNTRIES[c][0] for c in countries], dtype=np.int64),
        currencies=currencies,
        country_currency=np.array([currencies.index(COUNTRIES[c][1]) for c in countries], dtype=np.int8),
        plans=tuple(p for p, _ in config.plan_weights),
        formats=tuple(f for f, _ in config.format_weights),
        users=users,
        catalog=catalog,
        user_versions=user_versions,
        content_versions=_content_versions(config, rng, start_ms, catalog),
        arms=arms,
        experiment_start_day=tuple(e.start_day(config.days) for e in config.experiments),
    )


def shares(pairs: tuple[tuple[str, float], ...] | tuple[float, ...]) -> np.ndarray:
    weights = np.array([p[1] if isinstance(p, tuple) else p for p in pairs], dtype=np.float64)
    return weights / weights.sum()


def _users(config: SimulationConfig, rng: np.random.Generator, start_ms: int) -> Users:
    n = config.users
    before = rng.random(n) < config.presignup_share
    offset = rng.random(n)
    signup = np.where(
        before,
        start_ms - 1 - (offset * config.signup_history_days * DAY_MS).astype(np.int64),
        start_ms + (offset * config.days * DAY_MS).astype(np.int64),
    )
    signup.sort()
    country = rng.choice(len(config.country_weights), size=n, p=shares(config.country_weights))
    plan = rng.choice(len(config.plan_weights), size=n, p=shares(config.plan_weights))
    sigma = config.activity_sigma
    activity = rng.lognormal(np.log(config.activity_mean_sessions) - sigma**2 / 2, sigma, size=n)
    k = len(config.categories)
    taste = rng.dirichlet(config.taste_alpha_total * shares(config.category_weights), size=n)
    return Users(
        signup_ms=signup.astype(np.int64),
        country=country.astype(np.int16),
        plan=plan.astype(np.int8),
        final_country=country.astype(np.int16),
        final_plan=plan.astype(np.int8),
        activity=activity,
        taste=taste,
        taste_factor=(k * taste) ** config.taste_exponent,
    )


def _catalog(config: SimulationConfig, rng: np.random.Generator, start_ms: int) -> Catalog:
    back = np.sort(start_ms - 1 - (rng.random(config.initial_catalog) * config.back_catalog_days * DAY_MS))
    per_day = rng.poisson(config.new_items_per_day, size=config.days)
    fresh = [
        np.sort(start_ms + d * DAY_MS + PUBLISH_FROM_MS + rng.random(count) * PUBLISH_SPAN_MS)
        for d, count in enumerate(per_day)
    ]
    published = np.concatenate([back, *fresh]).astype(np.int64)
    n = len(published)
    k = len(config.categories)
    category = rng.choice(k, size=n, p=shares(config.category_weights)).astype(np.int16)
    wrong = (rng.random(n) < config.mislabel_rate) & (published >= start_ms)
    label = np.where(wrong, (category + rng.integers(1, k, size=n)) % k, category).astype(np.int16)
    quality = rng.beta(*config.quality_beta, size=n)
    estimate = np.clip(quality + rng.normal(0, config.policy_quality_noise, size=n), 0, 1)
    return Catalog(
        published_ms=published,
        category=category,
        label=label,
        format=rng.choice(len(config.format_weights), size=n, p=shares(config.format_weights)).astype(np.int8),
        quality=quality,
        quality_estimate=estimate,
    )


def _user_versions(
    config: SimulationConfig, rng: np.random.Generator, start_ms: int, users: Users
) -> tuple[Versions, np.ndarray, np.ndarray]:
    """Signups (a user's first version, on the signup day; earlier signups on day 0) and profile changes."""
    country, plan = users.country.copy(), users.plan.copy()
    signup_day = np.maximum((users.signup_ms - start_ms) // DAY_MS, 0)
    parts: list[tuple[np.ndarray, ...]] = []
    for day in range(config.days):
        new = np.flatnonzero(signup_day == day)
        parts.append((np.full(len(new), day), users.signup_ms[new], new, country[new], plan[new]))
        parts.append(profile_changes(config, rng, start_ms, day, users.signup_ms, country, plan))
    return versions_from(parts), country, plan


def profile_changes(
    config: SimulationConfig,
    rng: np.random.Generator,
    start_ms: int,
    day: int,
    signup_ms: np.ndarray,
    country: np.ndarray,
    plan: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """One day's plan changes and country moves of users signed up before it; updates ``country`` and ``plan``
    in place and returns the version rows (day, at, user, country, plan) in time order."""
    n = len(signup_ms)
    n_countries, n_plans = len(config.country_weights), len(config.plan_weights)
    day_start = start_ms + day * DAY_MS
    eligible = signup_ms < day_start
    moves = eligible & (rng.random(n) < config.plan_change_rate)
    relocations = eligible & (rng.random(n) < config.country_move_rate)
    plan_step = rng.integers(1, max(n_plans, 2), size=n)
    country_step = rng.integers(1, max(n_countries, 2), size=n)
    at = day_start + (rng.random(n) * DAY_MS).astype(np.int64)
    if n_plans > 1:
        plan[moves] = (plan[moves] + plan_step[moves]) % n_plans
    if n_countries > 1:
        country[relocations] = (country[relocations] + country_step[relocations]) % n_countries
    changed = np.flatnonzero((moves & (n_plans > 1)) | (relocations & (n_countries > 1)))
    changed = changed[np.argsort(at[changed], kind="stable")]
    return np.full(len(changed), day), at[changed], changed, country[changed], plan[changed]


def _content_versions(config: SimulationConfig, rng: np.random.Generator, start_ms: int, catalog: Catalog) -> Versions:
    """New items on their publish day (the back catalog on day 0), label corrections and edits later."""
    label = catalog.label.copy()
    publish_day = np.maximum((catalog.published_ms - start_ms) // DAY_MS, 0)
    parts: list[tuple[np.ndarray, ...]] = []
    for day in range(config.days):
        new = np.flatnonzero(publish_day == day)
        parts.append((np.full(len(new), day), catalog.published_ms[new], new, label[new], catalog.format[new]))
        parts.append(label_changes(config, rng, start_ms, day, catalog, label))
    return versions_from(parts)


def label_changes(
    config: SimulationConfig, rng: np.random.Generator, start_ms: int, day: int, catalog: Catalog, label: np.ndarray
) -> tuple[np.ndarray, ...]:
    """One day's label corrections and edits of items published before it; updates ``label`` in place and
    returns the version rows (day, at, item, label, format) in time order."""
    n = len(catalog)
    day_start = start_ms + day * DAY_MS
    eligible = catalog.published_ms < day_start
    fix = eligible & (label != catalog.category) & (rng.random(n) < config.relabel_daily_rate)
    edit = eligible & (rng.random(n) < config.edit_daily_rate)
    at = day_start + (rng.random(n) * DAY_MS).astype(np.int64)
    label[fix] = catalog.category[fix]
    changed = np.flatnonzero(fix | edit)
    changed = changed[np.argsort(at[changed], kind="stable")]
    return np.full(len(changed), day), at[changed], changed, label[changed], catalog.format[changed]


def versions_from(parts: list[tuple[np.ndarray, ...]]) -> Versions:
    """Version rows (day, at, entity, a, b) gathered into one table, sorted by file day then updated_at."""
    day, at, entity, a, b = (np.concatenate([p[i] for p in parts]) for i in range(5))
    # Each file lists its rows in updated_at order (stable, so ties keep entity order).
    order = np.lexsort((at, day))
    day, at, entity, a, b = day[order], at[order], entity[order], a[order], b[order]
    return Versions(
        day=day.astype(np.int32),
        at_ms=at.astype(np.int64),
        entity=entity.astype(np.int64),
        a=a.astype(np.int16),
        b=b.astype(np.int16),
    )

"""One day of behaviour: sessions, ranked requests, impressions, clicks, views, conversions and exposures.

Everything is vectorised over the day (no Python per event). Clicks follow a position-based model whose exact
probabilities are kept next to the events, so the ground truth holds the probability behind every impression
and session. Each step below draws from the day's random stream in a fixed order, which keeps runs
reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.batch import CLICK, CONVERSION, EXPOSURE, IMPRESSION, VIEW, EventBatch
from simulator.config import SimulationConfig
from simulator.formatting import DAY_MS
from simulator.policy import PolicyState, candidate_pool, first_slot_propensity, rank_slates
from simulator.serving import NOT_EXPOSED, Serving
from simulator.world import World

# Per-experiment, per-arm tallies of what the treatment truly did (summed probabilities, not draws).
TALLIES: tuple[str, ...] = (
    "exposed_sessions",
    "impressions",
    "clicks",
    "expected_clicks",
    "expected_clicks_without_effect",
    "conversions",
    "expected_conversions",
    "expected_conversions_without_effect",
)
_T = {name: i for i, name in enumerate(TALLIES)}


@dataclass
class Counters:
    """Running counters behind event, request and session ids (ids never repeat within a run)."""

    event: int = 0
    request: int = 0
    session: int = 0

    def take(self, name: str, n: int) -> np.ndarray:
        """The next ``n`` numbers of one counter."""
        start = getattr(self, name)
        setattr(self, name, start + n)
        return np.arange(start, start + n, dtype=np.int64)


@dataclass(frozen=True)
class RequestDetail:
    """Per request of a day: who, when, where, what the logging policy drew and what was served.

    The closed-loop truth values other pages on exactly these requests (``simulator.closed_loop``).

    Attributes:
        num, session, user, time, surface: Request counter, session counter, user index, epoch ms, surface code.
        ctr_mult: Product of the running ctr experiments' multipliers on the request.
        slate: (requests, slate_size) items of the logging policy's Plackett-Luce draw for the request.
        page: Page number in the served pages (-1: the logging slate was shown).
        imp_request, imp_item, imp_p_click, imp_clicked: The impressions shown (request index, item, exact
            P(click), drawn click).
    """

    num: np.ndarray
    session: np.ndarray
    user: np.ndarray
    time: np.ndarray
    surface: np.ndarray
    ctr_mult: np.ndarray
    slate: np.ndarray
    page: np.ndarray
    imp_request: np.ndarray
    imp_item: np.ndarray
    imp_p_click: np.ndarray
    imp_clicked: np.ndarray


@dataclass
class DayActivity:
    """Clean events of one day plus the truth behind them."""

    events: EventBatch
    impressions: dict[str, np.ndarray] = field(default_factory=dict)
    sessions: dict[str, np.ndarray] = field(default_factory=dict)
    pool: dict[str, np.ndarray] = field(default_factory=dict)
    tallies: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, len(TALLIES))))
    requests: RequestDetail | None = None
    holdout_exposures: int = 0


def examine(config: SimulationConfig, positions: np.ndarray) -> np.ndarray:
    """Examination probability by position: (1 / position) ** eta."""
    return (1.0 / np.asarray(positions, dtype=np.float64)) ** config.position_bias_eta


def freshness(config: SimulationConfig, age_ms: np.ndarray) -> np.ndarray:
    """floor + (1 - floor) * 0.5 ** (age_hours / half_life_hours)."""
    age_hours = np.maximum(age_ms, 0) / 3_600_000
    decay = 0.5 ** (age_hours / config.freshness_half_life_hours)
    return config.freshness_floor + (1 - config.freshness_floor) * decay


def drift_factor(world: World, item: np.ndarray, time_ms: np.ndarray) -> np.ndarray:
    """The planted drift's factor on attract: ``attract_multiplier`` for items of the drifting category shown
    at or after the drift's start (``SimulationConfig.drift``), else 1."""
    d = world.config.drift
    if d is None:
        return np.ones(np.broadcast_shapes(np.shape(item), np.shape(time_ms)))
    hit = (world.catalog.category[item] == world.config.categories.index(d.category)) & (
        np.asarray(time_ms) >= d.from_ms(world.start_ms)
    )
    return np.where(hit, d.attract_multiplier, 1.0)


def true_attract(
    world: World, user: np.ndarray, item: np.ndarray, time_ms: np.ndarray, ctr_mult: np.ndarray
) -> np.ndarray:
    """The click model's attract for (user, item, moment) rows (numpy broadcasting: aligned arrays, or a
    column of requests against a row of items):
    clip(base_attract * taste_factor * quality_factor * freshness * drift * experiment multiplier, 0, 1)."""
    return np.clip(_base_attract(world, user, item, time_ms) * ctr_mult, 0, 1)


def _base_attract(world: World, user: np.ndarray, item: np.ndarray, time_ms: np.ndarray) -> np.ndarray:
    """attract before experiments and clipping (drift included)."""
    c, catalog = world.config, world.catalog
    taste = world.users.taste_factor[user, catalog.category[item]]
    quality = (catalog.quality[item] / quality_mean(c)) ** c.quality_exponent
    base = c.base_attract * taste * quality * freshness(c, time_ms - catalog.published_ms[item])
    return base * drift_factor(world, item, time_ms)


def quality_mean(config: SimulationConfig) -> float:
    a, b = config.quality_beta
    return a / (a + b)


def day_of(ms: np.ndarray, start_ms: int) -> np.ndarray:
    """Day index (0 = start_date) of epoch-millisecond times."""
    return (np.asarray(ms, dtype=np.int64) - start_ms) // DAY_MS


@dataclass
class _Sessions:
    user: np.ndarray
    start: np.ndarray
    num: np.ndarray


@dataclass
class _Requests:
    session: np.ndarray  # session index of each request
    user: np.ndarray
    time: np.ndarray
    surface: np.ndarray
    num: np.ndarray
    first: np.ndarray  # per session: index of its first request
    count: np.ndarray  # per session: number of requests


@dataclass
class _Experiments:
    """Which experiments run today, where, and their multipliers per request (ctr) or session (conversion)."""

    active: list[int]
    in_exp: dict[int, np.ndarray]  # per request: on one of the experiment's surfaces
    exposed: dict[int, np.ndarray]  # per session: has such a request
    request_mult: dict[int, np.ndarray]
    session_mult: dict[int, np.ndarray]
    ctr_mult: np.ndarray  # product over experiments, per request
    conversion_mult: np.ndarray  # product over experiments, per session


@dataclass
class _Impressions:
    request: np.ndarray  # request index of each impression
    slate: np.ndarray  # (requests, k) the logging policy's draw, shown unless a page was served
    page: np.ndarray  # per request: served page number, or -1
    policy: np.ndarray  # per impression: served policy code, model version code, propensity (-1/-1/NaN)
    model_version: np.ndarray
    propensity: np.ndarray
    item: np.ndarray
    position: np.ndarray
    examine: np.ndarray
    base: np.ndarray  # attract before experiments and clipping
    attract: np.ndarray
    p_click: np.ndarray
    clicked: np.ndarray
    taste: np.ndarray  # the user's taste factor for the item's true category
    pool: np.ndarray  # the day's candidate items
    pool_score: np.ndarray  # and the logged policy's score of each


@dataclass
class _Engagement:
    """Views (one per click) and per-session conversions."""

    click_time: np.ndarray
    view_time: np.ndarray
    dwell_tenths: np.ndarray
    session_clicks: np.ndarray
    session_dwell: np.ndarray
    session_end: np.ndarray
    p_conversion_base: np.ndarray
    p_conversion: np.ndarray
    converted: np.ndarray
    conversion_time: np.ndarray
    value_cents: np.ndarray
    currency: np.ndarray


def simulate_day(
    world: World,
    day: int,
    state: PolicyState,
    counters: Counters,
    rng: np.random.Generator,
    serving: Serving | None = None,
) -> DayActivity:
    """Draw the clean events of one UTC day (their received_at is left equal to occurred_at).

    With ``serving``, requests of users who have a page for the surface show that page instead of the logging
    policy's slate, and the first such request of each user not yet exposed gets an exposure event of the
    holdout experiment (1 ms before it). The logging slates are drawn for every request either way, so the
    random streams are consumed the same and the truth can value the logging slate on served requests.
    """
    sessions = _draw_sessions(world, day, counters, rng)
    requests = _draw_requests(world.config, sessions, counters, rng)
    experiments = _experiments(world, day, sessions, requests)
    impressions = _draw_impressions(world, state, day, requests, experiments, rng, serving)
    engagement = _draw_engagement(world, sessions, requests, impressions, experiments, rng)
    exposures, tallies = _draw_exposures(world, sessions, requests, impressions, engagement, experiments, rng)
    if serving is not None:
        exposures.append(_holdout_exposures(requests, impressions, serving))
    state.record(day, impressions.item[impressions.clicked])
    events = _event_rows(sessions, requests, impressions, engagement, exposures, counters)
    return DayActivity(
        events=events,
        impressions=_impression_truth(
            world.config, events, requests, impressions, experiments, world.day_start_ms(day)
        ),
        sessions=_session_truth(world.config, sessions, requests, engagement, experiments),
        pool=_pool_truth(world, day, impressions),
        tallies=tallies,
        requests=RequestDetail(
            num=requests.num,
            session=sessions.num[requests.session],
            user=requests.user,
            time=requests.time,
            surface=requests.surface,
            ctr_mult=experiments.ctr_mult,
            slate=impressions.slate,
            page=impressions.page,
            imp_request=impressions.request,
            imp_item=impressions.item,
            imp_p_click=impressions.p_click,
            imp_clicked=impressions.clicked,
        ),
        holdout_exposures=len(exposures[-1][1]) if serving is not None else 0,
    )


def _draw_sessions(world: World, day: int, counters: Counters, rng: np.random.Generator) -> _Sessions:
    """Poisson sessions per user-day at a local-time daily rhythm, only after signup, in time order."""
    c, users = world.config, world.users
    weekday = (c.start_date.weekday() + day) % 7
    counts = rng.poisson(users.activity * c.weekday_factors[weekday])
    user = np.repeat(np.arange(len(users), dtype=np.int32), counts)
    hourly = np.asarray(c.hourly_profile) / sum(c.hourly_profile)
    local_hour = rng.choice(24, size=len(user), p=hourly)
    utc_hour = (local_hour - world.country_offset_hours[users.country[user]]) % 24
    start = world.day_start_ms(day) + utc_hour * 3_600_000 + rng.integers(0, 3_600_000, size=len(user))
    keep = start >= users.signup_ms[user]
    user, start = user[keep], start[keep]
    order = np.lexsort((user, start))
    return _Sessions(user[order], start[order], counters.take("session", len(order)))


def _draw_requests(c: SimulationConfig, s: _Sessions, counters: Counters, rng: np.random.Generator) -> _Requests:
    """1 + Poisson requests per session, separated by gaps, each on a surface."""
    count = 1 + np.minimum(rng.poisson(c.extra_requests_mean, len(s.user)), c.max_requests_per_session - 1)
    session = np.repeat(np.arange(len(s.user)), count)
    first = np.cumsum(count) - count
    rank = np.arange(len(session)) - first[session]
    gap_ms = ((c.request_gap_min_seconds + rng.exponential(c.request_gap_mean_seconds, len(rank))) * 1000).astype(
        np.int64
    )
    gap_ms[rank == 0] = 0
    elapsed = np.cumsum(gap_ms)
    time = s.start[session] + elapsed - elapsed[first][session]
    n_surfaces = len(c.surfaces)
    first_surface = rng.choice(n_surfaces, size=len(rank), p=_norm(c.first_surface_weights))
    later_surface = rng.choice(n_surfaces, size=len(rank), p=_norm(c.later_surface_weights))
    surface = np.where(rank == 0, first_surface, later_surface).astype(np.int8)
    return _Requests(session, s.user[session], time, surface, counters.take("request", len(rank)), first, count)


def _experiments(world: World, day: int, s: _Sessions, r: _Requests) -> _Experiments:
    c = world.config
    active = [e for e in range(len(c.experiments)) if day >= world.experiment_start_day[e]]
    in_exp = {e: np.isin(r.surface, _surface_codes(c, e)) for e in active}
    exposed = {e: np.bincount(r.session[in_exp[e]], minlength=len(s.user)) > 0 for e in active}
    request_mult = {e: _multiplier(world, e, "ctr", r.user, in_exp[e]) for e in active}
    session_mult = {e: _multiplier(world, e, "conversion", s.user, exposed[e]) for e in active}
    return _Experiments(
        active=active,
        in_exp=in_exp,
        exposed=exposed,
        request_mult=request_mult,
        session_mult=session_mult,
        ctr_mult=np.prod([request_mult[e] for e in active], axis=0) if active else np.ones(len(r.user)),
        conversion_mult=np.prod([session_mult[e] for e in active], axis=0) if active else np.ones(len(s.user)),
    )


def _draw_impressions(
    world: World,
    state: PolicyState,
    day: int,
    r: _Requests,
    x: _Experiments,
    rng: np.random.Generator,
    serving: Serving | None,
) -> _Impressions:
    """Slates from the logged policy (or served pages), and clicks with
    P = examine(position) * clip(base * experiments, 0, 1)."""
    c, catalog = world.config, world.catalog
    pool, pool_score = candidate_pool(world, state, day, rng)
    k = c.slate_size
    slate = pool[rank_slates(pool_score, len(r.user), k, c.policy_temperature, rng)]
    page = np.full(len(r.user), -1, dtype=np.int64) if serving is None else serving.pages.page_of[r.user, r.surface]
    length = np.full(len(r.user), k, dtype=np.int64)
    if serving is not None:
        length[page >= 0] = serving.pages.length[page[page >= 0]]
    request = np.repeat(np.arange(len(r.user)), length)
    position = (np.arange(len(request)) - (np.cumsum(length) - length)[request] + 1).astype(np.int16)
    item = slate[request, position - 1]
    policy = np.full(len(item), -1, dtype=np.int8)
    model_version = np.full(len(item), -1, dtype=np.int16)
    propensity = np.full(len(item), np.nan)
    if serving is not None:
        served = np.flatnonzero(page[request] >= 0)
        slot = serving.pages.page_start[page[request[served]]] + position[served] - 1
        item[served] = serving.pages.item[slot]
        policy[served] = serving.pages.policy[slot]
        model_version[served] = serving.pages.model_version[slot]
        propensity[served] = serving.pages.propensity[slot]
    user, time = r.user[request], r.time[request]
    taste = world.users.taste_factor[user, catalog.category[item]]
    base = _base_attract(world, user, item, time)
    attract = np.clip(base * x.ctr_mult[request], 0, 1)
    exam = examine(c, np.arange(1, k + 1))[position - 1]
    p_click = exam * attract
    clicked = rng.random(len(p_click)) < p_click
    return _Impressions(
        request, slate, page, policy, model_version, propensity,
        item, position, exam, base, attract, p_click, clicked, taste, pool, pool_score,
    )  # fmt: skip


def _draw_engagement(
    world: World, s: _Sessions, r: _Requests, i: _Impressions, x: _Experiments, rng: np.random.Generator
) -> _Engagement:
    """Views after clicks (longer for better, better-liked items); conversions likelier after engagement."""
    c, catalog = world.config, world.catalog
    ci = np.flatnonzero(i.clicked)
    delay = (c.click_delay_min_seconds + rng.exponential(c.click_delay_mean_seconds, len(ci))) * 1000
    click_time = r.time[i.request[ci]] + delay.astype(np.int64)
    view_time = click_time + rng.integers(300, 2_500, size=len(ci))
    log_dwell = (
        np.log(c.dwell_median_seconds)
        + c.dwell_quality_effect * (catalog.quality[i.item[ci]] - quality_mean(c))
        + c.dwell_taste_effect * np.log(np.maximum(i.taste[ci], 1e-12))
        + c.dwell_sigma * rng.standard_normal(len(ci))
    )
    dwell_tenths = np.rint(np.clip(np.exp(log_dwell), 1.0, c.dwell_max_seconds) * 10).astype(np.int32)

    click_session = r.session[i.request[ci]]
    n = len(s.user)
    clicks = np.bincount(click_session, minlength=n)
    dwell = np.bincount(click_session, weights=dwell_tenths / 10, minlength=n)
    logit = c.conversion_intercept + c.conversion_click_slope * clicks + c.conversion_dwell_slope * np.log1p(dwell / 60)
    p_base = 1 / (1 + np.exp(-logit))
    p = np.minimum(1.0, p_base * x.conversion_mult)
    converted = rng.random(n) < p
    end = r.time[r.first + r.count - 1].copy()
    np.maximum.at(end, click_session, view_time)
    cv = np.flatnonzero(converted)
    conversion_time = end[cv] + rng.integers(5_000, 120_000, size=len(cv))
    value = rng.lognormal(np.log(c.conversion_value_median), c.conversion_value_sigma, size=len(cv))
    return _Engagement(
        click_time=click_time,
        view_time=view_time,
        dwell_tenths=dwell_tenths,
        session_clicks=clicks,
        session_dwell=dwell,
        session_end=end,
        p_conversion_base=p_base,
        p_conversion=p,
        converted=converted,
        conversion_time=conversion_time,
        value_cents=np.clip(np.rint(value * 100), 50, 999_999).astype(np.int64),
        currency=world.country_currency[world.users.country[s.user[cv]]],
    )


def _draw_exposures(
    world: World,
    s: _Sessions,
    r: _Requests,
    i: _Impressions,
    g: _Engagement,
    x: _Experiments,
    rng: np.random.Generator,
) -> tuple[list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """Exposure events (at each session's first request on a running experiment's surface) and the
    per-arm tallies of what each experiment truly changed."""
    c = world.config
    n_arms = max((len(e.variants) for e in c.experiments), default=1)
    tallies = np.zeros((len(c.experiments), n_arms, len(TALLIES)))
    exposures = []
    for e in x.active:
        idx = np.flatnonzero(x.in_exp[e])
        _, at = np.unique(r.session[idx], return_index=True)
        req = idx[at]
        when = r.time[req] - rng.integers(1, 50, size=len(req))
        exposures.append((e, r.user[req], when, world.arms[e, r.user[req]]))

        without = np.clip(i.base * (x.ctr_mult / x.request_mult[e])[i.request], 0, 1) * i.examine
        hit = x.in_exp[e][i.request]
        imp_arm = world.arms[e, r.user[i.request[hit]]]
        sessions = x.exposed[e]
        sess_arm = world.arms[e, s.user[sessions]]
        conv_without = np.minimum(1.0, g.p_conversion_base * x.conversion_mult / x.session_mult[e])
        t = tallies[e]
        _tally(t, "exposed_sessions", sess_arm, None)
        _tally(t, "impressions", imp_arm, None)
        _tally(t, "clicks", imp_arm, i.clicked[hit])
        _tally(t, "expected_clicks", imp_arm, i.p_click[hit])
        _tally(t, "expected_clicks_without_effect", imp_arm, without[hit])
        _tally(t, "conversions", sess_arm, g.converted[sessions])
        _tally(t, "expected_conversions", sess_arm, g.p_conversion[sessions])
        _tally(t, "expected_conversions_without_effect", sess_arm, conv_without[sessions])
    return exposures, tallies


def _holdout_exposures(
    r: _Requests, i: _Impressions, serving: Serving
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The holdout's exposure event, once per user: 1 ms before the first request served from a page."""
    served = np.flatnonzero(i.page >= 0)
    served = served[np.argsort(r.time[served], kind="stable")]
    users, first = np.unique(r.user[served], return_index=True)
    fresh = serving.exposed_at[users] == NOT_EXPOSED
    users, req = users[fresh], served[first[fresh]]
    order = np.argsort(r.time[req], kind="stable")
    users, req = users[order], req[order]
    serving.exposed_at[users] = r.time[req] - 1
    return serving.experiment, users, r.time[req] - 1, serving.pages.user_variant[users]


def _event_rows(
    s: _Sessions,
    r: _Requests,
    i: _Impressions,
    g: _Engagement,
    exposures: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    counters: Counters,
) -> EventBatch:
    """The day's clean events; numbers are handed out in a fixed order so ids are deterministic."""
    ci = np.flatnonzero(i.clicked)
    cv = np.flatnonzero(g.converted)
    user = r.user[i.request]
    batches = [
        EventBatch.of(
            IMPRESSION,
            counters.take("event", len(i.item)),
            user,
            r.time[i.request],
            content=i.item,
            request=r.num[i.request],
            position=i.position,
            surface=r.surface[i.request],
            policy=i.policy,
            model_version=i.model_version,
            propensity=i.propensity,
        ),
        EventBatch.of(
            CLICK,
            counters.take("event", len(ci)),
            user[ci],
            g.click_time,
            content=i.item[ci],
            request=r.num[i.request[ci]],
        ),
        EventBatch.of(
            VIEW,
            counters.take("event", len(ci)),
            user[ci],
            g.view_time,
            content=i.item[ci],
            dwell_tenths=g.dwell_tenths,
        ),
        EventBatch.of(
            CONVERSION,
            counters.take("event", len(cv)),
            s.user[cv],
            g.conversion_time,
            value_cents=g.value_cents,
            currency=g.currency,
        ),
    ]
    for e, who, when, arm in exposures:
        batches.append(EventBatch.of(EXPOSURE, counters.take("event", len(who)), who, when, experiment=e, variant=arm))
    return EventBatch.concat(batches)


def _impression_truth(
    c: SimulationConfig, events: EventBatch, r: _Requests, i: _Impressions, x: _Experiments, day_ms: int
) -> dict[str, np.ndarray]:
    if not c.write_impression_truth:
        return {}
    return {
        "num": events.num[: len(i.item)],  # impressions come first in the day's rows
        "request": r.num[i.request],
        "user": r.user[i.request],
        "content": i.item,
        "position": i.position,
        "surface": r.surface[i.request],
        "occurred_ms": r.time[i.request],
        # The day whose pool the slate came from: a session running past midnight keeps its start day's pool.
        "pool_day_ms": np.full(len(i.item), day_ms, dtype=np.int64),
        "examine": i.examine,
        "attract": i.attract,
        "attract_without_experiments": np.clip(i.base, 0, 1),
        "experiment_multiplier": x.ctr_mult[i.request],
        "p_click": i.p_click,
        "clicked": i.clicked,
        "policy": i.policy,
        "model_version": i.model_version,
        "propensity": i.propensity,
    }


def _pool_truth(world: World, day: int, i: _Impressions) -> dict[str, np.ndarray]:
    """The day's candidate pool with each item's known propensity for the top slot (off-policy evaluation)."""
    n = len(i.pool)
    return {
        "day_ms": np.full(n, world.day_start_ms(day), dtype=np.int64),
        "content": i.pool,
        "pool_rank": np.arange(n, dtype=np.int16),  # the first policy_pool_top are the top by score
        "score": i.pool_score,
        "propensity_first": first_slot_propensity(i.pool_score, world.config.policy_temperature),
    }


def _session_truth(
    c: SimulationConfig, s: _Sessions, r: _Requests, g: _Engagement, x: _Experiments
) -> dict[str, np.ndarray]:
    n = len(s.user)
    return {
        "session": s.num,
        "user": s.user,
        "started_ms": s.start,
        "ended_ms": g.session_end,
        "requests": r.count,
        "clicks": g.session_clicks,
        "dwell_seconds": g.session_dwell,
        "p_conversion": g.p_conversion,
        "p_conversion_without_experiments": g.p_conversion_base,
        "converted": g.converted,
        **{
            f"exposed_{spec.experiment_id}": x.exposed.get(e, np.zeros(n, dtype=bool))
            for e, spec in enumerate(c.experiments)
        },
    }


def _norm(weights: tuple[float, ...]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


def _surface_codes(config: SimulationConfig, e: int) -> np.ndarray:
    return np.array([config.surfaces.index(s) for s in config.experiments[e].surfaces], dtype=np.int8)


def _multiplier(world: World, e: int, target: str, user: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Per-row multiplier of experiment ``e`` on ``target``: its arm's multiplier where it applies, else 1."""
    spec = world.config.experiments[e]
    out = np.ones(len(user))
    if spec.target == target:
        factors = np.asarray(spec.multipliers, dtype=np.float64)
        out[where] = factors[world.arms[e, user[where]]]
    return out


def _tally(rows: np.ndarray, name: str, arm: np.ndarray, values: np.ndarray | None) -> None:
    weights = None if values is None else values.astype(np.float64)
    rows[:, _T[name]] += np.bincount(arm, weights=weights, minlength=rows.shape[0])[: rows.shape[0]]

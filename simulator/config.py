"""Every knob of the synthetic event simulator, in one typed, frozen object.

The defaults describe the demo world: 2,000 users over 28 days, about half a million events, three experiments
and the usual pipeline faults. Every parameter that shapes behaviour lives here (and is copied into the ground
truth), so evaluation code can recompute any probability the simulator drew from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, timedelta
from typing import Any, Literal

from tailor.contract.spec import TIMESTAMP_YEARS

Format = Literal["jsonl", "parquet"]
ExperimentTarget = Literal["ctr", "conversion", "none"]

#: Names the malformed-row kinds carry everywhere (truth, tests, the warehouse's quarantine reasons).
MALFORMED_KINDS: tuple[str, ...] = (
    "invalid_json",
    "missing_field",
    "bad_type",
    "unknown_event_type",
    "bad_timestamp",
    "future_timestamp",
)
#: Kinds a typed Parquet file cannot hold: a Parquet row is always parseable and each column has one type.
PARQUET_IMPOSSIBLE_KINDS: frozenset[str] = frozenset({"invalid_json", "bad_type"})

#: Reference data per country: UTC offset in whole hours (for the daily rhythm) and the currency paid in.
COUNTRIES: dict[str, tuple[int, str]] = {
    "US": (-5, "USD"), "GB": (0, "GBP"), "DE": (1, "EUR"), "FR": (1, "EUR"), "ES": (1, "EUR"),
    "NL": (1, "EUR"), "IT": (1, "EUR"), "IN": (5, "USD"), "BR": (-3, "USD"), "CA": (-5, "USD"),
    "AU": (10, "USD"), "JP": (9, "USD"), "MX": (-6, "USD"),
}  # fmt: skip

# Activity by local hour of day: a morning, a lunch and a larger evening peak.
_HOURLY_PROFILE = (
    0.30, 0.20, 0.15, 0.10, 0.10, 0.20, 0.50, 1.00, 1.30, 1.00, 0.80, 0.90,
    1.30, 1.20, 0.80, 0.70, 0.80, 1.00, 1.30, 1.60, 1.80, 1.60, 1.10, 0.60,
)  # fmt: skip


# Mean of taste, quality and freshness factors over what the default policy shows (measured, not derived):
# used only by estimated_events().
_ATTRACT_SHRINK = 0.60


@dataclass(frozen=True)
class ExperimentConfig:
    """One A/B test: who is in which arm, from when, where it shows, and what it truly does.

    Attributes:
        experiment_id: Id written on exposure events.
        variants: Arm names; the first is the control by convention.
        weights: Traffic share of each arm (normalised; mapped onto 10,000 hash buckets).
        start_fraction: Start day as a fraction of the run's days (a third leaves a third as pre-period).
        target: What the treatment changes: ``ctr`` multiplies attractiveness, ``conversion`` multiplies the
            session conversion probability, ``none`` is an A/A test.
        multipliers: True multiplicative effect per arm (1.0 = none), applied after the start to exposed
            sessions only.
        surfaces: Surfaces where the experiment runs: the exposure fires at a session's first request on one
            of them, and the effect applies to those requests (``ctr``) or to that session (``conversion``).
    """

    experiment_id: str
    variants: tuple[str, ...] = ("control", "treatment")
    weights: tuple[float, ...] = (0.5, 0.5)
    start_fraction: float = 1 / 3
    target: ExperimentTarget = "none"
    multipliers: tuple[float, ...] = (1.0, 1.0)
    surfaces: tuple[str, ...] = ("home", "feed")

    def start_day(self, days: int) -> int:
        """Day index (0-based) on which the experiment starts, at 00:00 UTC."""
        return min(max(1, round(days * self.start_fraction)), max(days - 1, 1))


@dataclass(frozen=True)
class DriftConfig:
    """Planted drift: from a given day on, one category's items become more (or less) attractive.

    Behaviour changes, the logged policy does not: users click the category's items ``attract_multiplier``
    times as often (same examination, attract clipped to 1), so click-through and everything built on clicks
    (popularity, category CTR features, the ranker's labels) shift, while the impression mix stays as it was
    until the policy's popularity term catches up. The multiplier is part of the true click model
    (``attract`` and ``attract_without_experiments`` in the truth include it).

    Attributes:
        category: True category whose items drift (one of ``SimulationConfig.categories``).
        from_day: First day index (0 = ``start_date``) of the drift, from 00:00 UTC, by impression time. May lie
            beyond ``days``: a continued simulation (``tailor generate --continue``) counts days on from the
            same ``start_date``.
        attract_multiplier: Factor on attract for the category's items from then on (> 0; 1 = no drift).
    """

    category: str
    from_day: int
    attract_multiplier: float = 2.0

    def from_ms(self, start_ms: int) -> int:
        """Epoch milliseconds (UTC) from which the drift applies, for a run starting at ``start_ms``."""
        return start_ms + self.from_day * 86_400_000


DEFAULT_EXPERIMENTS: tuple[ExperimentConfig, ...] = (
    ExperimentConfig(
        "exp_feed_ranker",
        target="ctr",
        multipliers=(1.0, 1.08),
        start_fraction=1 / 3,
        surfaces=("home", "feed"),
    ),
    ExperimentConfig(
        "exp_checkout_nudge",
        target="conversion",
        multipliers=(1.0, 1.10),
        start_fraction=0.36,
        surfaces=("home", "feed"),
    ),
    ExperimentConfig(
        "exp_aa_feed",
        variants=("control", "control_copy"),
        target="none",
        multipliers=(1.0, 1.0),
        start_fraction=0.40,
        surfaces=("feed",),
    ),
)


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of one simulated history. Frozen so a config can key caches and be compared.

    Groups: run size and output; users; catalog; sessions; the logged ranking policy; the click model;
    dwell and conversions; faults; experiments. Rates "per day" are per user-day or item-day.
    """

    # Run size and output.
    users: int = 2_000
    days: int = 28
    seed: int = 7
    start_date: date = date(2026, 1, 5)
    format: Format = "jsonl"
    write_impression_truth: bool = True

    # Users.
    presignup_share: float = 0.85
    signup_history_days: int = 730
    activity_mean_sessions: float = 0.33
    activity_sigma: float = 1.0
    taste_alpha_total: float = 3.0
    country_weights: tuple[tuple[str, float], ...] = (
        ("US", 0.30), ("GB", 0.10), ("DE", 0.09), ("FR", 0.07), ("ES", 0.05), ("NL", 0.04),
        ("IN", 0.10), ("BR", 0.07), ("CA", 0.06), ("AU", 0.04), ("JP", 0.05), ("MX", 0.03),
    )  # fmt: skip
    plan_weights: tuple[tuple[str, float], ...] = (("free", 0.70), ("basic", 0.20), ("premium", 0.10))
    plan_change_rate: float = 0.003
    country_move_rate: float = 0.0003

    # Catalog.
    categories: tuple[str, ...] = (
        "news", "sports", "tech", "science", "business", "entertainment",
        "music", "travel", "food", "health", "gaming", "fashion",
    )  # fmt: skip
    category_weights: tuple[float, ...] = (1.6, 1.4, 1.2, 0.7, 0.9, 1.3, 0.9, 0.7, 0.9, 0.8, 0.9, 0.7)
    initial_catalog: int = 1_500
    back_catalog_days: int = 365
    new_items_per_day: float = 30.0
    format_weights: tuple[tuple[str, float], ...] = (("article", 0.6), ("video", 0.3), ("podcast", 0.1))
    quality_beta: tuple[float, float] = (2.5, 2.5)
    mislabel_rate: float = 0.03
    relabel_daily_rate: float = 0.15
    edit_daily_rate: float = 0.002

    # Sessions.
    hourly_profile: tuple[float, ...] = _HOURLY_PROFILE
    weekday_factors: tuple[float, ...] = (1.0, 0.98, 0.97, 0.98, 0.95, 1.10, 1.15)
    extra_requests_mean: float = 1.2
    max_requests_per_session: int = 8
    request_gap_min_seconds: float = 10.0
    request_gap_mean_seconds: float = 60.0
    slate_size: int = 10
    surfaces: tuple[str, ...] = ("home", "feed")
    first_surface_weights: tuple[float, ...] = (0.75, 0.25)
    later_surface_weights: tuple[float, ...] = (0.15, 0.85)

    # Logged policy: Plackett-Luce (Gumbel-top-k) over a daily candidate pool.
    policy_recency_weight: float = 2.0
    policy_recency_half_life_hours: float = 48.0
    policy_popularity_weight: float = 0.5
    policy_popularity_window_days: int = 7
    policy_quality_weight: float = 2.0
    policy_quality_noise: float = 0.15
    policy_temperature: float = 1.0
    policy_pool_top: int = 100
    policy_pool_explore: int = 40

    # Click model (position-based): P(click) = examine(position) * attract(user, item, time).
    position_bias_eta: float = 0.8
    base_attract: float = 0.3
    taste_exponent: float = 0.6
    quality_exponent: float = 1.0
    freshness_half_life_hours: float = 72.0
    freshness_floor: float = 0.35
    click_delay_min_seconds: float = 0.8
    click_delay_mean_seconds: float = 6.0

    # Views and conversions.
    dwell_median_seconds: float = 40.0
    dwell_sigma: float = 0.8
    dwell_quality_effect: float = 1.0
    dwell_taste_effect: float = 0.3
    dwell_max_seconds: float = 3_600.0
    conversion_intercept: float = -4.1
    conversion_click_slope: float = 0.45
    conversion_dwell_slope: float = 0.3
    conversion_value_median: float = 12.0
    conversion_value_sigma: float = 0.7

    # Faults, as shares of clean events.
    receive_delay_mean_seconds: float = 2.0
    duplicate_rate: float = 0.01
    duplicate_exact_share: float = 0.5
    duplicate_max_delay_hours: float = 24.0
    late_rate: float = 0.02
    late_min_hours: float = 1.0
    late_max_hours: float = 72.0
    malformed_rate: float = 0.005
    malformed_kind_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)

    experiments: tuple[ExperimentConfig, ...] = field(default=DEFAULT_EXPERIMENTS)

    # Planted drift (None: off). See DriftConfig.
    drift: DriftConfig | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid SimulationConfig: " + "; ".join(problems))

    @property
    def end_date(self) -> date:
        """Last simulated day (inclusive)."""
        return self.start_date + timedelta(days=self.days - 1)

    def with_changes(self, **changes: Any) -> SimulationConfig:
        """A copy with some fields replaced (validated like a new config)."""
        return replace(self, **changes)

    def estimated_events(self) -> int:
        """Rough number of event rows the run will write (within about 15%), without running it.

        Used to size a run before starting it (the CLI, the benchmark). It multiplies expected sessions by
        the expected events per session; the click-through rate is a calibrated guess, not derived.
        """
        active_share = self.presignup_share + (1 - self.presignup_share) * 0.5
        weekday = sum(self.weekday_factors) / 7
        sessions = self.users * self.days * active_share * self.activity_mean_sessions * weekday
        requests = 1 + min(self.extra_requests_mean, self.max_requests_per_session - 1)
        examine = sum((1 / p) ** self.position_bias_eta for p in range(1, self.slate_size + 1))
        clicks = requests * examine * self.base_attract * _ATTRACT_SHRINK
        exposures = sum((1 - e.start_day(self.days) / self.days) * self._reach(e.surfaces) for e in self.experiments)
        per_session = requests * self.slate_size + 2 * clicks + exposures + 0.04
        faults = 1 + self.duplicate_rate + self.malformed_rate
        return int(sessions * per_session * faults)

    def _reach(self, surfaces: tuple[str, ...]) -> float:
        """Probability that a session makes at least one request on one of ``surfaces``.

        The first request misses them with probability q1, each later one with q2; with N ~ Poisson(lambda)
        later requests, E[q2 ** N] = exp(-lambda * (1 - q2)) (ignoring the cap on requests per session).
        """
        first = sum(w for s, w in zip(self.surfaces, self.first_surface_weights, strict=True) if s not in surfaces)
        later = sum(w for s, w in zip(self.surfaces, self.later_surface_weights, strict=True) if s not in surfaces)
        q1 = first / sum(self.first_surface_weights)
        q2 = later / sum(self.later_surface_weights)
        return 1 - q1 * math.exp(-self.extra_requests_mean * (1 - q2))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (dates as ISO strings, tuples as lists) for the ground truth."""
        raw = asdict(self)
        raw["start_date"] = self.start_date.isoformat()
        if self.drift is None:
            # Left out when off, so configs without drift keep the truth.json they always had.
            del raw["drift"]
        return raw


def users_for_events(target_events: int, days: int = 28, **changes: Any) -> int:
    """Users needed for a run of about ``target_events`` events over ``days`` days (for sizing runs)."""
    # Estimated on many users, so the integer rounding of estimated_events() does not matter.
    per_user = SimulationConfig(users=100_000, days=days, **changes).estimated_events() / 100_000
    return max(1, math.ceil(target_events / max(per_user, 1e-9)))


def _within_contract_years(c: SimulationConfig) -> tuple[bool, str]:
    """Whether every timestamp the history writes falls in the contract's years (`TIMESTAMP_YEARS`), and the
    message when not: users sign up up to ``signup_history_days`` and the catalog goes back ``back_catalog_days``
    before ``start_date``; late deliveries and duplicates arrive up to ``late_max_hours`` +
    ``duplicate_max_delay_hours`` after the last day. A start of 1999-12-30 used to write a history whose rows were
    mostly quarantined as ``bad_timestamp`` (a trial)."""
    back = timedelta(days=max(c.signup_history_days, c.back_catalog_days))
    ahead = timedelta(days=1, hours=c.late_max_hours + c.duplicate_max_delay_hours)
    first, last = TIMESTAMP_YEARS
    earliest_start = date(first, 1, 1) + back + timedelta(days=1)  # signups start a millisecond before the start
    latest_end = date(last, 12, 31) - ahead
    # Compared without computing end_date, which overflows past year 9999 (a start of 9999-12-20 with 30 days).
    if earliest_start <= c.start_date <= latest_end - timedelta(days=c.days - 1):
        return True, ""
    return False, (
        f"start_date {c.start_date} with {c.days} day(s) writes timestamps outside the contract's years {first} to "
        f"{last} (users and catalog go back {back.days} days before the start; late deliveries arrive up to "
        f"{c.late_max_hours + c.duplicate_max_delay_hours:g} h after the last day): start on {earliest_start} or "
        f"later and end by {latest_end}"
    )


def _problems(c: SimulationConfig) -> list[str]:
    """Every problem with a config, each saying what to change."""
    out: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            out.append(message)

    need(1 <= c.users <= 9_999_999, f"users must be between 1 and 9,999,999 (got {c.users})")
    need(1 <= c.days <= 3_660, f"days must be between 1 and 3,660 (got {c.days})")
    if not out:  # the dates below need a valid day count
        need(*_within_contract_years(c))
    need(c.format in ("jsonl", "parquet"), f"format must be 'jsonl' or 'parquet' (got {c.format!r})")
    need(0 <= c.presignup_share <= 1, "presignup_share must be in [0, 1]")
    need(c.activity_mean_sessions > 0, "activity_mean_sessions must be positive")
    need(len(c.categories) >= 2, "categories needs at least two names")
    need(len(set(c.categories)) == len(c.categories), "categories must be unique")
    need(len(c.category_weights) == len(c.categories), "category_weights needs one weight per category")
    need(len(c.hourly_profile) == 24, "hourly_profile needs 24 weights (local hours 0..23)")
    need(len(c.weekday_factors) == 7, "weekday_factors needs 7 factors (Monday..Sunday)")
    need(1 <= c.slate_size <= 99, "slate_size must be between 1 and 99")
    need(c.policy_pool_top >= c.slate_size, "policy_pool_top must be at least slate_size")
    need(c.initial_catalog >= c.slate_size, "initial_catalog must be at least slate_size")
    need(c.initial_catalog + c.days * c.new_items_per_day * 3 < 9_999_999, "catalog too large for content ids")
    need(c.max_requests_per_session >= 1, "max_requests_per_session must be at least 1")
    need(c.policy_temperature > 0, "policy_temperature must be positive")
    need(len(c.surfaces) >= 1 and len(set(c.surfaces)) == len(c.surfaces), "surfaces must be unique names")
    for name in ("first_surface_weights", "later_surface_weights"):
        need(len(getattr(c, name)) == len(c.surfaces), f"{name} needs one weight per surface")
    need(c.position_bias_eta >= 0, "position_bias_eta must be >= 0")
    need(0 < c.base_attract <= 1, "base_attract must be in (0, 1]")
    need(0 <= c.freshness_floor <= 1, "freshness_floor must be in [0, 1]")
    need(c.dwell_max_seconds <= 86_400, "dwell_max_seconds must be at most 86,400 (the contract's maximum)")
    for name in ("duplicate_rate", "late_rate", "malformed_rate"):
        need(0 <= getattr(c, name) <= 0.5, f"{name} must be in [0, 0.5]")
    need(0 <= c.duplicate_exact_share <= 1, "duplicate_exact_share must be in [0, 1]")
    need(0 < c.late_min_hours < c.late_max_hours, "need 0 < late_min_hours < late_max_hours")
    need(c.late_max_hours > 24, "late_max_hours must exceed 24 so every late event lands in a later day's file")
    need(len(c.malformed_kind_weights) == len(MALFORMED_KINDS), "malformed_kind_weights needs one per kind")
    for pairs in ("country_weights", "plan_weights", "format_weights"):
        need(len(getattr(c, pairs)) >= 1, f"{pairs} needs at least one entry")
    unknown = sorted({code for code, _ in c.country_weights} - set(COUNTRIES))
    need(not unknown, f"country_weights names countries without a time zone/currency entry: {unknown}")
    need(
        all(p in ("free", "basic", "premium") for p, _ in c.plan_weights),
        "plan_weights may only name the contract's plans: free, basic, premium",
    )
    need(
        all(f in ("article", "video", "podcast") for f, _ in c.format_weights),
        "format_weights may only name the contract's formats: article, video, podcast",
    )
    ids = [e.experiment_id for e in c.experiments]
    need(len(set(ids)) == len(ids), "experiment ids must be unique")
    for e in c.experiments:
        label = f"experiment {e.experiment_id!r}"
        need(len(e.variants) >= 2, f"{label} needs at least two variants")
        need(len(set(e.variants)) == len(e.variants), f"{label} has repeated variant names")
        need(len(e.weights) == len(e.variants), f"{label} needs one weight per variant")
        need(len(e.multipliers) == len(e.variants), f"{label} needs one multiplier per variant")
        need(all(w >= 0 for w in e.weights) and sum(e.weights) > 0, f"{label} weights must be >= 0, not all 0")
        need(all(m > 0 for m in e.multipliers), f"{label} multipliers must be positive")
        need(e.target in ("ctr", "conversion", "none"), f"{label} target must be ctr, conversion or none")
        need(set(e.surfaces) <= set(c.surfaces), f"{label} names surfaces not in {c.surfaces}")
        need(0 < e.start_fraction < 1, f"{label} start_fraction must be in (0, 1)")
    if c.drift is not None:
        d = c.drift
        need(d.category in c.categories, f"drift.category must be one of {list(c.categories)} (got {d.category!r})")
        need(d.from_day >= 0, f"drift.from_day must be >= 0 (got {d.from_day})")
        need(d.attract_multiplier > 0, f"drift.attract_multiplier must be positive (got {d.attract_multiplier})")
    return out


def config_from_dict(raw: dict[str, Any]) -> SimulationConfig:
    """The config that ``SimulationConfig.to_dict`` wrote (truth.json's ``config``), for continuing a run.

    Raises:
        ValueError: a field is unknown to this version of the simulator, or a value is invalid.
    """
    known = {f.name: f for f in fields(SimulationConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"truth.json's config has fields this simulator does not know: {unknown}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "start_date":
            values[name] = date.fromisoformat(value)
        elif name == "experiments":
            values[name] = tuple(ExperimentConfig(**{k: _tuples(v) for k, v in spec.items()}) for spec in value)
        elif name == "drift":
            values[name] = None if value is None else DriftConfig(**value)
        else:
            values[name] = _tuples(value)
    return SimulationConfig(**values)


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the config holds (nested: weights are tuples of pairs)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value

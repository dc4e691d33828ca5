"""The service's settings, read from the environment in one place (`tailor serve` flags override a few).

Every limit here is deliberate; docs/service.md says why each default is what it is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from tailor.stream.config import DEFAULT_REDIS_URL, RedisURLError, check_redis_url

ENV_PREFIX = "TAILOR_SERVICE_"
#: Settings where 0 means nothing useful (no page, no body, no connection): their variables must be at least 1.
AT_LEAST_ONE = (
    "max_k", "max_body_bytes", "max_events", "private_max_age_s", "page_window_s", "max_connections", "threads",
    # Times in seconds. A body timeout of 0 answers 408 to every POST /events, and a reload check every 0 s spins a
    # core while idle (both found by a new-user trial, 2026-12-03); under a second is no use for either.
    "body_timeout_s", "reload_check_s",
)  # fmt: skip


class ServiceConfigError(ValueError):
    """A TAILOR_SERVICE_* variable holds a value the service cannot use; the message names it."""


@dataclass(frozen=True)
class ServiceConfig:
    """Limits, cache lifetimes and the stream the service publishes to.

    Attributes:
        budget_ms: the model path's latency budget (`ml.recommend.ServingConfig.budget_ms`); past it the page comes
            from the cached batch list, then popular items.
        deadline_ms: the ceiling on a whole recommendation request. Past it (an online store that hangs instead of
            failing), the service answers the popular page from memory and says so.
        max_k: the largest page a request may ask for (also capped by the catalog's size).
        max_body_bytes: the largest POST /events body; larger ones get 413 before being read.
        max_events: the most events one POST may carry.
        body_timeout_s: how long reading one request body may take (a client trickling bytes gets 408).
        landing_wait_s: how long a POST waits for the landing zone while another ingestion holds it (then 503).
        private_max_age_s: max-age of per-user pages (private: browsers only). Short, so that a click shows on
            the next page soon even in a browser that does not revalidate.
        page_window_s: a user's page is computed as of the start of its window of this many seconds, so the
            exploration slot's random draw is stable within it and a revalidation (If-None-Match) can get 304.
        public_max_age_s / public_s_maxage_s: browser and shared-cache lifetimes of segment pages.
        cors_origins: origins a browser may call the API from (none: only same-origin and server-side callers).
        stream_url: the Redis holding the event stream (`TAILOR_REDIS_URL`); empty turns publishing off.
        stream: the stream key (`tailor stream`'s default).
        reload_check_s: how often the service looks for a new champion, new marts or a closed model path.
        max_connections: concurrent connections per worker before uvicorn answers 503 (back-pressure).
        threads: worker threads that run `recommend` at once; requests beyond wait (within their deadline).
    """

    budget_ms: float = 50.0
    deadline_ms: float = 250.0
    max_k: int = 100
    max_body_bytes: int = 1_048_576
    max_events: int = 1000
    body_timeout_s: float = 10.0
    landing_wait_s: float = 10.0
    private_max_age_s: int = 5
    page_window_s: int = 60
    public_max_age_s: int = 60
    public_s_maxage_s: int = 300
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    stream_url: str = DEFAULT_REDIS_URL
    stream: str = "tailor:events"
    reload_check_s: float = 30.0
    max_connections: int = 512
    threads: int = 8

    def __post_init__(self) -> None:
        if self.budget_ms <= 0 or self.deadline_ms < self.budget_ms:
            raise ServiceConfigError(
                f"the budget (TAILOR_RECOMMEND_BUDGET_MS, {self.budget_ms:g} ms) must be positive and the deadline "
                f"({ENV_PREFIX}DEADLINE_MS, {self.deadline_ms:g} ms) at least as long: the deadline covers the model "
                f"path and its fallbacks. Set them so, or unset them for {type(self).budget_ms:g} and "
                f"{type(self).deadline_ms:g} ms"
            )
        for name in AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ServiceConfigError(
                    f"{ENV_PREFIX}{name.upper()} must be at least 1, got {_said(getattr(self, name))}: set it so, or "
                    f"unset it for {_said(getattr(type(self), name))}"
                )
        if "*" in self.cors_origins:
            raise ServiceConfigError(
                f"{ENV_PREFIX}CORS_ORIGINS=* would let any web page read every user's recommendations: "
                "list the frontend's origins (e.g. https://www.example.com)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceConfig:
        """Defaults overridden by ``TAILOR_SERVICE_<NAME>`` (and ``TAILOR_RECOMMEND_BUDGET_MS``, ``TAILOR_REDIS_URL``).

        Raises:
            ServiceConfigError: a value is not a number of the right kind, or out of range, or TAILOR_REDIS_URL is
                not a Redis URL.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        budget = env.get("TAILOR_RECOMMEND_BUDGET_MS")
        if budget is not None and budget.strip():
            values["budget_ms"] = _number("TAILOR_RECOMMEND_BUDGET_MS", budget, float)
        for name, kind in (
            ("deadline_ms", float),
            ("max_k", int),
            ("max_body_bytes", int),
            ("max_events", int),
            ("body_timeout_s", float),
            ("landing_wait_s", float),
            ("private_max_age_s", int),
            ("page_window_s", int),
            ("public_max_age_s", int),
            ("public_s_maxage_s", int),
            ("reload_check_s", float),
            ("max_connections", int),
            ("threads", int),
        ):
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw.strip():
                values[name] = _number(ENV_PREFIX + name.upper(), raw, kind, 1 if name in AT_LEAST_ONE else 0)
        if "deadline_ms" not in values and "budget_ms" in values:
            # Keep the default ratio: the fallbacks get the rest of the request's time.
            values["deadline_ms"] = max(float(values["budget_ms"]) * 5, cls.deadline_ms)  # type: ignore[arg-type]
        origins = env.get(ENV_PREFIX + "CORS_ORIGINS", "")
        values["cors_origins"] = tuple(o.strip() for o in origins.split(",") if o.strip())
        values["stream_url"] = env.get("TAILOR_REDIS_URL", DEFAULT_REDIS_URL)
        if values["stream_url"]:  # empty: publishing off; anything else must be a URL the client can use
            try:
                check_redis_url(str(values["stream_url"]))
            except RedisURLError as exc:
                raise ServiceConfigError(f"{exc}; or set it empty to turn stream publishing off") from None
        if env.get(ENV_PREFIX + "STREAM"):
            values["stream"] = env[ENV_PREFIX + "STREAM"]
        return cls(**values)  # type: ignore[arg-type]


def _number(name: str, raw: str, kind: type[int] | type[float], minimum: int = 0) -> int | float:
    try:
        value = kind(raw)
        if not math.isfinite(value) or value < minimum:
            raise ValueError(raw)  # nan, inf or a negative time or size: no limit means anything here
        return value
    except ValueError:
        # One bound for every bad value of a variable: "-3 is not >= 0" beside "0 must be at least 1" read as a
        # contradiction (a trial).
        what = f"a whole number >= {minimum}" if kind is int else f"a finite number >= {minimum}"
        field_name = "budget_ms" if name == "TAILOR_RECOMMEND_BUDGET_MS" else name.removeprefix(ENV_PREFIX).lower()
        default = getattr(ServiceConfig, field_name, None)
        unset = f", or unset it for {_said(default)}" if isinstance(default, int | float) else ""
        raise ServiceConfigError(f"{name}={raw!r} is not {what}: use such a number{unset}") from None


def _said(value: float) -> str:
    """A setting's number as a person writes it: 1048576, not 1.04858e+06 (`:g` of an int; a trial), and 10, not
    10.0."""
    return str(value) if isinstance(value, int) else f"{value:g}"

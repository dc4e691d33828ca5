"""The service's side of `ml.recommend`: one `Recommender` per process, pages under a deadline, segment pages.

`Recommender.recommend` is blocking (an online-store read, the champion's trees) and keeps its own latency budget
for the model path. The service runs it in a worker thread and bounds the *whole* call with a deadline: an online
store that hangs instead of failing would otherwise hold the request (the cached page reads the store too). Past
the deadline the page is the popular one, assembled from memory on the event loop, and says so.

The recommender is opened when the service starts and opened again, in the background, when the model path is
closed (the store was down at start, no champion yet) or a new champion is registered, so neither needs a restart.
Segment pages (not personalized, cacheable at the edge) are built here from the recommender's popular lists: a thin
adapter over `ml.recommend.rules.assemble_page`, since `ml.recommend` has no per-segment call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import numpy as np

from ml.recommend import PageRules, Recommendation, RecommendationInputError, Recommender, ServingConfig
from ml.recommend.rules import Ranked, assemble_page
from ml.recommend.serving import FRESH_HOURS, HOLDOUT_ARMS, HOLDOUT_EXPERIMENT, HOLDOUT_WEIGHTS, NO_CATALOG
from service.config import ServiceConfig
from service.metrics import Metrics, reason_kind
from service.segments import known_hint
from tailor.assignment import assign_variant
from tailor.settings import Settings

log = logging.getLogger(__name__)

Opener = Callable[[Settings, ServingConfig], Recommender]


class NotReady(RuntimeError):
    """No recommender yet (no history built, or it is still opening); the message says which and what to do."""


@dataclass(frozen=True)
class SegmentPage:
    """A non-personalized page for a segment (``all``, ``surface:home``, ``country:DE``)."""

    segment: str
    k: int
    items: list[Any]
    generated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "segment": self.segment,
            "k": self.k,
            "items": [asdict(item) for item in self.items],
            "served_by": "popular",
            "generated_at": self.generated_at.isoformat(),
            "schema_version": 1,
        }


def _open(settings: Settings, config: ServingConfig) -> Recommender:
    return Recommender.open(settings, config)


class RecommenderHost:
    """Holds the process's recommender and serves pages from it (see the module docstring)."""

    def __init__(self, settings: Settings, config: ServiceConfig, metrics: Metrics, opener: Opener = _open) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics
        self.opener = opener
        self.serving = ServingConfig(budget_ms=config.budget_ms, rules=PageRules.from_env())
        self.recommender: Recommender | None = None
        self.open_error: str | None = "the recommender is still opening"
        self.opened_at: float = 0.0
        self.signature: tuple[object, ...] | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(config.threads)
        #: Circuit breaker on the online store: set (to the failure) when a page's store read failed, cleared
        #: when a background probe reads the store again (`watch_store`).
        self.store_down: str | None = None
        self._prober = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailor-probe")
        self._probe: concurrent.futures.Future[str | None] | None = None

    # -- opening --------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open (or reopen) the recommender; blocking (seconds). A failure keeps the previous one, if any."""
        with self._lock:
            signature = _signature(self.settings)
            try:
                fresh = self.opener(self.settings, self.serving)
            except Exception as exc:  # no marts yet, a broken registry: say so on /readyz, keep serving what we have
                self.open_error = _why_not_open(exc)
                log.warning("recommender not opened: %s", self.open_error)
                return
            self.recommender, self.open_error, self.opened_at = fresh, None, time.monotonic()
            self.signature = signature
            if fresh.closed_reason is not None:  # the store did not answer while opening
                self.store_down = fresh.closed_reason
            closed = fresh.closed_reason or (None if fresh.model is not None else "no champion model yet")
            self.metrics.set_model(fresh.model_version, closed)

    def needs_reopen(self) -> bool:
        """Whether a background reopen could serve better: nothing open, the model path closed when the store
        did not answer at opening, or something new since (a champion, a `tailor run`'s marts and batch pages)."""
        current = self.recommender
        if current is None or current.closed_reason is not None:
            return True
        return _signature(self.settings) != self.signature

    async def keep_fresh(self) -> None:
        """Forever: every ``reload_check_s``, reopen in a thread when `needs_reopen` says so."""
        while True:
            await asyncio.sleep(self.config.reload_check_s)
            try:
                if await anyio.to_thread.run_sync(self.needs_reopen):
                    await anyio.to_thread.run_sync(self.open)
            except Exception:  # never let the refresher die; the next tick tries again
                log.exception("reopening the recommender failed")

    def current(self) -> Recommender:
        if self.recommender is None:
            raise NotReady(self.open_error or "the recommender is not open")
        if not len(self.recommender.catalog.ids):  # events came before any content file: nothing to page yet
            raise NotReady(NO_CATALOG)
        return self.recommender

    # -- pages ----------------------------------------------------------------------------------------------
    async def page(self, user_id: str, k: int, surface: str, now: datetime) -> Recommendation:
        """The user's page: `Recommender.recommend` in a worker thread, bounded by the deadline.

        Raises:
            NotReady: no recommender is open.
            RecommendationInputError: a malformed request (k above the catalog, a bad surface or id).
        """
        recommender = self.current()
        started = time.perf_counter()
        if self.store_down is not None:
            # Every path but popular reads the store, and a client that retries a dead server takes seconds to
            # fail: answer from memory until the probe sees the store again.
            why = f"the online store is down ({self.store_down}); popular items until it answers"
            result = self.popular_page(recommender, user_id, k, surface, now, started, why)
            self._count(result, surface)
            return result
        call = anyio.to_thread.run_sync(
            lambda: recommender.recommend(user_id, k, surface, now), limiter=self._limiter, abandon_on_cancel=True
        )
        try:
            result = await asyncio.wait_for(call, self.config.deadline_ms / 1000)
        except TimeoutError:
            why = f"the request took longer than the {self.config.deadline_ms:.0f} ms deadline"
            result = self.popular_page(recommender, user_id, k, surface, now, started, why)
        if self._count(result, surface) == "store_down" and self.store_down is None:
            self.store_down = (result.fallback_reason or "").removeprefix("the model path failed: ")[:200]
            log.warning("online store down, serving popular pages until it answers: %s", self.store_down)
            self.metrics.store_errors.labels("recommend").inc()
        return result

    def _count(self, result: Recommendation, surface: str) -> str:
        self.metrics.served.labels(result.served_by, surface).inc()
        kind = reason_kind(result.fallback_reason) if result.served_by != "model" else "none"
        if kind != "none":
            self.metrics.fallbacks.labels(kind).inc()
        return kind

    async def watch_store(self, every_s: float = 1.0, timeout_s: float = 1.0) -> None:
        """Forever: probe the online store every ``every_s`` (one user read, a millisecond when healthy) and keep
        the breaker open while it fails or takes longer than ``timeout_s``, closed once it answers again.

        Redis clients retry a dead server with backoff for seconds before raising, so a page would notice an
        outage only at its deadline; the probe notices within a second or two, and notices the recovery too.
        One probe runs at a time: one that is still stuck counts as "no answer".
        """
        while True:
            await asyncio.sleep(every_s)
            recommender = self.recommender
            if recommender is None:
                continue
            if self._probe is None or self._probe.done():
                self._probe = self._prober.submit(self._probe_store, recommender)
            try:
                problem = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._probe)), timeout_s)
            except TimeoutError:
                problem = f"no answer within {timeout_s:.0f} s"
            if problem is None and self.store_down is not None:
                log.warning("online store answers again: the model path is back")
                self.store_down = None
            elif problem is not None:
                self.metrics.store_errors.labels("probe").inc()
                if self.store_down is None:
                    log.warning("online store down, serving popular pages until it answers: %s", problem)
                    self.store_down = problem

    def popular_page(
        self, recommender: Recommender, user_id: str, k: int, surface: str, now: datetime, started: float, why: str
    ) -> Recommendation:
        """The popular page from memory (no store read): past the deadline, or while the store is down."""
        arm = assign_variant(HOLDOUT_EXPERIMENT, user_id, list(HOLDOUT_ARMS), list(HOLDOUT_WEIGHTS))
        items = recommender.assemble(user_id, k, surface, now, Ranked([], []), holdout=True, recent=set(), user={})
        return Recommendation(
            user_id=user_id,
            surface=surface,
            k=k,
            items=items,
            served_by="popular",
            fallback_reason=why,
            model_version=None,
            variants={HOLDOUT_EXPERIMENT: arm},
            holdout=arm == "holdout",
            latency_ms=(time.perf_counter() - started) * 1000,
            generated_at=now,
            policy="holdout" if arm == "holdout" else "personalized",
        )

    def segments(self) -> list[str]:
        """The segments with a popular list: ``all``, ``surface:<surface>``, ``country:<code>``."""
        return sorted(self.current().segment_popular)

    def segment_page(self, segment: str, k: int, now: datetime) -> SegmentPage:
        """Popular items of a segment, then editorial picks, under the page rules; no exploration (the same page
        for everyone in the segment, so an edge cache may hold it).

        Raises:
            NotReady: no recommender is open.
            LookupError: an unknown segment (the message lists the known ones).
            RecommendationInputError: k above the catalog.
        """
        recommender = self.current()
        popular = recommender.segment_popular.get(segment)
        if popular is None:
            known = ", ".join(sorted(recommender.segment_popular)) or "none yet"
            same = known_hint(segment, recommender.segment_popular)
            hint = f"did you mean {same!r}? " if same else ""
            raise LookupError(f"unknown segment {segment!r}: {hint}use one of {known}")
        catalog = recommender.catalog
        if k > len(catalog.ids):
            raise RecommendationInputError(
                f"k={k} is more than the {len(catalog.ids)} items in the catalog: ask for at most that many"
            )
        out_now = catalog.newest_published <= now.timestamp()
        newest = catalog.newest[out_now].tolist()
        fresh_mask = out_now & (now.timestamp() - catalog.newest_published <= FRESH_HOURS * 3600)
        fresh = catalog.newest[fresh_mask].tolist()
        kind, _, value = segment.partition(":")
        where = f"in {value}" if kind == "country" else f"on {value}" if kind == "surface" else "overall"
        reasons = {
            "personalized": lambda item, cat: "picked for you",
            "explore": lambda item, cat: f"new in {cat}" if cat else "new",
            "popular": lambda item, cat: f"popular {where}",
            "editorial": lambda item, cat: f"editor's pick: new in {cat}" if cat else "editor's pick",
        }
        items = assemble_page(
            k,
            Ranked([], []),
            popular,
            Ranked(fresh, [0.0] * len(fresh)),
            Ranked(newest, [0.0] * len(newest)),
            set(),
            catalog.category,
            recommender.config.rules,
            np.random.default_rng(0),
            reasons,
            holdout=True,
        )
        return SegmentPage(segment, k, items, now)

    # -- readiness ------------------------------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        """Checks for /readyz: recommender open, champion loaded, online store answering (one user read)."""
        checks: dict[str, Any] = {}
        recommender = self.recommender
        empty = recommender is not None and not len(recommender.catalog.ids)
        checks["recommender"] = {
            "ok": recommender is not None and not empty,
            "detail": NO_CATALOG if empty else self.open_error or "open",
        }
        if recommender is None:
            checks["model"] = {"ok": False, "detail": "no recommender"}
            checks["online_store"] = {"ok": False, "detail": "no recommender"}
            return checks
        model_ok = recommender.model is not None
        checks["model"] = {
            "ok": model_ok,
            "version": recommender.model_version,
            "detail": "champion loaded" if model_ok else (recommender.closed_reason or "no champion model yet"),
        }
        # What the store watcher saw last (it probes every second): never wait here for a store that hangs.
        if self.store_down is not None:
            checks["online_store"] = {"ok": False, "detail": f"down: {self.store_down}"}
        else:
            checks["online_store"] = {"ok": True, "detail": "answered the last probe"}
        return checks

    @staticmethod
    def _probe_store(recommender: Recommender) -> str | None:
        """One user-feature read from the online store: None when it answers, else what failed."""
        try:
            refs = recommender.user_refs or ["recent_activity:clicked_categories_30m"]
            recommender.store.get_online_features(features=refs[:1], entity_rows=[{"user_id": "readyz"}]).to_dict()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None


def _signature(settings: Settings) -> tuple[object, ...]:
    """What a reopen would load differently: the champion's version and the marts' modification times."""
    stamps = []
    for name in ("batch_recommendations.parquet", "dim_content.parquet", "fct_impressions.parquet"):
        path = settings.marts_dir / name
        stamps.append(path.stat().st_mtime_ns if path.exists() else None)
    return (_champion_version(settings), *stamps)


def _champion_version(settings: Settings) -> str | None:
    """The registry's champion version now (None when there is none or the registry cannot be read)."""
    try:
        from ml.registry import CHAMPION, Registry

        champion = Registry(settings.models_dir).alias(CHAMPION)
    except Exception:
        return None
    return None if champion is None else str(champion.version)


def _why_not_open(exc: Exception) -> str:
    from ml.history import MissingMartError

    if isinstance(exc, MissingMartError):
        # The error already says to build the warehouse; only the demo shortcut is added.
        return f"{exc}; `make demo` builds a demo history"
    return f"the recommender could not be opened: {type(exc).__name__}: {exc}"[:500]


def utc_now() -> datetime:
    return datetime.now(UTC)

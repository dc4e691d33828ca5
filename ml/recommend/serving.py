"""`recommend`: one page for one user, within a latency budget, never empty.

The model path: the user's features from the online store (one row per request: their engagement, category
taste and the streamed ``recent_activity``), every item's features held in memory (read from the online store
when the recommender opens, refreshed by `Recommender.refresh_items`), the request-time features computed
vectorised (the same formulas as the `ranking_context` on-demand view), the candidates of every generator, the
champion's score as if each were shown at the top, then the business rules (`ml.recommend.rules`). Scoring
hundreds of candidates costs one online read, not one per candidate (a Feast row read costs ~1 ms).

Everything that does not depend on the request is prepared when the recommender opens: the candidate generators
as arrays (`ml.candidates.online`), the champion's trees (`ml.ranker.model.CompiledRanker`) and the item half of
its input matrix. A request then fills the user's and the request-time columns of that matrix and runs the trees:
no frame, no per-call validation, the same scores as `RankerModel.relevance` on `Recommender.feature_rows`.

When the model path cannot answer within the budget (or there is no champion, or the store fails), the page comes
from the cached batch list (written after each training run), then from popular items in the user's country (or on
the surface). Unknown and new users get that cold-start page. The result says which path served and why.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import math
import os
import pickle
import threading
import time
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from ml.candidates.online import OnlineCandidates
from ml.candidates.union import SCORE_COLUMNS, CandidateSet
from ml.history import consumed_by_user, history_end, load_content, recent_item_counts
from ml.ranker.model import RANKING_POSITION, CompiledRanker, RankerModel, UnsupportedModelError
from ml.recommend.result import Recommendation, RecommendedItem
from ml.recommend.rules import PageRules, Ranked, assemble_page
from tailor.assignment import assign_variant
from tailor.contract import user_id_problem
from tailor.contract.spec import TIMESTAMP_YEARS
from tailor.settings import Settings

log = logging.getLogger(__name__)

#: Threads that run model paths; more concurrent requests than this take their fallback at once.
MODEL_WORKERS = 2
#: The fallback reason when every model-path worker is busy with earlier requests.
MODEL_PATH_BUSY = "the model path is busy: every model worker is still on earlier requests (load shedding)"
HOLDOUT_EXPERIMENT = "personalization_holdout"
HOLDOUT_ARMS = ("holdout", "personalized")
HOLDOUT_WEIGHTS = (0.1, 0.9)


def holdout_arm(user_id: str) -> str:
    """The user's arm of the personalization holdout, ``holdout`` (the non-personalized page) or ``personalized``:
    a deterministic hash of the id (`tailor.assignment.assign_variant`), the same in every process."""
    return assign_variant(HOLDOUT_EXPERIMENT, user_id, list(HOLDOUT_ARMS), list(HOLDOUT_WEIGHTS))


CANDIDATES_FILE = "candidates.pkl"
BATCH_FILE = "batch_recommendations.parquet"
CACHED_PARTS = ("content_ids", "scores", "slot_kinds", "reasons", "propensities")
#: Items on each batch page (`ml.recommend.batch`), the most a cached page can serve.
CACHED_PAGE_K = 10
#: The fallback reason of a user the history knows nothing of (`Recommender.has_history`).
COLD_START = "cold start: no click or view by this user yet"
SURFACES = ("home", "feed")
#: Items published within this many hours are "fresh": the exploration pool and the editorial fill.
FRESH_HOURS = 72.0
#: Multiplier on the score of items in a category the user clicked in the last 30 minutes (the streamed
#: `recent_activity` view): a click seconds ago changes the next page.
SESSION_BOOST = 1.5

#: Inputs of the on-demand `ranking_context` view, read with the stored views, and the streamed recent activity.
USER_EXTRA = ("user_category_affinity:affinity_categories", "user_category_affinity:affinity_shares")
ITEM_EXTRA = ("content_profile:published_at", "content_profile:category")
RECENT = ("recent_activity:clicked_categories_30m", "recent_activity:clicked_items_30m")
#: The streamed items a user clicked in the last 30 minutes: left off every page, as the marts' consumed items are
#: (the marts know a click only after the next `tailor run`).
STREAMED_CLICKS = "clicked_items_30m"
#: The streamed view whose row is a window ending at its event time (`feature_repo/recent_activity.py`); the
#: window's length is the view's TTL, read from the registry (`recent_window`).
RECENT_VIEW = "recent_activity"
#: A streamed row may be stamped this much after the page's moment and still count: the consumer stamps rows with
#: its own clock when it writes them, a little after the events, and a request can start just before a write.
RECENT_CLOCK_SKEW = timedelta(minutes=5)
#: User features that are lists (inputs of request-time features), not model columns.
USER_LISTS = ("affinity_categories", "affinity_shares", "clicked_categories_30m", STREAMED_CLICKS)
#: Features computed per request (the `ranking_context` view's), see `request_features`.
REQUEST_TIME = ("content_age_hours", "category_affinity")
#: Smoothing of the cold-start pages' CTR: this many impressions at the segment's own rate (see _ranked_by_ctr).
POPULAR_PRIOR_IMPRESSIONS = 100
#: A country gets its own cold-start page from this many clicks in the window.
COUNTRY_MIN_CLICKS = 20
POPULAR_DAYS = 7


def service_features(store: Any, service: str) -> tuple[list[str], list[str]]:
    """The stored features of a feature service, split by entity: (user refs, item refs) as ``view:feature``."""
    user_refs: list[str] = []
    item_refs: list[str] = []
    for projection in store.get_feature_service(service).feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except Exception:  # an on-demand view: computed here from its sources (see feature_rows)
            continue
        refs = [f"{projection.name}:{f.name}" for f in projection.features]
        (user_refs if "user_id" in view.join_keys else item_refs).extend(refs)
    return (
        list(dict.fromkeys([*user_refs, *USER_EXTRA, *RECENT])),
        list(dict.fromkeys([*item_refs, *ITEM_EXTRA])),
    )


def recent_window(store: Any) -> timedelta:
    """How far back a `recent_activity` row reaches: the view's TTL in the registry (30 minutes in
    feature_repo/recent_activity.py), so a change to the view changes what pages count as recent.

    Raises:
        ValueError: the view has no TTL (every row would count forever).
    """
    ttl = store.get_feature_view(RECENT_VIEW).ttl
    if not ttl:
        raise ValueError(
            f"the feature view {RECENT_VIEW!r} has no TTL: its rows must describe a window ending at their time"
        )
    return ttl


#: What a page says on a home whose events came before any content file: there is nothing to recommend yet.
NO_CATALOG = (
    "no content catalog yet: no content file describes an item, so there is nothing to recommend; ingest one "
    "(docs/contract/dimensions.md), then `tailor run`"
)


class NoCatalogError(LookupError):
    """The recommender has no item to recommend: no content file was ingested yet (`NO_CATALOG`)."""


class RecommendationInputError(ValueError):
    """A request `recommend` refuses: a malformed user id, k out of range, an unknown surface."""


@dataclass
class ServingConfig:
    """Latency budget and the page's rules (environment: TAILOR_RECOMMEND_BUDGET_MS, TAILOR_RECOMMEND_*)."""

    budget_ms: float = 50.0
    rules: PageRules = field(default_factory=PageRules)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        env = os.environ if env is None else env
        raw = env.get("TAILOR_RECOMMEND_BUDGET_MS")
        try:
            budget = float(raw) if raw is not None and raw.strip() else 50.0
        except ValueError:
            budget = math.nan
        if not (math.isfinite(budget) and budget > 0):
            raise ValueError(
                f"TAILOR_RECOMMEND_BUDGET_MS={raw!r} is not a positive number of milliseconds: "
                "set one (e.g. 50), or unset it for 50"
            )
        return cls(budget, PageRules.from_env(env))


@dataclass
class Catalog:
    """Every item with its features (from the online store) and what the rules need, aligned by position."""

    ids: np.ndarray
    features: pd.DataFrame  # one row per item, the item columns of the feature service
    category: dict[str, str]
    published: np.ndarray  # epoch seconds (float), NaN when unknown
    columns: dict[str, np.ndarray] = field(init=False)  # the features as arrays (fast row selection)
    newest: np.ndarray = field(init=False)  # item ids, newest first (unknown publication last)
    newest_published: np.ndarray = field(init=False)
    position: dict[str, int] = field(init=False)
    category_names: list[Any] = field(init=False)  # the distinct categories of the features' category column
    category_code: np.ndarray = field(init=False)  # per item: index in category_names, -1 when it has none

    def __post_init__(self) -> None:
        self.columns = {name: self.features[name].to_numpy() for name in self.features.columns}
        order = np.argsort(-np.nan_to_num(self.published, nan=-np.inf), kind="stable")
        self.newest = self.ids[order]
        self.newest_published = self.published[order]
        self.position = {str(i): n for n, i in enumerate(self.ids)}
        codes: dict[Any, int] = {}
        raw = self.columns.get("category", np.full(len(self.ids), None, dtype=object))
        self.category_code = np.array(
            [-1 if c is None else codes.setdefault(c, len(codes)) for c in raw], dtype=np.int64
        )
        self.category_names = list(codes)


def request_features(catalog: Catalog, index: np.ndarray, user: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The request-time features of the items at catalog positions ``index`` for one user at ``now``: the
    `ranking_context` on-demand view's formulas, vectorised.

    content_age_hours: hours since publication (NaN when unknown); category_affinity: the user's share of clicks
    in the item's category (0 for a category they never clicked, NaN for an item without category or a user
    without affinity).
    """
    # Feast carries the request time as a UnixTimestamp: whole seconds. Floor it the same way, so the served
    # feature equals what Feast's ranking_context would compute for the same request.
    age = (math.floor(now.timestamp()) - catalog.published[index]) / 3600.0
    by_code = affinity_by_code(catalog, user)
    category_affinity = by_code[catalog.category_code[index]] if by_code is not None else np.full(len(index), np.nan)
    return {"content_age_hours": age, "category_affinity": category_affinity}


def affinity_by_code(catalog: Catalog, user: Mapping[str, Any]) -> np.ndarray | None:
    """The user's category_affinity per category code ((len(catalog.category_names) + 1,) float64, the last entry
    NaN for items without category: code -1), None for a user without affinity (every item NaN)."""
    categories, shares = user.get("affinity_categories"), user.get("affinity_shares")
    if not categories:
        return None
    affinity = dict(zip(categories, shares or [], strict=False))
    return np.array([*(affinity.get(c, 0.0) for c in catalog.category_names), np.nan], dtype=float)


class _Inputs:
    """The champion's input matrix for one request, with everything that does not depend on the request done once:
    the column layout in the trees' order and every item's encoded features (`CompiledRanker.encode`).

    Each column comes from the same place `Recommender.feature_rows` takes it (and with the same precedence when
    names collide): the candidate scores, position, surface, the request-time features, the user's row, the item's
    row. Raises LookupError when a column has none of these sources (the caller then scores through frames).
    """

    def __init__(self, scorer: CompiledRanker, catalog: Catalog, user_names: list[str]) -> None:
        self.scorer = scorer
        self.width = len(scorer.columns)
        users = [n for n in user_names if n not in USER_LISTS]
        self.score_pos: list[int] = []
        self.score_src: list[int] = []
        self.request_pos: dict[str, int] = {}
        self.user_pos: list[tuple[int, str]] = []
        item_pos: list[int] = []
        item_names: list[str] = []
        self.surface_pos = scorer.index.get("surface")
        self.position_pos = scorer.index.get("position")
        for n, column in enumerate(scorer.columns):
            if column in SCORE_COLUMNS:
                self.score_pos.append(n)
                self.score_src.append(SCORE_COLUMNS.index(column))
            elif column in ("position", "surface"):
                continue
            elif column in REQUEST_TIME:
                self.request_pos[column] = n
            elif column in users:
                self.user_pos.append((n, column))
            elif column in catalog.columns:
                item_pos.append(n)
                item_names.append(column)
            else:
                raise LookupError(f"no source for the model's feature {column!r}")
        self.item_pos = np.array(item_pos, dtype=np.int64)
        block = np.empty((len(catalog.ids), len(item_names)))
        for j, column in enumerate(item_names):
            block[:, j] = scorer.encode(column, catalog.columns[column])
        self.items = block
        # The item half in full-width rows, so a block of many users' rows starts as one row take (`block`).
        self.item_rows = np.zeros((len(catalog.ids), self.width))
        self.item_rows[:, self.item_pos] = block

    def matrix(
        self,
        catalog: Catalog,
        index: np.ndarray,
        scores: np.ndarray,
        user: Mapping[str, Any],
        surface: str,
        now: datetime,
    ) -> np.ndarray:
        """(len(index), width) float64: the rows `feature_rows` builds, encoded, in the trees' column order."""
        X = np.empty((len(index), self.width))
        X[:, self.item_pos] = self.items[index]
        for n, column in self.user_pos:
            X[:, n] = self.scorer.encode_value(column, user.get(column))
        if self.request_pos:
            computed = request_features(catalog, index, user, now)
            for column, n in self.request_pos.items():
                X[:, n] = computed[column]
        if self.surface_pos is not None:
            X[:, self.surface_pos] = self.scorer.encode_value("surface", surface)
        if self.position_pos is not None:
            X[:, self.position_pos] = float(RANKING_POSITION)
        X[:, self.score_pos] = scores[:, self.score_src]
        return X

    def block(
        self,
        catalog: Catalog,
        index: np.ndarray,
        scores: np.ndarray,
        users: Sequence[Mapping[str, Any]],
        lengths: np.ndarray,
        now: datetime,
    ) -> np.ndarray:
        """`matrix` for several users at once: user n's rows are the next ``lengths[n]`` rows of ``index`` and
        ``scores``; the same values row for row. The surface column is left for the caller to set."""
        unknown = set(self.request_pos) - {"content_age_hours", "category_affinity"}
        if unknown:
            raise LookupError(f"no block form of the request-time feature(s) {sorted(unknown)}")
        X = self.item_rows[index]
        for n, column in self.user_pos:
            X[:, n] = np.repeat([self.scorer.encode_value(column, user.get(column)) for user in users], lengths)
        if "content_age_hours" in self.request_pos:
            X[:, self.request_pos["content_age_hours"]] = (
                math.floor(now.timestamp()) - catalog.published[index]
            ) / 3600.0
        if "category_affinity" in self.request_pos:
            missing = np.full(len(catalog.category_names) + 1, np.nan)
            table = np.array([_or(affinity_by_code(catalog, user), missing) for user in users]).reshape(
                len(users), len(missing)
            )
            owner = np.repeat(np.arange(len(users)), lengths)
            X[:, self.request_pos["category_affinity"]] = table[owner, catalog.category_code[index]]
        if self.position_pos is not None:
            X[:, self.position_pos] = float(RANKING_POSITION)
        X[:, self.score_pos] = scores[:, self.score_src]
        return X


def _or(value: np.ndarray | None, default: np.ndarray) -> np.ndarray:
    return default if value is None else value


class Recommender:
    """Everything `recommend` needs, loaded once: open it per process and reuse it for every request."""

    def __init__(
        self,
        settings: Settings,
        store: Any,
        model: RankerModel | None,
        model_version: str | None,
        candidates: CandidateSet | None,
        catalog: Catalog,
        consumed: dict[str, set[str]],
        segment_popular: dict[str, Ranked],
        country_of: dict[str, str],
        config: ServingConfig,
    ) -> None:
        self.settings = settings
        self.store = store
        self._model: RankerModel | None = None
        self._candidates: CandidateSet | None = None
        self._online: OnlineCandidates | None = None
        self._positions = np.empty(0, dtype=np.int64)  # catalog position of each of _online's items (-1: none)
        self._scorer: CompiledRanker | None = None
        self._inputs: _Inputs | None = None
        self.model_version = model_version
        self._current_catalog = catalog
        self.user_refs: list[str] = []
        self.model = model
        self.candidates = candidates
        self.consumed = consumed
        self.segment_popular = segment_popular
        self.country_of = country_of
        self.config = config
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=MODEL_WORKERS, thread_name_prefix="tailor-recommend"
        )
        # A model path past its budget cannot be cancelled once it runs: it finishes in the background. Without a
        # limit, work queues behind it under load and every later page misses its budget (measured by the
        # service's benchmark: 2,996 of 3,000 pages cached at concurrency 4, minutes to drain). A request that
        # finds every worker busy takes its fallback at once instead (load shedding).
        self._free = threading.BoundedSemaphore(MODEL_WORKERS)
        # One request scores a few hundred rows: OpenMP's thread start and sync would cost more than the trees
        # (measured: 14 ms per tree on a loaded 2-core machine, against microseconds on one thread).
        self._threads = ThreadpoolController()
        #: Why the model path is closed for every request (None: open, or no champion yet).
        self.closed_reason: str | None = None
        self.item_refs: list[str] = []
        #: The streamed view's window (its TTL, read by `open`); rows older than this say nothing.
        self.recent_window = timedelta(0)
        #: Test hook: called with the model's input rows (one per candidate) before scoring, e.g. to slow the
        #: model path down or count the candidates.
        self.before_scoring: Callable[[Sized], None] | None = None

    # -- what is prepared once ------------------------------------------------------------------------------
    @property
    def model(self) -> RankerModel | None:
        """The champion (None: no model path). Setting it prepares its compiled scorer."""
        return self._model

    @model.setter
    def model(self, model: RankerModel | None) -> None:
        self._model = model
        self._scorer = None
        if model is not None:
            try:
                self._scorer = model.compile()
            except UnsupportedModelError as exc:  # still served, through RankerModel.relevance on frames
                log.warning("the champion is scored through frames: %s", exc)
        self._prepare_inputs()

    @property
    def catalog(self) -> Catalog:
        """Every item and its features. Setting it prepares the item half of the model's input again."""
        return self._current_catalog

    @catalog.setter
    def catalog(self, catalog: Catalog) -> None:
        self._current_catalog = catalog
        self._prepare_positions()
        self._prepare_inputs()

    @property
    def candidates(self) -> CandidateSet | None:
        """The fitted candidate generators. Setting them prepares their one-user form (`OnlineCandidates`)."""
        return self._candidates

    @candidates.setter
    def candidates(self, candidates: CandidateSet | None) -> None:
        self._candidates = candidates
        self._online = OnlineCandidates(candidates) if candidates is not None else None
        self._prepare_positions()

    def _prepare_positions(self) -> None:
        if self._online is not None:
            self._positions = self._online.positions(self.catalog.position)

    def _prepare_inputs(self) -> None:
        """The item half of the champion's input (again after the catalog or the user features change)."""
        self._inputs = None
        if self._scorer is None or not self.user_refs:
            return
        try:
            self._inputs = _Inputs(self._scorer, self.catalog, [ref.split(":")[-1] for ref in self.user_refs])
        except LookupError as exc:  # a feature the request cannot fill: frames raise the clear error
            log.warning("the champion is scored through frames: %s", exc)

    # -- opening ----------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, config: ServingConfig | None = None, store: Any = None) -> Recommender:
        """Load the champion, the candidate generators, the catalog and the item features.

        Whatever is missing (no champion yet, no candidates file, an online store that does not answer) only
        closes the model path: `recommend` still answers from the cached list or popular items.
        """
        from ml.features import open_store
        from ml.registry import CHAMPION, Registry

        config = config or ServingConfig.from_env()
        store = store if store is not None else open_store(settings)
        model, version = None, None
        try:
            registry = Registry(settings.models_dir)
            champion = registry.alias(CHAMPION)
            if champion is not None:
                model, version = registry.load(champion.version), str(champion.version)
        except Exception as exc:  # a registry that cannot be read closes the model path, not the service
            log.warning("no champion model: %s", exc)
        candidates = None
        path = settings.models_dir / CANDIDATES_FILE
        if path.exists():
            with path.open("rb") as handle:
                candidates = pickle.load(handle)
        # Aggregates over the published marts, not the history itself: memory grows with users x consumed items.
        content = load_content(settings.marts_dir)
        end = history_end(settings.marts_dir)
        closed: str | None = None
        window = timedelta(0)
        user_refs: list[str] = []
        item_refs: list[str] = []
        try:
            user_refs, item_refs = service_features(store, "ranker_v1")
            window = recent_window(store)
            catalog = _catalog(store, content, item_refs)
        except Exception as exc:  # the online store is down: serve popular pages until it answers
            from ml.features.repo import registry_problem

            mismatch = registry_problem(settings)
            log.warning("item features unavailable, the model path is closed: %s", mismatch or exc)
            catalog = _catalog_without_features(content)
            closed = f"the feature store did not answer when the recommender opened ({type(exc).__name__})"
            model, closed = None, f"{closed}: {mismatch}" if mismatch else closed
        del content
        consumed = consumed_by_user(settings.marts_dir, canonical={i: i for i in catalog.position})
        users = _users(settings)
        segment_popular = _segment_popularity(settings.marts_dir, end)
        country_of = dict(zip(users["user_id"], users["country"], strict=True)) if len(users) else {}
        recommender = cls(
            settings, store, None, version, candidates, catalog, consumed, segment_popular, country_of, config
        )
        recommender.user_refs, recommender.item_refs, recommender.recent_window = user_refs, item_refs, window
        recommender.model = model  # after the feature refs: it prepares the item half of the model's input
        recommender.closed_reason = closed
        return recommender

    def refresh_items(self) -> None:
        """Read every item's features from the online store again (after it was loaded)."""
        self.catalog = _catalog(self.store, pd.DataFrame({"content_id": self.catalog.ids}), self.item_refs)

    # -- serving ----------------------------------------------------------------------------------------------
    def recommend(
        self, user_id: str, k: int = 10, surface: str = "home", now: datetime | None = None
    ) -> Recommendation:
        """One page; see the module docstring.

        Raises:
            RecommendationInputError: a malformed request (k, surface, user id).
            NoCatalogError: no content file was ingested yet: nothing to recommend.
        """
        started = time.perf_counter()
        user_id = _checked_user(user_id)
        k = self._checked_k(k)
        if surface not in SURFACES:
            raise RecommendationInputError(f"unknown surface {surface!r}: use one of {', '.join(SURFACES)}")
        moment = _utc(now)
        arm = holdout_arm(user_id)
        holdout = arm == "holdout"
        variants = {HOLDOUT_EXPERIMENT: arm}
        items: list[RecommendedItem] | None = None
        served, reason = "popular", None
        if holdout:
            reason = "holdout: this user gets the non-personalized page"
        elif self.model is None or self.candidates is None:
            reason = (
                (self.closed_reason or "no champion model yet")
                if self.model is None
                else "no candidate generators fitted yet"
            )
        elif not self.has_history(user_id):
            reason = COLD_START
        elif not self._free.acquire(blocking=False):
            reason = MODEL_PATH_BUSY
        else:
            budget = self.config.budget_ms / 1000
            future = self._pool.submit(self._model_page, user_id, k, surface, moment)
            future.add_done_callback(lambda _: self._free.release())
            try:
                items = future.result(timeout=max(budget - (time.perf_counter() - started), 0.0))
                served = "model"
            except concurrent.futures.TimeoutError:
                reason = f"the model path took longer than the {self.config.budget_ms:.0f} ms budget"
            except Exception as exc:  # the online store down, a broken model: fall back, and say why
                reason = f"the model path failed: {type(exc).__name__}: {exc}"[:300]
        cached_version: str | None = None
        cached_emptied = False
        # A cold-start user gets the popular page (the batch's page for them knew no more about them either).
        if items is None and not holdout and reason != COLD_START:
            items, cached_version = self._cached_page(user_id, k, surface, moment)
            if items:
                served = "cached"
            cached_emptied = items == []
        if not items:
            items = self._popular_page(user_id, k, surface, moment, holdout)
            served = "popular"
        return Recommendation(
            user_id=user_id,
            surface=surface,
            k=k,
            items=items,
            served_by=served,  # type: ignore[arg-type]
            fallback_reason=reason if served != "model" else None,
            model_version={"model": self.model_version, "cached": cached_version}.get(served),
            variants=variants,
            holdout=holdout,
            latency_ms=(time.perf_counter() - started) * 1000,
            generated_at=moment,
            policy="holdout" if holdout else "personalized",
            notes=self._page_notes(items, k, served, moment, cached_emptied),
        )

    def _page_notes(
        self, items: list[RecommendedItem], k: int, served: str, moment: datetime, cached_emptied: bool = False
    ) -> list[str]:
        """Why a page differs from what its caller may expect: fewer than k items, no explore slot, or popular
        items where a cached page was (``cached_emptied``: none of its items could be shown at ``moment``)."""
        notes = []
        if cached_emptied:
            notes.append(
                f"popular items: the cached page for this user had none left to show at "
                f"{moment.isoformat(timespec='seconds')} (each consumed since, or published after that time)"
            )
        rules = self.config.rules
        if len(items) < k and served == "cached":
            notes.append(
                f"{len(items)} of the {k} items asked for: the cached page holds no more (the batch writes "
                f"pages of {CACHED_PAGE_K}, less what the user consumed since or what was not yet published)"
            )
        elif len(items) < k:
            notes.append(
                f"{len(items)} of the {k} items asked for: the page rules allow no more (at most "
                f"{rules.max_per_category} per category, never an item the user already consumed)"
            )
        explore_expected = served == "model" and rules.explore_slots > 0 and len(items) >= rules.explore_position
        if explore_expected and not any(i.slot_kind == "explore" for i in items):
            notes.append(
                f"no explore slot: no eligible item was published in the {FRESH_HOURS:g} hours before "
                f"{moment.isoformat(timespec='seconds')} (for a history that ended earlier, ask at its end: "
                "`tailor recommend --at`, or now= in Python)"
            )
        return notes

    def _checked_k(self, k: int) -> int:
        if not len(self.catalog.ids):
            raise NoCatalogError(NO_CATALOG)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
            raise RecommendationInputError(f"k must be a positive integer (items on the page), got {k!r}")
        if k > len(self.catalog.ids):
            raise RecommendationInputError(
                f"k={k} is more than the {len(self.catalog.ids)} items in the catalog: ask for at most that many"
            )
        return int(k)

    # -- the model path ---------------------------------------------------------------------------------------
    def _model_page(self, user_id: str, k: int, surface: str, now: datetime) -> list[RecommendedItem]:
        assert self.model is not None and self._online is not None
        user = self._user_features(user_id, now)
        index, ids, scores = self.model_scores(user_id, user, surface, now)
        recent = set(user.get("clicked_categories_30m") or [])
        if recent:
            codes = [n for n, c in enumerate(self.catalog.category_names) if c in recent]
            boost = np.where(np.isin(self.catalog.category_code[index], codes), SESSION_BOOST, 1.0)
            scores = scores * boost
        order = np.argsort(-scores, kind="stable")
        ranked = Ranked(ids[order].tolist(), scores[order].tolist())
        return self.assemble(user_id, k, surface, now, ranked, holdout=False, recent=recent, user=user)

    def model_scores(
        self, user_id: str, user: Mapping[str, Any], surface: str, now: datetime
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The champion's relevance of each of the user's candidates (before the session boost and the rules).

        Returns:
            (catalog positions, content ids, scores) of the candidates in the catalog, in the candidate stage's
            order: the same scores as ``model.relevance(feature_rows(user, candidates.candidates([user_id]), ...))``.

        Raises:
            LookupError: no candidate for this user.
        """
        assert self.model is not None and self._online is not None
        proposal = self._online.propose(user_id)
        index = self._positions[proposal.codes]
        known = index >= 0
        if not known.any():
            raise LookupError("no candidates for this user")
        index, ids = index[known], proposal.content_ids[known]
        if self._inputs is None or self._scorer is None:  # a model the compiled path cannot read: frames
            rows = self.feature_rows(user, proposal.frame(), surface, now)
            if self.before_scoring is not None:
                self.before_scoring(rows)
            with self._threads.limit(limits=1, user_api="openmp"):
                return index, ids, self.model.relevance(rows)
        X = self._inputs.matrix(self.catalog, index, proposal.scores[known], user, surface, now)
        if self.before_scoring is not None:
            self.before_scoring(X)
        return index, ids, self._scorer.predict(X)

    @property
    def compiled(self) -> bool:
        """Whether pages are scored through the compiled trees (False: frames, `feature_rows` and `relevance`)."""
        return self._inputs is not None and self._scorer is not None and self._online is not None

    def rank_users(
        self,
        user_ids: Sequence[str],
        users: Mapping[str, Mapping[str, Any]],
        surfaces: Sequence[str],
        now: datetime,
        threads: int = 1,
    ) -> dict[tuple[str, str], Ranked]:
        """Each user's ranking on each surface, for many users at once (the batch pages): the candidates of
        `OnlineCandidates`, one input matrix for all of them (`_Inputs.block`) scored once per surface by the
        compiled trees on ``threads`` threads (trees that never split on the surface run once for every
        surface: `CompiledRanker.predict_variants`), then the session boost of the user's ``clicked_categories_30m``.

        Args:
            users: user id -> their features (the user's online row), for every id in ``user_ids``.

        Returns:
            (user id, surface) -> `Ranked`, best first: the ranking `batch_pages` builds from
            ``model.relevance(feature_rows(...))`` for the same candidates and moment. Users without a candidate in
            the catalog are left out.

        Raises:
            LookupError: the compiled path is not prepared (`compiled` is False): score through frames.
        """
        if self._inputs is None or self._scorer is None or self._online is None:
            raise LookupError("the champion is not compiled: rank through feature_rows and relevance")
        kept: list[str] = []
        indices: list[np.ndarray] = []
        candidate_scores: list[np.ndarray] = []
        for user_id in user_ids:
            proposal = self._online.propose(user_id)
            index = self._positions[proposal.codes]
            known = index >= 0
            if known.any():
                kept.append(user_id)
                indices.append(index[known])
                candidate_scores.append(proposal.scores[known])
        if not kept:
            return {}
        lengths = np.array([len(i) for i in indices], dtype=np.int64)
        index = np.concatenate(indices)
        X = self._inputs.block(
            self.catalog, index, np.concatenate(candidate_scores), [users[u] for u in kept], lengths, now
        )
        ids = self.catalog.ids[index]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        boosted = [self._boost_codes(users[u]) for u in kept]
        if self._inputs.surface_pos is None:  # a model without the surface scores every surface alike
            per_surface = [self._scorer.predict(X, threads=threads)] * len(surfaces)
        else:
            encoded = [self._scorer.encode_value("surface", surface) for surface in surfaces]
            per_surface = self._scorer.predict_variants(X, "surface", encoded, threads=threads)
        out: dict[tuple[str, str], Ranked] = {}
        for surface, scored in zip(surfaces, per_surface, strict=True):
            for n, user_id in enumerate(kept):
                start, stop = bounds[n], bounds[n + 1]
                scores = scored[start:stop]
                codes = boosted[n]
                if codes is not None:
                    scores = scores * np.where(
                        np.isin(self.catalog.category_code[index[start:stop]], codes), SESSION_BOOST, 1.0
                    )
                order = np.argsort(-scores, kind="stable")
                out[(user_id, surface)] = Ranked(ids[start:stop][order].tolist(), scores[order].tolist())
        return out

    def _boost_codes(self, user: Mapping[str, Any]) -> list[int] | None:
        """The category codes the session boost applies to (the categories clicked in the last 30 minutes)."""
        clicked = user.get("clicked_categories_30m")
        recent = {str(c) for c in clicked} if isinstance(clicked, list) else set()
        if not recent:
            return None
        return [n for n, c in enumerate(self.catalog.category_names) if c in recent]

    def feature_rows(
        self, user: Mapping[str, Any], proposed: pd.DataFrame, surface: str, now: datetime
    ) -> pd.DataFrame:
        """The ranker's input rows for one user's candidates: item features from memory, the user's features,
        the request-time features (as the `ranking_context` view computes them), surface and candidate scores.
        Candidates not in the catalog are left out."""
        index = pd.Index(self.catalog.ids).get_indexer(proposed["content_id"])
        known = index >= 0
        proposed = proposed.loc[known].reset_index(drop=True)
        index = index[known]
        n = len(index)
        columns: dict[str, Any] = {name: values[index] for name, values in self.catalog.columns.items()}
        for name, value in user.items():
            if name not in USER_LISTS:
                columns[name] = np.full(
                    n, np.nan if value is None else value, dtype=object if isinstance(value, str) else float
                )
        columns.update(request_features(self.catalog, index, user, now))
        columns["surface"] = np.full(n, surface, dtype=object)
        columns["position"] = np.ones(n)
        columns["user_id"] = proposed["user_id"].to_numpy()
        columns["content_id"] = proposed["content_id"].to_numpy()
        for column in SCORE_COLUMNS:
            columns[column] = proposed[column].to_numpy()
        return pd.DataFrame(columns)

    def _user_features(self, user_id: str, now: datetime) -> dict[str, Any]:
        return user_features_at(self.store, self.user_refs, [user_id], now, self.recent_window)[user_id]

    # -- fallbacks --------------------------------------------------------------------------------------------
    def _cached_page(
        self, user_id: str, k: int, surface: str, now: datetime
    ) -> tuple[list[RecommendedItem] | None, str | None]:
        """The batch page written after the last training run (Feast's `cached_recommendations` view), less what
        the user consumed since and any item published after ``now`` (a page asked for at a moment inside the
        history), and the model version that scored it: an empty list when none of its items is left, (None, None)
        when there is no page or the online store does not answer."""
        refs = [f"cached_recommendations:{surface}_{part}" for part in CACHED_PARTS]
        refs += ["cached_recommendations:model_version", f"{RECENT_VIEW}:{STREAMED_CLICKS}"]
        try:
            values = user_features_at(self.store, refs, [user_id], now, self.recent_window)[user_id]
        except Exception as exc:
            log.warning("cached recommendations unavailable: %s", exc)
            return None, None
        ids = values[f"{surface}_content_ids"]
        if not ids:
            return None, None
        version = values["model_version"]
        consumed = self.consumed.get(user_id, set()) | self._published_after(now) | streamed_clicks(values)
        columns = zip(
            ids,
            values[f"{surface}_scores"],
            values[f"{surface}_slot_kinds"],
            values[f"{surface}_reasons"],
            values[f"{surface}_propensities"],
            strict=True,
        )
        kept = [c for c in columns if c[0] not in consumed][:k]
        return [
            RecommendedItem(
                content_id=str(item),
                rank=n,
                score=float(score),
                slot_kind=kind,
                reason=str(reason),
                propensity=float(propensity),
                category=self.catalog.category.get(str(item)),
            )
            for n, (item, score, kind, reason, propensity) in enumerate(kept, start=1)
        ], (str(version) if version else None)

    def _popular_page(self, user_id: str, k: int, surface: str, now: datetime, holdout: bool) -> list[RecommendedItem]:
        return self.assemble(user_id, k, surface, now, Ranked([], []), holdout=True, recent=set(), user={})

    def _published_after(self, now: datetime) -> set[str]:
        """Items published after ``now`` (an unknown date is not): only a moment inside the history has any."""
        published = self.catalog.newest_published
        later = published > now.timestamp()  # NaN compares False
        return set(self.catalog.newest[later].tolist()) if later.any() else set()

    def has_history(self, user_id: str) -> bool:
        """Whether the model path can personalize for this user: a click or view in the marts, or a row in what
        the candidate generators were fitted on. Without one a user gets the cold-start (popular) page."""
        seen = self.candidates.seen if self.candidates is not None else None
        return user_id in self.consumed or (seen is not None and user_id in seen.users)

    def assemble(
        self,
        user_id: str,
        k: int,
        surface: str,
        now: datetime,
        personalized: Ranked,
        holdout: bool,
        recent: set[str],
        user: Mapping[str, Any],
    ) -> list[RecommendedItem]:
        """Apply the page rules to a ranking (empty for the non-personalized page); see `ml.recommend.rules`."""
        country = self.country_of.get(user_id)
        segment = f"country:{country}" if country and f"country:{country}" in self.segment_popular else None
        popular = self.segment_popular.get(segment or f"surface:{surface}") or self.segment_popular.get(
            "all", Ranked([], [])
        )
        where = f"in {country}" if segment else f"on {surface}"
        published = self.catalog.newest_published
        out_now = published <= now.timestamp()
        fresh_ids = self.catalog.newest[out_now & (now.timestamp() - published <= FRESH_HOURS * 3600)].tolist()
        fresh = Ranked(fresh_ids, [0.0] * len(fresh_ids))
        newest = self.catalog.newest[out_now].tolist()
        editorial = Ranked(newest, [0.0] * len(newest))
        unpublished = self._published_after(now)
        top_category = _top_category(user)
        reasons = {
            "personalized": lambda item, cat: (
                f"because you just read {cat}"
                if cat in recent
                else f"because you read {cat}"
                if cat is not None and cat == top_category
                else "picked for you"
            ),
            "explore": lambda item, cat: f"new in {cat}" if cat else "new",
            "popular": lambda item, cat: f"popular {where}",
            "editorial": lambda item, cat: f"editor's pick: new in {cat}" if cat else "editor's pick",
        }
        seed = int(
            hashlib.md5(f"{user_id}|{surface}|{now.isoformat()}".encode(), usedforsecurity=False).hexdigest()[:8], 16
        )
        return assemble_page(
            k,
            personalized,
            popular,
            fresh,
            editorial,
            self.consumed.get(user_id, set()) | streamed_clicks(user),
            self.catalog.category,
            self.config.rules,
            np.random.default_rng(seed),
            reasons,
            holdout=holdout,
            unpublished=unpublished,
        )


def user_features_at(
    store: Any, refs: Sequence[str], user_ids: Sequence[str], now: datetime, window: timedelta
) -> dict[str, dict[str, Any]]:
    """Each user's online features (``refs`` as ``view:feature``) as a page at ``now`` may use them.

    The `recent_activity` row is the window ending at its event time whose length is ``window`` (the view's TTL:
    `recent_window`). Feast's online read returns the row whatever its age (the TTL is applied by the offline
    point-in-time join, not here), so a consumer that stopped, or a ``now`` before the row (a page asked for
    inside the history), would carry clicks from outside the window. Its values count only when the row's event
    time lies within ``window`` before ``now`` (or at most `RECENT_CLOCK_SKEW` after it: the consumer stamps a
    row with its clock when it writes it); otherwise they are None, what the training set's point-in-time join
    gives outside the TTL.

    Returns:
        user id -> feature name -> value.
    """
    response = store.get_online_features(features=list(refs), entity_rows=[{"user_id": u} for u in user_ids])
    values = response.to_dict(include_event_timestamps=True)
    names = [ref.split(":")[-1] for ref in refs]
    recent = {ref.split(":")[-1] for ref in refs if ref.split(":")[0] == RECENT_VIEW}
    newest, oldest = (now + RECENT_CLOCK_SKEW).timestamp(), (now - window).timestamp()
    out: dict[str, dict[str, Any]] = {}
    for n, user in enumerate(user_ids):
        row = {name: values[name][n] for name in names}
        for name in recent:
            if not oldest <= values[f"{name}__ts"][n] <= newest:
                row[name] = None
        out[user] = row
    return out


def streamed_clicks(user: Mapping[str, Any]) -> set[str]:
    """The content a user clicked in the streamed window (`STREAMED_CLICKS`; none when the row is outside the window
    or the user has none), as a set of content ids."""
    clicked = user.get(STREAMED_CLICKS)
    return {str(item) for item in clicked} if isinstance(clicked, list) else set()


def recommend(
    user_id: str,
    k: int = 10,
    surface: str = "home",
    now: datetime | None = None,
    recommender: Recommender | None = None,
) -> Recommendation:
    """One page for one user (see `Recommender.recommend`). Opens a recommender for the settings in the environment
    when none is given: open one yourself (`Recommender.open`) to serve many requests."""
    if recommender is None:
        from tailor.settings import get_settings

        recommender = Recommender.open(get_settings())
    return recommender.recommend(user_id, k, surface, now)


# -- loading helpers ------------------------------------------------------------------------------------------


def _checked_user(user_id: Any) -> str:
    if not isinstance(user_id, str):
        raise RecommendationInputError(f"user_id must be a string, got {type(user_id).__name__}")
    problem = user_id_problem(user_id)
    if problem is not None:
        raise RecommendationInputError(problem)
    return user_id


def _utc(now: datetime | None) -> datetime:
    """``now`` as aware UTC (naive is UTC; None is the clock).

    Raises:
        RecommendationInputError: a year outside the contract's 2000-2999 (a page in year 9999 overflowed the
            date arithmetic of the model path).
    """
    if now is None:
        return datetime.now(UTC)
    first, last = TIMESTAMP_YEARS
    if not first <= now.year <= last:
        raise RecommendationInputError(
            f"the time {now.isoformat()} is outside the years {first}-{last} that event times may have (the "
            "event contract): pass a time in them, or none for now"
        )
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _top_category(user: Mapping[str, Any]) -> str | None:
    categories, shares = user.get("affinity_categories"), user.get("affinity_shares")
    if not categories or not shares:
        return None
    return str(categories[int(np.argmax(shares))])


def _catalog(store: Any, content: pd.DataFrame, item_refs: list[str]) -> Catalog:
    ids = content["content_id"].astype(str).drop_duplicates().sort_values().to_numpy()
    if not len(ids):  # no content file yet: nothing to read (Feast fails on no entity rows)
        return _catalog_without_features(content)
    response = store.get_online_features(features=item_refs, entity_rows=[{"content_id": c} for c in ids])
    values = response.to_dict()
    frame = pd.DataFrame({name: values[name] for name in (ref.split(":")[-1] for ref in item_refs)})
    published = pd.to_datetime(frame["published_at"], utc=True)
    seconds = published.map(lambda t: t.timestamp() if pd.notna(t) else np.nan).to_numpy(dtype=float)
    category = {i: c for i, c in zip(ids, frame["category"], strict=True) if c is not None}
    return Catalog(ids, frame.drop(columns=["published_at"]), category, seconds)


def _catalog_without_features(content: pd.DataFrame) -> Catalog:
    content = content.drop_duplicates("content_id").sort_values("content_id")
    published = pd.to_datetime(content["published_at"], utc=True)
    seconds = published.map(lambda t: t.timestamp() if pd.notna(t) else np.nan).to_numpy(dtype=float)
    ids = content["content_id"].astype(str).to_numpy()
    category = dict(zip(ids, content["category"].astype(str), strict=True))
    return Catalog(ids, pd.DataFrame(index=range(len(ids))), category, seconds)


def _users(settings: Settings) -> pd.DataFrame:
    path = settings.marts_dir / "dim_users.parquet"
    if not path.exists():
        return pd.DataFrame(columns=["user_id", "country"])
    return pd.read_parquet(path, columns=["user_id", "country"])


def _segment_popularity(marts_dir: Path, end: pd.Timestamp | None, days: int = POPULAR_DAYS) -> dict[str, Ranked]:
    """Smoothed CTR per item over the last ``days`` before the history's end, overall, per surface and per country
    (the cold-start pages), from DuckDB's counts per (segment, item) (`ml.history.recent_item_counts`)."""
    if end is None:
        return {"all": Ranked([], [])}
    counts = recent_item_counts(marts_dir, end, days)
    out: dict[str, Ranked] = {"all": Ranked([], [])}
    for segment, group in counts.groupby("segment", sort=False):
        # a country needs enough clicks to be a better guess than the surface's list
        if str(segment).startswith("country:") and int(group["clicks"].sum()) < COUNTRY_MIN_CLICKS:
            continue
        out[str(segment)] = _ranked_by_ctr(group["content_id"], group["clicks"], group["impressions"])
    return out


def _ranked_by_ctr(content_ids: pd.Series, clicks: pd.Series, impressions: pd.Series) -> Ranked:
    """Items by (clicks + m * prior) / (impressions + m), prior the group's CTR, m = POPULAR_PRIOR_IMPRESSIONS;
    best first, ties by content_id (rows come sorted by content_id)."""
    clicked = clicks.to_numpy(dtype=np.int64)
    shown = impressions.to_numpy(dtype=np.int64)
    prior = clicked.sum() / max(shown.sum(), 1)
    score = (clicked + POPULAR_PRIOR_IMPRESSIONS * prior) / (shown + POPULAR_PRIOR_IMPRESSIONS)
    order = np.argsort(-score, kind="stable")
    return Ranked(content_ids.to_numpy()[order].astype(str).tolist(), score[order].tolist())

"""Truth of the closed loop: the true value of the served page and of other pages on the same requests.

For every request of a continued day the truth holds the expected clicks, sum over slots of
examine(position) * attract(user, item, moment), of:

- ``served``: the page actually shown (served from the cached pages, or the logging policy's slate);
- ``holdout``: the page the holdout gives: the served page when a holdout page was served; otherwise the file's
  holdout list (items ranked by how many holdout pages show them) or, without holdout pages, ``popularity``;
- ``oracle``: the slate_size available items with the highest true attract for that user at that moment, best
  first (the best any page can do: by the rearrangement inequality, the highest attract belongs at the most
  examined slot);
- ``popularity``: the items clicked most over the previous 7 days (ties: lower item index first);
- ``random``: slate_size available items drawn uniformly (the day's own random stream);
- ``logging``: the built-in logging policy's Plackett-Luce slate drawn for that request.

"Available" means published before the request and not consumed (clicked) by the user before the request's
day: consumption is tracked by the day, so items clicked earlier the same day stay available. The served and
logging pages are valued as shown (they may repeat consumed items). ``attract`` is the full true attract of
the request, experiment multipliers and planted drift included, so every page is valued under the same
conditions as the one shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.behaviour import RequestDetail, examine, true_attract
from simulator.policy import PolicyState
from simulator.serving import NOT_EXPOSED, CachedPages
from simulator.world import World

#: Days of clicks behind the popularity page.
POPULARITY_DAYS = 7
#: Stream tag of the closed-loop truth's own draws (the random page).
CLOSED_LOOP_STREAM = 4
#: Page kinds valued on every request, in the truth table's column order.
PAGE_KINDS: tuple[str, ...] = ("served", "holdout", "oracle", "popularity", "random", "logging")
# Holdout page sources.
HOLDOUT_SERVED, HOLDOUT_FILE, HOLDOUT_POPULARITY = 0, 1, 2
HOLDOUT_SOURCES: tuple[str, ...] = ("served", "file_holdout_list", "simulator_popularity")
# Cells of the (requests x items) attract matrix valued at once.
_CELLS = 4_000_000
_KEY_SHIFT = np.int64(32)


@dataclass
class Consumption:
    """Items each user has consumed (clicked), as sorted unique keys ``user << 32 | item``."""

    keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def add(self, users: np.ndarray, items: np.ndarray) -> None:
        """Record clicks of ``users`` on ``items`` (aligned arrays)."""
        new = (np.asarray(users, dtype=np.int64) << _KEY_SHIFT) | np.asarray(items, dtype=np.int64)
        self.keys = np.union1d(self.keys, new)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of every consumed pair, sorted."""
        return self.keys >> _KEY_SHIFT, self.keys & np.int64(0xFFFF_FFFF)

    def mask(self, users: np.ndarray, items: int) -> np.ndarray:
        """(len(users), items) bool: True where the row's user consumed the item."""
        users = np.asarray(users, dtype=np.int64)
        lo = np.searchsorted(self.keys, users << _KEY_SHIFT)
        hi = np.searchsorted(self.keys, (users + 1) << _KEY_SHIFT)
        counts = hi - lo
        row = np.repeat(np.arange(len(users)), counts)
        at = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        out = np.zeros((len(users), items), dtype=bool)
        item = self.keys[at] & np.int64(0xFFFF_FFFF)
        keep = item < items
        out[row[keep], item[keep]] = True
        return out


def request_truth(
    world: World,
    day: int,
    state: PolicyState,
    consumed: Consumption,
    detail: RequestDetail,
    pages: CachedPages | None,
    exposed_at: np.ndarray,
    exposed_variant: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """One row per request of ``day``: the expected clicks of each page kind (``PAGE_KINDS``) and what the
    holdout arm statistics need.

    Args:
        world: The (extended) world.
        day: Day index; popularity counts clicks of days [day - 7, day).
        state: The logging policy's click memory (read only).
        consumed: Consumption before ``day``.
        detail: The day's requests and impressions (``DayActivity.requests``).
        pages: The served pages, if any.
        exposed_at: Holdout exposure time per user (after the day's exposures; NOT_EXPOSED if none).
        exposed_variant: Holdout arm per exposed user ("" if none), kept when a later run serves no pages.
        rng: The day's closed-loop stream (the random page).

    Returns:
        Columns as numpy arrays (see ``simulator.truth.requests_table`` for names and meanings).
    """
    c = world.config
    k = c.slate_size
    # Items published by the day's last request: how far the world was extended must not change the draws.
    n_req = len(detail.user)
    n_items = int(np.searchsorted(world.catalog.published_ms, detail.time.max(initial=0), side="right"))
    exam = examine(c, np.arange(1, k + 1))
    served_page = detail.page >= 0
    impressions = np.bincount(detail.imp_request, minlength=n_req)
    out: dict[str, np.ndarray] = {
        "request": detail.num,
        "session": detail.session,
        "user": detail.user,
        "surface": detail.surface,
        "occurred_ms": detail.time,
        "served": served_page,
        "page_policy": np.full(n_req, -1, dtype=np.int8),
        "variant": exposed_variant[detail.user].copy(),
        "after_exposure": (exposed_at[detail.user] != NOT_EXPOSED) & (detail.time >= exposed_at[detail.user]),
        "experiment_multiplier": detail.ctr_mult,
        "impressions": impressions,
        "clicks": np.bincount(detail.imp_request, weights=detail.imp_clicked, minlength=n_req).astype(np.int32),
        "expected_clicks_served": np.bincount(detail.imp_request, weights=detail.imp_p_click, minlength=n_req),
        "holdout_source": np.full(n_req, HOLDOUT_POPULARITY, dtype=np.int8),
        "holdout_slots": np.full(n_req, k, dtype=np.int16),
    }
    for kind in PAGE_KINDS[1:]:
        out[f"expected_clicks_{kind}"] = np.zeros(n_req)
    holdout_score = None
    if pages is not None:
        out["page_policy"][served_page] = pages.page_policy[detail.page[served_page]]
        covered = pages.user_variant[detail.user] >= 0
        out["variant"][covered] = np.asarray(pages.variants, dtype=object)[pages.user_variant[detail.user[covered]]]
        holdout_score = [pages.holdout_ranking(s, n_items) for s in range(len(c.surfaces))]
        # Pages may have no holdout policy at all (a 0% holdout): then no served page is a holdout page.
        holdout_served = np.zeros(n_req, dtype=bool)
        if "holdout" in pages.policies:
            holdout_served = served_page & (out["page_policy"] == pages.policies.index("holdout"))
        out["holdout_source"][holdout_served] = HOLDOUT_SERVED
        for s, score in enumerate(holdout_score):
            if np.isfinite(score).any():
                out["holdout_source"][~holdout_served & (detail.surface == s)] = HOLDOUT_FILE

    recent = state.clicks_by_day[max(0, day - POPULARITY_DAYS) : day].sum(axis=0)[:n_items]
    # Ties by lower item index: the fraction stays below one click.
    popularity = recent - np.arange(n_items) / (n_items + 1)
    items = np.arange(n_items)
    published = world.catalog.published_ms[:n_items]
    rows = max(1, _CELLS // max(n_items, 1))
    for lo in range(0, n_req, rows):
        sl = slice(lo, min(lo + rows, n_req))
        user, time = detail.user[sl], detail.time[sl]
        attract = true_attract(world, user[:, None], items[None, :], time[:, None], detail.ctr_mult[sl, None])
        unavailable = (published[None, :] >= time[:, None]) | consumed.mask(user, n_items)
        out["expected_clicks_oracle"][sl] = _value(np.where(unavailable, -np.inf, attract), attract, exam)[0]
        pop_key = np.where(unavailable, -np.inf, popularity[None, :])
        out["expected_clicks_popularity"][sl] = _value(pop_key, attract, exam)[0]
        random_key = np.where(unavailable, -np.inf, rng.random(attract.shape))
        out["expected_clicks_random"][sl] = _value(random_key, attract, exam)[0]
        slate_attract = np.take_along_axis(attract, detail.slate[sl], axis=1)
        out["expected_clicks_logging"][sl] = slate_attract @ exam
        holdout = out["expected_clicks_popularity"][sl].copy()
        source = out["holdout_source"][sl]
        if holdout_score is not None:
            surface = detail.surface[sl]
            for s, score in enumerate(holdout_score):
                pick = np.flatnonzero((source == HOLDOUT_FILE) & (surface == s))
                if len(pick):
                    key = np.where(unavailable[pick], -np.inf, score[None, :])
                    value, slots = _value(key, attract[pick], exam)
                    holdout[pick] = value
                    out["holdout_slots"][lo + pick] = slots
        served_here = source == HOLDOUT_SERVED
        holdout[served_here] = out["expected_clicks_served"][sl][served_here]
        out["holdout_slots"][sl][served_here] = impressions[sl][served_here]
        out["expected_clicks_holdout"][sl] = holdout
    return out


def _value(key: np.ndarray, attract: np.ndarray, exam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected clicks of the page ranking each row's items by ``key`` (highest first, -inf never shown), and
    its number of slots: sum over the top len(exam) of examine(slot) * attract."""
    k = len(exam)
    top = np.argpartition(-key, k - 1, axis=1)[:, :k]
    top_key = np.take_along_axis(key, top, axis=1)
    order = np.argsort(-top_key, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    shown = np.isfinite(np.take_along_axis(top_key, order, axis=1))
    value = np.where(shown, np.take_along_axis(attract, top, axis=1), 0.0) @ exam
    return value, shown.sum(axis=1).astype(np.int16)

"""Per-user sliding windows of recent activity: the state behind the streaming features.

Pure Python, no I/O. The consumer feeds it events and asks which users' values changed; the rows it hands to
Feast are absolute values (counts as of a moment), never increments, so writing the same row twice is harmless.
That is what lets the consumer push before it acknowledges (see docs/decisions.md, "Streaming").

A user's window as of ``now`` holds the events with ``now - length < event_time`` (an event exactly ``length`` old
has left). Event ids are unique per event (the contract), so an id seen again inside the window is a
re-delivery and is not counted twice.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

#: Event counts (int64), then the other features, in the order of the feature view (feature_repo/recent_activity.py).
COUNTS: tuple[str, ...] = ("impressions_30m", "clicks_30m", "views_30m", "conversions_30m")
FEATURES: tuple[str, ...] = (
    *COUNTS,
    "dwell_seconds_30m",
    "clicked_categories_30m",
    "last_clicked_category",
    "clicked_items_30m",
)
_COUNTED = {
    "impression": "impressions_30m",
    "click": "clicks_30m",
    "view": "views_30m",
    "conversion": "conversions_30m",
}


@dataclass(frozen=True)
class Activity:
    """One event as the window sees it (times naive UTC)."""

    event_id: str
    user_id: str
    event_type: str
    event_time: datetime
    category: str | None = None
    dwell_seconds: float | None = None
    content_id: str | None = None


def empty_row() -> dict[str, Any]:
    """The values of a user with no activity in the window."""
    return {
        "impressions_30m": 0,
        "clicks_30m": 0,
        "views_30m": 0,
        "conversions_30m": 0,
        "dwell_seconds_30m": 0.0,
        "clicked_categories_30m": [],
        "last_clicked_category": None,
        "clicked_items_30m": [],
    }


def summarize(activities: Iterable[Activity]) -> dict[str, Any]:
    """Feature values of one user's window (events in any order).

    ``clicked_categories_30m`` lists each category clicked once, most recently clicked first; ties in time are
    broken by event id so the result does not depend on arrival order. ``clicked_items_30m`` lists the clicked
    content the same way. A click on content the catalog does not know (no category) is counted but in neither
    list, as in the dbt mart `fct_user_recent_activity`.
    """
    row = empty_row()
    clicks: list[Activity] = []
    for a in activities:
        if a.event_type in _COUNTED:
            row[_COUNTED[a.event_type]] += 1
        if a.event_type == "view" and a.dwell_seconds is not None:
            row["dwell_seconds_30m"] += a.dwell_seconds
        if a.event_type == "click" and a.category is not None:
            clicks.append(a)
    clicks.sort(key=lambda a: (a.event_time, a.event_id), reverse=True)
    categories = list(dict.fromkeys(a.category for a in clicks if a.category is not None))
    row["clicked_categories_30m"] = categories
    row["last_clicked_category"] = categories[0] if categories else None
    row["clicked_items_30m"] = list(dict.fromkeys(a.content_id for a in clicks if a.content_id is not None))
    return row


class RecentActivity:
    """Sliding windows for many users, with expiry in time order (a heap of each user's oldest event)."""

    def __init__(self, length: timedelta = timedelta(minutes=30)) -> None:
        if length <= timedelta(0):
            raise ValueError(f"window length must be positive, got {length}")
        self.length = length
        self._events: dict[str, dict[str, Activity]] = {}  # user -> event_id -> activity
        self._ids: set[str] = set()
        self._expiry: list[tuple[datetime, str]] = []  # (event_time + length, user); stale entries are skipped

    def __len__(self) -> int:
        """Number of events currently in some window."""
        return len(self._ids)

    @property
    def users(self) -> set[str]:
        return set(self._events)

    def refusal(self, activity: Activity, now: datetime) -> Literal["not_counted", "repeated", "too_old"] | None:
        """Why `add` would not count ``activity`` at ``now``: ``not_counted`` (an exposure: no feature counts it),
        ``repeated`` (its event_id is in the window already), ``too_old`` (it happened a window's length or more
        before ``now``: the window is of the last minutes by the clock, not of the history's last day); or None."""
        if activity.event_type not in _COUNTED:
            return "not_counted"
        if activity.event_id in self._ids:
            return "repeated"
        if activity.event_time <= now - self.length:
            return "too_old"
        return None

    def add(self, activity: Activity, now: datetime) -> bool:
        """Count an event; False (nothing changes) when `refusal` names a reason."""
        if self.refusal(activity, now) is not None:
            return False
        self._events.setdefault(activity.user_id, {})[activity.event_id] = activity
        self._ids.add(activity.event_id)
        heapq.heappush(self._expiry, (activity.event_time + self.length, activity.user_id))
        return True

    def expire(self, now: datetime) -> set[str]:
        """Drop events that have left the window by ``now``; returns the users whose values changed."""
        changed: set[str] = set()
        while self._expiry and self._expiry[0][0] <= now:
            _, user = heapq.heappop(self._expiry)
            events = self._events.get(user)
            if not events:
                continue
            gone = [eid for eid, a in events.items() if a.event_time <= now - self.length]
            for eid in gone:
                del events[eid]
                self._ids.discard(eid)
            if gone:
                changed.add(user)
            if not events:
                del self._events[user]
        return changed

    def row(self, user_id: str) -> dict[str, Any]:
        """Current feature values of one user (zeros when the user has nothing in the window)."""
        return summarize(self._events.get(user_id, {}).values())

"""How many days of history a ranker input can depend on, and so whether two periods can be compared on it.

A trailing-window feature (``clicks_28d``) covers fewer days than its name says while the history is younger than
its window: on a young history its values grow day after day with nothing changing in the world. Quantities
counted since the start of the history (an item's age, the days since a user's last visit, collaborative
filtering over every interaction) grow the same way. Such a feature can be compared between the champion's
training window and a later day only once its window was full before the training window began; until then the
drift check reports it as ``young`` and leaves it out of its verdict (docs/decisions.md, "Drift on young
histories").
"""

from __future__ import annotations

import math
import re

#: The longest trailing window of any ranker input: a history this old before the reference has filled them all,
#: and quantities counted since the start have had as long to settle.
LONGEST_WINDOW_DAYS = 28
#: Inputs whose reach is not in their name (days; ``math.inf``: since the start of the history).
EXPLICIT_REACH: dict[str, float] = {
    "category_affinity": 28,  # the user's click mix over 28 days (user_category_affinity)
    "score_content": 28,  # the content generator reads the same 28-day affinity
    "score_popularity": 7,  # smoothed clicks over the last 7 days (CandidateConfig.popularity_window_days)
    "score_cf": math.inf,  # EASE over every interaction so far
    "age_days": math.inf,  # items published since the platform began keep ageing
    "content_age_hours": math.inf,
    "days_since_last_visit": math.inf,  # bounded by the history's age
}
_WINDOW = re.compile(r"_(\d+)d$")


def reach_days(feature: str) -> float:
    """Days of history the feature's value can depend on: the window in its name (``_7d`` -> 7), an entry of
    `EXPLICIT_REACH`, else 0 (a property of the row itself: position, surface, category, a prediction)."""
    if feature in EXPLICIT_REACH:
        return EXPLICIT_REACH[feature]
    found = _WINDOW.search(feature)
    return float(found.group(1)) if found else 0.0


def comparable(feature: str, history_days: float) -> bool:
    """Whether the feature's window was full when the reference began, ``history_days`` days into the history;
    a quantity counted since the start counts as full once the history is `LONGEST_WINDOW_DAYS` old."""
    reach = reach_days(feature)
    return history_days >= (LONGEST_WINDOW_DAYS if math.isinf(reach) else reach)

"""Rank inputs judged on their day's scale: a rank as a share of the day's bottom rank.

A rank over a set that changes every day ends at a bottom that moves with it. `popularity_rank_7d` is SQL's
``rank()`` over the day's catalog by 7-day clicks, then impressions (1 = top): every item without a click or an
impression in the 7 days ties at the bottom, at one more than the items with any, and on a growing platform those
are a fifth to a third of what gets shown (new items, and items nobody saw that week). The bottom rank, and with it
that whole mass of impressions, moves by a few places every day: 432 on the day a 200-user world's champion
trained on, 443 six days later. In the reference's quantile bins the tie sits on the last cut point, so one place
more carries it into a bin the reference never filled, and the PSI reads several with nothing changed
(docs/decisions.md, "A rank is judged on its day's scale").

The drift checks therefore compare a rank divided by the largest rank among the rows of its day: the bottom tie is
1 on every day, and the items with activity spread over (0, 1) as a share of the day's ranked range. What the
scale removes is the size of the ranked set; what gets shown, high or low in the order, still moves the shares.

The day's bottom rank is read off the rows: every row whose item is tied at the bottom carries it exactly (the tie
is one value). A day none of whose rows shows a bottom item is scaled by the deepest item it shows instead, a
smaller divisor; on the worlds measured every day had such rows (17-52% of its impressions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

#: A rank input: ``rank`` as a word of its name (``popularity_rank_7d``), not a longer word (``ranker_score``).
_RANK = re.compile(r"(?:^|_)rank(?:_|$)")


def is_rank(feature: str) -> bool:
    """Whether the input is a rank (1 = top) over a set that can change from day to day, judged on its day's
    scale (`on_day_scale`)."""
    return bool(_RANK.search(feature))


def on_day_scale(rows: pd.DataFrame, columns: Iterable[str], day_column: str = "event_timestamp") -> pd.DataFrame:
    """The rows with each rank column among ``columns`` divided by its largest value among the rows of the same
    UTC day, so in (0, 1], 1 = the day's bottom (see the module docstring); other columns as they were.

    Args:
        rows: impressions with ``day_column`` (tz-aware timestamps) and the columns.
        columns: the inputs to be compared; those that are ranks (`is_rank`) are rescaled.

    Returns:
        A copy when a column was rescaled, else ``rows`` itself. Missing ranks stay missing.

    Raises:
        ValueError: a rank column or ``day_column`` is missing from the rows (named).
    """
    ranks = [c for c in columns if is_rank(c)]
    if not ranks:
        return rows
    missing = [c for c in [*ranks, day_column] if c not in rows.columns]
    if missing:
        raise ValueError(f"the rows lack column(s) {missing}: a rank is scaled by its day's largest value")
    day = pd.to_datetime(rows[day_column], utc=True).dt.floor("D")
    scaled = {}
    for column in ranks:
        values = pd.to_numeric(rows[column], errors="raise").astype(float)
        bottom = values.groupby(day).transform("max")
        scaled[column] = values / bottom
    return rows.assign(**scaled)

"""What happened, read from the published marts: impressions with labels, who consumed what, the catalog.

The candidate generators and the ranker learn from these three frames, always cut at a moment (`History.before`),
so that nothing after the moment a model is meant to know about can leak into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

IMPRESSIONS = "fct_impressions"
INTERACTIONS = "fct_user_content_interactions"
CONTENT = "dim_content"


class MissingMartError(FileNotFoundError):
    """A mart the models need has not been published yet."""


@dataclass(frozen=True)
class History:
    """Impressions, consumption and the catalog (timestamps tz-aware UTC).

    Attributes:
        impressions: one row per impression: impression_id, request_id, user_id, content_id, surface, position,
            occurred_at, clicked (bool), clicked_at.
        interactions: one row per (user, item) consumed: user_id, content_id, first_consumed_at,
            first_clicked_at, clicks, views.
        content: one row per item: content_id, category, format, published_at.
    """

    impressions: pd.DataFrame
    interactions: pd.DataFrame
    content: pd.DataFrame

    @property
    def end(self) -> pd.Timestamp:
        """The newest impression time (the moment the history reaches)."""
        return pd.Timestamp(self.impressions["occurred_at"].max())

    def before(self, moment: datetime | pd.Timestamp) -> History:
        """What was known just before ``moment``: impressions, clicks and consumption that happened earlier, and
        items published earlier. A click after ``moment`` on an earlier impression is not known yet either."""
        at = _utc(moment)
        imp = self.impressions.loc[self.impressions["occurred_at"] < at].copy()
        late_click = imp["clicked_at"].notna() & (imp["clicked_at"] >= at)
        imp.loc[late_click, "clicked"] = False
        imp.loc[late_click, "clicked_at"] = pd.NaT
        inter = self.interactions.loc[self.interactions["first_consumed_at"] < at].copy()
        inter.loc[inter["first_clicked_at"] >= at, "first_clicked_at"] = pd.NaT
        content = self.content.loc[self.content["published_at"] < at]
        return History(imp, inter, content)

    def clicks(self) -> pd.DataFrame:
        """(user_id, content_id) of every consumed item the user clicked (at least once)."""
        return self.interactions.loc[self.interactions["first_clicked_at"].notna(), ["user_id", "content_id"]]


def load_history(marts_dir: Path) -> History:
    """Read the three marts from ``marts_dir`` (``<TAILOR_HOME>/marts``).

    Raises:
        MissingMartError: a mart is missing; the message says to build the warehouse first.
    """
    paths = {name: marts_dir / f"{name}.parquet" for name in (IMPRESSIONS, INTERACTIONS, CONTENT)}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise MissingMartError(
            f"{', '.join(missing)} not found: build the warehouse first (`tailor run`, or `dbt build` in dbt_project/)"
        )
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        impressions = con.sql(
            "select impression_id, request_id, user_id, content_id, surface, position,"
            " timezone('UTC', occurred_at) as occurred_at, is_clicked as clicked,"
            " timezone('UTC', clicked_at) as clicked_at from read_parquet(?) order by occurred_at, impression_id",
            params=[str(paths[IMPRESSIONS])],
        ).df()
        interactions = con.sql(
            "select user_id, content_id, timezone('UTC', first_consumed_at) as first_consumed_at,"
            " timezone('UTC', first_clicked_at) as first_clicked_at, clicks, views from read_parquet(?)",
            params=[str(paths[INTERACTIONS])],
        ).df()
        content = con.sql(
            "select content_id, category, format, timezone('UTC', published_at) as published_at from read_parquet(?)",
            params=[str(paths[CONTENT])],
        ).df()
    return History(impressions, interactions, content)


def _utc(moment: datetime | pd.Timestamp) -> pd.Timestamp:
    at = pd.Timestamp(moment)
    return at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")

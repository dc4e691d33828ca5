"""What happened, read from the published marts: impressions with labels, who consumed what, the catalog.

The candidate generators and the ranker learn from these three frames, always cut at a moment (`History.before`),
so that nothing after the moment a model is meant to know about can leak into it.

Serving needs far less than training: who consumed what, the catalog, and per-item click counts over the last days.
`consumed_by_user`, `load_content`, `history_end` and `recent_item_counts` compute those with DuckDB aggregates over
the published Parquet (read-only), so their memory grows with users x consumed items and the catalog, never with
the number of impressions (`load_history` holds every impression: ~19 GB at 10M events).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from ml.data_days import days_of, window_start
from ml.features.sources import parquet_scan

IMPRESSIONS = "fct_impressions"
INTERACTIONS = "fct_user_content_interactions"
CONTENT = "dim_content"
USERS = "dim_users"
#: Users whose consumed sets are read from DuckDB per fetch (bounds the transient Python objects).
_FETCH_USERS = 20_000


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

    @functools.cached_property
    def impression_days(self) -> set[date]:
        """The UTC days with impressions (what windows count: `ml.data_days`)."""
        return days_of(self.impressions["occurred_at"])

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


def load_history(marts_dir: Path, impressions_since: datetime | pd.Timestamp | None = None) -> History:
    """Read the three marts from ``marts_dir`` (``<TAILOR_HOME>/marts``).

    Args:
        impressions_since: keep only the impressions at or after this moment (consumption and the catalog stay
            whole): for a caller that knows it needs only the recent ones (e.g. popularity over its window).

    Raises:
        MissingMartError: a mart is missing; the message says to build the warehouse first.
    """
    paths = _mart_paths(marts_dir, IMPRESSIONS, INTERACTIONS, CONTENT)
    since = "" if impressions_since is None else " where timezone('UTC', occurred_at) >= $since"
    params: dict[str, object] = {"path": str(paths[IMPRESSIONS])}
    if impressions_since is not None:
        params["since"] = _utc(impressions_since).to_pydatetime()
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        impressions = con.execute(
            "select impression_id, request_id, user_id, content_id, surface, position,"
            " timezone('UTC', occurred_at) as occurred_at, is_clicked as clicked,"
            f" timezone('UTC', clicked_at) as clicked_at from read_parquet($path){since}"
            " order by occurred_at, impression_id",
            params,
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


def _mart_paths(marts_dir: Path, *names: str) -> dict[str, Path]:
    paths = {name: marts_dir / f"{name}.parquet" for name in names}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise MissingMartError(
            f"{', '.join(missing)} not found: build the warehouse first (`tailor run`, or `dbt build` in dbt_project/)"
        )
    return paths


def _connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reads the published Parquet (never the warehouse file) with UTC timestamps."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    return con


def load_content(marts_dir: Path) -> pd.DataFrame:
    """The catalog: one row per item: content_id, category, format, published_at (tz-aware UTC).

    Raises:
        MissingMartError: dim_content is not published yet.
    """
    path = _mart_paths(marts_dir, CONTENT)[CONTENT]
    with _connect() as con:
        return con.sql(
            "select content_id, category, format, timezone('UTC', published_at) as published_at from read_parquet(?)",
            params=[str(path)],
        ).df()


def history_end(marts_dir: Path) -> pd.Timestamp | None:
    """The newest impression time (`History.end` without reading the impressions); None when there are none.

    Raises:
        MissingMartError: fct_impressions is not published yet.
    """
    return _impression_time(marts_dir, "max")


def history_start(marts_dir: Path) -> pd.Timestamp | None:
    """The oldest impression time (the first moment the history knows); None when there are none.

    Raises:
        MissingMartError: fct_impressions is not published yet.
    """
    return _impression_time(marts_dir, "min")


def _impression_time(marts_dir: Path, aggregate: Literal["min", "max"]) -> pd.Timestamp | None:
    """``min`` or ``max`` of the impressions' times (UTC), from fct_impressions' one column; None when empty."""
    scan, parameter = parquet_scan(_mart_paths(marts_dir, IMPRESSIONS)[IMPRESSIONS])  # a file, or Spark's folder
    with _connect() as con:
        (moment,) = con.sql(
            f"select {aggregate}(timezone('UTC', occurred_at)) from {scan}", params=[parameter]
        ).fetchall()[0]
    return None if moment is None else _utc(moment)


def impression_days(marts_dir: Path) -> set[date]:
    """The UTC days with an impression in fct_impressions (what windows count: `ml.data_days`).

    Raises:
        MissingMartError: fct_impressions is not published yet.
    """
    path = _mart_paths(marts_dir, IMPRESSIONS)[IMPRESSIONS]
    with _connect() as con:
        rows = con.execute(
            "select distinct cast(timezone('UTC', occurred_at) as date) from read_parquet(?)"
            " where occurred_at is not null",
            [str(path)],
        ).fetchall()
    return {day for (day,) in rows}


def trailing_start(marts_dir: Path, end: pd.Timestamp, days: int) -> pd.Timestamp:
    """The start of the ``days``-day window ending at ``end``, counted in days with impressions
    (`ml.data_days.window_start`): ``end - days`` unless a gap in the history lies inside it.

    Raises:
        MissingMartError: fct_impressions is not published yet.
    """
    return pd.Timestamp(window_start(_utc(end).to_pydatetime(), timedelta(days=days), impression_days(marts_dir)))


def active_users(marts_dir: Path, end: pd.Timestamp, days: int) -> list[str]:
    """Users with an impression in the ``days`` days before ``end`` (`trailing_start`: days with impressions, so a
    gap does not empty it), sorted (e.g. the users who get batch pages).

    Raises:
        MissingMartError: fct_impressions is not published yet.
    """
    path = _mart_paths(marts_dir, IMPRESSIONS)[IMPRESSIONS]
    with _connect() as con:
        rows = con.execute(
            "select distinct user_id from read_parquet($path)"
            " where timezone('UTC', occurred_at) >= $since and user_id is not null order by user_id",
            {"path": str(path), "since": trailing_start(marts_dir, end, days).to_pydatetime()},
        ).fetchall()
    return [str(user) for (user,) in rows]


def consumed_by_user(marts_dir: Path, canonical: Mapping[str, str] | None = None) -> dict[str, set[str]]:
    """Every item each user consumed (clicked or viewed: a row of fct_user_content_interactions), per user id.

    Aggregated by DuckDB (one list per user) and read a block of users at a time, so the memory is the sets
    themselves: users x consumed items, whatever the number of impressions.

    Args:
        canonical: item id -> the string object to keep for it (e.g. the catalog's ids), so that a million
            consumed pairs share the catalog's strings instead of holding a copy each.

    Raises:
        MissingMartError: the interactions mart is not published yet.
    """
    path = _mart_paths(marts_dir, INTERACTIONS)[INTERACTIONS]
    same = canonical or {}
    out: dict[str, set[str]] = {}
    with _connect() as con:
        result = con.execute(
            "select user_id, list(distinct content_id) from read_parquet(?)"
            " where user_id is not null and content_id is not null group by user_id",
            [str(path)],
        )
        while block := result.fetchmany(_FETCH_USERS):
            for user, items in block:
                out[str(user)] = {same.get(item, item) for item in items}
    return out


def recent_item_counts(marts_dir: Path, end: pd.Timestamp, days: int = 7) -> pd.DataFrame:
    """Impressions and clicks per item over the ``days`` days before ``end`` (`trailing_start`: days with
    impressions): over all impressions, per surface and per country of the user (dim_users; impressions of users
    it does not know count in no country).

    Returns:
        Frame with segment (``"all"``, ``"surface:<s>"`` or ``"country:<c>"``), content_id, impressions (int),
        clicks (int), ordered by segment kind (all, surfaces, countries), segment and content_id.

    Raises:
        MissingMartError: fct_impressions is not published yet (dim_users is optional).
    """
    impressions = _mart_paths(marts_dir, IMPRESSIONS)[IMPRESSIONS]
    users = marts_dir / f"{USERS}.parquet"
    country = (
        "(select user_id, country from read_parquet($users))"
        if users.exists()
        else "(select null::varchar as user_id, null::varchar as country where false)"
    )
    since = trailing_start(marts_dir, end, days).to_pydatetime()
    params: dict[str, object] = {"impressions": str(impressions), "since": since}
    if users.exists():
        params["users"] = str(users)
    with _connect() as con:
        return con.execute(
            f"""
            with recent as (
                select i.content_id, i.surface, u.country, i.is_clicked
                from read_parquet($impressions) as i
                left join {country} as u on i.user_id = u.user_id
                where timezone('UTC', i.occurred_at) >= $since and i.content_id is not null
            ),
            counted as (
                select
                    case
                        when grouping(surface) = 0 then 'surface:' || surface
                        when grouping(country) = 0 then 'country:' || country
                        else 'all'
                    end as segment,
                    grouping(surface) = 0 as by_surface,
                    grouping(country) = 0 as by_country,
                    content_id,
                    count(is_clicked) as impressions,
                    coalesce(sum(is_clicked::int), 0) as clicks
                from recent
                group by grouping sets ((content_id), (surface, content_id), (country, content_id))
                having (grouping(surface) = 1 or surface is not null) and (grouping(country) = 1 or country is not null)
            )
            select segment, content_id, impressions, clicks
            from counted
            order by by_country, by_surface, segment, content_id
            """,
            params,
        ).df()


def _utc(moment: datetime | pd.Timestamp) -> pd.Timestamp:
    at = pd.Timestamp(moment)
    return at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")

"""The personalization preview: who a user is, what the feature store holds for them, and the page they would get
next to the non-personalized (holdout) page.

The page comes from `ml.recommend` (the same `Recommender` the CLI and the service use), asked as of the end of the
published history (the newest impression + 1 s, the moment the batch pages are built for), so the preview of a
demo history from months ago still has fresh items to explore. The control page is the same recommender's
non-personalized page for the user: what the `personalization_holdout` arm gets (popular in the user's country or
on the surface, then editorial).

Where the simulator's ground truth exists (``<TAILOR_HOME>/inbox/_truth/``, written by `tailor generate`), the true
click probability of each item can be shown next to the predicted one (`evaluation.ranking_truth`); the pipeline
itself never reads the truth.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.lib import marts
from tailor.contract import user_id_problem
from tailor.settings import Settings

if TYPE_CHECKING:
    from evaluation.ranking_truth import TruthClickModel
    from ml.recommend import Recommendation, RecommendedItem, Recommender

USERS = "dim_users"
ENGAGEMENT = "fct_daily_user_engagement"
INTERACTIONS = "fct_user_content_interactions"
CONTENT = "dim_content"
IMPRESSIONS = "fct_impressions"
#: The marts the preview needs before it can show anything (Recommender.open reads these too).
INPUTS = (USERS, ENGAGEMENT, INTERACTIONS, CONTENT, IMPRESSIONS)
#: Users offered in the picker: the most active ones (a 10M-event history has hundreds of thousands).
PICKER_USERS = 300


class BadUserId(ValueError):
    """The typed id cannot be a user id (empty, too long, a control character); the message says what to type."""


def checked_user_id(text: str) -> str:
    """The typed id, stripped. Raises BadUserId for an empty or over-long id, or one holding a control character
    (never touches SQL)."""
    user_id = (text or "").strip()
    if not user_id:
        raise BadUserId("Type a user id, e.g. u0000042, or pick one from the list.")
    problem = user_id_problem(user_id)  # too long, or a control character: the contract's words
    if problem is not None:
        raise BadUserId(problem + ".")
    return user_id


def picker_users(settings: Settings, limit: int = PICKER_USERS) -> list[str]:
    """The ``limit`` users with the most active days (ties by id), for the picker. Raises marts.NoData."""
    frame = marts.query(
        settings,
        "select user_id from read_parquet($1) order by active_days desc nulls last, user_id limit $2",
        [USERS],
        [limit],
    )
    return frame["user_id"].astype(str).tolist()


def personalized_first(users: list[str]) -> int:
    """Index in ``users`` of the first one outside the personalization holdout (0 if there is none): the picker's
    default, so that a first look shows a personalized page beside the control (a trial's most active user was in
    the holdout, and the page showed two identical columns)."""
    from ml.recommend.serving import holdout_arm

    return next((i for i, user in enumerate(users) if holdout_arm(user) != "holdout"), 0)


def profile(settings: Settings, user_id: str) -> dict[str, Any] | None:
    """The user's row of ``dim_users`` (country, plan, signup, first/last active, active days) and their totals
    over the whole history from ``fct_daily_user_engagement`` (sessions, impressions, clicks, ctr, views,
    conversions, revenue_usd); None for an id the marts do not know. ``user_id`` is a bound parameter."""
    users = marts.query(settings, "select * from read_parquet($1) where user_id = $2", [USERS], [user_id])
    if users.empty:
        return None
    totals = marts.query(
        settings,
        "select count(*) as days, coalesce(sum(sessions), 0) as sessions, "
        "coalesce(sum(impressions), 0) as impressions, "
        "coalesce(sum(clicks), 0) as clicks, coalesce(sum(views), 0) as views, "
        "coalesce(sum(conversions), 0) as conversions, coalesce(sum(revenue_usd), 0) as revenue_usd "
        "from read_parquet($1) where user_id = $2",
        [ENGAGEMENT],
        [user_id],
    ).iloc[0]
    out = {str(k): v for k, v in users.iloc[0].items()}
    for key in ("sessions", "impressions", "clicks", "views", "conversions"):
        out[key] = int(totals[key])
    out["revenue_usd"] = float(totals["revenue_usd"])
    out["ctr"] = out["clicks"] / out["impressions"] if out["impressions"] else None
    return out


def recent_history(settings: Settings, user_id: str, limit: int = 15) -> pd.DataFrame:
    """The user's most recently consumed items (clicked or viewed), newest first: content_id, category, format,
    last_consumed_at, clicks, views, dwell_seconds. ``user_id`` is a bound parameter."""
    return marts.query(
        settings,
        "select i.content_id, c.category, c.format, i.last_consumed_at, i.clicks, i.views, i.dwell_seconds "
        "from read_parquet($1) as i left join read_parquet($2) as c on c.content_id = i.content_id "
        "where i.user_id = $3 order by i.last_consumed_at desc, i.content_id limit $4",
        [INTERACTIONS, CONTENT],
        [user_id, limit],
    )


def preview_moment(settings: Settings) -> datetime:
    """The newest impression in the marts + 1 s (UTC): the moment the preview asks for pages, as the batch does.
    Raises marts.NoData when the impressions are not published."""
    newest: Any = marts.query(settings, "select max(occurred_at) as newest from read_parquet($1)", [IMPRESSIONS]).iloc[
        0, 0
    ]
    if newest is None or pd.isna(newest):
        raise marts.NoData(f"No impressions in {IMPRESSIONS}.parquet yet. Run `{marts.MAKE_DEMO}` first.")
    return (pd.Timestamp(newest).tz_localize("UTC") + pd.Timedelta(seconds=1)).to_pydatetime()


#: The model path's time budget in the preview. Serving allows 50 ms (TAILOR_RECOMMEND_BUDGET_MS) and falls back to
#: the cached page when it runs out; the preview is there to show the model's page, so it waits longer, and the
#: page says how long it took.
PREVIEW_BUDGET_MS = 5000.0


def open_recommender(settings: Settings) -> Recommender:
    """`Recommender.open` for the home (seconds: the champion, the generators, every item's features), with the
    rules from the environment and the preview's budget (`PREVIEW_BUDGET_MS`, or the served one if larger). Open
    once per process (the app caches it as a resource)."""
    from ml.recommend import Recommender, ServingConfig

    config = ServingConfig.from_env()
    return Recommender.open(settings, replace(config, budget_ms=max(config.budget_ms, PREVIEW_BUDGET_MS)))


def personalized_page(recommender: Recommender, user_id: str, k: int, surface: str, now: datetime) -> Recommendation:
    """The page `recommend` serves the user (model, cached or popular; the result says which and why).

    Raises:
        ml.recommend.RecommendationInputError: a malformed request (k, surface, id).
    """
    return recommender.recommend(user_id, k=k, surface=surface, now=now)


def control_page(recommender: Recommender, user_id: str, k: int, surface: str, now: datetime) -> list[RecommendedItem]:
    """The non-personalized page the same user would get in the holdout arm (popular, then editorial)."""
    from ml.recommend.rules import Ranked

    return recommender.assemble(user_id, k, surface, now, Ranked([], []), holdout=True, recent=set(), user={})


def online_features(recommender: Recommender, user_id: str, now: datetime) -> pd.DataFrame:
    """The user's features in the online store (what the model path reads), sorted by name: feature, value; the
    row ``status`` is the store's word on it (``ok``, ``unknown user``, ``stale <view>``). Empty when the
    recommender has no feature service (the store did not answer when it opened)."""
    from ml.features import online_features as read_online

    if not recommender.user_refs:
        return pd.DataFrame(columns=["feature", "value"])
    frame = read_online(recommender.store, [{"user_id": user_id}], features=recommender.user_refs, request_at=now)
    row = frame.iloc[0]
    values = [(str(name), _display(row[name])) for name in frame.columns if name != "user_id"]
    return pd.DataFrame(sorted(values), columns=["feature", "value"])


def page_frame(items: list[RecommendedItem]) -> pd.DataFrame:
    """One row per slot: rank, content_id, category, slot_kind, score, reason, propensity."""
    return pd.DataFrame(
        [(i.rank, i.content_id, i.category, i.slot_kind, i.score, i.reason, i.propensity) for i in items],
        columns=["rank", "content_id", "category", "slot_kind", "score", "reason", "propensity"],
    )


def truth_folder(settings: Settings) -> Path | None:
    """The simulator's ground truth of the home's history (``inbox/_truth``), or None when there is none."""
    folder = settings.inbox / "_truth"
    return folder if (folder / "truth.json").exists() else None


def open_truth(folder: Path) -> TruthClickModel:
    """The simulator's click model (`evaluation.ranking_truth.TruthClickModel`)."""
    from evaluation.ranking_truth import TruthClickModel

    return TruthClickModel.from_folder(folder)


def with_truth(frame: pd.DataFrame, truth: TruthClickModel, user_id: str, now: datetime) -> pd.DataFrame:
    """Add the true click probabilities to a `page_frame`: ``true_p_click_top`` (P(click) if shown at the top,
    the quantity a model slot's score predicts) and ``true_p_click_here`` (at the slot's rank: examine(rank) x
    attract). NaN for ids the simulation does not know."""
    if frame.empty:
        return frame.assign(true_p_click_top=[], true_p_click_here=[])
    attract = truth.attract([user_id] * len(frame), frame["content_id"].tolist(), [now] * len(frame))
    ranks = frame["rank"].to_numpy()
    known = np.isin(ranks, list(truth.examine_by_position))
    here = np.full(len(frame), np.nan)
    here[known] = truth.examine(ranks[known]) * attract[known]
    out = frame.assign(true_p_click_top=attract, true_p_click_here=here)
    first = ["rank", "content_id", "slot_kind", "score", "true_p_click_top", "true_p_click_here"]
    return out[first + [c for c in out.columns if c not in first]]


def _display(value: Any) -> str:
    if value is None:
        return "(missing)"
    if isinstance(value, float):
        return "(missing)" if np.isnan(value) else f"{value:.4g}"
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(_display(v) for v in value)
    return str(value)

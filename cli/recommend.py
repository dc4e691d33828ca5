"""`tailor recommend USER_ID`: the page a user would get now, and how it was made."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from cli.common import console, existing_home, fail

if TYPE_CHECKING:
    from ml.recommend import Recommendation, Recommender

out = console()


@click.command()
@click.argument("user_id")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Items on the page.")
@click.option("--surface", type=click.Choice(["home", "feed"]), default="home", show_default=True)
@click.option(
    "--at",
    "at",
    default=None,
    metavar="ISO-TIME",
    help="The moment the page is for (ISO 8601, e.g. 2026-02-01T09:00:00Z; default: now). A history that ended "
    "earlier (a simulated one) has fresh items to explore only at its own end.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (docs/recommendations.md).")
def recommend(user_id: str, k: int, surface: str, at: str | None, as_json: bool) -> None:
    """Recommend a page for USER_ID: the model's ranking after the business rules, or the cached or popular page
    when the model cannot answer in time (the output says which served, and why)."""
    from ml.history import MissingMartError
    from ml.recommend.serving import NoCatalogError, RecommendationInputError, Recommender, ServingConfig

    settings = existing_home()
    from orchestration.lib.engine_support import serving_refusal

    refused = serving_refusal(settings)
    if refused:
        fail(refused)
    moment = _moment(at)
    try:
        config = ServingConfig.from_env()
    except ValueError as exc:  # a TAILOR_RECOMMEND_* variable: the message names it
        fail(str(exc))
    try:
        inside = _check_at(settings.marts_dir, moment, at or "") if moment is not None else None
        recommender = Recommender.open(settings, config)
        result = recommender.recommend(user_id, k=k, surface=surface, now=moment)
    except (RecommendationInputError, NoCatalogError) as exc:
        fail(str(exc))
    except MissingMartError as exc:
        fail(f"{exc} (nothing to recommend from yet: `make demo` builds a demo history)")
    cold, cold_start = _cold_start_note(recommender, result)
    if cold or inside:
        result = replace(result, notes=[n for n in (cold, inside) if n] + result.notes)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "cold_start": cold_start}, indent=2))
        return
    why = f" ({result.fallback_reason})" if result.fallback_reason else ""
    out.print(
        f"[bold]{result.user_id}[/] on {result.surface}: served by {result.served_by}{why}; "
        f"model {result.model_version or '-'}; {', '.join(f'{e}={v}' for e, v in result.variants.items())}; "
        f"{result.latency_ms:.1f} ms",
        highlight=False,
    )
    if cold:  # above the table: it says what kind of page follows
        out.print(cold, highlight=False, markup=False)
    table = Table(show_header=True)
    for column in ("rank", "content", "category", "score", "slot", "reason"):
        table.add_column(column)
    for item in result.items:
        table.add_row(
            str(item.rank), item.content_id, item.category or "", f"{item.score:.4f}", item.slot_kind, item.reason
        )
    out.print(table)
    for note in result.notes:
        if note != cold:
            out.print(f"note: {note}", highlight=False, markup=False)


def _moment(at: str | None) -> datetime | None:
    """``--at`` as an aware UTC datetime (a time without a zone is UTC); None: now."""
    from tailor.contract.spec import TIMESTAMP_YEARS

    if at is None:
        return None
    try:
        parsed = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--at {at!r} is not an ISO 8601 time: write e.g. 2026-02-01T09:00:00Z")
    first, last = TIMESTAMP_YEARS
    if not first <= parsed.year <= last:  # 9999-12-31 overflowed the model path; 0001 printed as 1-01-01
        fail(
            f"--at {at.strip()} is outside the years {first}-{last} that event times may have (the event contract): "
            "pass a time within the history, e.g. its end, or leave --at out for now"
        )
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _check_at(marts_dir: Path, moment: datetime, at: str) -> str | None:
    """Refuse ``--at`` before the history's first impression: nothing was known then, and the popular, cached and
    editorial lists would offer items not yet published at that moment. Within the history, a note saying that
    those lists are the history end's (None at or after the end).

    Reads the bounds from the published fct_impressions Parquet (`ml.history`), never the warehouse file, so a
    run writing the warehouse meanwhile is no obstacle. An empty history has no bounds to check.

    Raises:
        MissingMartError: fct_impressions is not published yet.
    """
    from ml.history import history_end, history_start

    start, end = history_start(marts_dir), history_end(marts_dir)
    if start is None or end is None or moment >= end:
        return None
    if moment >= start:
        return (
            f"--at {moment:%Y-%m-%dT%H:%M:%SZ} is inside the history, which ends {end:%Y-%m-%dT%H:%M:%SZ}: items "
            "published after --at are left out, but the user's features, what they consumed, the candidates and "
            "the popular list are those of the history's end (and of any activity streamed since), not as of --at"
        )
    fail(
        f"--at {at} is before the history starts: it runs from {start:%Y-%m-%d} (first impression "
        f"{start:%Y-%m-%dT%H:%M:%SZ}) to {end:%Y-%m-%d}, so at {moment:%Y-%m-%dT%H:%M:%SZ} nothing was known yet "
        f"and its items were not published. Pass a time from {start:%Y-%m-%dT%H:%M:%SZ} on, e.g. --at "
        f"{end:%Y-%m-%dT%H:%M:%SZ} (the history's end), or leave --at out for now."
    )


def _cold_start_note(recommender: Recommender, result: Recommendation) -> tuple[str | None, bool]:
    """The line that says a popular page was served because the history knows nothing of this user (the right
    page for a new user, but one that must not pass for a personalized page), and whether the page is the
    cold-start page; (None, False) for a user with a history.

    "A history" is what the model path needs to personalize (`Recommender.has_history`). A holdout user gets the
    non-personalized page whatever their history, so the headline's reason (the holdout) is the page's only one;
    an id the history never saw is still said (a mistyped id must not pass unnoticed), as a fact.
    """
    user = result.user_id
    if result.served_by != "popular" or recommender.has_history(user):
        return None, False
    known = user in recommender.country_of
    if result.holdout and known:
        return None, False
    stripped = user.strip()
    # "u0000001 ": ids are kept as sent, spaces too.
    hint = (
        f"; did you mean {stripped!r}? ids are matched exactly, spaces included"
        if stripped != user and stripped in recommender.country_of
        else ""
    )
    # "Unknown", not "never seen": an id with events but no user record (e.g. only an experiment exposure) is in the
    # history yet not a known user; what it lacks is said as such (a trial with its own events).
    unknown = "is not a known user (no user record in dim_users, no click or view in the history)"
    if result.holdout:
        return f"user {user!r} {unknown}{hint}", False
    # "In the history": clicks streamed in the last minutes are not yet in the marts the model path reads.
    what = "has no clicks or views in the history yet" if known else unknown
    return f"user {user!r} {what}: showing the cold-start page (popular items), not a personalized one{hint}", True

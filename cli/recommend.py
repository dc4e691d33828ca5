"""`tailor recommend USER_ID`: the page a user would get now, and how it was made."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from cli.common import fail, load_settings

out = Console(soft_wrap=True, width=None if Console().is_terminal else 160)


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
    from ml.recommend.serving import RecommendationInputError, Recommender, ServingConfig

    settings = load_settings()
    from orchestration.lib.engine_support import engine_switch_refusal

    refused = engine_switch_refusal(settings)  # a home another engine built: its features are not this engine's
    if refused:
        fail(refused)
    moment = _moment(at)
    try:
        config = ServingConfig.from_env()
    except ValueError as exc:  # a TAILOR_RECOMMEND_* variable: the message names it
        fail(str(exc))
    try:
        recommender = Recommender.open(settings, config)
        result = recommender.recommend(user_id, k=k, surface=surface, now=moment)
    except RecommendationInputError as exc:
        fail(str(exc))
    except MissingMartError as exc:
        fail(f"{exc} (nothing to recommend from yet: `make demo` builds a demo history)")
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    why = f" ({result.fallback_reason})" if result.fallback_reason else ""
    out.print(
        f"[bold]{result.user_id}[/] on {result.surface}: served by {result.served_by}{why}; "
        f"model {result.model_version or '-'}; {', '.join(f'{e}={v}' for e, v in result.variants.items())}; "
        f"{result.latency_ms:.1f} ms",
        highlight=False,
    )
    table = Table(show_header=True)
    for column in ("rank", "content", "category", "score", "slot", "reason"):
        table.add_column(column)
    for item in result.items:
        table.add_row(
            str(item.rank), item.content_id, item.category or "", f"{item.score:.4f}", item.slot_kind, item.reason
        )
    out.print(table)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False, markup=False)


def _moment(at: str | None) -> datetime | None:
    """``--at`` as an aware UTC datetime (a time without a zone is UTC); None: now."""
    if at is None:
        return None
    try:
        parsed = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--at {at!r} is not an ISO 8601 time: write e.g. 2026-02-01T09:00:00Z")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

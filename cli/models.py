"""`tailor models`: the registered rankers, one in detail, and promoting one to champion by hand."""

from __future__ import annotations

import re
from typing import Any

import click
from rich.table import Table

from cli.common import console, emit_json, existing_home, fail

out = console()
_SHOWN = (
    "classification.ranker.auc",
    "classification.popularity.auc",
    "classification.ranker.log_loss",
    "classification.ranker.ece",
    "ranking.ranker.ndcg_at_k",
    "ranking.popularity.ndcg_at_k",
)


def metric_notes() -> dict[str, str]:
    """What each group of stored metrics (``classification.*``, ``ranking.*``) measures, said next to them (the
    tables' notes, ``metric_notes`` in --json): the list metrics are judged against logged clicks, which favour the
    logging policy (docs/decisions.md, "The ranker (issue 8)", "What the stored evaluation can and cannot say")."""
    from ml.registry import NDCG_TOLERANCE  # the ml package is loaded only when a models command runs

    return {
        "classification": (
            "click prediction on the version's logged test impressions: what the promotion gate uses (AUC above "
            "popularity's and calibrated, then a log loss below the champion's on the same window, NDCG at most "
            f"{NDCG_TOLERANCE} below the champion's)"
        ),
        "ranking": (
            "top-k lists judged against the clicks logged in the test window: favours the logging policy (users "
            "could only click what it showed), so popularity scores high by construction; on the simulator's demo, "
            "judged by its true click probabilities, the ranker's lists are far better than popularity's "
            "(docs/benchmarks.md; docs/decisions.md, 'The ranker (issue 8)')"
        ),
    }


def _registry() -> Any:
    """The registry of the home in use; a home that does not exist is an error (`fail`), not an empty registry."""
    settings = existing_home()
    from ml.registry import Registry  # MLflow is slow to import: only when the command runs

    return Registry(settings.models_dir)


class _VersionCommand(click.Command):
    """A command whose argument is a version number: ``show -1`` said "No such option: -1". A negative number is
    passed after ``--``, so it reaches VERSION (which says which versions exist), while a mistyped option is still
    one ("No such option '--jsno'. Did you mean '--json'?")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        numbers = [a for a in args if re.fullmatch(r"-\d+", a)]
        if numbers and "--" not in args:
            args = [a for a in args if a not in numbers] + ["--", *numbers]
        return super().parse_args(ctx, args)


class _VersionOrAlias(click.ParamType):
    """VERSION: a version number, or the alias a version holds (champion, challenger; any case)."""

    name = "VERSION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        text = str(value).strip()
        if text.lower() in ("champion", "challenger"):
            return text.lower()
        try:
            return int(text)
        except ValueError:
            self.fail(f"{value!r} is not a version number or an alias (champion, challenger)", param, ctx)


def _resolve(registry: Any, version: int | str) -> int:
    """The number of ``version``, an alias resolved in ``registry``; an alias no version holds is an error line."""
    if isinstance(version, int):
        return version
    holder = registry.alias(version)
    if holder is None:
        fail(f"no ranker version is {version} now: `tailor models` lists the versions and their aliases")
    return int(holder.version)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """The ranker versions in the registry (MLflow under TAILOR_HOME/models), newest first."""
    ctx.ensure_object(dict)
    ctx.obj["json"] = as_json
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_versions)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_versions(ctx: click.Context, as_json: bool = False) -> None:
    """Every version with its aliases and headline metrics."""
    from ml.registry import window_days

    versions = _registry().versions()
    if as_json or (ctx.obj or {}).get("json"):
        emit_json([_as_json(v, versions) for v in versions])
        return
    if not versions:
        out.print(f"No ranker trained yet. {_how_one_is_trained()}")
        return
    table = Table(title="Ranker versions (each on its own test window)", title_justify="left")
    k = _k(versions)
    # In a narrow terminal the columns wrap at spaces, never inside a date or a name (a trial's 120 columns showed
    # "chall…" for the aliases): dates stay whole, as the promotion reason quotes them.
    table.add_column("version", no_wrap=True)
    table.add_column("aliases", min_width=len("challenger,"))
    table.add_column("created", min_width=len("2026-12-01"))
    table.add_column("test window", min_width=len("2026-01-30 to"))
    for metric in _SHOWN:
        table.add_column(_label(metric, k), justify="right", min_width=6)
    for v in versions:
        table.add_row(
            str(v.version),
            ", ".join(v.aliases),
            v.created_at[:16].replace("T", " "),
            window_days(v.tags.get("test_window", "")),
            *(_number(v.metrics.get(m)) for m in _SHOWN),
        )
    out.print(table)
    _print_notes(k)


@models.command(cls=_VersionCommand)
@click.argument("version", type=_VersionOrAlias())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def show(ctx: click.Context, version: int | str, as_json: bool) -> None:
    """One version: metrics, parameters, tags and its promotion history, oldest first (the decision at training,
    each promotion by hand, each promotion that replaced it)."""
    from ml.registry import (
        MANUAL_PREFIX,
        PROMOTION_TAG,
        RegistryError,
        timeline_lines,
        window_days,
    )

    registry = _registry()
    everyone = registry.versions()
    version = _resolve(registry, version)
    try:
        found = registry.get(version)
    except RegistryError as exc:
        fail(str(exc) if everyone else f"no ranker version {version}: none trained yet. {_how_one_is_trained()}")
    if as_json or (ctx.obj or {}).get("json"):
        emit_json(_as_json(found, everyone))
        return
    out.print(
        f"[bold]ranker version {found.version}[/]  {', '.join(found.aliases) or 'no alias'}  ({found.created_at})"
    )
    for line in timeline_lines(found, everyone):
        out.print(line, highlight=False, markup=False)
    for title, values in (("metrics", found.metrics), ("parameters", found.params), ("tags", found.tags)):
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("value")
        for key in sorted(values):
            if key != PROMOTION_TAG and not key.startswith(MANUAL_PREFIX):  # said above, in words
                shown = _number(values[key], whole=key.endswith((".rows", ".users"))) if title == "metrics" else None
                if title == "tags" and key.endswith("_window"):  # stored start..end, end excluded: say the days
                    shown = window_days(str(values[key]))
                table.add_row(key, shown if shown is not None else str(values[key]))
        out.print(table)
        if title == "metrics":
            _print_notes(_k([found]), table=False)


@models.command(cls=_VersionCommand)
@click.argument("version", type=_VersionOrAlias())
@click.option(
    "--force",
    is_flag=True,
    help="Promote even a version that fails the promotion gate (AUC not above popularity's, or miscalibrated); "
    "recorded as forced, with the failed check.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def promote(ctx: click.Context, version: int | str, force: bool, as_json: bool) -> None:
    """Make VERSION the champion (the version `recommend` serves), whatever the comparison with the champion said.

    A version that fails the promotion gate (its AUC on its test window not above popularity's, or its calibration)
    is refused, naming the check and its numbers, unless --force. Each promotion is recorded on the version (who,
    when in UTC, the champion it replaced, forced or not) beside the automatic decision (`tailor models show`).
    """
    from ml.registry import PromotionRefused, RegistryError, promotion_history

    registry = _registry()
    version = _resolve(registry, version)
    try:
        before = registry.alias("champion")
        promoted = registry.promote(version, force=force)
    except PromotionRefused as exc:
        fail(str(exc), {"version": version, "gate": exc.failed, "changed": False, "champion": exc.champion})
    except RegistryError as exc:
        fail(str(exc))
    changed = before is None or before.version != version
    history = promotion_history(promoted)
    recorded = history[-1] if changed and history and history[-1]["kind"] == "manual" else None
    if as_json or (ctx.obj or {}).get("json"):
        # changed: whether the champion moved; previous_champion: who held it before (None: nobody); manual_promotion:
        # the record added (None when nothing changed); promotion_history: the version's whole history.
        emit_json(
            {
                **promoted.as_dict(),
                "changed": changed,
                "previous_champion": before.version if before else None,
                "manual_promotion": recorded,
                "promotion_history": history,
            }
        )
    elif not changed:
        out.print(f"ranker version {version} is already the champion; nothing changed")
    else:
        was = f" (was version {before.version})" if before is not None else ""
        out.print(f"ranker version {promoted.version} is now the champion{was}")
        if recorded is not None and recorded.get("forced"):
            out.print(
                f"forced past the promotion gate: {recorded['gate']}. While it serves, a run that trains no new "
                "version judges it in the ranker's checks, which then fail.",
                highlight=False,
                markup=False,
            )


def _as_json(version: Any, everyone: list[Any] | None = None) -> dict[str, Any]:
    """A version's --json object: the registry's fields, what its metrics measure (`metric_notes`), its promotion
    history (`ml.registry.promotion_history`; the raw records stay in ``tags``) and, given every version, how it
    lost the champion alias (``replaced_by``: `ml.registry.replacements`)."""
    from ml.registry import promotion_history, replacements

    shown = {**version.as_dict(), "metric_notes": metric_notes(), "promotion_history": promotion_history(version)}
    return shown | ({"replaced_by": replacements(everyone, version.version)} if everyone is not None else {})


#: Model names shortened in the table's headings, said in full under it.
SHORT_MODELS = {"popularity": "pop."}


def _label(metric: str, k: str) -> str:
    """A column's heading on two lines, the metric over the model, so the table fits a terminal (on one line it
    took 220 columns: a trial): the list metric is marked * (judged against logged clicks, said under the
    table)."""
    group, model, name = metric.split(".")
    model = SHORT_MODELS.get(model, model)
    if group == "ranking" and name == "ndcg_at_k":
        return f"NDCG@{k}*\n{model}"
    names = {"auc": "AUC", "log_loss": "log loss", "ece": "ECE"}
    return f"{names.get(name, name)}\n{model}" if group == "classification" else f"{name}\n{model}, lists"


def _k(versions: list[Any]) -> str:
    """The lists' cut-off the versions were evaluated at (their ``config.ranking_k`` parameter), else ``k``."""
    cutoffs = {v.params.get("config.ranking_k") for v in versions}
    return str(cutoffs.pop()) if len(cutoffs) == 1 and None not in cutoffs else "k"


def _print_notes(k: str, table: bool = True) -> None:
    """What the numbers above measure, and which of them the promotion gate uses: for the versions table (its
    short headings), or for one version's metrics, named in full (``table`` False: `models show` has no "pop." or
    "*" to explain, a trial)."""
    notes = metric_notes()
    if table:
        text = (
            "pop.: the popularity baseline, scored on the same test window.\n"
            f"AUC, log loss, ECE: {notes['classification']}.\n"
            f"* NDCG@{k} vs logged clicks (and the other list metrics, ranking.*): {notes['ranking']}."
        )
    else:
        text = (
            "<model> is the ranker, or a model scored beside it on the same test window: ranker_uncalibrated (the "
            "ranker before its calibration), naive (the same model trained without the position feature, the "
            "position-blind baseline), popularity, random, constant (the training window's click rate for every "
            "row).\n"
            f"classification.<model>.*: {notes['classification']}.\n"
            f"ranking.<model>.* (k = {k}): {notes['ranking']}."
        )
    out.print(text, highlight=False, markup=False)


def _number(value: Any, whole: bool = False) -> str:
    """A metric as shown: 4 decimals, or a count with separators (``whole``)."""
    if value is None:
        return ""
    return f"{float(value):,.0f}" if whole else f"{float(value):.4f}"


def _how_one_is_trained() -> str:
    """When `tailor run` trains the first ranker: the days of history its windows need (the configuration in the
    environment), and what serves meanwhile. Said by `models` and `models show` on an empty registry."""
    import os

    from ml.ranker.config import RankerConfig

    try:
        config = RankerConfig.from_env(os.environ)
    except ValueError as exc:
        return f"`tailor run` trains one, but the ranker settings are wrong: {exc}"
    return (
        f"`tailor run` trains one once the history spans {config.days_needed} days ({config.warmup_days} warm-up, "
        f"{max(config.train_days, 1)} train, {config.tune_days} tune, {config.calibration_days} calibration, "
        f"{config.test_days} test; TAILOR_RANKER_WARMUP_DAYS, _TRAIN_DAYS, _TUNE_DAYS, _CALIBRATION_DAYS and "
        "_TEST_DAYS shorten them); until then the pages come from popular items."
    )

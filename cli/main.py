"""The `tailor` command: generate a history, ingest files, run the pipeline.

Every command exits non-zero on failure with a message that says what was wrong and what to do; `--json`
prints data (and only data) on stdout, while progress goes to stderr. Under `--json` a failure is a JSON object on
stdout too, ``{"error": "<the message>"}`` (cli/common.py's `fail`), beside the message on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import (
    INTERRUPTED_STATUS,
    JsonErrorsGroup,
    bind_problem,
    console,
    emit_json,
    fail,
    load_settings,
    plural,
    writable_home,
    write_problem,
)
from cli.experiments import experiments
from cli.models import models
from cli.recommend import recommend
from tailor.contract.rules import Kind
from tailor.settings import REPO_ROOT, Settings, disable_telemetry

if TYPE_CHECKING:
    from simulator import SimulationConfig

# soft_wrap: never break a message inside a word when output is not a terminal (logs, pipes, CI).
err = console(stderr=True)
out = console()

#: A PYTHONWARNINGS entry that silences Dagster's "`dev_command` is superseded ... Use 'dg dev'" (see `ui`).
DAGSTER_DEV_SUPERSEDED = "ignore:Function `dev_command` is superseded"


@click.group(cls=JsonErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Tailor: warehouse-native content personalization.

    All data lives under TAILOR_HOME (default ./data): the inbox, the landing zone, the DuckDB warehouse,
    published marts and the Dagster instance.
    """
    disable_telemetry()
    import os

    from tailor.environment import flag_warnings, import_sqlglotrs_quietly, unknown_variables

    # A misspelled setting would otherwise fall back to its default silently.
    for message in unknown_variables(os.environ) + flag_warnings(os.environ):
        err.print(f"Warning: {message}", highlight=False)
    import_sqlglotrs_quietly()


@main.command()
@click.option("--users", type=click.IntRange(min=1), default=2000, show_default=True, help="Number of users.")
@click.option(
    "--days",
    type=click.IntRange(min=1, max=3650),
    default=None,
    show_default="28; 1 with --continue",
    help="Days of history; with --continue, the days to add (a daily run adds one).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=7, show_default=True, help="Random seed: same seed, same files."
)
@click.option(
    "--start-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day of the history (YYYY-MM-DD; 2002-01-01 or later, and the history must end before today, UTC).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the files (default: TAILOR_HOME/inbox, where `tailor run` picks them up).",
)
@click.option("--format", "file_format", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier simulation in the output folder.")
@click.option(
    "--continue",
    "resume",
    is_flag=True,
    help="Add DAYS days to the simulation already in the output folder (same world and seed, new files only).",
)
@click.option(
    "--policy",
    type=click.Choice(["logging", "cached"]),
    default="logging",
    show_default=True,
    help="With --continue: what users see. cached = the batch recommendations (--pages) for the users they "
    "cover, the built-in logging policy for the others.",
)
@click.option(
    "--pages",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --policy cached: the pages to serve (default: TAILOR_HOME/marts/batch_recommendations.parquet).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def generate(
    ctx: click.Context,
    users: int,
    days: int | None,
    seed: int,
    start_date: datetime | None,
    out_dir: Path | None,
    file_format: str,
    overwrite: bool,
    resume: bool,
    policy: str,
    pages: Path | None,
    as_json: bool,
) -> None:
    """Simulate a content platform: users, catalog, sessions, impressions, clicks, views, conversions and
    experiments, with duplicates, late events and malformed rows. The ground truth goes to OUT/_truth/.

    With --continue, play DAYS more days of the simulation in OUT; with --policy cached, users are shown the
    pipeline's batch recommendations and react through their true click model (the closed loop, truth in
    OUT/_truth/continued/ and truth.json's closed_loop)."""
    from simulator import SimulationConfig, simulate

    days = days or (1 if resume else 28)  # a continued world grows a day at a time unless told otherwise
    settings = load_settings()
    target = (out_dir or settings.inbox).resolve()
    unwritable = write_problem(target)
    if unwritable:
        where = "--out" if out_dir else "the inbox of TAILOR_HOME"
        fail(
            f"{unwritable}: the simulated events go there ({where}). Choose a folder this user can write (--out DIR, "
            "or TAILOR_HOME for the home's inbox), then rerun"
        )
    if resume:
        _continue(ctx, settings, target, days, policy, pages, as_json)
        return
    if policy != "logging" or pages is not None:
        fail("--policy cached and --pages serve pages in a continued run: add --continue")
    options: dict[str, Any] = {"users": users, "days": days, "seed": seed, "format": file_format}
    if start_date is not None:
        options["start_date"] = start_date.date()
    try:
        config = SimulationConfig(**options)
    except ValueError as exc:
        fail(str(exc))
    given = ctx.get_parameter_source("start_date") == click.core.ParameterSource.COMMANDLINE
    start = f"--start-date {config.start_date}" if given else f"the default start {config.start_date}"
    _refuse_future_days(
        config.end_date, f"{start} with {plural(days, 'day')}", "start earlier (--start-date), or use fewer --days"
    )
    _refuse_mixing_histories(settings, target, config.to_dict())
    if overwrite and _kept_continued_history(settings, target, config, as_json):
        return
    _refuse_before_simulating(target, overwrite)
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
        console=err,
        transient=as_json,
    ) as bar:
        task = bar.add_task("days", total=days)
        try:
            result = simulate(
                config, target, progress=lambda done, total: bar.update(task, completed=done), overwrite=overwrite
            )
        except FileExistsError:
            bar.stop()
            fail(f"{target} already holds simulator output. Pass --overwrite to replace it, or choose another --out.")
    summary = result.as_dict()
    if as_json:
        emit_json(summary)
        return
    out.print(
        f"Wrote {plural(result.events_written, 'event row')} for {plural(users, 'user')} over {plural(days, 'day')} "
        f"to {target}"
    )
    out.print(f"Ground truth (never read by the pipeline): {target / '_truth'}")


def _continue(
    ctx: click.Context, settings: Settings, target: Path, days: int, policy: str, pages: Path | None, as_json: bool
) -> None:
    """`tailor generate --continue`: days more of the simulation in ``target``."""
    from simulator.runner import continue_simulation
    from simulator.serving import PagesError

    fixed = [f"--{name.replace('_', '-')}" for name in ("users", "seed", "start_date", "file_format", "overwrite")
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]  # fmt: skip
    if fixed:
        fail(f"{', '.join(fixed).replace('file-format', 'format')}: a continued run keeps the world of the first "
              "run (truth.json); drop these options")  # fmt: skip
    if policy == "logging" and pages is not None:
        fail("--pages is served with --policy cached")
    served = (pages or settings.marts_dir / "batch_recommendations.parquet") if policy == "cached" else None
    first = _refuse_replaying_landed_days(settings, target)
    _refuse_future_days(
        first + timedelta(days=days - 1),
        f"--continue by {plural(days, 'day')} from {first}",
        "add fewer --days, or wait for those days to pass",
    )
    with Progress(
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("days"), TimeElapsedColumn(),
        console=err, transient=as_json,
    ) as bar:  # fmt: skip
        task = bar.add_task("days", total=days)
        try:
            result = continue_simulation(
                target, days, pages=served, progress=lambda done, total: bar.update(task, completed=done)
            )
        except (FileNotFoundError, PagesError, ValueError) as exc:
            bar.stop()
            fail(str(exc))
    if as_json:
        emit_json(result.as_dict())
        return
    doc = json.loads(result.truth_path.read_text())
    segment = doc["continuations"][-1]
    out.print(
        f"Continued {target} by {plural(days, 'day')} ({segment['start_date']} to {segment['end_date']}, "
        f"policy {policy}): {plural(result.events_written, 'event row')}"
    )
    out.print(f"Closed-loop truth (never read by the pipeline): {target / '_truth' / 'continued'}")


def _refuse_future_days(last: date, what: str, advice: str) -> None:
    """Refuse a history whose last day is today or later (UTC): ingested now, its events would be quarantined as
    ``future_timestamp``, since an event may be at most 24 h ahead of when it arrives (docs/contract/README.md,
    "Events from the future"), and the last day's sessions run past its midnight. A trial's
    ``--start-date 2030-01-01`` wrote a history the warehouse refused whole."""
    today = datetime.now(UTC).date()
    if last >= today:
        fail(
            f"{what} ends on {last}, not before today ({today} UTC): ingested now, its events would be quarantined "
            "as future_timestamp (an event may be at most 24 h ahead of its arrival, and a day's last sessions run "
            f"past midnight). End it by {today - timedelta(days=1)}: {advice}"
        )


def _refuse_before_simulating(target: Path, overwrite: bool) -> None:
    """Refuse, before the progress bar starts, what `simulate` would refuse after it: a folder that holds an earlier
    simulation (without --overwrite), or one that cannot be made because a file is in the way."""
    from simulator.runner import existing_output

    blocker = next((path for path in (target, *target.parents) if path.exists()), None)
    if blocker is not None and not blocker.is_dir():
        fail(f"cannot write to {target}: {blocker} is a file, not a folder. Choose another --out.")
    if not overwrite and existing_output(target):
        fail(f"{target} already holds simulator output. Pass --overwrite to replace it, or choose another --out.")


def _kept_continued_history(settings: Settings, target: Path, config: SimulationConfig, as_json: bool) -> bool:
    """With --overwrite, keep (and say so) a simulation of this same world that was continued and whose continued
    days have landed (a second `make demo` on a home that `--continue` extended).

    Generating it again would write the same files for its first days (same world, same seed: landing them again
    changes nothing) and rewind its state to their last day, after which `--continue` could add no day
    (`_refuse_replaying_landed_days`). Keeping it loses nothing. Returns whether it was kept.
    """
    from tailor.ingest.landed_days import newest_landed_day

    truth = target / "_truth" / "truth.json"
    if not truth.is_file():
        return False
    doc = json.loads(truth.read_text())
    if not doc.get("continuations") or not _same_world(doc, config.to_dict()):
        return False
    end = config.end_date
    landed = newest_landed_day(settings, target, end + timedelta(days=1))
    if landed is None:
        return False
    continued_to = doc["continuations"][-1]["end_date"]
    message = (
        f"Kept the simulation in {target}: it is this same history ({config.users:,} users from {config.start_date}, "
        f"seed {config.seed}), continued to {continued_to}, and its days up to {landed} have landed in "
        f"{settings.home}. Generating it again would write the same files for its first {config.days} days and "
        f"rewind it to {end}, after which `tailor generate --continue` could add no day. Nothing was written: "
        "`tailor generate --continue --days N` adds days; to start over, use an empty home (a new TAILOR_HOME)."
    )
    if as_json:
        emit_json({"kept": True, "out": str(target), "continued_to": continued_to, "message": message})
    else:
        out.print(message, highlight=False)
    return True


def _refuse_replaying_landed_days(settings: Settings, target: Path) -> date:
    """Refuse a continuation whose first day has landed already, before anything is simulated; else return that
    first day.

    That happens when the simulation was generated again from scratch after an earlier continuation had landed and
    its truth was deleted (with the truth, `_kept_continued_history` keeps it instead): its state is back at the
    first run's last day. Its files for the landed days would be those already landed (same world, same seed), so
    `tailor run` would find nothing new while the user believes days were added. Refused rather than fast-forwarded:
    the simulator cannot know which policy and changes the landed days were played with, so replaying them could
    land a different history under the same event ids.
    """
    from simulator.runner import next_date
    from tailor.ingest.landed_days import newest_landed_day

    try:
        first = next_date(target)
    except (FileNotFoundError, ValueError) as exc:  # ValueError: a truth.json whose world this version refuses
        fail(f"{exc}; the simulation in {target} cannot be continued" if isinstance(exc, ValueError) else str(exc))
    landed = newest_landed_day(settings, target, first)
    if landed is None:
        return first
    last = first - timedelta(days=1)
    fail(
        f"the simulation in {target} ends on {last}, but its events up to {landed} have landed in {settings.home} "
        f"already: it was continued past {last} once and later generated again from scratch without its truth "
        f"(_truth/), which replays only the first run's days. Continuing would play {first} again, and "
        "`tailor run` would find nothing new. To add days, start from an empty home (set TAILOR_HOME to a new "
        "folder, or delete this one) and generate, run and continue there."
    )


def _same_world(truth: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a simulation's truth.json records ``config`` (`SimulationConfig.to_dict`; dates as the JSON has them)."""
    return bool(truth.get("config") == json.loads(json.dumps(config, default=str)))


def _refuse_mixing_histories(settings: Settings, target: Path, config: dict[str, Any]) -> None:
    """Refuse to put a different simulation into an inbox whose earlier one has already been landed.

    Event ids depend on the seed and a counter, so a second history in the same home would be taken for
    re-deliveries of the first (duplicates) and the marts would mix both worlds.
    """
    inbox, written = settings.inbox.resolve(), target.resolve()
    inside = written != inbox and written.is_relative_to(inbox)
    if (written != inbox and not inside) or not _events_landed(settings):
        return
    old_truth = inbox / "_truth" / "truth.json"
    same = old_truth.exists() and _same_world(json.loads(old_truth.read_text()), config)
    # Into the inbox itself: refused when the simulation there differs. Below it (the inbox is read with its
    # subfolders, so the next run lands it too; found by a new-user trial): refused unless it is the same world.
    if same or (not inside and not old_truth.exists()):
        return
    where = f"{target} is inside the inbox of {settings.home}, which" if inside else str(settings.home)
    fail(
        f"{where} already holds a different simulated history. Start from an empty home "
        f"(delete {settings.home}, or set TAILOR_HOME=<new folder>), or write elsewhere with --out, outside "
        f"{settings.inbox}."
    )


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["events", "users", "content"]),
    default=None,
    help="Treat every file as this kind instead of detecting it from its fields.",
)
@click.option(
    "--no-row-check",
    "skip_rows",
    is_flag=True,
    help="Land without applying the row checks now (faster for bulk loads; `tailor run` applies them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def ingest(paths: Sequence[Path], kind: str | None, skip_rows: bool, as_json: bool) -> None:
    """Check files against the event contract and land them for the warehouse.

    PATHS are JSON Lines or Parquet files, or folders holding them. All files are checked before any is
    landed: one bad file leaves the landing zone unchanged. A file already ingested is skipped, and so is a
    file of another type in a folder (named on stderr).
    """
    from tailor.ingest import IngestError, ingest_paths
    from tailor.ingest.files import dangling_link, dangling_links_in, unsupported_in
    from tailor.ingest.ingest import FIRST_REJECTED

    settings = writable_home("ingest", "the landing zone")
    new_home = not settings.home.exists()
    # A folder's other files are skipped, as documented, but never unseen (the inbox sets them aside instead).
    skipped = [str(p) for raw in paths if raw.is_dir() for p in unsupported_in(raw.expanduser())]
    for path in skipped:
        err.print(f"  skipping {path}: not JSON Lines or Parquet", highlight=False)
    for link in (p for raw in paths if raw.is_dir() for p in dangling_links_in(raw.expanduser())):
        err.print(f"  skipping {dangling_link(link).removesuffix('.')}", highlight=False)
    try:
        report = ingest_paths(
            paths,
            settings,
            kind=cast("Kind | None", kind),  # click.Choice limits it to the kinds
            progress=None if as_json else lambda p: err.print(f"  reading {p}", highlight=False),
            check_rows=not skip_rows,
        )
    except IngestError as exc:
        fail(f"{exc}\nNothing was ingested.")
    except OSError as exc:  # e.g. a file this user may not read: the ingestion stopped before landing anything
        where = exc.filename or "a file"
        if Path(str(where)).resolve().is_relative_to(settings.home.resolve()):  # the home's own files: a write
            fail(f"{where}: cannot be written ({exc.strerror or exc}). Check the Tailor home's permissions and free "
                 "space, then ingest again.\nNothing was ingested.")  # fmt: skip
        fail(f"{where}: cannot be read ({exc.strerror or exc}). Check the file and its permissions, then ingest "
             "again.\nNothing was ingested.")  # fmt: skip
    if new_home and settings.home.exists():
        # Said, not refused: ingesting into a new home is how one starts with one's own events; but a mistyped
        # TAILOR_HOME would otherwise land the files somewhere no later command looks (found by a new-user trial).
        err.print(f"note: {settings.home} did not exist: it is a new Tailor home now (TAILOR_HOME); `tailor run` "
                  "builds its warehouse", highlight=False)  # fmt: skip
    if as_json:
        emit_json({**report.as_dict(), "skipped_files": skipped})
        return
    table = Table(title="tailor ingest", title_justify="left")
    for column in ("file", "kind", "status", "received", "accepted", "rejected"):
        # fold: a name longer than its column (an 80-column terminal) goes on over lines, never cut with "…" (a trial)
        justify: Literal["left", "right"] = "right" if column in {"received", "accepted", "rejected"} else "left"
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "file")  # the name gives way
    for f in report.files:
        rejected = "\n".join(f"{reason} {n:,}" for reason, n in f.rejected.items()) or "0"  # a reason a line
        checked = f.rows_checked and f.status == "landed"
        table.add_row(
            Path(f.path).name,
            f.kind,
            f.status.replace("_", " "),
            f"{f.received:,}",
            f"{f.accepted:,}" if checked else "-",
            rejected if checked else "-",
        )
    out.print(table)
    if report.rows_checked:
        out.print(
            f"received {report.received:,}  accepted {report.accepted:,}  "
            f"rejected {sum(report.rejected.values()):,}  (duplicates are counted by `tailor run`)"
        )
        for f in report.files:
            for bad in f.first_rejected:
                detail = f" ({bad['detail']})" if bad["detail"] else ""
                line = f"  {Path(f.path).name} line {bad['line']}: {bad['reason']}{detail}"
                out.print(line, highlight=False, markup=False)
        if report.rejected:
            out.print(f"each rejected row's file, line and reason (above, the first {FIRST_REJECTED} of a file): the "
                      "mart fct_rejected_rows after `tailor run` (docs/contract/README.md)")  # fmt: skip
        for f in report.files:  # landed (its lines are kept), but nothing in it will reach the warehouse
            if f.rows_checked and f.status == "landed" and f.received and not f.accepted:
                reasons = ", ".join(f"{reason} {n:,}" for reason, n in f.rejected.items())
                err.print(f"warning: every row of {Path(f.path).name} was rejected ({reasons}): none of it reaches "
                          "the marts; fix the file and ingest it again", highlight=False)  # fmt: skip
    else:
        out.print(f"landed {report.received:,} rows unchecked; `tailor run` applies the row checks")
    if skipped:
        out.print(
            f"skipped {len(skipped):,} file(s) of another type (named above): only JSON Lines and Parquet are read"
        )


def _events_landed(settings: Settings) -> bool:
    """Whether any event batch has landed in this home."""
    return any(settings.landing.glob("events/batch-*"))


def _require_events(settings: Settings) -> None:
    """Refuse a run with nothing to run on: no file in the inbox and nothing landed before. Without this check a
    run spends a minute building empty tables and ends with the model assets' errors about missing data."""
    from tailor.ingest.files import JSONL_SUFFIXES, PARQUET_SUFFIXES
    from tailor.ingest.inbox import inbox_files, unsupported_files

    if inbox_files(settings) or _events_landed(settings):
        return
    others = [path.name for path in unsupported_files(settings)]
    held = (
        f"has no event files (only {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}: event files end in "
        f"{', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)})"
        if others
        else "has no files"
    )
    fail(
        f"nothing to run on: the inbox {settings.inbox} {held} and no events have landed in {settings.home}. "
        "Generate a history (`tailor generate --users 500 --days 14`) or put event files in the inbox "
        '(README, "Your own events"), then run again.'
    )


def _require_model_settings() -> None:
    """Refuse at once a TAILOR_RANKER_*, TAILOR_DRIFT_*, TAILOR_RETRAIN_* or TAILOR_RECOMMEND_* value the model
    assets would reject, instead of after the whole warehouse build (each message names the variable)."""
    import os

    from ml.monitoring.config import DriftConfig, RetrainPolicy
    from ml.ranker.config import RankerConfig
    from ml.recommend.serving import ServingConfig

    for read in (RankerConfig.from_env, DriftConfig.from_env, RetrainPolicy.from_env, ServingConfig.from_env):
        try:
            read(os.environ)
        except ValueError as exc:
            fail(f"{exc}: fix or unset it; nothing was run")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def run(as_json: bool, quiet: bool) -> None:
    """Materialize the whole asset graph: ingest the inbox, build, test and publish the warehouse, load the feature
    store, build the training set, train and register the ranker when due, and write the batch pages."""
    from cli.run_report import failure_message, print_report, run_fields
    from cli.summary import pipeline_summary
    from orchestration.lib.engine_support import build_refusal
    from orchestration.lib.run_lock import RunBusyError
    from orchestration.lib.runner import SPARK_LOG, run_all
    from tailor.feature_store import feature_store_problem

    settings = writable_home("run", "its run lock, warehouse, marts, feature store and models")
    # Said before anything starts: what the engine cannot run here, a home another engine built, a dbt target it
    # may not use, no Java for Spark; and a feature store configuration that cannot work (else found after the
    # whole dbt build, at the feature registry).
    refused = build_refusal(settings) or feature_store_problem(settings)
    if refused:
        fail(f"{refused.rstrip('.')}. Nothing was run")
    _require_events(settings)
    _require_model_settings()

    def say_started() -> None:  # called once no other run holds the home: a refused run never says it started
        if not quiet:
            err.print(f"Running every asset against {settings.home}", highlight=False)

    try:
        outcome = run_all(settings, quiet=quiet, on_start=say_started)  # progress on stderr: stdout stays JSON only
    except RunBusyError as busy:
        fail(str(busy))
    _ignore_stop_signals()  # the run is over: its summary and status are what is left to give
    summary = {**pipeline_summary(settings), "run": run_fields(outcome)}
    if not as_json:
        print_report(summary, outcome)
    if not outcome.success:
        jvm_log = settings.home / "logs" / SPARK_LOG if settings.engine == "spark" else None
        status = INTERRUPTED_STATUS if outcome.interrupted else 1
        # --json: the summary and the error, in one object
        fail(failure_message(outcome, settings.home, jvm_log), data=summary, status=status)
    if as_json:
        emit_json(summary)


def _ignore_stop_signals() -> None:
    """Ignore Ctrl-C and SIGTERM from here to the exit: the run is over, and its summary (a second at most: row
    counts from Parquet footers) and exit status are all that is left.

    Python's teardown of the run's modules (Dagster's, Feast's, DuckDB's: 1-2 s of freeing objects, no Python frame)
    comes after it has reset its own signal handlers, so a Ctrl-C then killed the process with status 130 and no
    word after the whole summary was printed (a trial, twice); during the summary it cut the summary short and
    called a finished run interrupted. Ignored, the summary is whole and the status is the run's."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=click.IntRange(1, 65535))
def ui(host: str, port: int) -> None:
    """Start the Dagster UI (dagster dev) on this machine, with the instance under TAILOR_HOME."""
    import os
    import signal

    # The instance (runs, schedules, logs) is written under the home: on a read-only one `dagster dev` starts, then
    # fails in SQLAlchemy (a trial).
    settings = writable_home("ui", "the Dagster instance: runs, event logs, schedules and sensor state")
    # `dagster dev` does not stop when its webserver cannot bind: the daemon beside it runs on (and launches the
    # sensors' runs) with no UI to see them. So the address is checked first.
    refused = bind_problem(host, port, "UI_PORT")
    if refused:
        fail(refused)
    from orchestration.lib.daemon import running_daemon

    busy = running_daemon(settings)  # a second daemon on one instance runs every sensor twice (a trial)
    if busy:
        fail(busy)
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.dagster_env()}
    # Dagster 1.13 warns that `dagster dev` is superseded by `dg dev` (a CLI this stack does not install) at every
    # start: a trial read it as something to act on. PYTHONWARNINGS reaches the webserver and daemon too; it
    # matches that message alone (its start, as -W does).
    env["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), DAGSTER_DEV_SUPERSEDED)))
    dagster = str(Path(sys.executable).parent / "dagster")
    err.print(f"Dagster UI on http://{host}:{port} (Ctrl-C to stop); data in {settings.home}", highlight=False)
    # From the repository root, `dagster dev` loads the code location that pyproject.toml's [tool.dagster] names
    # (`tailor`); with `-m` it would be named after the module.
    os.chdir(REPO_ROOT)
    # A command started in the background by a non-interactive shell (`tailor ui &` in a script, CI) inherits SIGINT
    # ignored, and an ignored signal stays ignored across exec: `dagster dev` then logs the interrupt and forwards
    # it to its webserver and code server, which ignore it and run on (a trial's `kill -INT` left six processes).
    # The default dispositions make Ctrl-C and kill stop all of them.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    from tailor.faces import DAGSTER_UI, record_address

    # This process becomes `dagster dev`: messages give its address.
    record_address(DAGSTER_UI, settings.home, host, port)
    os.execve(dagster, [dagster, "dev", "-h", host, "-p", str(port)], env)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535))
def app(host: str, port: int) -> None:
    """Start the analyst app (Streamlit) for the home in TAILOR_HOME; `make app` runs this (docs/app.md)."""
    import os
    import signal

    from app.server import streamlit_command
    from tailor.faces import ANALYST_APP, record_address
    from tailor.settings import TELEMETRY_OFF

    settings = load_settings()
    refused = bind_problem(host, port, "APP_PORT")  # Streamlit would say so only after its start-up
    if refused:
        fail(refused)
    err.print(f"Analyst app on http://{host}:{port} (Ctrl-C to stop); data in {settings.home}", highlight=False)
    command = streamlit_command(host, port)
    env = {**os.environ, **TELEMETRY_OFF, "TAILOR_HOME": str(settings.home)}
    os.chdir(REPO_ROOT)
    for number in (signal.SIGINT, signal.SIGTERM):  # as `tailor ui`: Ctrl-C and kill must stop it
        signal.signal(number, signal.SIG_DFL)
    record_address(ANALYST_APP, settings.home, host, port)  # this process becomes the app: messages give its address
    os.execve(command[0], command, env)


main.add_command(experiments)
main.add_command(models)
main.add_command(recommend)

from cli.stream import stream  # noqa: E402  (light: the command imports redis and feast when it runs)

main.add_command(stream)

from cli.serve import serve  # noqa: E402  (light: the command imports uvicorn and the service when it runs)

main.add_command(serve)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

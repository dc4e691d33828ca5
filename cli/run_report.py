"""What `tailor run` says when the run ends: the summary, what each model asset did, drift signals, and for a failed
run what failed, what was left unbuilt and where to read more about each failure (its log, or a check's verdict)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from cli.common import console
from tailor.faces import ANALYST_APP, DAGSTER_UI, HTTP_SERVICE, hint, open_line

if TYPE_CHECKING:
    from orchestration.lib.runner import RunOutcome

# Soft-wrapped (never a break inside a word in logs, pipes, CI), and wide enough for tables there (cli.common).
err = console(stderr=True)
out = console()

#: Assets named in a failure message before "and N more".
_SHOWN = 8


def run_fields(outcome: RunOutcome) -> dict[str, Any]:
    """The ``run`` object of `tailor run --json`: success, what failed and why, where its logs are, what was left
    unbuilt, drift signals and what each model asset did."""
    return {
        "success": outcome.success,
        "run_id": outcome.run_id,
        "failed_steps": outcome.failed_steps,
        "interrupted_steps": outcome.interrupted,
        "failed_checks": outcome.failed_checks,
        "checks_evaluated": len(outcome.checks_evaluated),
        "reconciliation_checked": any(
            name.endswith(":received_equals_accepted_duplicates_quarantined") for name in outcome.checks_evaluated
        ),
        "errors": outcome.errors,
        "logs": outcome.logs,
        "not_built": outcome.not_built,
        "retrain_signals": outcome.retrain_signals,
        "new_champion": outcome.new_champion,
        "models": outcome.models,
        "set_aside": outcome.set_aside,
        "warned_checks": outcome.warned_checks,
        "signal": outcome.signal,
    }


def print_report(summary: dict[str, Any], outcome: RunOutcome) -> None:
    """The readable end of a run, failed or not: the counts when every asset was built (a failed check leaves them
    built and published; after a failed step they would be the last run's, so they are left out), what each model
    asset did, drift signals, and each failed step's error in short (`failure_message` says where the rest is)."""
    if not outcome.not_built:
        print_summary(summary)
    for name, text in outcome.models.items():
        out.print(f"{name + ':':<24} {text}", highlight=False, markup=False)
    if outcome.set_aside:
        print_set_aside(outcome.set_aside)
    if outcome.success and outcome.signal:  # it reached the last step, which went on to its end
        err.print(
            f"note: {outcome.signal} arrived during the run's last step, which finished: every asset was built",
            highlight=False,
        )
    for name, text in outcome.warned_checks.items():  # the run succeeded, but each is worth a look
        err.print(f"[bold yellow]warning[/] {name}: {text}", highlight=False, markup=True)
    if outcome.retrain_signals:
        for name, text in outcome.retrain_signals.items():
            err.print(f"[bold yellow]drift[/] {name}: {text}", highlight=False, markup=True)
    if outcome.retrain_signals and outcome.new_champion is not None:
        # The checks run before the ranker: a trial read "the answer is a retrain" under a line saying it happened.
        err.print(
            "These measured the champion this run started with. This run trained version "
            f"{outcome.new_champion}, which replaced it as champion (the ml/ranker line above): the retrain is done, "
            "and the next run measures the new champion.",
            highlight=False,
        )
    elif outcome.retrain_signals:
        err.print(
            "The champion's inputs or predictions moved away from its training window; the answer is a retrain, "
            "not a fix: with the Dagster daemon running (`make ui`) the retrain_sensor requests the retrain_ranker "
            "job (or run it yourself from the UI), which trains a challenger; the registry's rule decides whether it "
            "replaces the champion. `tailor run` alone retrains only when the retrain rule says it is due (the "
            "ml/ranker line above).",
            highlight=False,
        )
    for step in outcome.failed_steps:
        # A step that ran and failed; one that never ran, or was interrupted, is said in the failure message.
        if step in outcome.logs and step not in outcome.interrupted:
            err.print(f"[bold red]{step} failed[/]", highlight=False)
            err.print(outcome.errors.get(step, "failed"), highlight=False, markup=False)


def print_set_aside(set_aside: dict[str, str]) -> None:
    """The inbox files the run could not ingest (inbox path -> where each is now): where they went, where the reason
    is and how to retry, after the counts, which leave them out (they never landed)."""
    from tailor.ingest.inbox import NOTE_SUFFIX

    moved = sorted(set_aside.values())
    shown = ", ".join(Path(path).name for path in moved[:_SHOWN])
    more = f" and {len(moved) - _SHOWN:,} more" if len(moved) > _SHOWN else ""
    out.print(
        f"[bold]Set aside[/] {len(moved):,} inbox file(s) that could not be ingested: {shown}{more}, moved to "
        f"{Path(moved[0]).parent}, each beside a <name>{NOTE_SUFFIX} saying why. To retry one, fix it and move it "
        "back into the inbox; the next `tailor run` ingests it.",
        highlight=False,
    )


def failure_message(outcome: RunOutcome, home: Path, jvm_log: Path | None = None) -> str:
    """Why a run failed, in one message: what failed, what was not built, and per failure where to read more: a
    failed step's log (dbt's for the dbt step), the verdict of a failed check (its description; checks keep no log),
    or why a step never ran; on Spark also the JVMs' own log, ``jvm_log``, when a step failed; last, where
    ``home``'s Dagster UI shows every step's events."""
    from orchestration.lib.runner import DBT_LOG  # loaded already: the run ran

    failed = [step for step in outcome.failed_steps if step not in outcome.interrupted]
    what = ", ".join(failed + outcome.failed_checks) or "a step"
    missing = outcome.not_built
    if missing:
        shown = ", ".join(missing[:_SHOWN]) + (f" and {len(missing) - _SHOWN:,} more" if len(missing) > _SHOWN else "")
        assets = f"{len(missing):,} asset{'s' if len(missing) != 1 else ''}"
        left = f"{assets} not built ({shown}); they keep their last run's data"
    else:
        left = "every asset was built"
    if outcome.failed_checks:
        left += "; a check with ERROR severity did not pass: its data needs a look"
    if outcome.interrupted:
        # A signal, not a fault: the step's "traceback" is the signal's, and the answer is to run again.
        running = ", ".join(outcome.interrupted)
        lines = [
            f"the run was interrupted while {running} ran (a signal: Ctrl-C, or SIGTERM from `timeout` or a "
            f"shutdown); {left}.",
            f"  Nothing after {running} was built. Rerun `tailor run` to finish: what this run built is kept (files "
            "it landed are not landed again) and the rest is built.",
        ]
        if failed or outcome.failed_checks:
            lines.append(f"  Before that, {what} failed:")
    else:
        lines = [f"the run failed ({what}); {left}."]
    for step in failed:
        log = outcome.logs.get(step)
        if log is None:
            lines.append(f"  {step}: {outcome.errors.get(step, 'failed')}")
        elif Path(log).name == DBT_LOG:
            lines.append(f"  {step}: dbt's log is {log}")
        else:
            # The error's own line first: `run --json`'s error held only the log's path (a trial).
            said = outcome.errors.get(step, "").strip()
            cause = f"{said.splitlines()[0]}; " if said and said != "failed" else ""
            lines.append(f"  {step}: {cause}its log, with the error's traceback, is {log}")
    for check in outcome.failed_checks:
        lines.append(f"  {check}: {outcome.errors.get(check) or 'failed (no description): see it in the Dagster UI'}")
    if jvm_log is not None and failed:
        lines.append(f"  Spark's JVMs (dbt's and Feast's) logged their warnings and errors in {jvm_log}")
    lines.append(f"Every step's events of run {outcome.run_id} are in {hint(DAGSTER_UI, home)}.")
    return "\n".join(lines)


def _balance_state(events: dict[str, Any]) -> str:
    """'balanced' (said with what it means: a reader meets the word after the counts and nowhere else), or why not:
    rows landed after the build (the next run builds them) or a real mismatch."""
    if events["balanced"]:
        return "balanced: every row received is accepted, a duplicate or quarantined"
    if events.get("balanced_except_pending"):
        return (
            "balanced for what this run built (every row it built is accepted, a duplicate or quarantined); "
            f"{events['pending_rows']:,} rows in {events['pending_batches']:,} batches landed after its build: "
            "the next `tailor run` builds them"
        )
    return "NOT BALANCED: rows are missing from the warehouse; rerun `tailor run` and see docs/contract/README.md"


def print_summary(summary: dict[str, Any]) -> None:
    """The event counts, the published marts with their rows, and where everything is."""
    events = summary["events"]
    out.print()
    out.print(
        "[bold]Events[/]  received {received:,}  accepted {accepted:,}  duplicates {duplicates:,}  "
        "quarantined {quarantined:,}  ({state})".format(**events, state=_balance_state(events))
    )
    if summary.get("quarantined_by_reason"):
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in summary["quarantined_by_reason"].items())
        out.print(
            f"[bold]Quarantine[/] (all sources) by reason: {reasons}. Each row's detail: fct_rejected_rows "
            "(docs/contract/README.md)",
            highlight=False,
        )
    table = Table(title="Published marts", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary["marts"].items():
        table.add_row(name, f"{rows:,}")
    out.print(table)
    engine = {"duckdb": "DuckDB", "spark": "Spark"}.get(summary["engine"], summary["engine"])
    out.print(f"{'Warehouse (' + engine + '):':<20}{summary['warehouse']}")
    out.print(f"Published Parquet:  {summary['marts_dir']}")
    out.print("Experiments:        tailor experiments (docs/experiments.md)")
    out.print("Recommendations:    tailor recommend USER_ID, tailor models (docs/recommendations.md)")
    home = Path(summary["home"])
    out.print(f"Analyst app:        {open_line(ANALYST_APP, home)} (docs/app.md)")
    out.print(f"HTTP service:       {open_line(HTTP_SERVICE, home)} (docs/service.md)")
    out.print("Online features:    feature_repo/README.md (ml.features.online_features, feast serve)")
    out.print(f"Dagster UI:         {open_line(DAGSTER_UI, home)}")

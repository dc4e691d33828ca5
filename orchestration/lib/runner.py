"""Run the whole asset graph in this process (what `tailor run` and `make demo` do)."""

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from orchestration.lib.active_runs import earlier_active_run
from orchestration.lib.dbt_failures import warning_text
from orchestration.lib.interrupted_runs import fail_interrupted_runs, process_tags
from orchestration.lib.progress import materialization_metadata, was_interrupted
from orchestration.lib.run_lock import RunBusyError, run_lock
from orchestration.lib.run_summary import publish_run_summary
from orchestration.lib.signals import SignalRecord, signal_record
from tailor.settings import Settings

#: Checks that watch the champion rather than the data: when one fails (drift), the run did its job and the answer
#: is a retrain (the retrain sensor requests one), not a broken pipeline. They are reported, not fatal.
RETRAIN_SIGNALS = frozenset({"champion_features_stable", "champion_predictions_stable"})

#: What a step a signal stopped says instead of its error.
INTERRUPTED_TEXT = "interrupted while it ran (a signal: Ctrl-C, or SIGTERM from `timeout` or a shutdown)"
#: dbt's output during a run (dagster-dbt echoes it on stdout), in ``<TAILOR_HOME>/logs/``.
DBT_LOG = "dbt.log"
#: The log of each step that failed in the last run, ``<TAILOR_HOME>/logs/steps/<step>.log`` (emptied by every run).
STEP_LOGS = "steps"
#: The Spark JVMs' own log (log4j) during a run on Spark, in ``<TAILOR_HOME>/logs/``.
SPARK_LOG = "spark.log"
#: Log4j 2's configuration for those JVMs: everything to SPARK_LOG, nothing to the console.
SPARK_LOG4J = Path(__file__).with_name("spark_log4j2.properties")


@dataclass(frozen=True)
class RunOutcome:
    """success is false when a step failed or an ERROR-severity check did not pass (except `RETRAIN_SIGNALS`,
    listed in `retrain_signals`)."""

    success: bool
    run_id: str
    failed_steps: list[str]
    failed_checks: list[str]
    checks_evaluated: list[str]
    #: What went wrong in each failed step (a dg.Failure's description, else the error's message) and each failed
    #: ERROR check (its description: the figures and the limit), in words.
    errors: dict[str, str] = field(default_factory=dict)
    #: ERROR-severity failures of the checks in RETRAIN_SIGNALS (asset:check), with the check's description.
    retrain_signals: dict[str, str] = field(default_factory=dict)
    #: What each model-side asset (``ml/...``) did, in words: its ``action`` and ``reason`` metadata, e.g.
    #: ``{"ml/ranker": "up to date: unchanged, version 3 kept"}``.
    models: dict[str, str] = field(default_factory=dict)
    #: Assets the run planned but never materialized (e.g. everything after a failed step), sorted; empty when every
    #: asset was built, so the published counts are this run's.
    not_built: list[str] = field(default_factory=list)
    #: Where to read more about each failed step (step -> file): dbt's log for a step dagster-dbt runs, else the
    #: step's own log lines and its error with the traceback (`write_step_logs`). Filled by `run_all`.
    logs: dict[str, str] = field(default_factory=dict)
    #: The failed steps that were running when the run was interrupted (a signal: Ctrl-C, or SIGTERM from `timeout`
    #: or a shutdown), not steps whose code failed; in failed_steps too. Empty for a run nobody stopped.
    interrupted: list[str] = field(default_factory=list)
    #: Inbox files this run could not ingest and moved to ``inbox/_rejected/`` (inbox path -> where it is now, beside
    #: ``<name>.error.txt`` with the reason), from the landing asset's ``set_aside_as`` metadata.
    set_aside: dict[str, str] = field(default_factory=dict)
    #: WARN-severity checks that did not pass (asset:check -> the verdict in words): the run succeeded, but each
    #: says something a person should look at (e.g. an event id used again with other content).
    warned_checks: dict[str, str] = field(default_factory=dict)
    #: The stopping signal that arrived while the run ran (``SIGINT``, ``SIGTERM``), from `signals.signal_record`,
    #: even where a step's code swallowed the interrupt Dagster raised; None when none arrived.
    signal: str | None = None
    #: The ranker version this run trained and promoted to champion, or None: the drift checks (which run before the
    #: ranker) then measured the champion the run started with, not this one.
    new_champion: int | None = None


def run_all(settings: Settings, quiet: bool = False, on_start: Callable[[], None] | None = None) -> RunOutcome:
    """Materialize every asset of `tailor_job` against the local instance configured by dagster.yaml.

    ``on_start`` is called once the run is sure to start (no other run holds the home), before any step: where
    `tailor run` says it is running, so a refused run never says it started.

    Raises:
        RunBusyError: another `tailor run` is running on the same home (`run_lock`), or a run Dagster launched (the
            UI, the schedule, a sensor) is in progress on its instance (`active_runs`); nothing was touched.
    """
    with run_lock(settings.home):  # first: a refused run must not empty the running one's logs
        return _run_all(settings, quiet, on_start)


def _run_all(settings: Settings, quiet: bool, on_start: Callable[[], None] | None) -> RunOutcome:
    os.environ.update(settings.dagster_env())
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.get() as instance:
        fail_interrupted_runs(instance)  # a killed earlier run would otherwise stay "in progress" and block the queue
        # A run the UI, the schedule or a sensor launched (active_runs.py).
        busy = earlier_active_run(settings.home, instance)
        if busy is not None:
            raise RunBusyError(busy)  # before anything is touched: the running one's logs stay
        # The record starts before the run says it started: a Ctrl-C while the definitions load (seconds of imports)
        # can land in a garbage-collection callback, where Python prints "Exception ignored" and drops the
        # KeyboardInterrupt; the run then went on to its end (a clean-clone suite run). Recorded, it stops the
        # first step.
        with signal_record() as record:
            if on_start is not None:
                on_start()
            return _execute(settings, quiet, instance, record)


def _execute(settings: Settings, quiet: bool, instance: dg.DagsterInstance, record: SignalRecord | None) -> RunOutcome:
    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(log_dir / STEP_LOGS, ignore_errors=True)  # the logs of the last run's failed steps, not older ones
    if settings.engine == "spark":
        send_spark_logs_to(log_dir / SPARK_LOG)  # before any JVM starts
    _silence_known_third_party_warnings()
    # Imported here: loading the definitions parses the dbt project, which needs the environment above.
    from orchestration.definitions import defs

    job = defs.resolve_job_def("tailor_job")
    # The console logger stays quiet: a failed step's traceback is in the Dagster UI; `tailor run` prints what
    # went wrong in words from the step failure events (see RunOutcome.errors).
    loggers = {"console": {"config": {"log_level": "CRITICAL"}}}
    if not quiet:
        loggers["tailor_progress"] = {}
    # dagster-dbt echoes dbt's log on stdout; keep it in a file so stdout stays clean (e.g. for --json).
    with (log_dir / DBT_LOG).open("w") as dbt_log, contextlib.redirect_stdout(dbt_log):
        result = job.execute_in_process(
            instance=instance,
            run_config={"loggers": loggers},
            raise_on_error=False,
            tags=process_tags(os.getpid()),
        )
        outcome = replace(outcome_of(result, instance), logs=write_step_logs(result, instance, log_dir))
        publish_run_summary(instance, settings)  # what the app shows of runs (it never opens the instance)
        if record is not None:
            record.seen()  # what arrived up to now
        return signalled(outcome, record.received[0].name) if record is not None and record.received else outcome


def signalled(outcome: RunOutcome, signal_name: str) -> RunOutcome:
    """``outcome`` of a run a stopping signal reached: the steps that failed are the ones it stopped (a step's code
    can turn Dagster's interrupt into an error of its own: DuckDB's ``RuntimeError: Query interrupted``), said as
    interrupted, not as failures to look into. A run that failed no step finished its work before the signal could
    stop it (it reached the last step, which went on, or came after it): a success unless a check failed or an
    asset was not built, and ``signal`` says it came."""
    stopped = list(dict.fromkeys([*outcome.interrupted, *outcome.failed_steps]))  # a second Ctrl-C: both said
    errors = {**outcome.errors, **{step: INTERRUPTED_TEXT for step in stopped}}
    if not stopped:
        # Dagster calls a run whose signal came after its last step "interrupted unexpectedly" and failed, with every
        # step a success: the work is done; only a failed check or an unbuilt asset still fails it.
        success = not outcome.failed_checks and not outcome.not_built
        return replace(outcome, success=success, errors=errors, signal=signal_name)
    return replace(outcome, interrupted=stopped, errors=errors, signal=signal_name)


def send_spark_logs_to(log_file: Path) -> None:
    """Send the log4j output of every Spark JVM this process starts from now on to ``log_file`` (emptied here; the
    JVMs append), instead of the console.

    The JVMs inherit the environment set here: dbt's (dagster-dbt starts dbt with this process's environment) and
    Feast's Spark offline store's (PySpark starts spark-submit with it). Without it their WARN lines appear among
    `tailor run`'s progress lines on stderr, and dbt's JVM writes into the output dagster-dbt parses for dbt's events.
    Log4j 2 reads its configuration file from LOG4J_CONFIGURATION_FILE (one the user set is kept), and Spark keeps a
    configuration it finds instead of loading its console defaults. The JVM's own startup notice about incubator
    modules is not log4j's: it stays on stderr.
    """
    log_file.write_text("")
    os.environ["TAILOR_SPARK_LOG"] = str(log_file.resolve())  # read by SPARK_LOG4J
    os.environ.setdefault("LOG4J_CONFIGURATION_FILE", str(SPARK_LOG4J))


def outcome_of(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> RunOutcome:
    """What a finished run did, from its events (the planned materializations are read from ``instance``).

    A run Dagster calls a success still fails here when a step was skipped or a planned materialization never
    happened without any step failing: that is work silently not done (seen when dbt's events were lost in its
    output on Spark, and every asset after dbt was skipped).
    """
    failed_steps = [event.step_key or "?" for event in result.all_events if event.is_step_failure]
    errors = {event.step_key or "?": _failure_text(event) for event in result.all_events if event.is_step_failure}
    interrupted = [event.step_key or "?" for event in result.all_events if was_interrupted(event)]
    for step in interrupted:  # the error's own message is its class's name: DagsterExecutionInterruptedError
        errors[step] = INTERRUPTED_TEXT
    planned = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    planned_keys = {r.dagster_event.asset_key for r in planned if r.dagster_event and r.dagster_event.asset_key}
    if not failed_steps:
        for step, text in _silently_not_done(result.all_events, planned_keys).items():
            failed_steps.append(step)
            errors[step] = text
    failed_checks: list[str] = []
    evaluated: list[str] = []
    signals: dict[str, str] = {}
    models: dict[str, str] = {}
    set_aside: dict[str, str] = {}
    warned: dict[str, str] = {}
    new_champion: int | None = None
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            models.update(_model_action(event))
            meta = materialization_metadata(event)
            set_aside.update(meta.get("set_aside_as") or {})
            if meta.get("promoted") is True and isinstance(meta.get("version"), int):
                new_champion = meta["version"]
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        check = event.asset_check_evaluation_data
        name = f"{check.asset_key.to_user_string()}:{check.check_name}"
        evaluated.append(name)
        # A failed check does not fail a Dagster run; an ERROR-severity one must fail `tailor run` (warnings don't).
        if not check.passed and check.severity == dg.AssetCheckSeverity.WARN:
            warned[name] = check.description or _dbt_test_verdict(check, event.step_key) or "did not pass"
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            if check.check_name in RETRAIN_SIGNALS:
                signals[name] = check.description or "failed"
            else:
                failed_checks.append(name)
                verdict = check.description or _dbt_test_verdict(check, event.step_key)
                if verdict:
                    errors[name] = verdict
    return RunOutcome(
        result.success and not failed_steps and not failed_checks,
        result.run_id,
        failed_steps,
        failed_checks,
        evaluated,
        errors,
        signals,
        models,
        sorted(key.to_user_string() for key in planned_keys - _materialized(result.all_events)),
        interrupted=interrupted,
        set_aside=set_aside,
        warned_checks=warned,
        new_champion=new_champion,
    )


def write_step_logs(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance, log_dir: Path) -> dict[str, str]:
    """Where to read more about each step that failed in ``result``: ``{step: path}``.

    A step dagster-dbt runs points at dbt's own log (``log_dir/dbt.log``, dbt's whole output). Any other step gets
    ``log_dir/steps/<step>.log``, written here: its lines of the run's log (what it said, at what time and level)
    and its error with the traceback and causes, which `tailor run` shortens to one message and which otherwise
    only the Dagster UI shows.
    """
    failed = [event.step_key for event in result.all_events if event.is_step_failure and event.step_key]
    logs: dict[str, str] = {}
    records = instance.all_logs(result.run_id) if failed else []
    for step in failed:
        if _runs_dbt(result.job_def, step):
            logs[step] = str(log_dir / DBT_LOG)
            continue
        lines = []
        for record in records:
            if record.step_key != step:
                continue
            stamp = datetime.fromtimestamp(record.timestamp, UTC).isoformat(timespec="seconds")
            lines.append(f"{stamp} {logging.getLevelName(record.level)} {record.user_message}".rstrip())
            event = record.dagster_event
            data = event.step_failure_data if event is not None and event.is_step_failure else None
            if data is not None and data.error is not None:
                lines.append(data.error.to_string().rstrip())
        path = log_dir / STEP_LOGS / f"{step}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        logs[step] = str(path)
    return logs


def _runs_dbt(job: dg.JobDefinition, step: str) -> bool:
    """Whether ``step`` is an op dagster-dbt made (it tags its ops ``dagster_dbt/...``), whose log is dbt's."""
    if not job.graph.has_node_named(step):
        return False
    return any(tag.startswith("dagster_dbt/") for tag in job.graph.node_named(step).definition.tags)


def _materialized(events: Sequence[dg.DagsterEvent]) -> set[dg.AssetKey]:
    return {e.asset_key for e in events if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key}


def _silence_known_third_party_warnings() -> None:
    # Feast turns every DeprecationWarning on when it is imported (feast/feature_view.py calls
    # `warnings.simplefilter("once", DeprecationWarning)`, which goes in front of any filter set before): import it
    # first (the definitions import it anyway), then put the stack's known noise in front of it.
    import feast.feature_view  # noqa: F401

    from tailor.feature_store import silence_known_noise

    silence_known_noise()


def _silently_not_done(events: Sequence[dg.DagsterEvent], planned: set[dg.AssetKey]) -> dict[str, str]:
    """Steps skipped, and the materializations planned but never reported, in a run where no step failed."""
    missing = sorted(key.to_user_string() for key in planned - _materialized(events))
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    why = f"planned but never materialized: {shown}" if missing else "an asset it needs was not materialized"
    not_done = {
        event.step_key or "?": f"skipped, though no step failed ({why})"
        for event in events
        if event.event_type_value == "STEP_SKIPPED"
    }
    if missing and not not_done:
        not_done["materializations"] = f"every step succeeded, but assets were {why}"
    return not_done


def _dbt_test_verdict(check: dg.AssetCheckEvaluation, step: str | None) -> str | None:
    """A failed dbt test's verdict, which dagster-dbt leaves without a description: how many rows failed it, and
    which step says which rows (the dbt step's error names them; its log, dbt's, has the rest)."""
    rows = getattr(check.metadata.get("dagster_dbt/failed_row_count"), "value", None)
    if not isinstance(rows, int):
        return None
    if check.severity == dg.AssetCheckSeverity.WARN:  # the dbt step describes its warnings; a run that did not:
        return warning_text(rows)
    plural = "s" if rows != 1 else ""
    return f"a dbt test that failed on {rows:,} row{plural}; see step {step or '?'} (its error, its log)"


def _model_action(event: dg.DagsterEvent) -> dict[str, str]:
    """``{"ml/<name>": "<action>: <reason>[; <outcome>]"}`` for a materialization of a model-side asset that says
    what it did (the ranker's outcome: whether the version it trained was promoted)."""
    meta = materialization_metadata(event)
    if event.asset_key is None or event.asset_key.path[0] != "ml" or "action" not in meta:
        return {}
    said = "; ".join(str(meta[key]) for key in ("reason", "outcome") if meta.get(key))
    return {event.asset_key.to_user_string(): f"{meta['action']}: {said}" if said else str(meta["action"])}


def _failure_text(event: dg.DagsterEvent) -> str:
    """A step failure in words: the description a dg.Failure carries, else the error's one-line message."""
    data = event.step_failure_data
    if data is None:
        return "failed"
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    if data.error is not None:
        cause = data.error.cause
        # Dagster wraps user code errors; the cause is what the user can act on.
        return (cause.message if cause is not None else data.error.message).strip()
    return "failed"

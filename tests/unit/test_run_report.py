"""How `tailor run` reports a failed run: the summary still shows what was done, and the message points at the log
of the step that failed (dbt's only for the dbt step) or at a failed check's verdict, never at dbt.log by default.

Real (tiny) Dagster runs on a test instance; the failing step raises as a broken asset would."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cli.run_report import failure_message, print_report, print_summary, run_fields
from orchestration.lib.runner import RunOutcome, outcome_of, write_step_logs

pytestmark = pytest.mark.unit


@dg.asset(key=["ml", "features"])
def features() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"action": "built", "reason": "new rows"})


@dg.asset(deps=[features])
def drift() -> None:
    """Fails the way a model step does: an exception deep in its code."""
    _load_history()


def _load_history() -> None:
    raise ImportError("cannot import name 'history_start' from 'ml.history'")


@dg.asset(deps=[drift])
def after_drift() -> None:
    """Needs the failed step's asset: never built."""


@dg.asset(
    op_tags={"dagster_dbt/select": "fqn:*"}, check_specs=[dg.AssetCheckSpec("unique_event_id", asset="warehouse")]
)
def warehouse() -> Iterator[dg.Output[None] | dg.AssetCheckResult]:
    """As dagster-dbt runs `dbt build`: its op tagged, the model built, a test failed (a check without description,
    its failed rows counted in its metadata), then the step fails. Its log is dbt's."""
    yield dg.Output(None)
    yield dg.AssetCheckResult(
        check_name="unique_event_id",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"status": "fail", "dagster_dbt/failed_row_count": 1},
    )
    raise RuntimeError("dbt build failed")


@dg.asset_check(asset=features)
def calibrated() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, description="ECE 0.031 on the test window, limit 0.02"
    )


@dg.asset_check(asset=features)
def ids_repeat_their_event() -> dg.AssetCheckResult:
    """As dagster-dbt reports a warn-severity dbt test: no description, its rows counted in its metadata."""
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"dagster_dbt/failed_row_count": 11}
    )


@dg.asset(deps=[features])
def champion_drift_checks() -> None:
    """Stopped as `timeout 60 tailor run` stops a run: SIGTERM to the process while the step runs (Dagster turns it
    into DagsterExecutionInterruptedError in the step)."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # never reached in full: the signal interrupts it
    raise AssertionError("SIGTERM did not interrupt the step")


@dg.asset(deps=[champion_drift_checks])
def after_checks() -> None:
    """Runs after the interrupted step: never built."""


@dg.asset(key=["ml", "ranking_training_set"])
def training_set() -> None:
    """The drift checks' asset: they run on it, before the ranker."""


@dg.asset_check(asset=training_set, name="champion_features_stable")
def features_drifted() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, description="PSI 0.41 on ctr_smoothed_28d, limit 0.25"
    )


@dg.asset(key=["ml", "ranker"], deps=[training_set])
def retrained() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"action": "trained", "outcome": "version 2 promoted to champion", "promoted": True, "version": 2}
    )


def _run(job: str, tmp_path: Path) -> tuple[RunOutcome, Path]:
    defs = dg.Definitions(
        assets=[features, drift, after_drift, warehouse, champion_drift_checks, after_checks, training_set, retrained],
        asset_checks=[calibrated, ids_repeat_their_event, features_drifted],
        jobs=[
            dg.define_asset_job(
                "interrupted", dg.AssetSelection.assets(features, champion_drift_checks, after_checks).without_checks()
            ),
            dg.define_asset_job("model_step", dg.AssetSelection.assets(features, drift, after_drift).without_checks()),
            dg.define_asset_job("dbt_step", [warehouse]),
            dg.define_asset_job("checked", [features]),
            dg.define_asset_job("drifted", [training_set]),
            dg.define_asset_job("drifted_and_retrained", [training_set, retrained]),
        ],
    )
    log_dir = tmp_path / "logs"
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(job).execute_in_process(raise_on_error=False, instance=instance)
        outcome = outcome_of(result, instance)
        return replace(outcome, logs=write_step_logs(result, instance, log_dir)), log_dir


SUMMARY: dict[str, Any] = {
    "events": {"received": 1200, "accepted": 1100, "duplicates": 60, "quarantined": 40, "balanced": True},
    "quarantined_by_reason": {},
    "marts": {"fct_events": 1100},
    "engine": "duckdb",
    "warehouse": "/home/warehouse/tailor.duckdb",
    "marts_dir": "/home/marts",
    "home": "/home",
}


def test_a_failed_model_step_points_at_its_own_log_with_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome, log_dir = _run("model_step", tmp_path)
    assert not outcome.success and outcome.failed_steps == ["drift"]
    assert outcome.not_built == ["after_drift", "drift"]
    log = log_dir / "steps" / "drift.log"
    assert outcome.logs == {"drift": str(log)}
    text = log.read_text()
    assert "ImportError: cannot import name 'history_start' from 'ml.history'" in text
    assert "in _load_history" in text  # the traceback, which the one-line message leaves out
    assert 'Execution of step "drift" failed.' in text

    message = failure_message(outcome, tmp_path)
    assert message.startswith(
        "the run failed (drift); 2 assets not built (after_drift, drift); they keep their last run's data."
    )
    # The error's line, then its log (`run --json`'s error held only the log's path: a trial).
    assert (
        f"  drift: ImportError: cannot import name 'history_start' from 'ml.history'; its log, with the error's "
        f"traceback, is {log}\n"
    ) in message
    assert "dbt.log" not in message
    on_spark = failure_message(outcome, tmp_path, jvm_log=tmp_path / "logs" / "spark.log")
    assert (
        f"  Spark's JVMs (dbt's and Feast's) logged their warnings and errors in {tmp_path}/logs/spark.log" in on_spark
    )

    print_report({**SUMMARY, "run": run_fields(outcome)}, outcome)
    printed = capsys.readouterr()
    assert "ml/features:             built: new rows" in printed.out  # what each model asset did, failed run or not
    assert "Published marts" not in printed.out  # the marts after the failed step are the last run's: no counts
    assert "drift failed\nImportError: cannot import name 'history_start'" in printed.err


def test_a_failed_dbt_step_points_at_dbts_log_and_its_failed_test_at_the_step(tmp_path: Path) -> None:
    outcome, log_dir = _run("dbt_step", tmp_path)
    assert outcome.failed_steps == ["warehouse"] and outcome.failed_checks == ["warehouse:unique_event_id"]
    assert outcome.logs == {"warehouse": str(log_dir / "dbt.log")}
    assert not (log_dir / "steps").exists()
    assert failure_message(outcome, tmp_path).splitlines()[1:3] == [
        f"  warehouse: dbt's log is {log_dir / 'dbt.log'}",
        "  warehouse:unique_event_id: a dbt test that failed on 1 row; see step warehouse (its error, its log)",
    ]


def test_a_failed_check_shows_the_summary_and_its_verdict_not_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome, log_dir = _run("checked", tmp_path)
    assert not outcome.success and outcome.failed_steps == [] and outcome.failed_checks == ["ml/features:calibrated"]
    assert outcome.not_built == [] and outcome.logs == {} and not log_dir.exists()  # a check keeps no log
    message = failure_message(outcome, tmp_path)
    assert message.splitlines()[:2] == [
        "the run failed (ml/features:calibrated); every asset was built; a check with ERROR severity did not pass: "
        "its data needs a look.",
        "  ml/features:calibrated: ECE 0.031 on the test window, limit 0.02",
    ]
    assert "log" not in message.replace("Dagster UI", "")
    # No step failed: no JVM to read.
    assert failure_message(outcome, tmp_path, jvm_log=tmp_path / "spark.log") == message

    # A warn-severity check does not fail the run, and is said at its end (found by a trial: it was one progress
    # line among many).
    warned = (
        "a dbt test that warned on 11 rows; the test's SQL (dbt_project/tests/, or its model's yml and "
        "dbt_project/macros/) finds them and says what they mean"
    )
    assert outcome.warned_checks == {"ml/features:ids_repeat_their_event": warned}
    assert "ml/features:ids_repeat_their_event" not in outcome.failed_checks
    assert run_fields(outcome)["warned_checks"] == outcome.warned_checks

    print_report({**SUMMARY, "run": run_fields(outcome)}, outcome)
    captured = capsys.readouterr()
    printed = captured.out
    assert "received 1,200  accepted 1,100" in printed and "Published marts" in printed  # every asset was built
    assert "ml/features:             built: new rows" in printed
    assert f"warning ml/features:ids_repeat_their_event: {warned}" in " ".join(captured.err.split())


def test_drift_says_retrain_unless_the_same_run_crowned_a_new_champion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by a trial: a run that trained and promoted version 2 ended with version 1's drift and "the answer is
    a retrain" (the checks run before the ranker)."""
    drifted, _ = _run("drifted", tmp_path)
    assert drifted.success and drifted.new_champion is None
    assert drifted.retrain_signals == {"ml/ranking_training_set:champion_features_stable": "PSI 0.41 on "
                                       "ctr_smoothed_28d, limit 0.25"}  # fmt: skip
    print_report({**SUMMARY, "run": run_fields(drifted)}, drifted)
    said = " ".join(capsys.readouterr().err.split())
    assert "the answer is a retrain, not a fix" in said and "This run trained" not in said

    retrained_run, _ = _run("drifted_and_retrained", tmp_path / "again")
    assert retrained_run.success and retrained_run.new_champion == 2
    print_report({**SUMMARY, "run": run_fields(retrained_run)}, retrained_run)
    said = " ".join(capsys.readouterr().err.split())
    assert "drift ml/ranking_training_set:champion_features_stable: PSI 0.41" in said
    assert (
        "These measured the champion this run started with. This run trained version 2, which replaced it as "
        "champion (the ml/ranker line above): the retrain is done, and the next run measures the new champion."
    ) in said
    assert "the answer is a retrain" not in said


def test_an_interrupted_run_says_so_which_step_ran_and_to_run_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Found by a trial: `timeout 60 tailor run` said 'the run failed (champion_drift_checks) ... its log, with the
    error's traceback', and the traceback was DagsterExecutionInterruptedError: the signal's, not a fault's."""
    assert threading.current_thread() is threading.main_thread()  # Dagster handles signals on the main thread only
    outcome, _ = _run("interrupted", tmp_path)
    capfd.readouterr()  # Dagster's own report of the interrupt
    assert not outcome.success
    assert outcome.failed_steps == ["champion_drift_checks"] and outcome.interrupted == ["champion_drift_checks"]
    assert outcome.not_built == ["after_checks", "champion_drift_checks"]
    message = failure_message(outcome, tmp_path)
    assert message.splitlines() == [
        "the run was interrupted while champion_drift_checks ran (a signal: Ctrl-C, or SIGTERM from `timeout` or a "
        "shutdown); 2 assets not built (after_checks, champion_drift_checks); they keep their last run's data.",
        "  Nothing after champion_drift_checks was built. Rerun `tailor run` to finish: what this run built is kept "
        "(files it landed are not landed again) and the rest is built.",
        f"Every step's events of run {outcome.run_id} are in the Dagster UI (`make ui`, http://127.0.0.1:3000).",
    ]
    assert "failed" not in message and "traceback" not in message
    assert run_fields(outcome)["interrupted_steps"] == ["champion_drift_checks"]

    print_report({**SUMMARY, "run": run_fields(outcome)}, outcome)
    printed = capfd.readouterr()
    assert "ml/features:             built: new rows" in printed.out
    assert "failed" not in printed.err and "DagsterExecutionInterruptedError" not in printed.err


def test_the_summary_says_what_balanced_means(capsys: pytest.CaptureFixture[str]) -> None:
    """'(balanced)' after the counts meant nothing to a new user: the line says what adds up."""
    print_summary(SUMMARY)
    assert (
        "quarantined 40  (balanced: every row received is accepted, a duplicate or quarantined)"
        in capsys.readouterr().out
    )
    pending = {**SUMMARY["events"], "balanced": False, "balanced_except_pending": True}
    print_summary({**SUMMARY, "events": {**pending, "pending_rows": 30, "pending_batches": 2}})
    assert (
        "(balanced for what this run built (every row it built is accepted, a duplicate or quarantined); 30 rows in "
        "2 batches landed after its build: the next `tailor run` builds them)" in capsys.readouterr().out
    )

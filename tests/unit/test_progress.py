"""What `tailor run` prints and decides: what each asset did (not "built" for an asset that kept what it had), no
deprecation warnings from pinned third-party code, and a failure when work was silently skipped."""

import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster import AssetExecutionContext

from orchestration.lib.progress import progress_logger, say
from orchestration.lib.runner import outcome_of

pytestmark = pytest.mark.unit


@dg.asset
def rebuilt() -> None:
    """An asset that records no action (a dbt model)."""


@dg.asset
def unchanged() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"action": "up to date", "reason": "inputs unchanged"})


@dg.asset
def kept() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"action": "kept"})


def test_each_line_names_the_assets_action(capfd: pytest.CaptureFixture[str]) -> None:
    defs = dg.Definitions(
        assets=[rebuilt, unchanged, kept],
        jobs=[dg.define_asset_job("progress_test")],
        loggers={"tailor_progress": progress_logger},
    )
    result = defs.resolve_job_def("progress_test").execute_in_process(run_config={"loggers": {"tailor_progress": {}}})
    assert result.success
    lines = sorted(line.split() for line in capfd.readouterr().err.splitlines() if line.startswith("  "))
    assert lines == [["built", "rebuilt"], ["kept", "kept"], ["up", "to", "date", "unchanged"]]


@dg.asset
def waiting(context: AssetExecutionContext) -> None:
    say(context.log, "waiting (up to 15 min) for PID 7 (python) to release tailor.duckdb")
    context.log.warning("an ordinary warning stays in the Dagster log")


def test_what_an_asset_says_is_printed_and_other_log_lines_are_not(capfd: pytest.CaptureFixture[str]) -> None:
    """Found by a trial: `tailor run` sat silent for minutes while a SQL client held the warehouse open; the
    warehouse step said it was waiting, but only in the Dagster log."""
    defs = dg.Definitions(
        assets=[waiting], jobs=[dg.define_asset_job("say_test")], loggers={"tailor_progress": progress_logger}
    )
    result = defs.resolve_job_def("say_test").execute_in_process(run_config={"loggers": {"tailor_progress": {}}})
    assert result.success
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("  ")]
    assert lines == [
        "  note       waiting (up to 15 min) for PID 7 (python) to release tailor.duckdb",
        "  built      waiting",
    ]


@dg.asset
def stopped() -> None:
    """Stopped by SIGTERM while it runs, as `timeout 60 tailor run` stops a step."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # the signal interrupts it


def test_a_step_stopped_by_a_signal_is_said_interrupted_not_failed(capfd: pytest.CaptureFixture[str]) -> None:
    defs = dg.Definitions(
        assets=[stopped], jobs=[dg.define_asset_job("stopped_test")], loggers={"tailor_progress": progress_logger}
    )
    # The ephemeral instance, as in the test above: a test instance's compute log manager captures the process's
    # stderr while a step runs, and the step's failure can be logged before that capture ends.
    result = defs.resolve_job_def("stopped_test").execute_in_process(
        run_config={"loggers": {"tailor_progress": {}}}, raise_on_error=False
    )
    assert not result.success
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("  ")]
    assert "  INTERRUPTED stopped: stopped by a signal while it ran" in lines
    assert not any(line.startswith("  FAILED") for line in lines)


def test_known_third_party_deprecations_are_silenced_and_others_still_show() -> None:
    from orchestration.lib.runner import _silence_known_third_party_warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", DeprecationWarning)  # what Feast's import does ("once")
        _silence_known_third_party_warnings()
        for message in ("sqlglotrs is deprecated", "AssetExecutionContext.op is deprecated"):
            warnings.warn(f"{message} and no longer maintained", DeprecationWarning, stacklevel=1)
        warnings.warn("tailor_function is deprecated", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["tailor_function is deprecated"]


@dg.multi_asset(outs={"made": dg.AssetOut(is_required=False), "lost": dg.AssetOut(is_required=False)}, can_subset=False)
def half_reported() -> Iterator[dg.Output[None]]:
    """Like dbt whose events for some models were lost: the step succeeds but reports only one of its assets."""
    yield dg.Output(None, output_name="made")


@dg.asset(deps=["lost"])
def after_lost() -> None:
    """Needs the asset that was never reported: Dagster skips it and still calls the run a success."""


def test_a_run_that_silently_skipped_work_is_a_failure_that_says_what() -> None:
    defs = dg.Definitions(
        assets=[half_reported, after_lost, rebuilt, unchanged],
        jobs=[dg.define_asset_job("half", ["made", "lost", "after_lost"]), dg.define_asset_job("whole", ["rebuilt"])],
    )
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("half").execute_in_process(raise_on_error=False, instance=instance)
        assert result.success  # Dagster's view
        outcome = outcome_of(result, instance)
        assert not outcome.success and outcome.failed_steps == ["after_lost"]
        assert outcome.errors["after_lost"] == (
            "skipped, though no step failed (planned but never materialized: after_lost, lost)"
        )

        fine = outcome_of(defs.resolve_job_def("whole").execute_in_process(instance=instance), instance)
        assert fine.success and fine.failed_steps == [] and fine.errors == {}


@dg.asset_check(asset=rebuilt)
def too_far_off() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, description="error 0.031, limit 0.02: off by that much"
    )


def test_a_failed_check_says_its_figures_in_the_outcome() -> None:
    defs = dg.Definitions(assets=[rebuilt], asset_checks=[too_far_off], jobs=[dg.define_asset_job("checked")])
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("checked").execute_in_process(raise_on_error=False, instance=instance)
        outcome = outcome_of(result, instance)
    assert not outcome.success and outcome.failed_checks == ["rebuilt:too_far_off"]
    assert outcome.errors == {"rebuilt:too_far_off": "error 0.031, limit 0.02: off by that much"}


def test_spark_jvms_log_to_the_runs_log_file_not_among_the_progress_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `tailor run` on Spark sets before any JVM starts (dbt's and Feast's inherit it): log4j's configuration
    file, whose only appender is the run's log file. No Spark here: the configuration is read as log4j reads it."""
    from orchestration.lib.runner import send_spark_logs_to

    for name in ("LOG4J_CONFIGURATION_FILE", "TAILOR_SPARK_LOG"):
        monkeypatch.setenv(name, "set by the test")  # recorded, so the test leaves the environment as it was
        monkeypatch.delenv(name)
    log = tmp_path / "logs" / "spark.log"
    log.parent.mkdir()
    log.write_text("the last run's lines\n")
    send_spark_logs_to(log)
    assert log.read_text() == ""  # this run's lines only (the JVMs append)
    assert os.environ["TAILOR_SPARK_LOG"] == str(log)
    lines = Path(os.environ["LOG4J_CONFIGURATION_FILE"]).read_text().splitlines()
    config = dict(line.split(" = ", 1) for line in lines if line.strip() and not line.startswith("#"))
    assert {key.split(".")[1] for key in config if key.startswith("appender.")} == {"file"}  # no console appender
    assert config["appender.file.type"] == "File" and config["appender.file.append"] == "true"
    assert config["appender.file.fileName"] == "${env:TAILOR_SPARK_LOG}"
    assert [key for key in config if key.startswith("rootLogger.appenderRef.")] == ["rootLogger.appenderRef.file.ref"]
    assert config["rootLogger.appenderRef.file.ref"] == config["appender.file.name"] == "file"
    assert config["rootLogger.level"] == "warn"

    monkeypatch.setenv("LOG4J_CONFIGURATION_FILE", "/etc/spark/log4j2.properties")  # a user's own is kept
    send_spark_logs_to(log)
    assert os.environ["LOG4J_CONFIGURATION_FILE"] == "/etc/spark/log4j2.properties"

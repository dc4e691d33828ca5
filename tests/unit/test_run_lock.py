"""One `tailor run` at a time on a home (a trial's second run failed midway with FileNotFoundError)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration.lib.active_runs import earlier_active_run
from orchestration.lib.interrupted_runs import PID_TAG
from orchestration.lib.run_lock import LOCK_FILE, RunBusyError, run_lock
from orchestration.lib.runner import STEP_LOGS, run_all
from tailor.settings import Settings

pytestmark = pytest.mark.unit


def test_a_second_run_is_refused_with_who_holds_the_home_and_touches_nothing(settings: Settings) -> None:
    kept = settings.home / "logs" / STEP_LOGS / "landing.log"
    kept.parent.mkdir(parents=True)
    kept.write_text("the running run's log")
    with run_lock(settings.home):
        assert f"PID {os.getpid()}, started " in (settings.home / LOCK_FILE).read_text()
        started: list[str] = []
        with pytest.raises(RunBusyError) as refused:
            run_all(settings, quiet=True, on_start=lambda: started.append("said"))
        assert started == []  # `tailor run` says "Running every asset" only for a run that starts
        assert str(refused.value).startswith(f"another `tailor run` is running on {settings.home} (PID {os.getpid()}")
        assert "wait for it to finish, then run again" in str(refused.value)
        assert kept.read_text() == "the running run's log"  # refused before it emptied the logs
    with run_lock(settings.home):  # released when the first run ends
        pass


def _started(instance: dg.DagsterInstance, run_id: str, status: dg.DagsterRunStatus, **tags: str) -> dg.DagsterRun:
    """A run recorded as Dagster's queue would leave it, without executing anything."""
    return instance.add_run(dg.DagsterRun(job_name="tailor_job", run_id=run_id, status=status, tags=tags))


def test_a_run_dagster_launched_is_not_run_over(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a trial: `tailor run` typed while a run launched from the UI (or by the inbox sensor) was building
    the warehouse went ahead, and the other run failed in dbt on DuckDB's lock. Refused now, touching nothing."""
    for key, value in settings.dagster_env().items():
        monkeypatch.setenv(key, value)  # run_all sets them; restored after the test
    kept = settings.home / "logs" / STEP_LOGS / "landing.log"
    kept.parent.mkdir(parents=True)
    kept.write_text("the running run's log")
    with dg.DagsterInstance.get() as instance:
        _started(instance, "5e2a0b1c-0000-4000-8000-000000000001", dg.DagsterRunStatus.SUCCESS)  # over: no matter
        _started(
            instance,
            "7f3c9d2e-0000-4000-8000-000000000002",
            dg.DagsterRunStatus.STARTED,
            **{"dagster/sensor_name": "inbox_sensor"},
        )
    started: list[str] = []
    with pytest.raises(RunBusyError) as refused:
        run_all(settings, quiet=True, on_start=lambda: started.append("said"))
    assert started == []
    assert str(refused.value) == (
        "run 7f3c9d2e of tailor_job (started by the sensor inbox_sensor) is in progress on this home's Dagster "
        "instance, and two runs at once would build the same warehouse (DuckDB allows one writer): wait for it to "
        "finish or cancel it in the Dagster UI (`make ui`, http://127.0.0.1:3000), then run again"
    )
    assert kept.read_text() == "the running run's log"
    assert not (settings.home / "logs" / "dbt.log").exists()


def test_of_two_runs_starting_together_only_the_later_is_told_to_stop(tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        ui = _started(instance, "aaaaaaaa-0000-4000-8000-000000000001", dg.DagsterRunStatus.STARTED)
        time.sleep(0.05)  # the storage orders runs by creation time
        cli = _started(
            instance, "bbbbbbbb-0000-4000-8000-000000000002", dg.DagsterRunStatus.STARTING, **{PID_TAG: "4242"}
        )
        assert "run aaaaaaaa of tailor_job (launched from the Dagster UI or its API)" in (
            earlier_active_run(tmp_path, instance, cli.run_id) or ""
        )
        assert earlier_active_run(tmp_path, instance, ui.run_id) is None, "the earlier run goes on"
        assert "run aaaaaaaa" in (earlier_active_run(tmp_path, instance) or ""), (
            "a run not created yet: the oldest is named"
        )
        instance.report_run_failed(ui)
        assert earlier_active_run(tmp_path, instance, cli.run_id) is None
        assert "(a `tailor run`, PID 4242)" in (earlier_active_run(tmp_path, instance) or "")


def test_a_run_starting_while_the_sensor_looks_at_the_lock_is_not_refused(settings: Settings) -> None:
    """The inbox sensor takes the run lock for an instant to see whether a `tailor run` holds it
    (`lock_holder`); a run starting in that instant waits for it instead of being refused."""
    import fcntl
    import threading

    from orchestration.lib.run_lock import lock_holder

    settings.home.mkdir(parents=True)
    (settings.home / LOCK_FILE).write_text("PID 1, started earlier\n")
    looking = os.open(settings.home / LOCK_FILE, os.O_RDONLY)  # another open file: its flock conflicts
    fcntl.flock(looking, fcntl.LOCK_EX | fcntl.LOCK_NB)
    threading.Timer(0.2, os.close, (looking,)).start()  # the look ends (closing releases it)
    with run_lock(settings.home):
        assert f"PID {os.getpid()}, started " in (lock_holder(settings.home) or "")
    assert lock_holder(settings.home) is None

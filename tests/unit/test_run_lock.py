"""One `tailor run` at a time on a home (a trial's second run failed midway with FileNotFoundError)."""

from __future__ import annotations

import os

import pytest

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
        with pytest.raises(RunBusyError) as refused:
            run_all(settings, quiet=True)
        assert str(refused.value).startswith(f"another `tailor run` is running on {settings.home} (PID {os.getpid()}")
        assert "wait for it to finish, then run again" in str(refused.value)
        assert kept.read_text() == "the running run's log"  # refused before it emptied the logs
    with run_lock(settings.home):  # released when the first run ends
        pass

"""Close the Dagster runs that a killed `tailor run` left "in progress" forever.

`tailor run` executes the job in its own process and records the run in the local instance. Killed (SIGKILL, OOM,
a closed terminal), it never records the end, so the run stays STARTED: the UI shows it running for ever, and,
because dagster.yaml allows one run at a time, the daemon would never launch another sensor or schedule run.
Each `tailor run` is tagged with its process id and host; a run so tagged whose process is gone is marked failed,
with a message saying so, by the next `tailor run` and by the inbox sensor.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import dagster as dg
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES

from tailor.processes import process_alive

PID_TAG = "tailor/pid"
HOST_TAG = "tailor/host"


def process_tags(pid: int) -> Mapping[str, str]:
    """Tags that let a later process tell whether the one running this run is still alive."""
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}


def fail_interrupted_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark as failed the in-progress runs of `tailor run` on this host whose process no longer exists.

    Returns the ids of the runs it closed. Runs without the tags (launched by the daemon, which monitors its own
    run workers) and runs of other hosts are left alone.
    """
    host = socket.gethostname()
    closed: list[str] = []
    open_statuses = [dg.DagsterRunStatus.NOT_STARTED, *ACTIVE_RUN_STATUSES]  # killed before it started, or after
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=open_statuses, tags={HOST_TAG: host}))
    for record in records:
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        # A recycled id reads as alive: the run stays open until a check after that other process ends, which errs
        # on the side of never failing a live run.
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        instance.report_run_failed(
            run, message=f"interrupted: the `tailor run` process running it (PID {pid}) ended without finishing it"
        )
        closed.append(run.run_id)
    return closed

"""One run at a time on a home, however it was started.

`tailor run` holds the home's run lock (run_lock.py) and executes the job in its own process; the runs Dagster
launches (the UI, the schedule, the sensors) go through the instance's queue, which starts one at a time
(dagster.yaml) and counts `tailor run`'s runs too, since they are recorded in the instance as started. But neither
side looked at the other at its start: a `tailor run` typed while a run launched from the UI was building the
warehouse went ahead, and the UI's run failed in dbt on DuckDB's lock (a new-user trial; the same happened with a
run the inbox sensor started). Now `tailor run` refuses while the instance has another run in progress, and the
first steps of the jobs (landing, and the training set the retrain job starts with) fail before touching anything
when a run that began earlier is still in progress: the moment between `tailor run`'s look and its run's start,
when the daemon may launch a queued run.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES

from orchestration.lib.interrupted_runs import PID_TAG
from tailor.faces import DAGSTER_UI, hint
from tailor.settings import get_settings


def earlier_active_run(home: Path, instance: dg.DagsterInstance, run_id: str | None = None) -> str | None:
    """Why a run must not start now, in words: another run of ``instance`` is in progress (starting, started or
    being cancelled) that was created before ``run_id`` (any, with None: a run not created yet), with how it was
    launched and what to do (where ``home``'s Dagster UI shows it). None when there is no such run.

    Of two runs that start at the same moment, only the later one is told to stop.
    """
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES))
    mine = next((r for r in records if r.dagster_run.run_id == run_id), None)
    if mine is None and run_id is not None:
        found = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run_id]), limit=1)
        mine = found[0] if found else None
    earlier = [
        r
        for r in records
        if r.dagster_run.run_id != run_id and (mine is None or r.create_timestamp < mine.create_timestamp)
    ]
    if not earlier:
        return None
    run = min(earlier, key=lambda r: r.create_timestamp).dagster_run
    return (
        f"run {run.run_id[:8]} of {run.job_name} ({launched_by(run)}) is in progress on this home's Dagster "
        "instance, and two runs at once would build the same warehouse (DuckDB allows one writer): wait for it to "
        f"finish or cancel it in {hint(DAGSTER_UI, home)}, then run again"
    )


def launched_by(run: dg.DagsterRun) -> str:
    """Who started ``run``, from its tags: a `tailor run` (with its process id), a sensor, the schedule, else the
    UI (Dagster tags no UI launch)."""
    tags = run.tags
    if PID_TAG in tags:
        return f"a `tailor run`, PID {tags[PID_TAG]}"
    if "dagster/sensor_name" in tags:
        return f"started by the sensor {tags['dagster/sensor_name']}"
    if "dagster/schedule_name" in tags:
        return f"started by the schedule {tags['dagster/schedule_name']}"
    return "launched from the Dagster UI or its API"


def stop_if_an_earlier_run_is_active(context: dg.AssetExecutionContext) -> None:
    """Called by the first steps of the jobs (landing; the training set, where the retrain job starts).

    Raises:
        dg.Failure: a run created before this one is still in progress (`earlier_active_run`); nothing was touched.
    """
    busy = earlier_active_run(get_settings().home, context.instance, context.run.run_id)
    if busy is not None:
        raise dg.Failure(description=f"stopped before touching anything: {busy}")

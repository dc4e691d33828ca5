"""What the Dagster instance says about runs, published as one JSON file for the readers that must not open it.

The analyst app shows the last pipeline runs, the asset checks of the newest run that evaluated any, and each
asset's last materialization. It reads them from ``Settings.run_summary`` (``<TAILOR_HOME>/dagster/
run_summary.json``), never from the instance: the app only reads published files, and importing Dagster would cost
its pages seconds. The orchestration layer writes the file: `tailor run` when its run ends, and the
``run_summary_sensor`` (orchestration/defs/runs/sensors.py) whenever a run launched by the UI, a schedule or a
sensor starts or ends. The instance is whatever dagster.yaml configures (SQLite under the home by default, a
team's Postgres elsewhere); the summary is always in the home.

The file (``FORMAT`` 1): ``{"format", "written_at", "runs", "checks", "materializations"}``, timestamps in seconds
since the epoch (UTC), null where Dagster has none yet (a run still running has no end):

- ``runs``: the `RUNS_KEPT` newest runs, newest first: run_id, job, status (Dagster's: SUCCESS, FAILURE,
  STARTED...), started, ended, duration_s.
- ``checks``: every asset check evaluation of the newest run (among the `CHECK_RUNS_SCANNED` newest) that evaluated
  any: asset, check, passed, severity (ERROR / WARN), description, evaluated_at, run_id, metadata (plain values;
  a table as a list of row dicts).
- ``materializations``: each asset's last materialization: asset, materialized_at, run_id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from tailor.settings import Settings

FORMAT = 1
#: Runs the summary lists (the app shows the newest).
RUNS_KEPT = 10
#: How far back the checks of the newest run that evaluated any are looked for (the retrain job evaluates none).
CHECK_RUNS_SCANNED = 20
#: Check evaluations read from one run at most (a run evaluates about 60).
CHECK_EVENTS_READ = 5000


def newest_run_records(instance: dg.DagsterInstance) -> Sequence[dg.RunRecord]:
    """The records the summary is made of: the `CHECK_RUNS_SCANNED` newest runs, newest first (one read of the
    run storage; the summary lists the first `RUNS_KEPT`)."""
    return instance.get_run_records(limit=max(RUNS_KEPT, CHECK_RUNS_SCANNED))


def runs_fingerprint(records: Sequence[dg.RunRecord]) -> str:
    """A digest of the newest runs' ids, statuses and last updates (``records`` from `newest_run_records`): it
    changes when a run starts, ends or is marked failed, which is when the summary must be written again (16 hex
    digits)."""
    state = [
        (r.dagster_run.run_id, r.dagster_run.status.value, r.update_timestamp.timestamp()) for r in records[:RUNS_KEPT]
    ]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]


def publish_run_summary(
    instance: dg.DagsterInstance, settings: Settings, records: Sequence[dg.RunRecord] | None = None
) -> Path:
    """Write ``settings.run_summary`` from ``instance`` (whole: a reader sees the old file or the new one, never
    half of one) and return its path. ``records``: the runs as `newest_run_records` read them (read here when
    None), so that a caller that fingerprinted them publishes the same runs.

    Raises:
        OSError: the home's dagster folder cannot be written.
    """
    if records is None:
        records = newest_run_records(instance)
    summary = {
        "format": FORMAT,
        "written_at": time.time(),
        "runs": _runs(records),
        "checks": _checks(instance, records),
        "materializations": _materializations(instance),
    }
    path = settings.run_summary
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(summary, out, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _runs(records: Sequence[dg.RunRecord]) -> list[dict[str, Any]]:
    rows = []
    for record in records[:RUNS_KEPT]:
        start, end = record.start_time, record.end_time
        rows.append(
            {
                "run_id": record.dagster_run.run_id,
                "job": record.dagster_run.job_name,
                "status": record.dagster_run.status.value,
                "started": start,
                "ended": end,
                "duration_s": end - start if start is not None and end is not None else None,
            }
        )
    return rows


def _checks(instance: dg.DagsterInstance, records: Sequence[dg.RunRecord]) -> list[dict[str, Any]]:
    for record in records[:CHECK_RUNS_SCANNED]:
        run_id = record.dagster_run.run_id
        events = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=CHECK_EVENTS_READ
        ).records
        rows = []
        for event in events:
            dagster_event = event.event_log_entry.dagster_event
            if dagster_event is None:
                continue
            data = dagster_event.asset_check_evaluation_data
            rows.append(
                {
                    "asset": data.asset_key.to_user_string(),
                    "check": data.check_name,
                    "passed": bool(data.passed),
                    "severity": data.severity.value,
                    "description": data.description or "",
                    "evaluated_at": event.event_log_entry.timestamp,
                    "run_id": run_id,
                    "metadata": {k: _plain(v) for k, v in (data.metadata or {}).items()},
                }
            )
        if rows:
            return rows
    return []


def _materializations(instance: dg.DagsterInstance) -> list[dict[str, Any]]:
    rows = []
    for record in instance.get_asset_records():
        last = record.asset_entry.last_materialization
        if last is not None:
            rows.append(
                {
                    "asset": record.asset_entry.asset_key.to_user_string(),
                    "materialized_at": last.timestamp,
                    "run_id": last.run_id,
                }
            )
    return rows


def _plain(value: Any) -> Any:
    """A Dagster metadata value as plain JSON-able Python (a table as a list of row dicts)."""
    inner = getattr(value, "value", value)
    records = getattr(inner, "records", None)
    if records is not None:
        return [dict(r.data) for r in records]
    if isinstance(inner, str | int | float | bool) or inner is None:
        return inner
    try:
        return json.loads(json.dumps(inner, default=str))
    except (TypeError, ValueError):
        return str(inner)

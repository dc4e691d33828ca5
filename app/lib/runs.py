"""What the Dagster instance says about runs: the last pipeline runs, asset check results, last materializations.

The instance is the one `tailor run` and `make ui` use: the ``dagster.yaml`` in ``DAGSTER_HOME`` (by default the
repository's, which keeps it in SQLite under ``<TAILOR_HOME>/dagster/storage``; orchestration/lib/instance.py), opened
with Dagster's public ``DagsterInstance.from_config``, so a team whose dagster.yaml names Postgres reads its runs here
without a change. SQLite lets this read while a run writes. Only read APIs are called. Dagster is imported inside the
functions: importing it costs seconds, and pages that do not show runs should not pay for it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.settings import REPO_ROOT, Settings

RUN_COLUMNS = ["run_id", "job", "status", "started", "ended", "duration_s"]
CHECK_COLUMNS = ["asset", "check", "passed", "severity", "description", "evaluated_at", "run_id", "metadata"]


def _instance(settings: Settings) -> Any | None:
    """The Dagster instance for the home, or None when it is the repository's SQLite one and no run has created it
    yet (opening it would create an empty instance in the home)."""
    config_dir = Path(settings.dagster_env()["DAGSTER_HOME"]).resolve()
    if config_dir == REPO_ROOT and not (settings.dagster_home / "storage" / "history" / "runs.db").exists():
        return None
    return _open(str(config_dir), str(settings.home))


@functools.lru_cache(maxsize=4)
def _open(config_dir: str, home: str) -> Any:
    """Opened once per process (0.5 s: the instance builds its run launcher, coordinator and storages); ``home`` is
    part of the key because the repository's dagster.yaml puts the storage under TAILOR_HOME."""
    from dagster import DagsterInstance

    return DagsterInstance.from_config(config_dir)


def recent_runs(settings: Settings, limit: int = 10) -> pd.DataFrame:
    """The newest runs first: run_id, job, status (SUCCESS, FAILURE, STARTED...), started, ended (UTC timestamps,
    NaT while running), duration_s. Empty when there is no instance yet."""
    instance = _instance(settings)
    if instance is None:
        return pd.DataFrame(columns=RUN_COLUMNS)
    records = instance.get_run_records(limit=limit)
    rows = []
    for record in records:
        start, end = _ts(record.start_time), _ts(record.end_time)
        duration = (end - start).total_seconds() if start is not None and end is not None else None
        rows.append(
            (
                record.dagster_run.run_id,
                record.dagster_run.job_name,
                record.dagster_run.status.value,
                start,
                end,
                duration,
            )
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def check_results(settings: Settings) -> pd.DataFrame:
    """Asset check evaluations of the newest run that evaluated any (dbt tests, feature store and drift checks):
    asset, check, passed, severity (ERROR / WARN), description, evaluated_at (UTC), run_id, metadata (a dict of
    plain values; tables as lists of dicts). Failed checks first. Empty without an instance or evaluations."""
    from dagster import DagsterEventType

    instance = _instance(settings)
    if instance is None:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    rows: list[tuple[Any, ...]] = []
    for record in instance.get_run_records(limit=20):
        run_id = record.dagster_run.run_id
        events = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=5000
        ).records
        for event in events:
            data = event.event_log_entry.dagster_event.event_specific_data
            rows.append(
                (
                    data.asset_key.to_user_string(),
                    data.check_name,
                    bool(data.passed),
                    data.severity.value,
                    data.description or "",
                    _ts(event.event_log_entry.timestamp),
                    run_id,
                    {k: _plain(v) for k, v in (data.metadata or {}).items()},
                )
            )
        if rows:
            break
    frame = pd.DataFrame(rows, columns=CHECK_COLUMNS)
    return frame.sort_values(["passed", "asset", "check"], kind="stable").reset_index(drop=True)


def last_materializations(settings: Settings) -> pd.DataFrame:
    """Every asset's last materialization: asset, materialized_at (UTC), run_id; newest first."""
    instance = _instance(settings)
    if instance is None:
        return pd.DataFrame(columns=["asset", "materialized_at", "run_id"])
    records = instance.get_asset_records()
    rows = []
    for record in records:
        last = record.asset_entry.last_materialization
        if last is None:
            continue
        rows.append((record.asset_entry.asset_key.to_user_string(), _ts(last.timestamp), last.run_id))
    frame = pd.DataFrame(rows, columns=["asset", "materialized_at", "run_id"])
    return frame.sort_values(["materialized_at", "asset"], ascending=[False, True]).reset_index(drop=True)


def _ts(value: float | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value, unit="s", tz="UTC")


def _plain(value: Any) -> Any:
    """A Dagster metadata value as plain Python (tables as a list of row dicts)."""
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

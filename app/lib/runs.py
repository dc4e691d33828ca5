"""What the pipeline's runs did: the last runs, asset check results, last materializations.

Read from the run summary the orchestration layer publishes (``<TAILOR_HOME>/dagster/run_summary.json``, written
by `tailor run` when a run ends and by the Dagster daemon's ``run_summary_sensor`` when a run the UI, a schedule or
a sensor launched starts or ends; its shape: orchestration/lib/run_summary.py). The app never opens the Dagster
instance: it only reads published files, and pages stay free of Dagster's seconds-long import.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from tailor.settings import Settings

RUN_COLUMNS = ["run_id", "job", "status", "started", "ended", "duration_s"]
CHECK_COLUMNS = ["asset", "check", "passed", "severity", "description", "evaluated_at", "run_id", "metadata"]
MATERIALIZATION_COLUMNS = ["asset", "materialized_at", "run_id"]


def recent_runs(settings: Settings) -> pd.DataFrame:
    """The newest runs first (10 at most): run_id, job, status (SUCCESS, FAILURE, STARTED...), started, ended (UTC
    timestamps; ended NaT while running), duration_s. Empty before the first run."""
    return _frame(_summary(settings).get("runs", []), RUN_COLUMNS, ["started", "ended"])


def check_results(settings: Settings) -> pd.DataFrame:
    """Asset check evaluations of the newest run that evaluated any (dbt tests, feature store and drift checks):
    asset, check, passed, severity (ERROR / WARN), description, evaluated_at (UTC), run_id, metadata (a dict of
    plain values; tables as lists of dicts). Failed checks first. Empty before the first run."""
    frame = _frame(_summary(settings).get("checks", []), CHECK_COLUMNS, ["evaluated_at"])
    return frame.sort_values(["passed", "asset", "check"], kind="stable").reset_index(drop=True)


def last_materializations(settings: Settings) -> pd.DataFrame:
    """Every asset's last materialization: asset, materialized_at (UTC), run_id; newest first."""
    frame = _frame(_summary(settings).get("materializations", []), MATERIALIZATION_COLUMNS, ["materialized_at"])
    return frame.sort_values(["materialized_at", "asset"], ascending=[False, True]).reset_index(drop=True)


def _summary(settings: Settings) -> dict[str, Any]:
    """The published summary, or {} before any run has written one."""
    try:
        text = settings.run_summary.read_text()
    except FileNotFoundError:
        return {}
    summary: dict[str, Any] = json.loads(text)
    return summary


def _frame(rows: list[dict[str, Any]], columns: list[str], times: list[str]) -> pd.DataFrame:
    """``rows`` as a frame of ``columns``, the ``times`` columns (seconds since the epoch) as UTC timestamps."""
    frame = pd.DataFrame(rows, columns=columns)
    for column in times:
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame

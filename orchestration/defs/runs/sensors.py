"""Keep the published run summary current for runs `tailor run` does not execute (the UI, schedules, sensors)."""

import dagster as dg

from orchestration.lib.run_summary import newest_run_records, publish_run_summary, runs_fingerprint
from tailor.settings import get_settings

#: How often the daemon looks (seconds): the app's run reads expire as often (app/lib/cache.py RUNS_TTL_S).
SUMMARY_INTERVAL_S = 30


@dg.sensor(minimum_interval_seconds=SUMMARY_INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING)
def run_summary_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Writes ``<TAILOR_HOME>/dagster/run_summary.json`` again when a run started, ended or was marked failed since
    the last write (or the file is gone); requests no run."""
    settings = get_settings()
    records = newest_run_records(context.instance)
    fingerprint = runs_fingerprint(records)
    if fingerprint == context.cursor and settings.run_summary.exists():
        return dg.SensorResult(skip_reason="no run started or ended since the summary was written", cursor=fingerprint)
    path = publish_run_summary(context.instance, settings, records)
    return dg.SensorResult(skip_reason=f"published {path}", cursor=fingerprint)

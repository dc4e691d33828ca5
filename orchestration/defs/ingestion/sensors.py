"""Start a run when files land in the inbox."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from tailor.ingest.inbox import inbox_files, inbox_fingerprint
from tailor.settings import get_settings


def build_inbox_sensor(job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(job=job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def inbox_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Requests one run each time the inbox's contents change (new, changed or removed files)."""
        settings = get_settings()
        fingerprint = inbox_fingerprint(settings)
        files = inbox_files(settings)
        if fingerprint == context.cursor or not files:
            return dg.SensorResult(skip_reason=f"no new files in {settings.inbox}", cursor=fingerprint)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=fingerprint, tags={"tailor/inbox_files": str(len(files))})],
            cursor=fingerprint,
        )

    return inbox_sensor

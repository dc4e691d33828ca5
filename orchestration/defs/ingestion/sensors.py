"""Start a run when files land in the inbox, or when a crash left an ingestion half-finished."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.lib.interrupted_runs import fail_interrupted_runs
from orchestration.lib.run_lock import lock_holder
from tailor.ingest.inbox import pending_fingerprint
from tailor.settings import get_settings


def build_inbox_sensor(job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(job=job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def inbox_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Requests a run when files that no ingestion has seen yet are in the inbox (one run per new set), or
        when an ingestion killed after its commit left batches for a run to move into place."""
        for run_id in fail_interrupted_runs(context.instance):  # else the run queue would wait on them for ever
            context.log.warning(f"marked run {run_id} failed: the `tailor run` process running it was killed")
        settings = get_settings()
        holder = lock_holder(settings.home)
        if holder is not None:  # it lands the inbox itself; a run requested now would queue and find nothing new
            return dg.SensorResult(skip_reason=f"a `tailor run` is running on {settings.home} ({holder})")
        # Reads the landing log tolerantly: a torn last line (a crash mid-write) never stops the sensor.
        fingerprint, pending = pending_fingerprint(settings)
        if pending == 0 or fingerprint == context.cursor:
            return dg.SensorResult(skip_reason=f"no new files in {settings.inbox}", cursor=fingerprint)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=fingerprint, tags={"tailor/inbox_files": str(pending)})],
            cursor=fingerprint,
        )

    return inbox_sensor

"""The Tailor code location: one asset graph from landing files to published marts."""

import warnings

import dagster as dg

from orchestration.defs.experiments.assets import experiment_daily_results, experiment_results, srm_check
from orchestration.defs.features.assets import feast_online_store, feast_registry, ranking_training_set
from orchestration.defs.features.checks import online_consistency_check, online_freshness_check
from orchestration.defs.ingestion.assets import landing
from orchestration.defs.ingestion.sensors import build_inbox_sensor
from orchestration.defs.ml.assets import (
    candidates,
    ranker,
    ranker_beats_popularity,
    ranker_is_calibrated,
    recommendations,
)
from orchestration.defs.ml.drift import champion_drift_checks, retrain_job, retrain_sensor
from orchestration.defs.runs.sensors import run_summary_sensor
from orchestration.defs.warehouse.assets import warehouse
from orchestration.defs.warehouse.checks import reconciliation_check
from orchestration.lib.dbt import dbt_resource
from orchestration.lib.progress import progress_logger

# Dagster 1.13 reads ScheduleDefinition.environment_vars, a property it deprecated, each time it snapshots a schedule
# (dagster/_core/remote_representation/external_data.py), so the UI's log repeated the warning on every tick (a
# trial); nothing here sets it.
warnings.filterwarnings(
    "ignore", message=r"Property `ScheduleDefinition\.environment_vars`", category=DeprecationWarning
)

tailor_job = dg.define_asset_job(
    "tailor_job",
    selection=dg.AssetSelection.all(),
    description="Ingest the inbox, then build, test and publish the warehouse.",
)

# Daily at 02:00 UTC: late events from the day before have had time to arrive; the lookback covers the rest.
daily_schedule = dg.ScheduleDefinition(
    name="daily_tailor", job=tailor_job, cron_schedule="0 2 * * *", execution_timezone="UTC"
)

defs = dg.Definitions(
    assets=[
        landing,
        warehouse,
        experiment_results,
        experiment_daily_results,
        feast_registry,
        feast_online_store,
        ranking_training_set,
        candidates,
        ranker,
        recommendations,
    ],
    asset_checks=[
        reconciliation_check,
        srm_check,
        online_freshness_check,
        online_consistency_check,
        ranker_beats_popularity,
        ranker_is_calibrated,
        champion_drift_checks,
    ],
    jobs=[tailor_job, retrain_job],
    schedules=[daily_schedule],
    sensors=[build_inbox_sensor(tailor_job), retrain_sensor, run_summary_sensor],
    resources={"dbt": dbt_resource()},
    loggers={"console": dg.colored_console_logger, "tailor_progress": progress_logger},
)

"""The Dagster code location: the graph users see in the UI, the schedule and the inbox sensor."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from orchestration.definitions import defs
from tailor.ingest.inbox import ingest_inbox
from tailor.settings import Settings

pytestmark = pytest.mark.integration


def test_graph_has_ingestion_every_dbt_model_and_the_checks() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    # dbt nodes are keyed <schema>/<name>, as the warehouse names them.
    expected = {
        "landing/events", "landing/users", "landing/content", "staging/stg_landing__events",
        "staging/stg_landing__users", "staging/stg_landing__content", "staging/fx_rates",
        "intermediate/int_users_current", "intermediate/int_content_current",
        "intermediate/int_user_versions", "intermediate/int_content_versions",
        "marts/fct_events", "marts/fct_sessions", "marts/fct_impressions", "marts/fct_daily_user_engagement",
        "marts/dim_users", "marts/dim_content", "marts/dim_users_history", "marts/dim_content_history",
        "marts/fct_rejected_rows", "marts/fct_batch_fates",
        "snapshots/snp_users", "snapshots/snp_content",
        "staging/experiments", "intermediate/int_experiment_unit_days", "marts/fct_experiment_units",
        "marts/dim_experiments", "marts/fct_experiment_stats", "marts/fct_experiment_daily_stats",
        "marts/fct_experiment_novelty_stats", "experiments/experiment_results", "experiments/experiment_daily_results",
    }  # fmt: skip
    assert expected <= keys
    # The experiment results are computed from the published stats marts, after dbt.
    results = graph.get(dg.AssetKey(["experiments", "experiment_results"]))
    assert dg.AssetKey(["marts", "fct_experiment_stats"]) in results.parent_keys
    # Landing feeds staging: the dbt sources map onto the ingestion assets.
    staging = graph.get(dg.AssetKey(["staging", "stg_landing__events"]))
    assert dg.AssetKey(["landing", "events"]) in staging.parent_keys
    checks = {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys}
    assert "marts/fct_batch_fates:received_equals_accepted_duplicates_quarantined" in checks
    assert "experiments/experiment_results:no_sample_ratio_mismatch" in checks
    assert "marts/fct_events:unique_fct_events_event_id" in checks  # dbt tests arrive as asset checks
    groups = {
        graph.get(dg.AssetKey(k.split("/"))).group_name
        for k in ("staging/stg_landing__events", "marts/fct_events", "snapshots/snp_users")
    }
    assert groups == {"staging", "marts", "snapshots"}


def test_daily_schedule_runs_the_whole_job() -> None:
    schedule = defs.resolve_schedule_def("daily_tailor")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "tailor_job"


def _click(event_id: str) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "click",
            "user_id": "u1",
            "occurred_at": "2026-01-05T10:00:00Z",
            "content_id": "c1",
            "request_id": "r1",
        }
    )


def test_inbox_sensor_starts_one_run_per_change(settings: Settings) -> None:
    sensor = defs.resolve_sensor_def("inbox_sensor")
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> dg.SensorResult:
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))

        empty = tick(None)
        assert empty.run_requests == [] and "no new files" in (empty.skip_message or "")
        settings.inbox.mkdir(parents=True)
        (settings.inbox / "events-1.jsonl").write_text(_click("e1") + "\n")
        (settings.inbox / ".partial.jsonl").write_text("{")  # being written: ignored
        first = tick(empty.cursor)
        assert len(first.run_requests) == 1
        assert first.run_requests[0].tags["tailor/inbox_files"] == "1"
        assert tick(first.cursor).run_requests == []  # nothing changed since
        (settings.inbox / "events-2.jsonl").write_text(_click("e2") + "\n")
        second = tick(first.cursor)
        assert len(second.run_requests) == 1
        assert second.run_requests[0].run_key != first.run_requests[0].run_key
        # Once a run has ingested them, the same files do not start another run (even with a fresh cursor).
        landed = ingest_inbox(settings)
        assert landed.rejected_files == {}
        assert sorted(f.status for f in landed.report.files) == ["landed", "landed"]
        assert tick(None).run_requests == []
        assert ingest_inbox(settings).report.files == []  # a later run reads nothing it has already seen


def test_inbox_sensor_leaves_the_inbox_to_a_tailor_run_in_progress(settings: Settings) -> None:
    """Found by a trial: `tailor generate` then `tailor run` with the UI up, and the sensor requested a run for the
    files the `tailor run` was landing: it queued, then spent 96 s finding nothing new."""
    from orchestration.lib.run_lock import run_lock

    sensor = defs.resolve_sensor_def("inbox_sensor")
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events-1.jsonl").write_text(_click("e1") + "\n")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=None)
        with run_lock(settings.home):
            held = sensor.evaluate_tick(context)
        assert held.run_requests == []
        assert f"a `tailor run` is running on {settings.home} (PID {os.getpid()}, started " in (held.skip_message or "")
        assert len(sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=None)).run_requests) == 1

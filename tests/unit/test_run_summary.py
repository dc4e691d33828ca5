"""The run summary the orchestration layer publishes (orchestration/lib/run_summary.py) and the app reads
(app/lib/runs.py): what the Dagster instance says, without the app opening it."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from app.lib import runs
from orchestration.defs.runs.sensors import run_summary_sensor
from orchestration.lib.run_summary import publish_run_summary
from tailor.settings import Settings, get_settings

pytestmark = pytest.mark.unit


@dg.asset
def numbers() -> int:
    return 1


@dg.asset_check(asset=numbers)
def positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="planted failure", metadata={"rows": 3})


@dg.asset_check(asset=numbers, blocking=False)
def small() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN)


def _instance(tmp_path: Path) -> dg.DagsterInstance:
    """An instance configured elsewhere than the home (Dagster's own SQLite, as a team's dagster.yaml would name
    Postgres)."""
    config = tmp_path / "instance"
    config.mkdir(exist_ok=True)
    (config / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {tmp_path / 'elsewhere'}\ntelemetry:\n  enabled: false\n"
    )
    return dg.DagsterInstance.from_config(str(config))


def test_a_home_without_a_summary_reads_as_empty_and_is_left_untouched(tmp_path: Path) -> None:
    settings = get_settings(tmp_path / "home")
    assert runs.recent_runs(settings).empty and runs.check_results(settings).empty
    assert runs.last_materializations(settings).empty
    assert list(runs.recent_runs(settings).columns) == runs.RUN_COLUMNS
    assert not (tmp_path / "home").exists(), "a reader must not create anything in the home"


def test_the_published_summary_is_what_the_instance_says(tmp_path: Path) -> None:
    settings = get_settings(tmp_path / "home")
    with _instance(tmp_path) as instance:
        first = dg.materialize([numbers, positive, small], instance=instance)
        second = dg.materialize([numbers], instance=instance)  # evaluates no check: the first run's are shown
        assert first.success and second.success
        publish_run_summary(instance, settings)
        records = instance.get_run_records()
    shown = runs.recent_runs(settings)
    assert shown["run_id"].tolist() == [second.run_id, first.run_id], "newest first"
    assert (shown["status"] == "SUCCESS").all() and (shown["job"] == "__ephemeral_asset_job__").all()
    newest = records[0]
    assert shown.loc[0, "started"].timestamp() == pytest.approx(newest.start_time)
    assert shown.loc[0, "duration_s"] == pytest.approx(newest.end_time - newest.start_time)
    assert str(shown.loc[0, "started"].tz) == "UTC"
    checks = runs.check_results(settings)
    assert checks[["check", "passed", "severity", "description"]].values.tolist() == [
        ["positive", False, "ERROR", "planted failure"],  # failed first
        ["small", True, "WARN", ""],
    ]
    assert (checks["run_id"] == first.run_id).all() and checks.loc[0, "metadata"] == {"rows": 3}
    [done] = runs.last_materializations(settings).itertuples()
    assert (done.asset, done.run_id) == ("numbers", second.run_id)
    assert list(tmp_path.joinpath("home", "dagster").iterdir()) == [settings.run_summary], "no temporary file left"


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    result = run_summary_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    return result


def test_the_sensor_writes_again_only_when_a_run_started_or_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = get_settings(tmp_path / "home")
    monkeypatch.setenv("TAILOR_HOME", str(settings.home))
    with _instance(tmp_path) as instance:
        first = _tick(instance, None)
        assert json.loads(settings.run_summary.read_text())["runs"] == []
        written = settings.run_summary.stat().st_mtime_ns
        same = _tick(instance, first.cursor)
        assert same.cursor == first.cursor and settings.run_summary.stat().st_mtime_ns == written
        result = dg.materialize([numbers], instance=instance)
        after = _tick(instance, same.cursor)
        assert after.cursor != first.cursor
        assert runs.recent_runs(settings)["run_id"].tolist() == [result.run_id]
        settings.run_summary.unlink()
        _tick(instance, after.cursor)  # nothing changed, but the file is gone: written again
        assert runs.recent_runs(settings)["run_id"].tolist() == [result.run_id]

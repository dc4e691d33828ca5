"""The app's reader of the Dagster instance (app/lib/runs.py) opens the instance dagster.yaml configures."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetCheckResult, DagsterInstance, asset, asset_check, materialize

from app.lib import runs
from tailor.settings import get_settings

pytestmark = pytest.mark.unit


def test_a_home_without_runs_reads_as_empty_and_is_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # the repository's dagster.yaml: SQLite under the home
    settings = get_settings(tmp_path / "home")
    assert runs.recent_runs(settings).empty and runs.check_results(settings).empty
    assert runs.last_materializations(settings).empty
    assert not (tmp_path / "home").exists(), "a reader must not create an instance where no run has been"


def test_an_instance_configured_elsewhere_is_read_from_its_dagster_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team's own dagster.yaml (here Dagster's own SQLite storage in another folder, as it would name Postgres)
    is what the app reads, not the home's default folder."""
    config = tmp_path / "instance"
    config.mkdir()
    (config / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {tmp_path / 'elsewhere'}\ntelemetry:\n  enabled: false\n"
    )

    @asset
    def numbers() -> int:
        return 1

    @asset_check(asset=numbers)
    def positive() -> AssetCheckResult:
        return AssetCheckResult(passed=False, description="planted failure")

    with DagsterInstance.from_config(str(config)) as instance:
        assert materialize([numbers, positive], instance=instance).success
    monkeypatch.setenv("DAGSTER_HOME", str(config))
    settings = get_settings(tmp_path / "home")
    [run] = runs.recent_runs(settings).itertuples()
    assert run.status == "SUCCESS" and run.duration_s >= 0
    [check] = runs.check_results(settings).itertuples()
    assert (check.asset, check.check, check.passed, check.description) == (
        "numbers",
        "positive",
        False,
        "planted failure",
    )
    assert runs.last_materializations(settings)["asset"].tolist() == ["numbers"]
    assert not (tmp_path / "home").exists()

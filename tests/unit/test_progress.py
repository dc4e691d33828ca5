"""`tailor run`'s progress lines say what each asset did, not "built" for an asset that kept what it had."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.lib.progress import progress_logger

pytestmark = pytest.mark.unit


@dg.asset
def rebuilt() -> None:
    """An asset that records no action (a dbt model)."""


@dg.asset
def unchanged() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"action": "up to date", "reason": "inputs unchanged"})


@dg.asset
def kept() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"action": "kept"})


def test_each_line_names_the_assets_action(capfd: pytest.CaptureFixture[str]) -> None:
    defs = dg.Definitions(
        assets=[rebuilt, unchanged, kept],
        jobs=[dg.define_asset_job("progress_test")],
        loggers={"tailor_progress": progress_logger},
    )
    result = defs.resolve_job_def("progress_test").execute_in_process(run_config={"loggers": {"tailor_progress": {}}})
    assert result.success
    lines = sorted(line.split() for line in capfd.readouterr().err.splitlines() if line.startswith("  "))
    assert lines == [["built", "rebuilt"], ["kept", "kept"], ["up", "to", "date", "unchanged"]]

"""What `tailor run` prints while it runs: what each asset did (not "built" for an asset that kept what it had), and
no deprecation warnings from pinned third-party code."""

from __future__ import annotations

import warnings

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


def test_known_third_party_deprecations_are_silenced_and_others_still_show() -> None:
    from orchestration.lib.runner import KNOWN_THIRD_PARTY_WARNINGS, _silence_known_third_party_warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", DeprecationWarning)  # what Feast's import does ("once")
        _silence_known_third_party_warnings()
        for message in KNOWN_THIRD_PARTY_WARNINGS:
            warnings.warn(f"{message} and no longer maintained", DeprecationWarning, stacklevel=1)
        warnings.warn("tailor_function is deprecated", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["tailor_function is deprecated"]

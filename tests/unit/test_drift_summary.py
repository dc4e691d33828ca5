"""The drift checks' one-line verdicts say why a large PSI is no drift."""

from __future__ import annotations

import pytest

from ml.monitoring.config import DriftConfig
from ml.monitoring.drift import DriftReport, FeatureDrift
from ml.monitoring.psi import Comparison
from orchestration.defs.ml.drift import _summary

pytestmark = pytest.mark.unit


def _drift(psi: float, current_rows: int, noise: float, baseline: float) -> FeatureDrift:
    comparison = Comparison(psi=psi, bins=(), reference_rows=46_000, current_rows=current_rows, no_drift_psi=0.01)
    return FeatureDrift("category", "ok", comparison, "categorical", baseline=baseline, noise=noise)


def test_a_large_psi_on_a_tiny_day_is_named_as_noise() -> None:
    """Found by a trial: "every comparable ranker feature(s) within 0.1 of a reference day (largest: category
    0.000, PSI 8.793)" on a newest day of one impression read as a contradiction."""
    report = DriftReport((_drift(8.793, 1, 9.5, 0.2),), DriftConfig())
    assert _summary(report, "ranker features") == (
        "no comparable ranker features moved 0.1 or more beyond a reference day (category's PSI 8.793 is within the "
        "sampling noise of the newest day's 1 row(s), up to 9.500)"
    )
    explained = DriftReport((_drift(0.4, 30_000, 0.02, 0.35),), DriftConfig())
    assert (
        "(largest excess: category 0.050: its PSI 0.400 minus 0.350, the most one of the reference's own days moved "
        "against the rest)"
    ) in _summary(explained, "ranker features")
    # Found by trials: "its PSI 3.262 less the 3.640 one of the reference's own days shows", then "largest excess:
    # category 0.000" beside a PSI of 3.262, for an excess of 0.
    within = DriftReport((_drift(3.262, 30_000, 0.02, 3.640),), DriftConfig())
    said = _summary(within, "ranker features")
    assert said.endswith(
        "(category's PSI 3.262 is no more than 3.640, the most one of the reference's own days moved against the rest)"
    )
    assert "0.000" not in said
    # Features whose window is longer than the history before the reference are said to be not judged, and why.
    young = FeatureDrift("clicks_28d", "young", Comparison(0.0, (), 46_000, 30_000, 0.01), "numeric", 0.0, 0.0)
    assert _summary(DriftReport((_drift(0.4, 30_000, 0.02, 0.35), young), DriftConfig()), "ranker features").endswith(
        "; 1 not judged (their window is longer than the history before the reference)"
    )

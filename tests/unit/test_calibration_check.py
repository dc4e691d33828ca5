"""The ranker's calibration check judges ECE against its own noise: the ECE a perfectly calibrated model shows on
the same predictions, checked by simulations whose truth is known (labels drawn from the model's probabilities)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.evaluate.metrics import expected_calibration_error
from ml.ranker.evaluate import ECE_ALPHA, ECE_BINS, calibrated_ece_quantile, calibration_verdict, classification_metrics

pytestmark = pytest.mark.unit

#: The check's limit (ml.ranker.evaluate.MAX_ECE).
LIMIT = 0.02


def _predictions(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Click probabilities like the ranker's on a small history: mean about 0.08, a long right tail."""
    return rng.beta(1.5, 17.0, rows)


def test_the_noise_quantile_is_that_of_independently_scored_perfect_models() -> None:
    rng = np.random.default_rng(21)
    p = _predictions(rng, 3000)
    quantile = calibrated_ece_quantile(p, 0.05)
    # A second computation: labels of a perfect model, scored by the metric itself.
    scored = [expected_calibration_error(rng.random(p.size) < p, p, ECE_BINS, "quantile") for _ in range(1000)]
    assert quantile == pytest.approx(np.quantile(scored, 0.95), rel=0.06)
    # The bias the check allows for: about sqrt(B / n) times a typical sqrt(p (1 - p)).
    assert np.mean(scored) == pytest.approx(np.sqrt(2 / np.pi) * np.sqrt(ECE_BINS / p.size * np.mean(p)), rel=0.25)
    assert calibrated_ece_quantile(p) == calibrated_ece_quantile(p)  # seeded
    with pytest.raises(ValueError, match="ten replications beyond"):
        calibrated_ece_quantile(p, 0.001, replications=1000)
    with pytest.raises(ValueError, match="probabilities in"):
        calibrated_ece_quantile(np.array([0.5, 1.5]))


def test_a_perfectly_calibrated_model_on_a_small_window_passes() -> None:
    """1,500 test rows (three test days of a 100-user history): a perfect model's ECE is often above the limit,
    so the limit alone fails it; judged against its noise it passes about 1 - ECE_ALPHA of the time."""
    rng = np.random.default_rng(22)
    over_limit, failed = 0, 0
    for _ in range(100):
        p = _predictions(rng, 1500)
        metrics = classification_metrics(rng.random(p.size) < p, p)
        over_limit += metrics["ece"] > LIMIT
        failed += not calibration_verdict(metrics["ece"], metrics["ece_noise"], LIMIT)[0]
    assert over_limit >= 30  # the false alarms of the limit alone
    assert failed <= 100 * ECE_ALPHA + 3


@pytest.mark.parametrize("rows", [3000, 45_000])
def test_a_miscalibrated_model_fails(rows: int) -> None:
    """Probabilities 1.5 times too high: caught on a small window and at the demo's size."""
    rng = np.random.default_rng(23)
    for _ in range(5):
        p = _predictions(rng, rows)
        clicked = rng.random(rows) < p
        metrics = classification_metrics(clicked, np.clip(1.5 * p, 0.0, 1.0))
        passed, why = calibration_verdict(metrics["ece"], metrics["ece_noise"], LIMIT)
        assert not passed and metrics["ece"] > metrics["ece_noise"], why
        assert f"ECE {metrics['ece']:.4f} above the limit {LIMIT}" in why


def test_the_verdict_in_words() -> None:
    assert calibration_verdict(0.01, 0.03, LIMIT) == (True, "ECE 0.0100 within the limit 0.02")
    passed, why = calibration_verdict(0.025, 0.03, LIMIT)
    assert passed and "within the 0.0300 a perfectly calibrated model reaches" in why
    passed, why = calibration_verdict(0.04, 0.03, LIMIT)
    assert not passed and why == (
        "ECE 0.0400 above the limit 0.02, above the 0.0300 a perfectly calibrated model can show on this window"
    )
    assert calibration_verdict(0.025, None, LIMIT)[0] is False  # a version stored without the noise figure

"""Drift checks and the retrain sensor on a real Dagster instance and a real MLflow registry: the sensor's rule
on recorded check evaluations, and a planted drift in the simulator that the check catches and the sensor acts on."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.features.training import training_set_path
from ml.monitoring.config import DriftConfig
from ml.ranker.model import fit_ranker
from ml.registry import ModelVersion, Registry, decide
from orchestration.definitions import defs
from orchestration.defs.features.assets import TRAINING_SET_KEY
from orchestration.defs.ml.drift import DETAIL_TAG, FEATURES_CHECK, REASONS_TAG
from simulator import DriftConfig as SimulatorDrift
from simulator import SimulationConfig, simulate
from tailor.ingest import ingest_paths
from tailor.settings import Settings
from tests.conftest import run_dbt

pytestmark = pytest.mark.integration


def _register(registry: Registry, test_window: str, scores: dict[str, float]) -> ModelVersion:
    """A real (tiny) ranker logged as a new version; the registry's rule decides whether it becomes champion."""
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"x": rng.normal(size=300), "position": rng.integers(1, 11, 300)})
    rows["clicked"] = rng.random(300) < 0.2 + 0.1 * (rows["x"] > 0)
    model = fit_ranker(rows, ["x", "position"], {"max_iter": 5}, seed=0)
    tags = {"training_window": "2026-01-05..2026-01-12", "test_window": test_window}
    version = registry.log(model, scores, {}, tags, {})
    champion = registry.alias("champion")
    registry.record_decision(version.version, decide(scores, champion.metrics if champion else None))
    return registry.get(version.version)


def _training_days(settings: Settings, first: date, last: date) -> None:
    """A training set whose impressions cover ``first..last``, whole days (the sensor reads only their times)."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    times = [pd.Timestamp(d, tz="UTC") + pd.Timedelta(hours=hour) for d in days for hour in (12, 23.5)]
    path = training_set_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC"))}), path)


def _drift_evaluation(instance: dg.DagsterInstance, version: int, day: str, passed: bool) -> None:
    """Record an evaluation of the feature-drift check as the check itself records one."""
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=TRAINING_SET_KEY,
            check_name=FEATURES_CHECK,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"champion_version": dg.MetadataValue.int(version), "current_day": dg.MetadataValue.text(day)},
            description="1 of 42 ranker feature(s) at or above 0.25: category 0.412",
        )
    )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as made:
        yield made


def test_retrain_sensor_asks_once_per_new_day_and_says_why(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    sensor = defs.resolve_sensor_def("retrain_sensor")
    assert sensor.job_name == "retrain_ranker"
    job = defs.resolve_job_def("retrain_ranker")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "ml/ranker",
        "ml/candidates",
        "ml/ranking_training_set",
    }

    def tick(cursor: str | None) -> dg.SensorResult:
        return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))

    monkeypatch.setenv("TAILOR_RETRAIN_NEW_DAYS", "3")  # the default (7) would need a week of fake days
    assert "no champion yet" in (tick(None).skip_message or "")
    registry = Registry(settings.models_dir)
    v1 = _register(registry, "2026-01-18..2026-01-21", {"log_loss": 0.30, "ndcg_at_k": 0.20})
    assert v1.aliases == ["champion"]
    _training_days(settings, date(2026, 1, 1), date(2026, 1, 20))
    assert "a retrain now would see nothing new" in (tick(None).skip_message or "")

    _training_days(settings, date(2026, 1, 1), date(2026, 1, 21))  # one day version 1 has not seen
    quiet = tick(None)
    assert quiet.run_requests == [] and "1 of 3 new labelled day(s)" in (quiet.skip_message or "")
    _drift_evaluation(instance, v1.version, "2026-01-21", passed=True)
    assert tick(None).run_requests == []

    _drift_evaluation(instance, v1.version, "2026-01-21", passed=False)
    drifted = tick(None)
    [request] = drifted.run_requests
    assert request.tags[REASONS_TAG] == "drift"
    assert "champion_features_stable failed on 2026-01-21: 1 of 42 ranker feature(s)" in request.tags[DETAIL_TAG]
    assert request.run_key == drifted.cursor == "retrain-after-v1-through-2026-01-21"
    again = tick(drifted.cursor)
    assert again.run_requests == [] and "already requested" in (again.skip_message or "")

    # The retrain ran; its challenger saw 2026-01-21 and lost to the champion (the registry's rule): the same
    # drift failure no longer asks, since a retrain would see the same days.
    v2 = _register(registry, "2026-01-19..2026-01-22", {"log_loss": 0.31, "ndcg_at_k": 0.20})
    assert v2.aliases == ["challenger"] and registry.alias("champion").version == v1.version  # type: ignore[union-attr]
    assert tick(drifted.cursor).run_requests == []

    _training_days(settings, date(2026, 1, 1), date(2026, 1, 24))  # three days after version 2's test window
    [fresh] = tick(drifted.cursor).run_requests
    assert fresh.tags[REASONS_TAG] == "new_days" and fresh.run_key == "retrain-after-v2-through-2026-01-24"
    detail = fresh.tags[DETAIL_TAG]
    said = "3 labelled day(s) of the training set after version 2's test window (2026-01-22 to 2026-01-24; limit 3)"
    assert said in detail

    monkeypatch.setenv("TAILOR_RETRAIN_MAX_AGE_DAYS", "0")
    monkeypatch.setenv("TAILOR_RETRAIN_NEW_DAYS", "5")
    [aged] = tick(None).run_requests
    assert aged.tags[REASONS_TAG] == "age"
    # The champion's age is the history's: the training days end with 2026-01-24, 4 days past its test window.
    said = "the history reaches 4 days past champion version 1's test window (its last day 2026-01-20"
    assert said in aged.tags[DETAIL_TAG]
    monkeypatch.setenv("TAILOR_RETRAIN_NEW_DAYS", "zero")
    with pytest.raises(Exception, match="TAILOR_RETRAIN_NEW_DAYS='zero' is not a whole number"):
        tick(None)
    assert os.environ["TAILOR_HOME"] == str(settings.home)
    assert not Path(settings.models_dir / "monitoring").exists()  # the sensor never measures, it only reads


# A small world whose news items become five times as attractive from day 15 (2026-01-20) of 20 (the simulator's
# drift knob). The champion is trained on the first 15 days, as the nightly run would; the last 5 arrive after it.
WORLD = SimulationConfig(
    users=300,
    days=20,
    seed=21,
    initial_catalog=400,
    new_items_per_day=12.0,
    drift=SimulatorDrift(category="news", from_day=15, attract_multiplier=5.0),
)
DRIFT_DAY = WORLD.start_date + timedelta(days=15)
LAST_DAY = WORLD.start_date + timedelta(days=WORLD.days - 1)
#: Small budgets: one Optuna trial, few boosting rounds, 4 training days.
RANKER_ENV = {
    "TAILOR_RANKER_SEARCH_TRIALS": "1",
    "TAILOR_RANKER_MAX_ITER": "30",
    "TAILOR_RANKER_EVAL_USERS": "30",
    "TAILOR_RANKER_TRAIN_DAYS": "4",
    "TAILOR_RANKER_TUNE_DAYS": "1",
    "TAILOR_RANKER_CALIBRATION_DAYS": "1",
    "TAILOR_RANKER_TEST_DAYS": "2",
}
#: The marts the feature store and the ranker read, and what they are built from (not the experiment marts).
MARTS = (
    "+fct_impressions",
    "+fct_user_content_interactions",
    "+dim_content",
    "+dim_users",
    "+fct_user_features_daily",
    "+fct_content_features_daily",
    "+fct_content_profile",
)


def _files(generated: Path, before: date | None = None, since: date | None = None) -> list[Path]:
    """The simulator's daily files (``<kind>-<day>.jsonl``) of days before ``before`` or from ``since`` on."""
    out = []
    for path in sorted(generated.glob("*/*.jsonl")):
        day = date.fromisoformat(path.stem.split("-", 1)[1][:10])
        if (before is None or day < before) and (since is None or day >= since):
            out.append(path)
    return out


def _share(drift: Any, category: str) -> tuple[float, float]:
    """The category's share of impressions in the champion's training window and on the compared day."""
    [row] = [
        b for f in drift.features.features if f.feature == "category" for b in f.comparison.bins if b.label == category
    ]
    return row.reference_share, row.current_share


def test_planted_drift_fails_the_check_and_the_sensor_asks_for_a_retrain(
    tmp_path: Path, settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planted drift fails the feature check, and the sensor asks for a retrain. In a world this small (300
    users, ~2,000 impressions a day) one day's features scatter widely even when judged like with like: the
    unplanted world fails too, on fewer features (docs/decisions.md, "Drift on young histories"); what the plant
    adds here is the category shift the check names, which the days before it do not show."""
    from ml.history import load_history
    from ml.monitoring.champion import (
        candidate_config,
        champion_drift,
        current_rows,
        fit_saved_reference,
        reference_path,
        scored_rows,
    )
    from ml.ranker.dataset import load_training_rows
    from orchestration.defs.features.assets import feast_registry, ranking_training_set
    from orchestration.defs.ml.assets import candidates, ranker
    from orchestration.defs.ml.drift import PREDICTIONS_CHECK, champion_drift_checks

    for key, value in RANKER_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TAILOR_RETRAIN_NEW_DAYS", "10")  # five new days: only the drift should ask
    generated = tmp_path / "generated"
    simulate(WORLD, generated)
    planted = json.loads((generated / "_truth" / "truth.json").read_text())["click_model"]["attract"]
    assert planted["drift_multiplier"]["category"] == "news"

    ingest_paths(_files(generated, before=DRIFT_DAY), settings)
    run_dbt(settings, "build", "--select", *MARTS)
    assert dg.materialize([feast_registry, ranking_training_set, candidates, ranker], instance=instance).success
    champion = Registry(settings.models_dir).alias("champion")
    assert champion is not None and champion.tags["test_window"].endswith(f"..{DRIFT_DAY}")  # saw no drift
    # Registering the version saved its drift reference, from the rows it was trained on; it is the reference
    # the check would fit from the training set (bins, counts, days), so the check need not rescan the window.
    saved = reference_path(settings.models_dir, champion.version)
    at_training = json.loads(saved.read_text())
    model = Registry(settings.models_dir).load(champion.version)
    fit_saved_reference(settings, champion, model, DriftConfig())
    by_check = json.loads(saved.read_text())
    assert at_training["training_window"] == champion.tags["training_window"] and at_training["days"] == 4
    assert at_training == by_check
    bins = at_training["reference"]["bins"]
    assert set(bins) == {*model.features, "predicted_click_probability"}
    assert sum(bins["position"]["counts"]) > 1000
    written = saved.stat().st_mtime_ns

    ingest_paths(_files(generated, since=DRIFT_DAY), settings)
    run_dbt(settings, "build", "--select", *MARTS)
    checked = dg.materialize([ranking_training_set, champion_drift_checks], instance=instance)
    evaluations = {e.check_name: e for e in checked.get_asset_check_evaluations()}
    features = evaluations[FEATURES_CHECK]
    assert not features.passed and features.severity == dg.AssetCheckSeverity.ERROR
    meta = {k: v.value for k, v in features.metadata.items()}
    assert meta["champion_version"] == champion.version and meta["current_day"] == str(LAST_DAY)
    assert meta["reference_window"] == champion.tags["training_window"]
    rows = [r.data for r in features.metadata["psi"].records]
    assert len(rows) == len(Registry(settings.models_dir).load(champion.version).features)
    assert [r["psi"] for r in rows] == sorted((r["psi"] for r in rows), reverse=True)
    assert meta["max_psi"] == pytest.approx(rows[0]["psi"], abs=1e-4) and rows[0]["psi"] >= 0.25
    # Like with like: the 28-day windows and the quantities counted since the start were filling during the
    # champion's window (7 days into the history): shown, not judged. The verdict rests on the others, each
    # judged on its PSI beyond the largest one of the window's own days shows.
    assert meta["history_days_before_reference"] == 7
    young = set(meta["young"].split(", "))
    assert {"clicks_28d", "content_impressions_28d", "category_affinity", "age_days", "score_cf"} <= young
    assert not young & {"clicks_7d", "ctr_smoothed_1d", "category", "position"}
    judged = {r["feature"]: r for r in rows if r["status"] != "young"}
    failing = meta["at_fail"].split(", ")
    assert failing and all(judged[name]["excess_psi"] >= 0.25 for name in failing)
    most = judged[meta["most_drifted"]]
    assert most["excess_psi"] == max(r["excess_psi"] for r in judged.values())
    assert most["excess_psi"] == pytest.approx(max(most["psi"] - most["day_baseline_psi"], 0.0), abs=2e-4)
    assert features.description is not None
    assert f"{meta['most_drifted']} {meta['max_excess_psi']:.3f} (PSI " in features.description
    category = next(r for r in rows if r["feature"] == "category")
    assert category["largest_shift"].startswith("news: ")  # the planted category is the shift the check shows
    assert evaluations[PREDICTIONS_CHECK].metadata["current_day"].value == str(LAST_DAY)

    # The check's numbers come back from the saved reference; the days before the drift did not show the shift.
    after = champion_drift(settings)
    assert after is not None and after.reference_saved and saved.stat().st_mtime_ns == written  # never refitted
    assert {f.feature: round(f.psi, 4) for f in after.features.features} == {r["feature"]: r["psi"] for r in rows}
    reference_news, news_after = _share(after, "news")
    before = champion_drift(settings, day=DRIFT_DAY)
    assert before is not None
    _, news_before = _share(before, "news")
    # The rank is compared on its day's scale (a share of the day's bottom rank, ml.monitoring.ranks), so the
    # catalog that grows by 12 items a day does not move it: ok on both days.
    rank_edges = bins["popularity_rank_7d"]["edges"]
    assert min(rank_edges) > 0 and max(rank_edges) <= 1
    ranks = {f.status for r in (before, after) for f in r.features.features if f.feature == "popularity_rank_7d"}
    assert ranks == {"ok"}
    assert news_after > 1.3 * reference_news and news_before < 1.15 * reference_news
    # The day is scored from its own training rows and the recent impressions: the same rows as scoring it out
    # of the whole training set and history.
    history = load_history(settings.marts_dir)
    whole = load_training_rows(training_set_path(settings), history)
    day = pd.Timestamp(LAST_DAY, tz="UTC")
    expected = scored_rows(whole, history, day, day + timedelta(days=1), candidate_config(champion))
    read = current_rows(settings, champion, day)
    assert len(read) == after.current_rows > 1000
    # Values, not dtypes: pandas reads an integer column as float64 when the rows read hold a missing value.
    pd.testing.assert_frame_equal(read.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)

    sensor = defs.resolve_sensor_def("retrain_sensor")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    [request] = tick.run_requests
    assert request.tags[REASONS_TAG] == "drift"
    assert request.tags[DETAIL_TAG].startswith(f"champion_features_stable failed on {LAST_DAY}: ")
    assert request.run_key == f"retrain-after-v{champion.version}-through-{LAST_DAY}"


def test_drift_checks_signal_a_retrain_and_do_not_fail_tailor_run() -> None:
    """`tailor run` reports a failed drift check as a retrain signal (a policy change alone moves the features)."""
    from orchestration.defs.ml.drift import DRIFT_CHECKS
    from orchestration.lib.runner import RETRAIN_SIGNALS

    assert set(DRIFT_CHECKS) == RETRAIN_SIGNALS

"""The model assets skip work when nothing they read changed, and work again when something did: real `tailor run`
(Dagster, dbt, Feast, MLflow) on a copy of the served home."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ml.ranker.config import RankerConfig
from ml.registry import Registry
from orchestration.defs.ml.assets import CANDIDATES_KEY, RANKER_KEY, RECOMMENDATIONS_KEY
from orchestration.defs.ml.inputs import candidates_inputs, ranker_inputs
from tailor.ingest.inbox import ingest_inbox
from tailor.settings import Settings
from tests.conftest import SERVED_ENV, copy_home, run_dbt, tailor_cli
from tests.integration.test_drift_retrain import MARTS

pytestmark = pytest.mark.integration


def _versions(home: Settings) -> list[int]:
    return [v.version for v in Registry(home.models_dir).versions()]


def _materialize(instance: dg.DagsterInstance, *assets: dg.AssetsDefinition) -> dict[str, dict[str, Any]]:
    """Materialize the assets; per asset key, its metadata (plain values) and data version."""
    result = dg.materialize(list(assets), instance=instance)
    assert result.success
    out: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        meta["data_version"] = (materialization.tags or {}).get("dagster/data_version")
        out[materialization.asset_key.to_user_string()] = meta
    return out


def test_a_rerun_with_nothing_new_keeps_every_model_and_a_new_day_trains_again(
    served_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a copy of the served home (one `tailor run` done) with a new Dagster instance: the ranker finds its
    fingerprint on the newest registered version; a second run with nothing new keeps every model (no new
    version, no new pages) and says so; a new day trains a new version."""
    from orchestration.defs.features.assets import feast_online_store, feast_registry, ranking_training_set
    from orchestration.defs.ml.assets import candidates, ranker, recommendations

    home = copy_home(served_home, tmp_path)
    for name, value in {**SERVED_ENV, "TAILOR_HOME": str(home.home)}.items():
        monkeypatch.setenv(name, value)
    before = _versions(home)
    assert before, "the served home has a trained ranker"
    models = (candidates, ranker, recommendations)
    with dg.instance_for_test() as instance:
        # The first run on this instance: the code may have changed since the served home was built (then the
        # ranker retrains); whatever it does, it records its inputs.
        first = _materialize(instance, *models)
        trained = _versions(home)
        newest = trained[0]
        assert first["ml/ranker"]["version"] == newest

        again = _materialize(instance, *models)
        assert _versions(home) == trained  # no new version registered
        ranker_meta = again["ml/ranker"]
        assert ranker_meta["action"] == "up to date"
        assert ranker_meta["reason"] == f"unchanged, version {newest} kept"
        assert ranker_meta["version"] == newest and ranker_meta["trained"] is False and ranker_meta["kept"] is True
        assert ranker_meta["auc"] == first["ml/ranker"]["auc"]  # the kept version's numbers, for its checks
        assert again["ml/candidates"]["reason"].startswith("unchanged, the generators fitted as of ")
        pages_of = first["ml/recommendations"]["model_version"]
        assert again["ml/recommendations"]["reason"] == f"unchanged, the pages of model version {pages_of} kept"
        for key in ("ml/candidates", "ml/ranker", "ml/recommendations"):
            assert again[key]["action"] == "up to date"
            assert again[key]["data_version"] == first[key]["data_version"] == again[key]["inputs_fingerprint"]

        made = tailor_cli(home.home, "generate", "--days", "1", "--continue")
        assert made.returncode == 0, made.stderr
        assert ingest_inbox(home).rejected_files == {}
        run_dbt(home, "build", "--select", *MARTS)
        new_day = _materialize(instance, feast_registry, feast_online_store, ranking_training_set, *models)
    assert new_day["ml/ranker"]["action"] == "trained"
    assert (
        "training_set" in new_day["ml/ranker"]["reason"] and "marts/fct_impressions" in new_day["ml/ranker"]["reason"]
    )
    assert new_day["ml/candidates"]["action"] == "fitted" and new_day["ml/recommendations"]["action"] == "built"
    assert _versions(home) == [newest + 1, *trained]
    tags = Registry(home.models_dir).get(_versions(home)[0]).tags
    assert tags["inputs_fingerprint"] == new_day["ml/ranker"]["inputs_fingerprint"]


def test_a_changed_configuration_or_input_changes_the_fingerprint(served_home: Settings) -> None:
    """What decides a retrain: the same home and configuration give the same fingerprint; a different ranker
    configuration, candidate setting or input file gives another, and `changed` names the part."""
    config = RankerConfig()
    ranker, candidates = ranker_inputs(served_home, config), candidates_inputs(served_home, config)
    assert ranker.fingerprint == ranker_inputs(served_home, RankerConfig()).fingerprint
    assert candidates.fingerprint == candidates_inputs(served_home, RankerConfig()).fingerprint

    budget = ranker_inputs(served_home, replace(config, max_iter=config.max_iter + 1))
    assert budget.fingerprint != ranker.fingerprint and budget.changed(ranker.parts) == ["config"]
    # A ranker-only setting leaves the candidate generators alone; a candidate setting moves both.
    assert candidates_inputs(served_home, replace(config, max_iter=7)).fingerprint == candidates.fingerprint
    wider = replace(config, candidates=replace(config.candidates, per_generator=50))
    assert candidates_inputs(served_home, wider).changed(candidates.parts) == ["config"]
    assert ranker_inputs(served_home, wider).changed(ranker.parts) == ["config"]
    # Nothing recorded: every part is new.
    assert ranker.changed(None) == sorted(ranker.parts)
    assert {"training_set", "marts/fct_impressions", "feature_definitions", "code"} <= set(ranker.parts)


def test_the_model_assets_record_their_inputs_as_their_data_version(
    served_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served home's run recorded each model asset's inputs fingerprint as its Dagster data version."""
    for name, value in served_home.dagster_env().items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        for key in (CANDIDATES_KEY, RANKER_KEY, RECOMMENDATIONS_KEY):
            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.asset_materialization is not None
            meta = event.asset_materialization.metadata
            tags = event.asset_materialization.tags or {}
            assert tags.get("dagster/data_version") == meta["inputs_fingerprint"].value

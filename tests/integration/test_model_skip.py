"""The model assets skip work when nothing they read changed, and work again when something did: real `tailor run`
(Dagster, dbt, Feast, MLflow) on a copy of the served home."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from ml.features.training import training_set_path
from ml.ranker.config import RankerConfig
from ml.registry import Registry
from orchestration.defs.ml.assets import CANDIDATES_KEY, RANKER_KEY, RECOMMENDATIONS_KEY, RETRAIN_JOB
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
    from orchestration.defs.ml.assets import ranker, ranker_beats_popularity, ranker_is_calibrated

    checks = [ranker_beats_popularity, ranker_is_calibrated] if ranker in assets else []
    result = dg.materialize([*assets, *checks], instance=instance)
    assert result.success
    out: dict[str, dict[str, Any]] = {}
    for evaluation in result.get_asset_check_evaluations():
        out[f"check:{evaluation.check_name}"] = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        meta["data_version"] = (materialization.tags or {}).get("dagster/data_version")
        out[materialization.asset_key.to_user_string()] = meta
    return out


def test_a_rerun_with_nothing_new_keeps_every_model_and_a_new_day_trains_only_when_due(
    served_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a copy of the served home (one `tailor run` done) with a new Dagster instance: the ranker finds its
    fingerprint on the newest registered version; a second run with nothing new keeps every model (no new
    version, no new pages) and says so; a new day refits the candidates and rebuilds the pages but keeps the
    champion (one new labelled day, the default rule waits for 7), saying when it retrains; with the rule set to
    one new day it trains; a run of the retrain_ranker job (what the retrain sensor requests) always trains."""
    from orchestration.definitions import defs
    from orchestration.defs.features.assets import feast_online_store, feast_registry, ranking_training_set
    from orchestration.defs.ml.assets import candidates, ranker, recommendations

    home = copy_home(served_home, tmp_path)
    for name, value in {**SERVED_ENV, "TAILOR_HOME": str(home.home)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TAILOR_RETRAIN_NEW_DAYS", raising=False)
    monkeypatch.delenv("TAILOR_RETRAIN_MAX_AGE_DAYS", raising=False)
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
        holder = Registry(home.models_dir).alias("champion")
        assert holder is not None
        not_serving = f" (not the champion: version {holder.version} serves)"
        assert ranker_meta["reason"] == f"unchanged, version {newest} kept" + (
            "" if holder.version == newest else not_serving
        )
        assert ranker_meta["version"] == newest and ranker_meta["trained"] is False and ranker_meta["kept"] is True
        assert ranker_meta["auc"] == first["ml/ranker"]["auc"]  # the kept version's numbers
        # The ranker's checks judge the version a run trained, else the champion that serves (not, run after run,
        # the last version trained: one that failed and was not promoted would fail every later run).
        serving = Registry(home.models_dir).alias("champion")
        assert serving is not None
        for check in ("ranker_beats_popularity", "ranker_is_calibrated"):
            if first["ml/ranker"]["trained"]:
                assert first[f"check:{check}"]["judged"].startswith(f"version {newest}, trained in this run (")
            assert again[f"check:{check}"]["judged"] == f"champion v{serving.version}, serving"
        assert again["ml/candidates"]["reason"].startswith("unchanged, the generators fitted as of ")
        pages_of = first["ml/recommendations"]["model_version"]
        assert again["ml/recommendations"]["reason"] == f"unchanged, the pages of model version {pages_of} kept"
        for key in ("ml/candidates", "ml/ranker", "ml/recommendations"):
            assert again[key]["action"] == "up to date"
            assert again[key]["data_version"] == first[key]["data_version"] == again[key]["inputs_fingerprint"]

        made = tailor_cli(home.home, "generate", "--days", "1", "--continue")
        assert made.returncode == 0, made.stderr
        assert " by 1 day (" in made.stdout, made.stdout  # not "by 1 days" (a trial)
        assert ingest_inbox(home).rejected_files == {}
        run_dbt(home, "build", "--select", *MARTS)
        new_day = _materialize(instance, feast_registry, feast_online_store, ranking_training_set, *models)

        # The labelled days no version has seen: those from the end of the newest version's test window on, the
        # newest only if complete (an impression from 23:00 UTC on; else the minutes sessions spill past midnight).
        registry = Registry(home.models_dir)
        champion = registry.alias("champion")
        assert champion is not None
        test_end = date.fromisoformat(registry.get(newest).tags["test_window"].split("..")[1])
        stamps = pd.read_parquet(training_set_path(home), columns=["event_timestamp"])["event_timestamp"]
        last_of_day = stamps.dt.tz_convert("UTC").groupby(stamps.dt.tz_convert("UTC").dt.date).max()
        complete = [d for d, last in last_of_day.items() if d != last_of_day.index.max() or last.hour >= 23]
        unseen = {d for d in complete if d >= test_end}
        assert 1 <= len(unseen) < 7
        # The age limit in the history's time: 7 days past the champion's test window, not its registration.
        due_on = date.fromisoformat(champion.tags["test_window"].split("..")[1]) + timedelta(days=7)
        kept = new_day["ml/ranker"]
        assert kept["action"] == "kept" and kept["trained"] is False and kept["version"] == champion.version
        assert kept["reason"] == (
            f"champion v{champion.version}; retrains after {7 - len(unseen)} more labelled day(s) or on {due_on}, "
            "or when drift fails (retrain_sensor)"
        )
        assert "training_set" in kept["changed"] and "marts/fct_impressions" in kept["changed"]
        assert kept["auc"] == champion.metrics["classification.ranker.auc"]  # the champion's, for the checks
        assert _versions(home) == trained
        assert new_day["ml/candidates"]["action"] == "fitted" and new_day["ml/recommendations"]["action"] == "built"
        assert new_day["ml/recommendations"]["model_version"] == str(champion.version)

        # The same data with the rule at one new day: due, though no input changed since the champion was kept.
        monkeypatch.setenv("TAILOR_RETRAIN_NEW_DAYS", "1")
        due = _materialize(instance, *models)
        assert due["ml/ranker"]["action"] == "trained"
        assert due["ml/ranker"]["reason"].startswith("retrain due: ")
        said = f"{len(unseen)} labelled day(s) of the training set after version {newest}'s test window"
        assert said in due["ml/ranker"]["reason"]
        assert "limit 1)" in due["ml/ranker"]["reason"]
        # And whether the new version serves (a trial took a version kept as challenger for the one serving).
        outcome = "promoted to champion" if due["ml/ranker"]["promoted"] else "kept as challenger"
        assert due["ml/ranker"]["outcome"].startswith(f"version {newest + 1} {outcome} (")
        assert _versions(home) == [newest + 1, *trained]
        tags = Registry(home.models_dir).get(newest + 1).tags
        assert tags["inputs_fingerprint"] == due["ml/ranker"]["inputs_fingerprint"]
        assert due["ml/candidates"]["action"] == "up to date" and due["ml/recommendations"]["action"] == "built"

        # What the retrain sensor requests trains even with nothing new (the sensor asks only when there is).
        requested = defs.resolve_job_def(RETRAIN_JOB).execute_in_process(instance=instance)
        assert requested.success
        [event] = [e for e in requested.get_asset_materialization_events() if e.asset_key == RANKER_KEY]
        meta = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
        assert meta["action"] == "trained" and meta["reason"] == f"requested ({RETRAIN_JOB} job); no input changed"
        assert _versions(home) == [newest + 2, newest + 1, *trained]

        # A promotion by hand since: the next quiet run names the version that serves now, not what was decided
        # when the kept version was trained (a trial read "it does not serve" of a version promoted and serving).
        registry = Registry(home.models_dir)
        held = registry.alias("champion")
        assert held is not None
        other = newest + 2 if held.version != newest + 2 else newest + 1
        registry.promote(other, force=True, by="test")
        quiet = _materialize(instance, *models)["ml/ranker"]
        assert quiet["action"] == "up to date"
        assert "outcome" not in quiet  # the training run's decision is not this run's (a trial read it on each)
        assert quiet["reason"] == f"unchanged, version {newest + 2} kept" + (
            "" if other == newest + 2 else f" (not the champion: version {other} serves)"
        )


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


def test_a_ranker_that_cannot_train_says_why_once_however_many_quiet_runs(
    served_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run with nothing new wrapped the last one's reason again ("unchanged, still no ranker: unchanged, still
    no ranker: ... the training set spans 5 day(s)"), found on a young home's sixth run."""
    from orchestration.defs.ml.assets import ranker

    home = copy_home(served_home, tmp_path)
    for name, value in {**SERVED_ENV, "TAILOR_HOME": str(home.home), "TAILOR_RANKER_WARMUP_DAYS": "400"}.items():
        monkeypatch.setenv(name, value)
    with dg.instance_for_test() as instance:
        reasons = [_materialize(instance, ranker)["ml/ranker"]["reason"] for _ in range(3)]
    assert reasons[0].startswith("the training set spans") and "400 warm-up" in reasons[0], reasons[0]
    assert reasons[1] == reasons[2] == "unchanged, still no ranker: " + reasons[0]

"""Models: the candidate generators fitted on the whole history, and the ranker trained, evaluated and registered.

Thin wiring over `ml.candidates` and `ml.ranker`: the decisions (windows, search, promotion) live there.

Like the feature assets, each model asset first compares its inputs (content digests of what it reads, the
configuration, the code: `orchestration.defs.ml.inputs`) with those its latest materialization recorded, and when
nothing changed keeps what it made, saying so (``action: up to date``, the reason names the version kept) with
the same data version. A rerun with nothing new then registers no new ranker version and rebuilds no page.

New data alone does not retrain the ranker in the daily run: the champion is kept until the retrain rule
(`ml.monitoring.retrain`, the one the retrain sensor applies, drift left to the sensor) says a retrain is due,
by new labelled days or the champion's age (docs/decisions.md, "When the daily run retrains the ranker"). A
changed configuration, feature definition or code, no champion yet, or a run of the `retrain_ranker` job
trains. The candidate generators and the pages follow every new day with the champion they have.
"""

import os
import pickle
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ml.candidates.union import fit_candidate_set
from ml.features.training import training_set_path
from ml.history import active_users, history_end, load_history
from ml.monitoring.config import DriftConfig, RetrainPolicy
from ml.monitoring.retrain import RetrainDecision, TrainedVersion, decide_retrain, labelled_days
from ml.ranker import RankerConfig
from ml.ranker.evaluate import MAX_ECE, calibration_verdict
from ml.registry import CHAMPION, ModelVersion, Registry
from orchestration.defs.ml.inputs import candidates_inputs, ranker_inputs, recommendations_inputs
from orchestration.lib.fingerprint import (
    FINGERPRINT_KEY,
    UP_TO_DATE,
    Inputs,
    Recorded,
    change_reason,
    recorded_inputs,
    unchanged,
)
from orchestration.lib.signals import stop_if_signalled
from tailor.settings import Settings, get_settings

CANDIDATES_KEY = dg.AssetKey(["ml", "candidates"])
RANKER_KEY = dg.AssetKey(["ml", "ranker"])
#: The job the retrain sensor requests: a run of it always trains.
RETRAIN_JOB = "retrain_ranker"
#: The ranker's input parts that are data (`orchestration.defs.ml.inputs.ranker_inputs`): when only these moved,
#: the daily run keeps the champion until the retrain rule says a retrain is due.
DATA_PARTS = ("training_set", "marts/")
#: The action of a daily run that kept the champion by the retrain rule.
KEPT = "kept"
CANDIDATES_FILE = "candidates.pkl"
#: Why there are no candidates or pages on a home whose events came before any content file.
NO_CATALOG = (
    "no content catalog yet: no content file describes an item published by the history's end; ingest one "
    "(docs/contract/dimensions.md), then run again"
)


@dg.asset(
    key=CANDIDATES_KEY,
    deps=[
        dg.AssetKey(["marts", "fct_impressions"]),
        dg.AssetKey(["marts", "fct_user_content_interactions"]),
        dg.AssetKey(["marts", "dim_content"]),
    ],
    group_name="ml",
    kinds={"python", "scikitlearn"},
)
def candidates(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The candidate generators (recent popularity per surface, collaborative filtering with EASE, content
    affinity) fitted on everything known now, saved for serving: each proposes items, the ranker orders them."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    settings = get_settings()
    config = RankerConfig.from_env(os.environ)
    path = settings.models_dir / CANDIDATES_FILE
    inputs = candidates_inputs(settings, config)
    recorded = recorded_inputs(context.instance, CANDIDATES_KEY)
    if unchanged(inputs, recorded) and path.exists():
        assert recorded is not None
        as_of = recorded.values.get("as_of", "?")
        return _kept(context, recorded, inputs, f"unchanged, the generators fitted as of {as_of} kept")
    reason = change_reason(inputs, recorded)
    history = load_history(settings.marts_dir)
    as_of = history.end + pd.Timedelta(microseconds=1)
    if not (pd.to_datetime(history.content["published_at"], utc=True) <= as_of).any():
        # Events may come before the catalog (the contract allows it): nothing to propose yet, which is no failure.
        context.log.info(f"no candidate generators: {NO_CATALOG}")
        return dg.MaterializeResult(
            metadata={"action": "not fitted", "reason": NO_CATALOG, **inputs.metadata()},
            data_version=dg.DataVersion(inputs.fingerprint),
        )
    fitted = fit_candidate_set(history, as_of, config.candidates)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        pickle.dump(fitted, handle)
    partial.replace(path)
    users = len(fitted.seen.users) if fitted.seen is not None else 0
    context.log.info(f"candidate generators fitted as of {as_of} ({reason}): {users} users with history")
    return dg.MaterializeResult(
        metadata={
            "action": "fitted",
            "reason": reason,
            **inputs.metadata(),
            "path": dg.MetadataValue.path(str(path)),
            "as_of": as_of.isoformat(),
            "users_with_history": users,
            "items_with_recent_impressions": len(fitted.popularity.scores),
            "collaborative_filtering": "EASE" if fitted.cf is not None else "none (no consumption yet)",
        },
        data_version=dg.DataVersion(inputs.fingerprint),
    )


#: What a quiet run says of a ranker that could not be trained, before the reason it could not.
_STILL_NO_RANKER = "unchanged, still no ranker: "


def _kept(
    context: dg.AssetExecutionContext,
    recorded: Recorded,
    inputs: Inputs,
    reason: str,
    changes: dict[str, Any] | None = None,
) -> dg.MaterializeResult:
    """The result of a run that found its inputs unchanged: the recorded metadata again (what was made is still
    what there is), with ``action: up to date``, the reason and ``changes``, and the same data version. The
    recorded ``outcome`` (what the training run decided) is left out: a quiet run decides nothing, and the run
    summary read "version 1 promoted to champion" again on every quiet run (a trial)."""
    context.log.info(f"{context.asset_key.to_user_string()}: {reason}")
    made = {key: value for key, value in recorded.metadata.items() if key != "outcome"}
    return dg.MaterializeResult(
        metadata={**made, **(changes or {}), "action": UP_TO_DATE, "reason": reason, **inputs.metadata()},
        data_version=dg.DataVersion(inputs.fingerprint),
    )


@dg.asset(
    key=RANKER_KEY,
    deps=[dg.AssetKey(["ml", "ranking_training_set"]), CANDIDATES_KEY],
    group_name="ml",
    kinds={"python", "scikitlearn", "optuna", "mlflow"},
)
def ranker(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The click model that orders candidates: trained on the point-in-time training set (time windows, never
    shuffled), tuned with Optuna within its budgets, calibrated on a later day, evaluated on the last days against
    popularity and a random order, and registered in MLflow. It becomes the champion only if it beats the current
    champion on the same test window (`tailor models` shows both).

    In the daily run, new data alone keeps the champion until a retrain is due (TAILOR_RETRAIN_NEW_DAYS labelled
    days after the newest version's test window, default 7, or a champion TAILOR_RETRAIN_MAX_AGE_DAYS old,
    default 7); a drift failure retrains through the retrain sensor's `retrain_ranker` job, which always trains."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    settings = get_settings()
    config = RankerConfig.from_env(os.environ)
    policy = RetrainPolicy.from_env(os.environ)
    inputs = ranker_inputs(settings, config)
    recorded = _ranker_record(context.instance, settings)
    requested = context.run.job_name == RETRAIN_JOB
    if unchanged(inputs, recorded) and not requested and not _schedule_lapsed(recorded, policy):
        assert recorded is not None
        values = recorded.values
        if values.get("version") is not None:
            # The last version trained; the one that serves is the champion now, which a promotion by hand may have
            # changed since (a trial read "not promoted when trained: it does not serve" of a version promoted
            # by hand and serving). Read from the registry's file: MLflow's import would cost seconds.
            from ml.registry import alias_holder

            serving = _serving(values["version"], alias_holder(settings.models_dir))
            kept = f"unchanged, version {values['version']} kept{serving}"
            return _kept(context, recorded, inputs, kept, {"trained": False, "kept": True})
        if values.get("trained") is False:
            why = str(values.get("reason", ""))
            while why.startswith(_STILL_NO_RANKER):  # each quiet run wrapped the last one's reason again
                why = why.removeprefix(_STILL_NO_RANKER)
            return _kept(context, recorded, inputs, _STILL_NO_RANKER + why)
    moved = inputs.changed(recorded.parts) if recorded is not None else ["first run"]
    reason = change_reason(inputs, recorded) if moved else "no input changed"
    registry = Registry(settings.models_dir)
    if requested:
        # The retrain sensor asks only when some labelled day is new to every version; a run by hand is an order.
        reason = f"requested ({RETRAIN_JOB} job); {reason}"
    else:
        schedule = _retrain_schedule(settings, registry, inputs, recorded, policy)
        if schedule is not None:
            decision, champion = schedule
            if not decision.due:
                return _keep_champion(context, champion, decision, policy, inputs, reason)
            reason = f"retrain due: {decision.note}"
    from ml.features import open_store
    from ml.ranker import TrainingDataError, train_and_register

    try:
        release = train_and_register(
            settings.training_dir / "ranking_training_set.parquet",
            load_history(settings.marts_dir),
            open_store(settings),
            config,
            registry,
            DriftConfig.from_env(os.environ),
        )
    except TrainingDataError as exc:
        # Too little history is a state, not a failure: the pages come from popular items until a model can be
        # trained, and the run goes on (a young platform must still ingest, build and serve).
        context.log.warning(f"no ranker trained: {exc}")
        return dg.MaterializeResult(
            metadata={"action": "not trained", "trained": False, "reason": str(exc), **inputs.metadata()},
            data_version=dg.DataVersion(inputs.fingerprint),
        )
    # The version remembers what it was trained on: a run with an empty Dagster instance can still skip.
    registry.tag(release.version.version, {FINGERPRINT_KEY: inputs.fingerprint})
    trained, promotion = release.trained, release.promotion
    cls, ranking = trained.metrics["classification"], trained.metrics["ranking"]
    outcome = (
        f"version {release.version.version} {'promoted to champion' if promotion.promoted else 'kept as challenger'}"
        f" ({promotion.reason})"
    )
    context.log.info(f"ranker {outcome}: AUC {cls['ranker']['auc']:.4f}")
    return dg.MaterializeResult(
        metadata={
            "action": "trained",
            "reason": reason,
            # Whether the new version serves: the run summary said only why it trained, and a reader took the new
            # version for the one serving (a trial).
            "outcome": outcome,
            **inputs.metadata(),
            "trained": True,
            "version": release.version.version,
            "aliases": ", ".join(release.version.aliases),
            "promoted": promotion.promoted,
            "decision": promotion.reason,
            "challenger_on_test_window": dg.MetadataValue.json(promotion.challenger),
            "champion_on_test_window": dg.MetadataValue.json(promotion.champion or {}),
            "test_window": f"{trained.windows.test_start.date()} .. {trained.windows.end.date()}",
            "auc": cls["ranker"]["auc"],
            "auc_popularity": cls["popularity"]["auc"],
            "log_loss": cls["ranker"]["log_loss"],
            "ece": cls["ranker"]["ece"],
            **({"ece_noise": cls["ranker"]["ece_noise"]} if "ece_noise" in cls["ranker"] else {}),
            "ndcg_at_k": ranking["ranker"]["ndcg_at_k"],
            "best_params": dg.MetadataValue.json(trained.search.best_params),
            "search_trials_run": trained.search.trials_run_now,
            "seconds": dg.MetadataValue.json({k: round(v, 1) for k, v in trained.seconds.items()}),
            "metrics": dg.MetadataValue.md(_table(trained.metrics)),
        },
        data_version=dg.DataVersion(inputs.fingerprint),
    )


def _serving(version: int, champion: int | None) -> str:
    """What a kept version's line adds about serving: nothing when it is the champion."""
    if champion == version:
        return ""
    if champion is None:
        return " (no version is champion: pages come from popular items)"
    return f" (not the champion: version {champion} serves)"


def _schedule_lapsed(recorded: Recorded | None, policy: RetrainPolicy) -> bool:
    """Whether a champion kept by the retrain rule must be judged again with no input changed: the retrain
    settings changed. Its age is the history's (`ml.monitoring.retrain`), which only new data moves, and new data
    changes the inputs."""
    values = recorded.values if recorded is not None else {}
    if values.get("retrain_policy") is None:
        return False
    return bool(values["retrain_policy"] != _policy_text(policy))


def _policy_text(policy: RetrainPolicy) -> str:
    return f"new_days={policy.new_days}, max_age_days={policy.max_age_days:g}"


def _retrain_schedule(
    settings: Settings,
    registry: Registry,
    inputs: Inputs,
    recorded: Recorded | None,
    policy: RetrainPolicy,
) -> tuple[RetrainDecision, ModelVersion] | None:
    """The retrain rule's answer for the daily run, with the champion; None when the rule does not apply and the
    ranker trains: no champion yet, or a part other than data changed (configuration, feature definitions, code),
    or the changed parts are unknown (a record from the registry's tag only).

    Drift is left out here: the drift checks of the same run may finish after the ranker, and a failure is the
    retrain sensor's to act on (it requests the `retrain_ranker` job)."""
    if recorded is None or not recorded.parts:
        return None
    changed = inputs.changed(recorded.parts)
    if any(not part.startswith(DATA_PARTS) for part in changed):
        return None
    versions = registry.versions()  # newest first
    champion = next((v for v in versions if CHAMPION in v.aliases), None)
    if champion is None:
        return None
    decision = decide_retrain(
        TrainedVersion.of(champion),
        TrainedVersion.of(versions[0]),
        labelled_days(training_set_path(settings)),
        [],
        policy,
    )
    return decision, champion


def _keep_champion(
    context: dg.AssetExecutionContext,
    champion: ModelVersion,
    decision: RetrainDecision,
    policy: RetrainPolicy,
    inputs: Inputs,
    changed: str,
) -> dg.MaterializeResult:
    """The result of a daily run that keeps the champion (new data, no retrain due): the champion's numbers from
    the registry (the ranker's checks read them), when it retrains, and the new inputs as the data version."""
    assert decision.new_days_left is not None and decision.age_due_at is not None
    if decision.history_now is not None and decision.age_due_at <= decision.history_now:
        # Past its age limit, yet kept: every labelled day is in the newest version's data (a retrain now would
        # see nothing new). "or on <a date already past>" read as a mistake (found by a trial).
        when = f"with the next labelled day (its age limit passed on {decision.age_due_at.date()})"
    else:
        when = f"after {decision.new_days_left} more labelled day(s) or on {decision.age_due_at.date()}"
    reason = f"champion v{champion.version}; retrains {when}, or when drift fails (retrain_sensor)"
    context.log.info(f"ml/ranker kept: {reason} ({changed}; {decision.note})")
    return dg.MaterializeResult(
        metadata={
            "action": KEPT,
            "reason": reason,
            "changed": changed,
            **inputs.metadata(),
            "trained": False,
            "kept": True,
            "version": champion.version,
            "aliases": ", ".join(champion.aliases),
            "test_window": champion.tags.get("test_window", "").replace("..", " .. "),
            **_registry_numbers(champion),
            "retrain_rule": decision.note,
            "retrain_policy": _policy_text(policy),
            "retrain_at": decision.age_due_at.isoformat(),
            "new_days_left": decision.new_days_left,
        },
        data_version=dg.DataVersion(inputs.fingerprint),
    )


def _ranker_record(instance: dg.DagsterInstance, settings: Settings) -> Recorded | None:
    """What the ranker's latest materialization recorded; without one (a new Dagster instance on an existing
    home), the newest registered version's fingerprint tag. None when neither exists, or when the registry the
    record names is gone."""
    recorded = recorded_inputs(instance, RANKER_KEY)
    registry_file = settings.models_dir / "mlflow.db"
    if recorded is not None:
        return recorded if recorded.values.get("version") is None or registry_file.exists() else None
    if not registry_file.exists():
        return None
    versions = Registry(settings.models_dir).versions()
    newest = versions[0] if versions else None
    if newest is None or FINGERPRINT_KEY not in newest.tags:
        return None
    # Only the fingerprint is known: any change retrains, and the parts that moved cannot be named.
    return Recorded(
        newest.tags[FINGERPRINT_KEY],
        {},
        {
            "version": newest.version,
            "trained": True,
            **_registry_numbers(newest),
        },
    )


#: Metadata the ranker reports -> the registry's metric of the same number (for a version kept from the registry).
_REGISTRY_METRICS = {
    "auc": "classification.ranker.auc",
    "auc_popularity": "classification.popularity.auc",
    "log_loss": "classification.ranker.log_loss",
    "ece": "classification.ranker.ece",
    "ece_noise": "classification.ranker.ece_noise",
    "ndcg_at_k": "ranking.ranker.ndcg_at_k",
}


def _registry_numbers(version: ModelVersion) -> dict[str, float]:
    """A registered version's numbers under the names the ranker's metadata uses (`_REGISTRY_METRICS`)."""
    return {k: float(version.metrics[m]) for k, m in _REGISTRY_METRICS.items() if m in version.metrics}


def _table(metrics: dict[str, object]) -> str:
    lines = ["| model | AUC | log loss | ECE |", "|---|---|---|---|"]
    for name, m in metrics["classification"].items():  # type: ignore[attr-defined]
        lines.append(f"| {name} | {m['auc']:.4f} | {m['log_loss']:.4f} | {m['ece']:.4f} |")
    lines += [
        "",
        "| list | NDCG@k vs logged clicks | recall@k | MAP@k | coverage | diversity | novelty |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics["ranking"].items():  # type: ignore[attr-defined]
        lines.append(
            f"| {name} | {m['ndcg_at_k']:.4f} | {m['recall_at_k']:.4f} | {m['map_at_k']:.4f} | "
            f"{m['catalog_coverage']:.3f} | {m['intra_list_diversity']:.3f} | {m['novelty']:.2f} |"
        )
    lines += [
        "",
        "The list metrics are measured against what users clicked in the test window, on what the logging policy "
        "showed them: they favour popularity by construction. The promotion gate uses AUC and log loss "
        "(docs/decisions.md, 'The ranker').",
    ]
    return "\n".join(lines)


def _latest_ranker_metadata(context: dg.AssetCheckExecutionContext) -> dict[str, float]:
    """The numbers of the ranker's latest materialization (NaN-free: absent when not materialized)."""
    event = context.instance.get_latest_materialization_event(RANKER_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return {}
    return {k: float(v.value) for k, v in materialization.metadata.items() if isinstance(v.value, int | float | bool)}


def _judged_version(context: dg.AssetCheckExecutionContext) -> tuple[dict[str, float], str, int] | None:
    """The numbers the ranker's checks judge, whose they are in words, and that version's number: the version this
    run trained, else the champion (the version that serves: a run that kept it, or trained nothing, is judged on
    what it serves, so one version that failed a check does not fail every later run); None when there is neither."""
    meta = _latest_ranker_metadata(context)
    if meta.get("trained") and "auc" in meta:
        served = "promoted to champion" if meta.get("promoted") else "not promoted: it does not serve"
        return meta, f"version {int(meta['version'])}, trained in this run ({served})", int(meta["version"])
    models_dir = get_settings().models_dir
    if not (models_dir / "mlflow.db").exists():
        return None
    champion = Registry(models_dir).alias(CHAMPION)
    if champion is None:
        return None
    return _registry_numbers(champion), f"champion v{champion.version}, serving", int(champion.version)


#: The check's note when there is no version to judge.
_NOTHING_TO_JUDGE = "no ranker version to judge: none trained in this run and no champion (pages from popular items)"


@dg.asset_check(asset=RANKER_KEY, description="The ranker orders clicks better than popularity (test-window AUC).")
def ranker_beats_popularity(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Fails when the ranker's AUC on its test window is not above the popularity score's: the version this run
    trained, else the champion (`_judged_version`). Such a version is never promoted (`ml.ranker.evaluate.refusal`).

    AUC on logged impressions, not NDCG of lists against logged clicks: those clicks happened on what the logging
    policy chose to show, which favours any list that copies it (docs/decisions.md, "Ranker evaluation").
    """
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    judged = _judged_version(context)
    if judged is None or "auc" not in judged[0]:
        return dg.AssetCheckResult(passed=True, metadata={"note": _NOTHING_TO_JUDGE})
    meta, who, version = judged
    auc, baseline = float(meta["auc"]), float(meta.get("auc_popularity", float("nan")))
    passed = bool(auc > baseline)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{who}: AUC {auc:.3f} on the test window, popularity's {baseline:.3f}"
        + ("" if passed else f": it orders clicks no better than popularity (`tailor models show {version}`)"),
        metadata={"judged": who, "auc": auc, "auc_popularity": baseline},
    )


@dg.asset_check(
    asset=RANKER_KEY,
    description=f"The ranker's calibration error is at most {MAX_ECE}, or within what a perfectly calibrated model "
    "shows on the same test window.",
)
def ranker_is_calibrated(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Fails when the expected calibration error on the test window exceeds `MAX_ECE` and the ECE a perfectly
    calibrated model exceeds with probability 0.01 on the same predictions (`ml.ranker.evaluate.calibration_verdict`;
    on a small window the ECE of a perfect model is itself near the limit): the probabilities feed the exploration
    slot and business rules, not only the order. Judged: the version this run trained, else the champion
    (`_judged_version`); a version that fails is never promoted (`ml.ranker.evaluate.refusal`)."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    judged = _judged_version(context)
    if judged is None or "ece" not in judged[0]:
        return dg.AssetCheckResult(passed=True, metadata={"note": _NOTHING_TO_JUDGE})
    meta, who, version = judged
    ece, noise = float(meta["ece"]), meta.get("ece_noise")
    passed, verdict = calibration_verdict(ece, noise, MAX_ECE)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{who}: {verdict} (test window)"
        + (
            ""
            if passed
            else ": the click probabilities are off by that much on average. On a short history the calibration "
            "window is small and the platform's click rate still moves from day to day; more days usually fix it "
            f"(`tailor models show {version}` has the uncalibrated model's figure)"
        ),
        metadata={"judged": who, "ece": ece, "max": MAX_ECE, **({"ece_noise": noise} if noise is not None else {})},
    )


RECOMMENDATIONS_KEY = dg.AssetKey(["ml", "recommendations"])
#: Users with an impression in this many days are "active" and get a batch page.
ACTIVE_DAYS = 28


#: Why a run with events but no published impression writes no batch pages (and does not fail).
NO_IMPRESSIONS = "no impressions are published yet: the pages start with the first day of impressions"


def _no_pages(context: dg.AssetExecutionContext, inputs: Inputs, reason: str) -> dg.MaterializeResult:
    """The result of a run that has no page to write, which is no failure: ``reason`` says why."""
    context.log.info(f"no batch pages: {reason}")
    return dg.MaterializeResult(
        metadata={"action": "not built", "reason": reason, **inputs.metadata()},
        data_version=dg.DataVersion(inputs.fingerprint),
    )


@dg.asset(
    key=RECOMMENDATIONS_KEY,
    deps=[RANKER_KEY, CANDIDATES_KEY, dg.AssetKey(["feast", "online_store"]), dg.AssetKey(["feast", "registry"])],
    group_name="ml",
    kinds={"python", "parquet", "duckdb"},
)
def recommendations(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Every active user's page on each surface (top 10 after the business rules), from the champion: published as
    Parquet, written to the warehouse table marts.batch_recommendations, and loaded into the online store as Feast's
    `cached_recommendations` view, the fallback `recommend` serves when the model path misses its latency budget.
    Holdout users (personalization_holdout) get the popular page."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    settings = get_settings()
    candidates_record = recorded_inputs(context.instance, CANDIDATES_KEY)
    inputs = recommendations_inputs(settings, candidates_record.fingerprint if candidates_record else "unknown")
    recorded = recorded_inputs(context.instance, RECOMMENDATIONS_KEY)
    published = recorded.values.get("path") if recorded is not None else None
    # The file in this home (a copied home's record names the original's path).
    if (
        unchanged(inputs, recorded)
        and isinstance(published, str)
        and (settings.marts_dir / Path(published).name).exists()
    ):
        assert recorded is not None
        version = str(recorded.values.get("model_version", "?"))
        # Without a model the pages are popular items: "model version none (popular pages only)" read oddly (a trial).
        pages = f"the pages of model version {version}" if version[:1].isdigit() else "the popular pages (no model yet)"
        return _kept(context, recorded, inputs, f"unchanged, {pages} kept")
    reason = change_reason(inputs, recorded)
    import duckdb

    from ml.recommend.batch import write_batch
    from ml.recommend.serving import CACHED_PAGE_K, Recommender

    # Aggregates over the published impressions, not the whole history in memory (10M events: gigabytes).
    end = history_end(settings.marts_dir)
    if end is None:  # events without impressions yet (views and clicks first)
        return _no_pages(context, inputs, NO_IMPRESSIONS)
    recommender = Recommender.open(settings)
    if not len(recommender.catalog.ids):  # events before any content file
        return _no_pages(context, inputs, NO_CATALOG)
    users = active_users(settings.marts_dir, end, ACTIVE_DAYS)
    summary = write_batch(recommender, users, k=CACHED_PAGE_K, now=(end + pd.Timedelta(seconds=1)).to_pydatetime())
    if settings.engine == "duckdb":  # on Spark the Parquet file is the output (a Spark table would need a Spark job)
        with duckdb.connect(str(settings.warehouse)) as con:
            con.execute("create schema if not exists marts")
            con.execute(
                "create or replace table marts.batch_recommendations as select * from read_parquet(?)",
                [str(summary.path)],
            )
    context.log.info(f"batch pages for {summary.users} users ({summary.holdout_users} in the holdout)")
    return dg.MaterializeResult(
        metadata={
            "action": "built",
            "reason": reason,
            **inputs.metadata(),
            "path": dg.MetadataValue.path(str(summary.path)),
            "users": summary.users,
            "holdout_users": summary.holdout_users,
            "rows": summary.rows,
            "model_version": recommender.model_version or "none (popular pages only)",
            "seconds_pages": round(summary.seconds_pages, 1),
            "seconds_online_store": round(summary.seconds_online, 1),
            "seconds_per_1000_users": round(1000 * summary.seconds_pages / max(summary.users, 1), 2),
        },
        data_version=dg.DataVersion(inputs.fingerprint),
    )

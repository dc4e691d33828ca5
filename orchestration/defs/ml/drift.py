"""Drift of the champion ranker as asset checks, and the sensor that asks for a retrain.

Thin wiring over `ml.monitoring` (the PSI, the comparison and the retrain rule live there).

The checks sit on the training set, not on the ranker: they run whenever a new day of training rows lands and
ask whether the *current* champion still meets data like what it was trained on, before anything retrains. On
the ranker they would run after a retrain and mostly measure the model just trained.

Like the model assets, the checks first compare their inputs (the training set, the marts the candidate scores
come from, the registry, the drift settings, the code) with those their latest evaluation recorded; when nothing
changed they report that evaluation again, saying so, instead of loading the champion and rescoring its window.

A sensor, not a declarative automation condition: two of the three triggers (the champion's age, the days after
its test window) live in the MLflow registry, outside Dagster's asset graph, which automation conditions cannot
see; a sensor reads both and puts the reason on the run's tags.
"""

import os
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from ml.features.training import training_set_path
from ml.monitoring.config import DriftConfig, RetrainPolicy
from ml.monitoring.drift import YOUNG, DriftReport, FeatureDrift
from ml.monitoring.retrain import DriftVerdict, TrainedVersion, decide_retrain, labelled_days
from ml.registry import CHAMPION, Registry
from orchestration.defs.features.assets import TRAINING_SET_KEY
from orchestration.defs.ml.assets import RANKER_KEY, RETRAIN_JOB
from orchestration.defs.ml.inputs import HISTORY_MARTS
from orchestration.lib.fingerprint import (
    UP_TO_DATE,
    Inputs,
    bytes_digest,
    code_digest,
    config_digest,
    optional_file_digest,
    recorded_from_metadata,
    unchanged,
)
from orchestration.lib.signals import stop_if_signalled
from tailor.settings import Settings, get_settings

FEATURES_CHECK = "champion_features_stable"
PREDICTIONS_CHECK = "champion_predictions_stable"
DRIFT_CHECKS = (FEATURES_CHECK, PREDICTIONS_CHECK)
#: Run tags of a requested retrain: which conditions held (comma-separated kinds), and the reasons in words.
REASONS_TAG = "tailor/retrain_reasons"
DETAIL_TAG = "tailor/retrain_detail"
#: The conditions change with a pipeline run, a check evaluation or, for age, over days: every 15 minutes is
#: prompt enough, and keeps the registry queries rare.
RETRAIN_INTERVAL_S = 15 * 60
#: The code a drift evaluation runs: the comparison, and the candidate scores it recomputes as the ranker does.
DRIFT_CODE = ("ml.monitoring", "ml.ranker", "ml.candidates", "ml.history")

_TABLE_COLUMNS = (
    ("feature", "string"),
    ("psi", "float"),
    ("status", "string"),
    ("largest_shift", "string"),
    ("missing_reference", "float"),
    ("missing_current", "float"),
    ("day_baseline_psi", "float"),
    ("excess_psi", "float"),
    ("noise_psi", "float"),
    ("effective_rows", "string"),
    ("reference_daily_psi", "float"),
    ("no_drift_psi", "float"),
    ("kind", "string"),
)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            FEATURES_CHECK,
            asset=TRAINING_SET_KEY,
            description="The champion ranker's inputs on the newest day look like its training window "
            "(population stability index per feature).",
        ),
        dg.AssetCheckSpec(
            PREDICTIONS_CHECK,
            asset=TRAINING_SET_KEY,
            description="The champion's predicted click probabilities on the newest day look like those on its "
            "training window (population stability index).",
        ),
    ],
)
def champion_drift_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """Population stability index (PSI) of every ranker input and of the champion's predicted click probability,
    the champion's training window against the newest day of the training set. Each check warns when a PSI
    reaches TAILOR_DRIFT_WARN (default 0.1) and fails with ERROR severity at TAILOR_DRIFT_FAIL (0.25), which
    makes the retrain sensor ask for a new ranker. Passes, saying so, while there is no champion."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    from ml.monitoring.champion import DriftUnavailable, champion_drift

    config = DriftConfig.from_env(os.environ)
    settings = get_settings()
    inputs = drift_inputs(settings, config)
    previous = {name: _latest_evaluation(context.instance, name) for name in DRIFT_CHECKS}
    if all(e is not None and unchanged(inputs, recorded_from_metadata(e.metadata)) for e in previous.values()):
        for name, evaluation in previous.items():
            assert evaluation is not None
            note = "unchanged since the last evaluation (same training set, champion, marts and settings)"
            yield dg.AssetCheckResult(
                asset_key=TRAINING_SET_KEY,
                check_name=name,
                passed=evaluation.passed,
                severity=evaluation.severity,
                description=f"{evaluation.description or ''} ({note})",
                metadata={**evaluation.metadata, "action": UP_TO_DATE, "reason": note},
            )
        return
    try:
        drift = champion_drift(settings, config)
    except DriftUnavailable as exc:
        for name in DRIFT_CHECKS:
            yield dg.AssetCheckResult(
                asset_key=TRAINING_SET_KEY,
                check_name=name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"not measured: {exc}",
                metadata=inputs.metadata(),
            )
        return
    if drift is None:
        note = "no champion yet: nothing to compare (the first trained ranker becomes the champion)"
        for name in DRIFT_CHECKS:
            yield dg.AssetCheckResult(
                asset_key=TRAINING_SET_KEY,
                check_name=name,
                passed=True,
                description=note,
                metadata={"note": note, **inputs.metadata()},
            )
        return
    common: dict[str, Any] = {
        "champion_version": drift.version,
        "reference_window": drift.reference_window,
        "reference_rows": drift.reference_rows,
        "reference_days": drift.reference_days,
        "current_day": str(drift.current_day),
        "current_rows": drift.current_rows,
        "history_days_before_reference": drift.history_days,
        "warn_threshold": config.warn,
        "fail_threshold": config.fail,
        "bins": config.bins,
    }
    for name, report, what in (
        (FEATURES_CHECK, drift.features, "ranker features"),
        (PREDICTIONS_CHECK, drift.prediction, "predicted click probability"),
    ):
        summary = _summary(report, what)
        context.log.info(f"{name}: {summary}")
        yield dg.AssetCheckResult(
            asset_key=TRAINING_SET_KEY,
            check_name=name,
            passed=report.status == "ok",
            severity=dg.AssetCheckSeverity.ERROR if report.status == "fail" else dg.AssetCheckSeverity.WARN,
            description=summary,
            metadata={**common, **_report_metadata(report), **inputs.metadata()},
        )


def drift_inputs(settings: Settings, config: DriftConfig) -> Inputs:
    """What a drift evaluation depends on: the training set and the marts (the current day's rows and candidate
    scores), the registry (the champion and its saved reference), the drift settings, the code."""
    return Inputs(
        {
            "training_set": optional_file_digest(training_set_path(settings)),
            **{f"marts/{n}": optional_file_digest(settings.marts_dir / f"{n}.parquet") for n in HISTORY_MARTS},
            "registry": bytes_digest(settings.models_dir / "mlflow.db"),
            "config": config_digest(asdict(config)),
            "code": code_digest(DRIFT_CODE),
        }
    )


def _latest_evaluation(instance: dg.DagsterInstance, check: str) -> dg.AssetCheckEvaluation | None:
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    key = dg.AssetCheckKey(TRAINING_SET_KEY, check)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1, status=done)
    return records[0].evaluation if records else None


def _summary(report: DriftReport, what: str) -> str:
    """E.g. ``2 of 30 comparable ranker features moved 0.25 or more beyond a reference day and beyond their
    sampling noise: ctr_smoothed_1d 0.512 (PSI 3.642), ...; 3 more 0.1 or more; 12 not judged (...)``. The figure
    is the PSI in excess of the largest PSI of one of the reference's own days against the rest (like with like: a
    day against a pooled window), counted only above what sampling noise explains (`ml.monitoring.drift.compare`)."""
    config, judged = report.config, report.most_drifted
    fail, warn, young = report.at("fail"), report.at("warn"), report.at(YOUNG)
    by_name = {f.feature: f for f in report.features}
    compared = len(report.features) - len(young)
    # "16 young" was jargon to a trial: said as what it means.
    tail = f"; {len(young)} not judged (their window is longer than the history before the reference)" if young else ""
    if report.capped:
        tail += (
            f"; {len(report.capped)} at most warn ({', '.join(report.capped[:4])}"
            f"{', ...' if len(report.capped) > 4 else ''}): the champion's reference holds one day, so how much a "
            "day varies is unknown (a longer training window gives a fail verdict)"
        )
    if not fail and not warn:
        return f"no comparable {what} moved {config.warn:g} or more beyond a reference day{_largest(judged)}{tail}"
    named = sorted(fail or warn, key=lambda n: -by_name[n].excess)
    level = config.fail if fail else config.warn
    text = ", ".join(f"{n} {by_name[n].excess:.3f} (PSI {by_name[n].psi:.3f})" for n in named[:8])
    text += ", ..." if len(named) > 8 else ""
    head = (
        f"{len(named)} of {compared} comparable {what} moved {level:g} or more beyond a reference day and beyond "
        f"their sampling noise: {text}"
    )
    return head + (f"; {len(warn)} more {config.warn:g} or more" if fail and warn else "") + tail


def _largest(judged: FeatureDrift | None) -> str:
    """The most drifted column of a passing check, and why its PSI is no drift when the PSI itself is large (a
    trial read "within 0.1 ... PSI 8.793" as a contradiction: the newest day held one impression)."""
    if judged is None:
        return ""
    if not judged.significant:
        return (
            f" ({judged.feature}'s PSI {judged.psi:.3f} is within the sampling noise of the newest day's "
            f"{judged.comparison.current_rows:,} row(s), up to {judged.noise:.3f})"
        )
    # "its PSI 3.262 less the 3.640 one of the reference's own days shows" was hard to read, and "largest excess:
    # ctr_smoothed_1d 0.000" read as a contradiction beside a PSI of 2.5 (trials).
    most = f"{judged.baseline:.3f}, the most one of the reference's own days moved against the rest"
    if judged.excess > 0:
        return f" (largest excess: {judged.feature} {judged.excess:.3f}: its PSI {judged.psi:.3f} minus {most})"
    return f" ({judged.feature}'s PSI {judged.psi:.3f} is no more than {most})"


def _report_metadata(report: DriftReport) -> dict[str, Any]:
    rows = report.rows()
    worst, judged = report.worst, report.most_drifted
    return {
        "max_psi": float(worst.psi) if worst is not None else 0.0,
        "worst": worst.feature if worst is not None else "",
        "max_excess_psi": float(judged.excess) if judged is not None else 0.0,
        "most_drifted": judged.feature if judged is not None else "",
        "at_fail": ", ".join(report.at("fail")) or "none",
        "at_warn": ", ".join(report.at("warn")) or "none",
        "young": ", ".join(report.at(YOUNG)) or "none",
        "capped_at_warn": ", ".join(report.capped) or "none",
        "psi": dg.MetadataValue.table(
            records=[dg.TableRecord({name: row[name] for name, _ in _TABLE_COLUMNS}) for row in rows],
            schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in _TABLE_COLUMNS]),
        ),
    }


retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    # The ranker and what it reads directly: the training set (brought up to date, cheap when it is) and the
    # candidate generators. Not the warehouse: a retrain works on the data the last pipeline run published.
    selection=dg.AssetSelection.assets(RANKER_KEY).upstream(depth=1),
    description="Retrain the ranker on the newest training data; the registry's rule decides whether the new "
    "version replaces the champion.",
)


def latest_drift_verdict(instance: dg.DagsterInstance, check: str) -> DriftVerdict | None:
    """The latest completed evaluation of a drift check (None: never evaluated)."""
    evaluation = _latest_evaluation(instance, check)
    if evaluation is None:
        return None
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    version, day = meta.get("champion_version"), meta.get("current_day")
    return DriftVerdict(
        check=check,
        failed=not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR,
        champion_version=int(version) if isinstance(version, int | float) else None,
        current_day=date.fromisoformat(day) if isinstance(day, str) else None,
        summary=evaluation.description or "",
    )


@dg.sensor(job=retrain_job, minimum_interval_seconds=RETRAIN_INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING)
def retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Requests a ranker retrain when a drift check failed for the champion, when the history reaches
    TAILOR_RETRAIN_MAX_AGE_DAYS (default 7) days past the champion's test window, or when TAILOR_RETRAIN_NEW_DAYS
    (default 7) labelled days arrived after the newest version's test window; only when some labelled day is new
    to every trained version, and once per newest day. The run's tags say which condition fired."""
    settings = get_settings()
    versions = Registry(settings.models_dir).versions()  # newest first
    champion = next((v for v in versions if CHAMPION in v.aliases), None)
    decision = decide_retrain(
        TrainedVersion.of(champion) if champion is not None else None,
        TrainedVersion.of(versions[0]) if versions else None,
        labelled_days(training_set_path(settings)),
        [v for v in (latest_drift_verdict(context.instance, name) for name in DRIFT_CHECKS) if v is not None],
        RetrainPolicy.from_env(os.environ),
    )
    if not decision.due or decision.run_key is None:
        return dg.SensorResult(skip_reason=decision.note, cursor=context.cursor)
    if decision.run_key == context.cursor:
        return dg.SensorResult(
            skip_reason=f"a retrain was already requested for this data ({decision.run_key}): {decision.note}",
            cursor=context.cursor,
        )
    kinds = ",".join(dict.fromkeys(r.kind for r in decision.reasons))
    context.log.info(f"requesting a retrain ({kinds}): {decision.note}")
    request = dg.RunRequest(run_key=decision.run_key, tags={REASONS_TAG: kinds, DETAIL_TAG: decision.note[:1000]})
    return dg.SensorResult(run_requests=[request], cursor=decision.run_key)

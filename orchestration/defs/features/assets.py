"""The feature store in the asset graph: register the Feast definitions, load the online store, build training data.

The work lives in ml.features; these assets only wire it after the dbt feature marts and report what happened.
ml.features is imported inside the assets: Feast takes seconds to import, and every process that loads the
definitions (the UI, sensors, `tailor run`) would pay for it.

Each asset first asks, without Feast, whether anything it reads changed since it last ran (a fingerprint of the
definitions; content digests of the marts), and when nothing did it returns at once, saying so in its metadata
("action": "up to date") with the same data version as before. Only real work imports Feast.
"""

from datetime import date

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from orchestration.lib.active_runs import stop_if_an_earlier_run_is_active
from orchestration.lib.signals import stop_if_signalled
from tailor.settings import get_settings

USER_FEATURES = dg.AssetKey(["marts", "fct_user_features_daily"])
CONTENT_FEATURES = dg.AssetKey(["marts", "fct_content_features_daily"])
CONTENT_PROFILE = dg.AssetKey(["marts", "fct_content_profile"])
#: The marts Feast's batch views read (feature_repo/data_sources.py).
FEATURE_MARTS = [USER_FEATURES, CONTENT_FEATURES, CONTENT_PROFILE]
REGISTRY_KEY = dg.AssetKey(["feast", "registry"])
ONLINE_KEY = dg.AssetKey(["feast", "online_store"])
TRAINING_SET_KEY = dg.AssetKey(["ml", "ranking_training_set"])


@dg.asset(key=REGISTRY_KEY, deps=FEATURE_MARTS, group_name="features", kinds={"feast"})
def feast_registry(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Feast's registry of entities, feature views and the ranker_v1 feature service, from `feast apply` in
    feature_repo/ (skipped when neither the definitions nor the configuration changed since the last apply)."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    from ml.features.repo import apply_feature_repo

    result = apply_feature_repo(get_settings())
    context.log.info("feast apply: " + ("applied" if result.applied else "unchanged, skipped"))
    return dg.MaterializeResult(
        metadata={
            "action": "applied" if result.applied else "up to date",
            "applied": result.applied,
            "registry": dg.MetadataValue.path(str(result.registry)),
            "online_store": result.online_store,
        },
        data_version=dg.DataVersion(result.fingerprint),
    )


@dg.asset(key=ONLINE_KEY, deps=[REGISTRY_KEY, *FEATURE_MARTS], group_name="features", kinds={"feast"})
def feast_online_store(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The newest feature values per user and per content item in the online store (SQLite or Redis), which
    `get_online_features` serves. The first run backfills from the whole history; later runs load the days dbt
    rebuilt, and nothing at all when the feature marts hold the same rows as last time (and the store's checks
    passed when they last ran: a store emptied behind Tailor's back fails them, and the next run reloads it)."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    from ml.features.materialize import last_materialized_version, online_store_plan

    settings = get_settings()
    plan = online_store_plan(settings)
    checks_passed = _online_checks_passed(context.instance)
    if plan.up_to_date and checks_passed:
        context.log.info("online store: the feature marts are unchanged since the last load; nothing to do")
        return dg.MaterializeResult(
            metadata={"action": "up to date", "reason": "feature marts unchanged, checks passed last time"},
            data_version=dg.DataVersion(plan.version),
        )
    reason = plan.reason if not plan.up_to_date else "the store's checks did not pass when they last ran"
    from ml.features import open_store
    from ml.features.materialize import materialize_features

    store = open_store(settings)
    done = materialize_features(store, settings)
    for view in done:
        context.log.info(
            f"{view.view}: {view.mode} {view.start:%Y-%m-%d %H:%M} .. {view.end:%Y-%m-%d %H:%M}, "
            f"{view.entities} entities"
        )
    return dg.MaterializeResult(
        metadata={
            "action": "materialized",
            "reason": reason,
            "online_store": str(store.config.online_store.type),
            "views": dg.MetadataValue.json(
                {
                    v.view: {
                        "mode": v.mode,
                        "start": v.start.isoformat(),
                        "end": v.end.isoformat(),
                        "entities": v.entities,
                    }
                    for v in done
                }
            ),
            "newest_event_timestamp": max(v.end for v in done).isoformat() if done else "none",
        },
        data_version=dg.DataVersion(last_materialized_version(settings) or "none"),
    )


def _online_checks_passed(instance: dg.DagsterInstance) -> bool:
    """Whether both online-store checks passed on their latest completed evaluation (none yet: False)."""
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    for name in ("online_store_is_fresh", "online_matches_offline"):
        key = dg.AssetCheckKey(ONLINE_KEY, name)
        latest = instance.event_log_storage.get_asset_check_execution_history(key, limit=1, status=done)
        if not latest or latest[0].status != AssetCheckExecutionRecordStatus.SUCCEEDED:
            return False
    return True


@dg.asset(
    key=TRAINING_SET_KEY,
    deps=[REGISTRY_KEY, *FEATURE_MARTS, dg.AssetKey(["marts", "fct_impressions"])],
    group_name="features",
    kinds={"feast", "parquet"},
)
def ranking_training_set(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The impressions of the newest days (TAILOR_TRAINING_WINDOW_DAYS, default 21; busy days sampled by request
    to TAILOR_TRAINING_MAX_IMPRESSIONS_PER_DAY, default 50,000) with their click labels and the ranker_v1 features
    as of the impression time (Feast's point-in-time join: never a value from after the impression). Written to
    <TAILOR_HOME>/training/. A run builds only the days whose impressions or reachable feature rows changed and
    copies the rest, which gives the same rows as a full rebuild; with nothing new it does nothing."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    stop_if_an_earlier_run_is_active(context)  # the first step of a job (orchestration/lib/active_runs.py)
    from ml.features.training import plan_training_set, training_set_summary

    settings = get_settings()
    plan = plan_training_set(settings)
    if plan.up_to_date:
        summary = training_set_summary(settings, plan)
    else:
        from ml.features import open_store
        from ml.features.training import write_training_set

        summary = write_training_set(settings, open_store(settings))
    reason = plan.reason + plan.waiting_note
    context.log.info(
        f"training set: {summary.action} ({reason}); {len(summary.days_built)} day(s) built "
        f"({summary.rows_built} rows), {summary.days_kept} kept, {summary.days_dropped} dropped; "
        f"{summary.rows} rows, {summary.positives} clicked, {summary.features} features"
    )
    window = summary.window
    return dg.MaterializeResult(
        metadata={
            "action": summary.action,
            "reason": reason,
            "path": dg.MetadataValue.path(str(summary.path)),
            "rows": dg.MetadataValue.int(summary.rows),
            "positives": dg.MetadataValue.int(summary.positives),
            "features": dg.MetadataValue.int(summary.features),
            "rows_without_user_features": dg.MetadataValue.int(summary.rows_without_user_features),
            "first_impression": str(summary.first_impression),
            "last_impression": str(summary.last_impression),
            "window": f"{window.days} days, at most {window.max_impressions_per_day or 'every'} impressions a day"
            if window
            else "",
            "window_days": _days_text(summary.window_days),
            "days_built": _days_text(summary.days_built),
            "rows_built": dg.MetadataValue.int(summary.rows_built),
            "days_kept": dg.MetadataValue.int(summary.days_kept),
            "days_dropped": dg.MetadataValue.int(summary.days_dropped),
            "build_seconds": dg.MetadataValue.float(summary.build_s),
            "copy_seconds": dg.MetadataValue.float(summary.copy_s),
        },
        data_version=dg.DataVersion(summary.version),
    )


def _days_text(days: tuple[date, ...]) -> str:
    """``2026-01-05..2026-01-25 (21 days)``, or the dates one by one when they are not consecutive."""
    if not days:
        return "none"
    if (days[-1] - days[0]).days == len(days) - 1:
        return f"{days[0]}..{days[-1]} ({len(days)} days)" if len(days) > 1 else str(days[0])
    return ", ".join(map(str, days))

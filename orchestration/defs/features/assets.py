"""The feature store in the asset graph: register the Feast definitions, load the online store, build training data.

The work lives in ml.features; these assets only wire it after the dbt feature marts and report what happened.
ml.features is imported inside the assets: Feast takes seconds to import, and every process that loads the
definitions (the UI, sensors, `tailor run`) would pay for it.
"""

import dagster as dg

from tailor.settings import get_settings

USER_FEATURES = dg.AssetKey(["marts", "fct_user_features_daily"])
CONTENT_FEATURES = dg.AssetKey(["marts", "fct_content_features_daily"])
REGISTRY_KEY = dg.AssetKey(["feast", "registry"])
ONLINE_KEY = dg.AssetKey(["feast", "online_store"])
TRAINING_SET_KEY = dg.AssetKey(["ml", "ranking_training_set"])


@dg.asset(key=REGISTRY_KEY, deps=[USER_FEATURES, CONTENT_FEATURES], group_name="features", kinds={"feast"})
def feast_registry(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Feast's registry of entities, feature views and the ranker_v1 feature service, from `feast apply` in
    feature_repo/ (skipped when neither the definitions nor the configuration changed since the last apply)."""
    from ml.features.repo import apply_feature_repo

    result = apply_feature_repo(get_settings())
    context.log.info("feast apply: " + ("applied" if result.applied else "unchanged, skipped"))
    return dg.MaterializeResult(
        metadata={
            "applied": result.applied,
            "registry": dg.MetadataValue.path(str(result.registry)),
            "online_store": result.online_store,
        }
    )


@dg.asset(key=ONLINE_KEY, deps=[REGISTRY_KEY, USER_FEATURES, CONTENT_FEATURES], group_name="features", kinds={"feast"})
def feast_online_store(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The newest feature values per user and per content item in the online store (SQLite or Redis), which
    `get_online_features` serves. The first run backfills from the whole history; later runs load the days dbt
    rebuilt."""
    from ml.features import open_store
    from ml.features.materialize import materialize_features

    store = open_store(get_settings())
    done = materialize_features(store)
    for view in done:
        context.log.info(
            f"{view.view}: {view.mode} {view.start:%Y-%m-%d %H:%M} .. {view.end:%Y-%m-%d %H:%M}, "
            f"{view.entities} entities"
        )
    return dg.MaterializeResult(
        metadata={
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
        }
    )


@dg.asset(
    key=TRAINING_SET_KEY,
    deps=[REGISTRY_KEY, USER_FEATURES, CONTENT_FEATURES, dg.AssetKey(["marts", "fct_impressions"])],
    group_name="features",
    kinds={"feast", "parquet"},
)
def ranking_training_set(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Every impression with its click label and the ranker_v1 features as of the impression time (Feast's
    point-in-time join: never a value from after the impression). Written to <TAILOR_HOME>/training/."""
    from ml.features import open_store, write_training_set

    settings = get_settings()
    summary = write_training_set(settings, open_store(settings))
    context.log.info(f"training set: {summary.rows} rows, {summary.positives} clicked, {summary.features} features")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(summary.path)),
            "rows": dg.MetadataValue.int(summary.rows),
            "positives": dg.MetadataValue.int(summary.positives),
            "features": dg.MetadataValue.int(summary.features),
            "rows_without_user_features": dg.MetadataValue.int(summary.rows_without_user_features),
            "first_impression": str(summary.first_impression),
            "last_impression": str(summary.last_impression),
        }
    )

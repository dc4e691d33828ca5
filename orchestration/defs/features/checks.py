"""Checks on the online store: it keeps up with the marts, and it serves the same values as the marts hold.

ml.features is imported inside the checks, as in assets.py (Feast is slow to import).
"""

import dagster as dg

from orchestration.defs.features.assets import ONLINE_KEY
from orchestration.lib.signals import stop_if_signalled
from tailor.settings import get_settings


@dg.asset_check(asset=ONLINE_KEY, name="online_store_is_fresh")
def online_freshness_check() -> dg.AssetCheckResult:
    """For each feature view, entities of the newest day in the mart are online with that day's values: the
    online store's newest event timestamp equals the mart's."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    from ml.features import open_store
    from ml.features.health import freshness

    results = freshness(open_store(get_settings()))
    stale = [r for r in results if not r.fresh]
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            r.view: {"offline_newest": str(r.offline_newest), "online_newest": str(r.online_newest)} for r in results
        },
        description="online store is as new as the marts"
        if not stale
        else "behind the marts: "
        + ", ".join(f"{r.view} online {r.online_newest} < {r.offline_newest}" for r in stale)
        + " (materialize: run the feast/online_store asset)",
    )


@dg.asset_check(asset=ONLINE_KEY, name="online_matches_offline")
def online_consistency_check() -> dg.AssetCheckResult:
    """For a fixed sample of 50 entities per feature view, every online value equals the entity's newest row in
    the published mart (read with DuckDB, not through Feast)."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    from ml.features import open_store
    from ml.features.health import consistency

    results = consistency(open_store(get_settings()))
    mismatches = [m for r in results for m in r.mismatches]
    return dg.AssetCheckResult(
        passed=not mismatches,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "entities_checked": dg.MetadataValue.json({r.view: r.entities_checked for r in results}),
            "mismatches": dg.MetadataValue.json(mismatches[:20]),
        },
        description="online values equal the newest offline values"
        if not mismatches
        else f"{len(mismatches)} online values differ from the marts, e.g. {mismatches[0]}",
    )

"""Warehouse checks written in Python (the dbt tests arrive as checks on their own)."""

import dagster as dg

from orchestration.lib.signals import stop_if_signalled
from tailor.quality import reconcile
from tailor.settings import get_settings


@dg.asset_check(asset=dg.AssetKey(["marts", "fct_batch_fates"]), name="received_equals_accepted_duplicates_quarantined")
def reconciliation_check() -> dg.AssetCheckResult:
    """Every event row landed is accounted for once: received = accepted + duplicates + quarantined."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    result = reconcile(get_settings())
    return dg.AssetCheckResult(
        passed=result.balanced,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={key: dg.MetadataValue.int(int(value)) for key, value in result.as_dict().items()},
        description=(
            "balanced"
            if result.balanced
            else "rows went missing between landing and the warehouse: compare fct_batch_fates with landing/"
        ),
    )

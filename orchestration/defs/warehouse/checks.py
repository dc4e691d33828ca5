"""Warehouse checks written in Python (the dbt tests arrive as checks on their own)."""

import dagster as dg

from orchestration.lib.signals import stop_if_signalled
from tailor.quality import reconcile
from tailor.settings import get_settings


@dg.asset_check(asset=dg.AssetKey(["marts", "fct_batch_fates"]), name="received_equals_accepted_duplicates_quarantined")
def reconciliation_check() -> dg.AssetCheckResult:
    """Every event row landed is accounted for once: received = accepted + duplicates + quarantined, except the
    batches landed after the build (e.g. through the service while it ran), which the next build takes."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    result = reconcile(get_settings())
    if result.balanced:
        description = "balanced"
    elif result.balanced_except_pending:
        description = (
            f"balanced; {result.pending_rows:,} rows in {result.pending_batches:,} batches landed after this build "
            "(e.g. through POST /events while it ran): the next run builds them"
        )
    else:
        description = "rows went missing between landing and the warehouse: compare fct_batch_fates with landing/"
    return dg.AssetCheckResult(
        passed=result.balanced_except_pending,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={key: dg.MetadataValue.int(int(value)) for key, value in result.as_dict().items()},
        description=description,
    )

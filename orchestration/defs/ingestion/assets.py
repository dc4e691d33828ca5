"""Ingestion: files in the inbox become landing batches that dbt's sources read."""

import dagster as dg

from tailor.ingest import ensure_landing
from tailor.ingest.inbox import ingest_inbox
from tailor.settings import get_settings

LANDING_KINDS = ("events", "users", "content")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["landing", kind],
            group_name="ingestion",
            description=f"Landed {kind} files (immutable Parquet batches, one per file), as delivered.",
            kinds={"parquet"},
        )
        for kind in LANDING_KINDS
    ],
    can_subset=False,
)
def landing(context: dg.AssetExecutionContext):  # type: ignore[no-untyped-def]
    """Ingest new files from the inbox into the landing zone; files already landed are skipped."""
    settings = get_settings()
    ensure_landing(settings)
    result = ingest_inbox(settings)
    for path, reason in result.rejected_files.items():
        context.log.warning(f"set aside {path}: {reason}")
    for kind in LANDING_KINDS:
        files = [f for f in result.report.files if f.kind == kind and f.status == "landed"]
        rejected: dict[str, int] = {}
        for f in files:
            for reason, n in f.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + n
        yield dg.MaterializeResult(
            asset_key=["landing", kind],
            metadata={
                "files_landed": len(files),
                "rows_received": sum(f.received for f in files),
                "rows_passing_contract": sum(f.accepted for f in files),
                "rows_failing_contract": sum(rejected.values()),
                "failing_by_reason": dg.MetadataValue.json(rejected),
                "files_set_aside": dg.MetadataValue.json(result.rejected_files),
                "landing_path": dg.MetadataValue.path(str(settings.landing / kind)),
            },
        )

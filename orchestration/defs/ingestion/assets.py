"""Ingestion: files in the inbox become landing batches that dbt's sources read."""

from collections.abc import Iterator

import dagster as dg

from orchestration.lib.active_runs import stop_if_an_earlier_run_is_active
from orchestration.lib.signals import stop_if_signalled
from tailor.contract.rules import KINDS
from tailor.ingest.inbox import NOTE_SUFFIX, REJECTED_DIR, ingest_inbox
from tailor.settings import get_settings


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["landing", kind],
            group_name="ingestion",
            description=f"Landed {kind} files (immutable Parquet batches, one per file), as delivered.",
            kinds={"parquet"},
        )
        for kind in KINDS
    ],
    can_subset=False,
)
def landing(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    """Ingest new files from the inbox into the landing zone; files already landed are skipped.

    First finishes or undoes whatever an interrupted ingestion left behind (a killed `tailor ingest` or run), so
    the warehouse reads every committed batch exactly once. Row-level verdicts (accepted, duplicate, quarantined
    with a reason) come from the warehouse in the same run: see `fct_batch_fates`, `fct_rejected_rows` and the
    reconciliation check.
    """
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    stop_if_an_earlier_run_is_active(context)  # the first step of a job (orchestration/lib/active_runs.py)
    settings = get_settings()
    result = ingest_inbox(settings)
    for message in result.report.recovery.messages():
        context.log.warning(message)
    for path, reason in result.rejected_files.items():
        context.log.warning(f"set aside {path} as {result.set_aside_as[path]}: {reason}")
    for kind in KINDS:
        files = [f for f in result.report.files if f.kind == kind and f.status == "landed"]
        # A file outside the kinds' folders is reported with the events.
        set_aside = [p for p in result.rejected_files if next((k for k in KINDS if f"/{k}/" in p), "events") == kind]
        # "nothing new" after a POST /events read as if the posted events were not built: they landed when posted,
        # and this run builds them; what is new or not here is the inbox (a trial).
        action = f"landed {len(files)} inbox file(s)" if files else "no new inbox file"
        # What `tailor run` prints after the asset's name (progress.py): a file set aside must not pass unseen.
        note = (
            f"{len(set_aside)} file(s) set aside in {settings.inbox / REJECTED_DIR}, each beside a "
            f"<name>{NOTE_SUFFIX} saying why"
            if set_aside
            else ""
        )
        yield dg.MaterializeResult(
            asset_key=["landing", kind],
            metadata={
                "action": action,
                **({"note": note} if note else {}),
                "files_landed": len(files),
                "rows_landed": sum(f.received for f in files),
                "files_set_aside": dg.MetadataValue.json(result.rejected_files),
                # Where each went (inbox path -> its path in _rejected): the end of `tailor run` lists them.
                "set_aside_as": dg.MetadataValue.json({p: result.set_aside_as[p] for p in set_aside}),
                "recovery": dg.MetadataValue.json(result.report.recovery.as_dict()),
                "landing_path": dg.MetadataValue.path(str(settings.landing / kind)),
            },
        )

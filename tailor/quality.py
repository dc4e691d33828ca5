"""Reconciliation: every row received is accounted for as accepted, duplicate or quarantined.

Reads only files (the landing batches and the published `fct_batch_fates` mart), never the warehouse file, so it
can run while nothing else holds DuckDB's single-writer lock, and the app can show it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb

from tailor.settings import Settings


@dataclass(frozen=True)
class Reconciliation:
    """Row counts for the event stream; `balanced` is the invariant the pipeline promises."""

    received: int
    accepted: int
    duplicates: int
    quarantined: int
    batches_landed: int
    batches_in_warehouse: int
    #: Rows and batches landed that the warehouse has not built yet (e.g. landed while a run was building).
    pending_rows: int = 0
    pending_batches: int = 0

    @property
    def balanced_except_pending(self) -> bool:
        """Every built batch is accounted for; only batches landed after the build are missing (not a loss)."""
        return self.received - self.pending_rows == self.accepted + self.duplicates + self.quarantined and (
            self.batches_landed - self.pending_batches == self.batches_in_warehouse
        )

    @property
    def balanced(self) -> bool:
        return (
            self.received == self.accepted + self.duplicates + self.quarantined
            and self.batches_landed == self.batches_in_warehouse
        )

    def as_dict(self) -> dict[str, int | bool]:
        return {**asdict(self), "balanced": self.balanced, "balanced_except_pending": self.balanced_except_pending}


def reconcile(settings: Settings) -> Reconciliation:
    """Count rows landed (from the landing files) against the fates the warehouse gave them.

    A batch the warehouse has no fate for is *pending* when it was landed after the newest batch the warehouse built
    (e.g. sent to the service's POST /events while a run was building): the next build takes it. One landed before
    that is not pending: the build read the landing zone after it, so its rows went missing, and `balanced_except_
    pending` is false.

    A home where nothing has landed yet (a new one, or a first run stopped before its landing committed a batch)
    reconciles as all zeros, balanced, instead of failing on DuckDB's "No files found" for the empty folder."""
    landing = settings.landing / "events" / "*.parquet"
    fates = settings.marts_dir / "fct_batch_fates.parquet"
    con = duckdb.connect()
    try:
        # The landing files are read once: rows per batch, then totals and what the warehouse has not built yet.
        if any(landing.parent.glob(landing.name)):
            landed_rows = f"select batch_id, ingested_at from read_parquet('{landing}')"
        else:
            landed_rows = "select null::varchar as batch_id, null::timestamp as ingested_at where false"
        con.execute(
            "create temp table landed as select batch_id, count(*) as n, min(ingested_at) as ingested_at "
            f"from ({landed_rows}) group by all"
        )
        received, batches_landed = con.execute("select coalesce(sum(n), 0), count(batch_id) from landed").fetchall()[0]
        if fates.exists():
            row = con.execute(
                "select coalesce(sum(accepted), 0), coalesce(sum(duplicates), 0), "
                f"coalesce(sum(quarantined), 0), count(*) from read_parquet('{fates}')"
            ).fetchall()[0]
            pending = con.execute(
                "select coalesce(sum(n), 0), count(batch_id) from landed "
                f"where batch_id not in (select batch_id from read_parquet('{fates}')) "
                f"and ingested_at > (select max(ingested_at) from read_parquet('{fates}'))"
            ).fetchall()[0]
        else:
            row, pending = (0, 0, 0, 0), (received, batches_landed)
    finally:
        con.close()
    return Reconciliation(
        received=int(received),
        accepted=int(row[0]),
        duplicates=int(row[1]),
        quarantined=int(row[2]),
        batches_landed=int(batches_landed),
        batches_in_warehouse=int(row[3]),
        pending_rows=int(pending[0]),
        pending_batches=int(pending[1]),
    )

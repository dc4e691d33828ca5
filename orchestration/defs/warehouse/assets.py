"""Every dbt model, seed and snapshot as an asset; dbt tests appear as asset checks."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.lib.dbt import TailorDbtTranslator, dbt_project, export_dbt_env
from orchestration.lib.dbt_failures import failed_nodes, with_offending_rows
from orchestration.lib.warehouse_lock import wait_for_warehouse
from tailor.settings import get_settings


@dbt_assets(manifest=dbt_project().manifest_path, dagster_dbt_translator=TailorDbtTranslator())
def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Builds the warehouse with `dbt build`: models, snapshots, seeds, tests and unit tests in DAG order."""
    export_dbt_env()
    wait_for_warehouse(get_settings().warehouse, context.log.warning)  # e.g. a dbt left running by a killed run
    invocation = dbt.cli(["build"], context=context, raise_on_error=False)
    yield from invocation.stream()
    if not invocation.is_successful():
        # Say why in words (the failing model or test, the database error, the offending rows and where they were
        # landed), instead of dagster-dbt's traceback that points at dbt's log file.
        settings = get_settings()
        failures = with_offending_rows(
            failed_nodes(
                invocation.get_artifact("run_results.json"),
                invocation.target_path,
                invocation.get_artifact("manifest.json"),
            ),
            settings.warehouse,
        )
        summary = "\n".join(f.describe() for f in failures) or "dbt build failed; see logs/dbt.log"
        raise dg.Failure(description=summary, metadata={"failed_nodes": [f.unique_id for f in failures]})

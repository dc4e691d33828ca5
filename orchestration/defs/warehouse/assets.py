"""Every dbt model, seed and snapshot as an asset; dbt tests appear as asset checks."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.lib.dbt import TailorDbtTranslator, dbt_project, export_dbt_env
from orchestration.lib.warehouse_lock import wait_for_warehouse
from tailor.settings import get_settings


@dbt_assets(manifest=dbt_project().manifest_path, dagster_dbt_translator=TailorDbtTranslator())
def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Builds the warehouse with `dbt build`: models, snapshots, seeds, tests and unit tests in DAG order."""
    export_dbt_env()
    wait_for_warehouse(get_settings().warehouse, context.log.warning)  # e.g. a dbt left running by a killed run
    yield from dbt.cli(["build"], context=context).stream()

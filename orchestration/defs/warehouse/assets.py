"""Every dbt model, seed and snapshot as an asset; dbt tests appear as asset checks."""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration.lib.dbt import dbt_project, export_dbt_env


class TailorDbtTranslator(DagsterDbtTranslator):
    """Groups assets by warehouse layer (staging, intermediate, marts, snapshots, seeds)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "seeds"
        if dbt_resource_props["resource_type"] == "snapshot":
            return "snapshots"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "warehouse"


@dbt_assets(manifest=dbt_project().manifest_path, dagster_dbt_translator=TailorDbtTranslator())
def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Builds the warehouse with `dbt build`: models, snapshots, seeds, tests and unit tests in DAG order."""
    export_dbt_env()
    yield from dbt.cli(["build"], context=context).stream()

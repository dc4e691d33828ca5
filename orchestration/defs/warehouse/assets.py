"""Every dbt model, seed and snapshot as an asset; dbt tests appear as asset checks."""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.lib.dbt import (
    BUILD_ARGS,
    TailorDbtTranslator,
    dbt_project,
    export_dbt_env,
    invocation_target,
    keep_parse_state,
    parse_stamp,
    prune_invocations,
    reuse_parse_state,
)
from orchestration.lib.dbt_failures import (
    WARNED,
    NodeFailure,
    ended_early_text,
    failed_nodes,
    warning_text,
    with_offending_rows,
)
from orchestration.lib.engine_support import build_refusal
from orchestration.lib.progress import say
from orchestration.lib.signals import stop_if_signalled
from orchestration.lib.spark_marts import publish_spark_marts, published_marts
from orchestration.lib.warehouse_lock import wait_for_warehouse
from tailor.settings import Settings, get_settings

WARN = dg.AssetCheckSeverity.WARN


@dbt_assets(manifest=dbt_project().manifest_path, dagster_dbt_translator=TailorDbtTranslator())
def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Builds the warehouse with `dbt build`: models, snapshots, seeds and data tests in DAG order (dbt's unit tests
    are for development and CI: `BUILD_ARGS`; on Spark without snapshots, then the marts published as Parquet, as
    DuckDB's post-hooks do)."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    export_dbt_env()
    settings = get_settings()
    # `tailor run` says these before starting; a run from the UI, a schedule or a sensor says them here.
    refused = build_refusal(settings)
    if refused:
        raise dg.Failure(description=refused)
    if settings.engine == "duckdb":
        wait_for_warehouse(settings.warehouse, lambda m: say(context.log, m))  # e.g. a dbt a killed run left
    target = invocation_target(context.run.run_id)
    # This home's last parse, not another home's: dbt skips parsing again. Only a saving: a failure is said, not raised.
    _parse_state_step(context, "could not be reused", lambda: reuse_parse_state(settings, target))
    invocation = dbt.cli(list(BUILD_ARGS[settings.engine]), context=context, raise_on_error=False, target_path=target)
    placed = parse_stamp(target)  # dbt is starting: what it finds there now is what it was given
    prune_invocations(invocation.target_path.parent)  # older builds' folders (this one is the newest)
    warned: list[dg.AssetCheckResult] = []
    for event in invocation.stream():
        if isinstance(event, dg.AssetCheckResult) and not event.passed and event.severity == WARN:
            warned.append(event)  # said once dbt has ended, with its rows: until then the warehouse is dbt's
            continue
        yield event
    _parse_state_step(context, "could not be kept", lambda: keep_parse_state(settings, target, placed))
    try:
        run_results = invocation.get_artifact("run_results.json")
    except FileNotFoundError:  # dbt stopped before building (e.g. the warehouse locked by another process)
        raise dg.Failure(description=ended_early_text(invocation.get_error())) from None
    manifest = invocation.get_artifact("manifest.json")
    yield from _with_rows(warned, failed_nodes(run_results, invocation.target_path, manifest, WARNED), settings)
    if not invocation.is_successful():
        # Say why in words (the failing model or test, the database error, the offending rows and where they were
        # landed), instead of dagster-dbt's traceback that points at dbt's log file.
        failures = with_offending_rows(  # offending rows: DuckDB only (no warehouse file on Spark: left as is)
            failed_nodes(run_results, invocation.target_path, manifest), settings.warehouse
        )
        summary = "\n".join(f.describe() for f in failures) or "dbt build failed; see logs/dbt.log"
        raise dg.Failure(description=summary, metadata={"failed_nodes": [f.unique_id for f in failures]})
    if settings.engine == "spark":
        built = {str(r["unique_id"]).rsplit(".", 1)[-1] for r in run_results["results"] if r["status"] == "success"}
        marts = published_marts(manifest)
        for mart in publish_spark_marts(settings, {name: marts[name] for name in marts if name in built}):
            context.log.info(f"published {mart.name} from Spark: {mart.rows} rows to {mart.path}")


def _parse_state_step(context: dg.AssetExecutionContext, failed: str, step: Callable[[], bool]) -> None:
    """Run a step of the parse-state saving (`orchestration.lib.dbt.parse_state`); an OSError (a full disk, a
    read-only folder) is a warning: the build itself does not depend on it."""
    try:
        step()
    except OSError as exc:
        context.log.warning(f"dbt's parse state {failed} ({exc}): the next build parses the whole project again")


def _with_rows(
    warned: list[dg.AssetCheckResult], tests: list[NodeFailure], settings: Settings
) -> Iterator[dg.AssetCheckResult]:
    """The checks of dbt tests that warned, each described as a failed test's error is (`NodeFailure.row_lines`):
    how many rows, the first of them with the landed batch and line they came from, and the view holding them all.

    dagster-dbt leaves a check's description empty; `tailor run` prints this one beside the warning, and the Dagster
    UI shows it on the check. On an engine without a warehouse file (Spark) only the count is said.
    """
    if not warned:
        return
    by_name = {test.name: test for test in with_offending_rows(tests, settings.warehouse)}
    for check in warned:
        rows = getattr(check.metadata.get("dagster_dbt/failed_row_count"), "value", None)
        yield check._replace(description=warning_text(rows, by_name.get(check.check_name or "")))

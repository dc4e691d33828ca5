"""Why a `dbt build` failed, in words a data engineer can act on: the failing model or test, the database error,
and the offending rows with the landing batch and line they came from, where that is known.

Read from dbt's own `run_results.json` after the build has ended (so the warehouse is free), and from the
warehouse opened read-only. Tests give their offending rows by running their compiled SQL again; a row that
carries an event_id, batch_id or line_number is traced back to its landed file and line through
`stg_landing__events`. A model's database error has no rows to show: the message and the model's compiled SQL
are what there is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

MAX_ROWS = 5
#: dbt result statuses of a node that failed the build, and of a test that found rows at WARN severity.
FAILED = frozenset({"error", "fail", "runtime error"})
WARNED = frozenset({"warn"})
#: Where to read what a test's rows mean.
TEST_SQL = "the test's SQL (dbt_project/tests/, or its model's yml and dbt_project/macros/)"


@dataclass(frozen=True)
class NodeFailure:
    """One dbt node that failed: a model, seed or snapshot that errored, or a test that found rows."""

    unique_id: str
    kind: str  # "model" | "test" | "seed" | "snapshot" | "unit_test"
    status: str
    message: str
    compiled_path: str | None = None
    compiled_code: str | None = field(default=None, repr=False)
    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    column_name: str | None = None  # the column a generic test is about (dbt renames it in its failing rows)
    #: ``<schema>.<alias>``: the view dbt keeps a test's rows in (`store_failures_as: view`, DuckDB), else None.
    stored_view: str | None = None

    @property
    def name(self) -> str:
        return self.unique_id.split(".")[2]

    def describe(self) -> str:
        """A few lines for the console and the Dagster UI."""
        what = "test" if self.kind in ("test", "unit_test") else self.kind
        lines = [f"dbt {what} {self.name} {self.status}: {_one_paragraph(self.message)}", *self.row_lines()]
        if self.compiled_path:
            lines.append(f"  compiled SQL: {self.compiled_path}")
        return "\n".join(lines)

    def row_lines(self) -> list[str]:
        """The test's first offending rows, the landed batch and line each came from, and the view holding all of
        them; indented lines, none when there is nothing to show."""
        lines = []
        if self.rows:
            lines.append(f"  offending rows (first {len(self.rows)}):")
            lines.extend(f"    {_row_text(row)}" for row in self.rows)
        if self.sources:
            lines.append("  from landed rows:")
            lines.extend(
                f"    batch {s['batch_id']} ({s['source_file']}) line {s['line_number']}: "
                f"{s['fate']}{' ' + s['reject_reason'] if s.get('reject_reason') else ''}"
                for s in self.sources
            )
        if self.stored_view:
            lines.append(f"  all of them: `select * from {self.stored_view}` in the warehouse")
        return lines


def warning_text(row_count: object, test: NodeFailure | None = None) -> str:
    """A dbt test that warned, in words: on how many rows (``row_count``, dagster-dbt's ``failed_row_count``; not an
    int: "rows") and where to read what they mean; with ``test`` (its failure, rows read by `with_offending_rows`)
    its first rows, their landed lines and the view holding them all (`NodeFailure.row_lines`)."""
    count = f"{row_count:,} row{'s' if row_count != 1 else ''}" if isinstance(row_count, int) else "rows"
    lines = test.row_lines() if test is not None else []
    finds = "says what they mean" if lines else "finds them and says what they mean"
    return "\n".join([f"a dbt test that warned on {count}; {TEST_SQL} {finds}", *lines])


def _one_paragraph(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())[:1500]


def _row_text(row: Mapping[str, Any]) -> str:
    """``key=value, ...``: strings quoted (so spaces show), dates and times as ISO 8601 (not Python's
    ``datetime.date(2026, 1, 20)``, which a warning printed: a trial)."""
    return ", ".join(f"{key}={_value_text(value)}" for key, value in row.items())[:300]


def _value_text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return repr(value)


# The names dbt's generic tests give the tested column in their failing rows.
_GENERIC_TEST_COLUMNS = ("unique_field", "value_field", "from_field")


def failed_nodes(
    run_results: Mapping[str, Any],
    target_path: Path,
    manifest: Mapping[str, Any] | None = None,
    statuses: frozenset[str] = FAILED,
) -> list[NodeFailure]:
    """The nodes of a dbt `run_results.json` whose status is in ``statuses`` (`FAILED`: errored or failed; `WARNED`:
    tests that found rows at WARN severity), in the order dbt ran them.

    ``manifest`` (dbt's manifest.json) names the column each generic test is about, so that its failing rows
    show e.g. ``event_id=...`` instead of dbt's ``unique_field=...``, and the view each test's rows are kept in.
    """
    nodes = (manifest or {}).get("nodes", {})
    failures = []
    for result in run_results.get("results", []):
        if result.get("status") not in statuses:
            continue
        unique_id = str(result["unique_id"])
        # dbt writes compiled SQL under target/compiled/<project>/<path of the file>/<node name>.sql; only a failure's
        # description names it (a warning is said by its rows: `warning_text`).
        failed = result["status"] in FAILED
        matches = sorted((target_path / "compiled").rglob(f"{unique_id.split('.')[2]}.sql")) if failed else []
        failures.append(
            NodeFailure(
                unique_id=unique_id,
                kind=unique_id.split(".", 1)[0],
                status=str(result["status"]),
                message=str(result.get("message") or "no message from dbt"),
                compiled_path=str(matches[0]) if matches else None,
                compiled_code=result.get("compiled_code") or None,
                column_name=nodes.get(unique_id, {}).get("column_name"),
                stored_view=stored_view(nodes.get(unique_id, {})),
            )
        )
    return failures


def stored_view(node: Mapping[str, Any]) -> str | None:
    """``<schema>.<alias>`` of the view a test node's rows are kept in, or None (not a test, or none is kept).

    dbt_project.yml keeps each data test's rows as a view on DuckDB (`store_failures_as: view`); a long generic
    test name gets a hashed alias, so the name comes from the manifest node, not from the test's name.
    """
    if node.get("resource_type") != "test" or node.get("config", {}).get("store_failures_as") != "view":
        return None
    return f"{node['schema']}.{node['alias']}"


def with_offending_rows(failures: Sequence[NodeFailure], warehouse: Path) -> list[NodeFailure]:
    """Failures of tests with their first offending rows, traced to landed batches and lines where possible.

    Opens the warehouse read-only; a warehouse that cannot be opened leaves the failures as they are.
    """
    if not any(f.kind == "test" for f in failures) or not warehouse.exists():
        return list(failures)
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return list(failures)
    enriched = []
    try:
        for failure in failures:
            if failure.kind != "test" or not failure.compiled_code:
                enriched.append(failure)
                continue
            try:
                cursor = con.execute(f"select * from ({failure.compiled_code}) limit {MAX_ROWS}")
                columns = [
                    failure.column_name if failure.column_name and name in _GENERIC_TEST_COLUMNS else name
                    for name in (d[0] for d in cursor.description or [])
                ]
                rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
            except duckdb.Error:
                rows = []
            enriched.append(replace(failure, rows=rows, sources=_landed_sources(con, rows)))
    finally:
        con.close()
    return enriched


def _landed_sources(con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The landed batch, file and line of rows that name an event_id (or a batch and line)."""
    located = [(r.get("batch_id"), r.get("line_number")) for r in rows if r.get("batch_id") is not None]
    event_ids = [str(r["event_id"]) for r in rows if r.get("event_id") is not None]
    if not located and not event_ids:
        return []
    columns = "batch_id, source_file, line_number, fate, reject_reason"
    found: list[tuple[Any, ...]] = []
    try:
        if event_ids:
            found += con.execute(
                f"select {columns} from staging.stg_landing__events where event_id in (select unnest(?)) "
                "order by batch_id, line_number limit ?",
                [event_ids, MAX_ROWS * 2],
            ).fetchall()
        for batch_id, line_number in located[:MAX_ROWS]:
            found += con.execute(
                f"select {columns} from staging.stg_landing__events where batch_id = ? and line_number = ?",
                [batch_id, line_number],
            ).fetchall()
    except duckdb.Error:
        return []
    names = [c.strip() for c in columns.split(",")]
    # A row naming both its event_id and its batch and line is found twice: said once (a trial saw "line 1:
    # duplicate" twice for one row of the duplicates test).
    return [dict(zip(names, row, strict=True)) for row in dict.fromkeys(found)]


#: What dagster-dbt writes before the error lines it parsed from dbt's events (`DbtCliInvocation.get_error`).
_PARSED_ERRORS = "Errors parsed from dbt logs:"


def ended_early_text(error: Exception | None) -> str:
    """Why dbt ended before writing ``run_results.json``, in words: dbt's own error lines (e.g. DuckDB's "Could
    not set lock on file ... Conflicting lock is held in ... (PID n)", which names who holds the warehouse), read
    from dagster-dbt's error (``error``: `DbtCliInvocation.get_error`). dagster-dbt itself says only
    ``FileNotFoundError: .../run_results.json`` (a trial)."""
    text = str(getattr(error, "description", None) or error or "")
    parsed = text.split(_PARSED_ERRORS, 1)[1] if _PARSED_ERRORS in text else ""
    said: list[str] = []
    for line in parsed.splitlines():  # the messages, without the tracebacks dbt prints after them
        if not line.strip() or line[0].isspace() or line.startswith(("Traceback", "During handling")):
            continue
        if not any(kept in line for kept in said):  # "_duckdb.IOException: IO Error: ..." repeats "IO Error: ..."
            said.append(line.strip())
    where = "see logs/dbt.log, or the step's stdout in the Dagster UI"
    return f"dbt ended before it wrote its results: {' '.join(said)}; {where}" if said else f"dbt ended early; {where}"

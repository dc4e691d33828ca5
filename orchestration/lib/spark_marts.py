"""The marts a Spark build wrote, published as the Parquet files everything after the warehouse reads.

On DuckDB each mart's post-hook (``macros/publish_parquet.sql``) copies it to ``<TAILOR_HOME>/marts/<name>.parquet``;
the checks, the models, the app and the service read those files, never the warehouse. On Spark the post-hook does
nothing: a Spark table is already Parquet, but a folder of parts (``<TAILOR_HOME>/spark/warehouse/marts.db/<name>``,
partition columns in ``name=value`` folder names). So after a Spark build the same marts (those whose post-hook
publishes on DuckDB: one list, read from dbt's manifest) are copied into the same files, with DuckDB: no second
Spark process (Derby, Spark's local metastore, allows one), and milliseconds per mart where a Spark job costs
seconds. Feast on Spark reads the table folders themselves (feature_repo/data_sources.py).

Read back with DuckDB, Spark's tables have the names and types of DuckDB's published marts, with one exception that
the copy corrects: a column the contract types ``timestamp with time zone`` is Spark's TIMESTAMP (an instant), which
DuckDB may read as a naive TIMESTAMP; it is published as DuckDB's TIMESTAMPTZ, read as UTC, like DuckDB's own file
(a naive time is taken for local time by pandas: docs/decisions.md, "Timestamps with a zone"). A partition column
comes last instead of in its model's place; readers select columns by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from tailor.settings import Settings

#: The post-hook macro that publishes a mart on DuckDB (dbt_project/macros/publish_parquet.sql).
PUBLISH_MACRO = "publish_parquet"


@dataclass(frozen=True)
class PublishedMart:
    name: str
    rows: int
    path: Path


#: How a contract spells a time with a zone (DuckDB's names; the Spark target translates them).
UTC_INSTANT_TYPES = frozenset({"timestamp with time zone", "timestamptz"})


def published_marts(manifest: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The tables whose post-hook publishes them (their identifiers, sorted), from a dbt ``manifest.json``, each with
    the columns its contract types as a time with a zone."""
    marts = {}
    for node in manifest["nodes"].values():
        hooks = node.get("config", {}).get("post-hook", [])
        texts = [hook.get("sql", "") if isinstance(hook, dict) else str(hook) for hook in hooks]
        if node["resource_type"] == "model" and any(PUBLISH_MACRO in text for text in texts):
            columns = node.get("columns", {})
            instants = tuple(
                name
                for name, column in columns.items()
                if str(column.get("data_type") or "").strip().lower() in UTC_INSTANT_TYPES
            )
            marts[str(node.get("alias") or node["name"])] = instants
    return dict(sorted(marts.items()))


def publish_spark_marts(settings: Settings, marts: Mapping[str, Sequence[str]]) -> list[PublishedMart]:
    """Copy each Spark table of the marts schema to ``<marts_dir>/<name>.parquet`` (zstd, as on DuckDB).

    Args:
        settings: the Tailor home.
        marts: table name -> the columns to publish as TIMESTAMPTZ (UTC) when DuckDB reads them without a zone.

    Each file is written beside its final name and renamed over it: a reader never sees half a file.

    Raises:
        FileNotFoundError: a named table has no folder (the Spark build did not write it); the message names it.
    """
    missing = [name for name in marts if not (settings.spark_marts_dir / name).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"the Spark build wrote no table for {', '.join(missing)} under {settings.spark_marts_dir}: "
            "run the whole dbt build on Spark first (TAILOR_ENGINE=spark tailor run)"
        )
    settings.marts_dir.mkdir(parents=True, exist_ok=True)
    done = []
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        for name, instants in marts.items():
            target = settings.marts_dir / f"{name}.parquet"
            partial = target.with_name(target.name + ".partial")
            scan = f"read_parquet({_literal(str(settings.spark_marts_dir / name / '**' / '*.parquet'))}, "
            scan += "hive_partitioning = true)"
            types = dict(
                con.execute(f"select column_name, column_type from (describe select * from {scan})").fetchall()
            )
            naive = [c for c in instants if types.get(c) == "TIMESTAMP"]
            # Session time zone UTC: a naive time cast to TIMESTAMPTZ is read as UTC.
            replaced = f" replace ({', '.join(f'cast({_name(c)} as timestamptz) as {_name(c)}' for c in naive)})"
            con.execute(
                f"copy (select *{replaced if naive else ''} from {scan}) "
                f"to {_literal(str(partial))} (format parquet, compression zstd)"
            )
            partial.replace(target)
            rows = con.execute(f"select count(*) from read_parquet({_literal(str(target))})").fetchone()
            done.append(PublishedMart(name, int(rows[0]) if rows else 0, target))
    return done


def read_manifest(path: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

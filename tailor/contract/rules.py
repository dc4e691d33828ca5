"""Render the contract's row checks from the dbt macros, so ingestion and the warehouse judge rows alike.

The checks live once, in ``dbt_project/macros/contract/*.sql``, written in plain Jinja and DuckDB SQL from the field
rules that `tailor.contract.spec` reads out of the published JSON Schemas. dbt calls them in the staging models;
``tailor ingest`` renders the same files with jinja2 to report, before any run, how many rows the warehouse will
quarantine and why.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2
import yaml

from tailor.contract.spec import Kind, schema_path
from tailor.settings import DBT_PROJECT_DIR

KINDS: tuple[Kind, ...] = ("events", "users", "content")

_MACRO_DIR = DBT_PROJECT_DIR / "macros" / "contract"

__all__ = ["KINDS", "Kind", "classify_sql", "future_tolerance_hours", "schema_path"]


@cache
def future_tolerance_hours() -> int:
    """The `future_tolerance_hours` var of dbt_project.yml: one setting for dbt and for ingestion."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return int(project["vars"]["future_tolerance_hours"])


@cache
def _macro_module() -> Any:
    """Every macro of ``macros/contract/`` in one jinja2 module, with dbt's ``fromjson`` (the one dbt function used)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals["fromjson"] = json.loads
    source = "\n".join(path.read_text() for path in sorted(_MACRO_DIR.glob("*.sql")))
    return env.from_string(source).module


def classify_sql(kind: Kind, relation: str) -> str:
    """SQL that classifies every row of ``relation`` (landing columns) with reject_reason and reject_detail."""
    module = _macro_module()
    if kind == "events":
        return str(module.classify_events(relation, future_tolerance_hours()))
    return str(getattr(module, f"classify_{kind}")(relation))

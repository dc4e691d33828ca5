"""Render the contract's row checks from the dbt macros, so ingestion and the warehouse judge rows alike.

The checks live once, in ``dbt_project/macros/contract/*.sql``, written in plain Jinja and DuckDB SQL. dbt calls
them in the staging models; ``tailor ingest`` renders the same files with jinja2 to report, before any run, how
many rows the warehouse will quarantine and why.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml

from tailor.settings import DBT_PROJECT_DIR

Kind = Literal["events", "users", "content"]
KINDS: tuple[Kind, ...] = ("events", "users", "content")

_CONTRACT_DIR = Path(__file__).resolve().parent
_MACRO_DIR = DBT_PROJECT_DIR / "macros" / "contract"
_MACROS: dict[Kind, tuple[str, str]] = {
    "events": ("classify_events.sql", "classify_events"),
    "users": ("classify_dimension.sql", "classify_users"),
    "content": ("classify_dimension.sql", "classify_content"),
}


def schema_path(kind: Kind) -> Path:
    """Path of the published JSON Schema for one kind of file."""
    name = {"events": "event", "users": "user", "content": "content"}[kind]
    return _CONTRACT_DIR / f"{name}.schema.json"


@cache
def future_tolerance_hours() -> int:
    """The `future_tolerance_hours` var of dbt_project.yml: one setting for dbt and for ingestion."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return int(project["vars"]["future_tolerance_hours"])


@cache
def _macro_module(filename: str) -> Any:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string((_MACRO_DIR / filename).read_text()).module


def classify_sql(kind: Kind, relation: str) -> str:
    """SQL that classifies every row of ``relation`` (landing columns) with reject_reason and reject_detail."""
    filename, macro = _MACROS[kind]
    render = getattr(_macro_module(filename), macro)
    if kind == "events":
        return str(render(relation, future_tolerance_hours()))
    return str(render(relation))

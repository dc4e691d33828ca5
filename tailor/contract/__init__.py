"""The event contract: JSON Schemas (published) and the row checks (one dbt macro, rendered here too)."""

from tailor.contract.rules import KINDS, classify_sql, schema_path

__all__ = ["KINDS", "classify_sql", "schema_path"]

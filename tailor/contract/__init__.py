"""The event contract: JSON Schemas (published) and the row checks (one dbt macro, rendered here too)."""

from tailor.contract.ids import MAX_ID_LENGTH, user_id_problem
from tailor.contract.rules import KINDS, classify_sql, schema_path

__all__ = ["KINDS", "MAX_ID_LENGTH", "classify_sql", "schema_path", "user_id_problem"]

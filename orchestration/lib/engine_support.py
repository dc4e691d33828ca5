"""What the asset graph cannot run yet on each engine (TAILOR_ENGINE), in one place.

`tailor run` refuses an engine with something listed here before it starts, and the warehouse asset refuses it too
(a run started from the Dagster UI), both with `refusal()`. Everything else in the graph follows the engine: dbt's
target and build arguments (orchestration/lib/dbt.py), Spark's marts published as Parquet after the build
(orchestration/lib/spark_marts.py), Feast's offline store and sources (tailor/feature_store.py, feature_repo/).
docs/scaling_out.md says what runs on Spark and how it is tested.
"""

from __future__ import annotations

from tailor.settings import Engine

#: Pieces of the graph an engine cannot run yet, in words; an empty tuple: `tailor run` runs everything on it.
NOT_SUPPORTED_YET: dict[Engine, tuple[str, ...]] = {
    "duckdb": (),
    # The whole graph runs on Spark (tests/integration/test_spark_parity.py runs `TAILOR_ENGINE=spark tailor run`).
    "spark": (),
}


def refusal(engine: Engine) -> str | None:
    """Why the whole graph cannot run on ``engine`` yet, in one message; None when it can."""
    missing = NOT_SUPPORTED_YET[engine]
    if not missing:
        return None
    return (
        f"TAILOR_ENGINE={engine}: `tailor run` cannot run the whole graph on {engine} yet: {'; '.join(missing)}. "
        "docs/scaling_out.md says what runs on it and how. Unset TAILOR_ENGINE to run everything on duckdb"
    )

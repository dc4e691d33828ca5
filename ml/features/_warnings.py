"""Silence three known, harmless warnings of the Feast stack, so that real ones stand out in `tailor run` and pytest.

Feast puts its own "once" filters in front of every other filter when it is imported, so these must be added
after Feast is imported (the package does it at the end of its __init__).
"""

import warnings

_NOISE = (
    # dagster-dbt pulls sqlglot[rs]; sqlglot warns on import that the Rust tokenizer is deprecated (sqlglotc is used).
    (r".*sqlglotrs is deprecated", DeprecationWarning),
    # ibis 12 calls a DuckDB 2.0 method that DuckDB has renamed; the result is the same.
    (r"fetch_arrow_table\(\) is deprecated", DeprecationWarning),
    # Feast flags on-demand feature views as experimental on every use; ours are tested online and offline.
    (r"On demand feature view is an experimental feature", RuntimeWarning),
)


def silence_known_noise() -> None:
    for message, category in _NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)

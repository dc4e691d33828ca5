"""Every ``TAILOR_*`` environment variable Tailor reads, and a check for ones it does not.

Each part of Tailor reads its own variables where it is configured (`tailor.settings`, `ml.ranker.config`,
`ml.monitoring.config`, `ml.recommend`, `service.config`, the Makefile and the tests). A misspelled name
(``..._SEARCH_TRAILS=3`` for ``TAILOR_RANKER_SEARCH_TRIALS``) is read by nothing, so without this check the run
silently uses the default. `unknown_variables` names each ``TAILOR_*`` variable that is not in `KNOWN` with the
closest known name; the `tailor` command prints them before it starts. tests/unit/test_environment.py keeps
`KNOWN` equal to what the code reads (each configuration class's fields and every name written in the source).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

PREFIX = "TAILOR_"

#: The families of variables read as ``<family><FIELD>`` by a configuration class, with their fields.
FAMILIES: dict[str, tuple[str, ...]] = {
    # ml.ranker.config.RankerConfig.from_env
    "TAILOR_RANKER_": (
        "train_days",
        "warmup_days",
        "tune_days",
        "calibration_days",
        "test_days",
        "search_trials",
        "search_timeout_s",
        "max_iter",
        "eval_users",
        "seed",
    ),
    # ml.monitoring.config.DriftConfig.from_env and RetrainPolicy.from_env
    "TAILOR_DRIFT_": ("warn", "fail", "bins", "epsilon", "alpha"),
    "TAILOR_RETRAIN_": ("max_age_days", "new_days"),
    # ml.recommend.rules.PageRules.from_env, and the model path's budget (ml.recommend.serving.ServingConfig)
    "TAILOR_RECOMMEND_": (
        "budget_ms",
        "max_per_category",
        "max_personalized",
        "explore_slots",
        "explore_position",
        "explore_pool",
    ),
    # service.config.ServiceConfig.from_env, and the workers' metrics folder (service.metrics)
    "TAILOR_SERVICE_": (
        "deadline_ms",
        "max_k",
        "max_body_bytes",
        "max_events",
        "body_timeout_s",
        "landing_wait_s",
        "private_max_age_s",
        "page_window_s",
        "public_max_age_s",
        "public_s_maxage_s",
        "reload_check_s",
        "max_connections",
        "threads",
        "cors_origins",
        "stream",
        "metrics_dir",
    ),
}

#: Variables read by name.
SINGLE: tuple[str, ...] = (
    "TAILOR_HOME",  # tailor.settings: where everything lives
    "TAILOR_ENGINE",  # tailor.settings: duckdb | spark
    "TAILOR_DBT_TARGET",  # orchestration.lib.engine_support: a dbt target of profiles.yml
    "TAILOR_TRAINING_WINDOW_DAYS",  # tailor.settings
    "TAILOR_TRAINING_MAX_IMPRESSIONS_PER_DAY",  # tailor.settings
    "TAILOR_REDIS_URL",  # tailor.stream.config: the event stream
    "TAILOR_FEAST_REDIS",  # feature_repo/feature_store.redis.yaml: the Redis online store
    "TAILOR_FEAST_TYPECHECKS",  # tailor.feast_typechecks
    "TAILOR_CHROMIUM",  # app.browser: the browser for the app's screenshots
    "TAILOR_DAGSTER_DIR",  # set by tailor.settings for Dagster (dagster.yaml's storage)
    "TAILOR_DAGSTER_LOGS",  # set by tailor.settings for Dagster (compute logs)
    "TAILOR_SPARK_LOG",  # set by orchestration.lib.runner for Spark's log4j2 file
    "TAILOR_TEST_WORKERS",  # Makefile: pytest workers
    "TAILOR_REQUIRE_SERVICES",  # tests: fail instead of skipping without Redis or chromium
    "TAILOR_PIP_PYTHON",  # bench/bench_movielens.py: a Python with pip to fetch the dataset's wheel
    "TAILOR_CACHE_DIR",  # bench/bench_movielens.py: where the dataset is cached
)

#: Variables that switch something on: 1/true/yes/on (any case), or 0/false/no/off or empty for off.
FLAGS: tuple[str, ...] = ("TAILOR_FEAST_TYPECHECKS", "TAILOR_REQUIRE_SERVICES")
_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})

KNOWN: frozenset[str] = frozenset(
    [*SINGLE, *(family + field.upper() for family, fields in FAMILIES.items() for field in fields)]
)


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One message per ``TAILOR_*`` variable in ``env`` that no part of Tailor reads, sorted by name.

    Each names the closest known variable when one is close (difflib's ratio of at least 0.8: a letter or two
    apart), else the family the name starts with, else points to the list in docs/configuration.md.

    Returns:
        Messages such as ``"<name> is not a Tailor setting and is ignored: did you mean
        TAILOR_RANKER_SEARCH_TRIALS?"``; empty when every ``TAILOR_*`` name is known.
    """
    messages = []
    for name in sorted(n for n in env if n.startswith(PREFIX) and n not in KNOWN):
        close = difflib.get_close_matches(name, KNOWN, n=1, cutoff=0.8)
        family = next((f for f in FAMILIES if name.startswith(f)), None)
        if close:
            hint = f"did you mean {close[0]}?"
        elif family:
            fields = ", ".join(family + field.upper() for field in FAMILIES[family])
            hint = f"the {family}* settings are {fields}"
        else:
            hint = "docs/configuration.md lists the settings"
        messages.append(f"{name} is not a Tailor setting and is ignored: {hint}")
    return messages


def flag(env: Mapping[str, str], name: str) -> bool:
    """Whether the flag ``name`` is on in ``env`` (1/true/yes/on, any case); any other value is off, and
    `flag_warnings` names a value that is neither."""
    return env.get(name, "").strip().lower() in _ON


def flag_warnings(env: Mapping[str, str]) -> list[str]:
    """One message per flag in `FLAGS` whose value is neither on nor off (``TAILOR_FEAST_TYPECHECKS=ture``)."""
    return [
        f"{name}={env[name]!r} is neither on (1, true, yes, on) nor off (0, false, no, off, empty): it counts as off"
        for name in FLAGS
        if name in env and env[name].strip().lower() not in _ON | _OFF
    ]


def import_sqlglotrs_quietly() -> None:
    """Import sqlglot's Rust tokenizer with its DeprecationWarning silenced, before Feast can show it.

    sqlglot (which Feast's ibis and dagster-dbt import) warns once at import that sqlglotrs is deprecated; Feast has
    by then put a "once" filter for every DeprecationWarning in front of any other, so the notice reached every
    `tailor recommend`, and every worker process of `tailor serve --workers N` (a trial). The module only warns
    (0.5 ms): imported here first, quietly, it is done. Absent, nothing happens.
    """
    import contextlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with contextlib.suppress(ImportError):
            import sqlglotrs  # noqa: F401

"""Open Tailor's Feast feature store for one Tailor home, with the online store the configuration selects.

`feature_repo/feature_store.yaml` (SQLite online, DuckDB offline) is the default; ``TAILOR_ENGINE=spark`` selects
`feature_repo/feature_store.spark.yaml` (Feast's Spark offline store; the repo's sources become SparkSources over
Spark's tables), and Feast's own ``FEAST_FS_YAML_FILE_PATH`` selects any other file, e.g.
`feature_repo/feature_store.redis.yaml`, as long as its offline store is the engine's. The files refer to
``${TAILOR_HOME}`` and other variables; the plain `feast` CLI substitutes them from the environment, and so does this
module, except that TAILOR_HOME comes from the Settings passed in: two homes can be open in one process (tests do
that) without touching ``os.environ``.

Feast is imported only where a Feast object is made: importing it costs seconds, and callers that only need to
know which files the configuration names (e.g. to decide that nothing changed since the last `feast apply`) should
not pay for it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tailor.settings import FEATURE_REPO_DIR, TELEMETRY_OFF, Engine, Settings, engine_from_env

if TYPE_CHECKING:
    from feast import FeatureStore, RepoConfig

#: Feast's variable naming the feature_store.yaml to use; the `feast` CLI and `FeatureStore()` honour it too.
FEAST_YAML_ENV = "FEAST_FS_YAML_FILE_PATH"
_VARIABLE = re.compile(r"\$\{(\w+)\}")
#: The configuration each engine uses when FEAST_FS_YAML_FILE_PATH is not set, and the offline store it must name.
ENGINE_YAML: dict[Engine, str] = {"duckdb": "feature_store.yaml", "spark": "feature_store.spark.yaml"}
ENGINE_OFFLINE_STORE: dict[Engine, str] = {"duckdb": "duckdb", "spark": "spark"}


class FeatureStoreConfigError(ValueError):
    """The feature store configuration cannot be used as it stands (a missing file or variable)."""


def feature_store_yaml(engine: Engine | None = None) -> Path:
    """The configuration in use: ``$FEAST_FS_YAML_FILE_PATH`` when set, else the engine's file in feature_repo/
    (`feature_store.yaml` for duckdb, `feature_store.spark.yaml` for spark).

    Args:
        engine: the warehouse engine (default: ``TAILOR_ENGINE``).

    Raises:
        FeatureStoreConfigError: the named file does not exist.
        ValueError: ``TAILOR_ENGINE`` names no engine (only when ``engine`` is not given).
    """
    engine = engine or engine_from_env()
    configured = os.environ.get(FEAST_YAML_ENV)
    path = Path(configured).expanduser().resolve() if configured else FEATURE_REPO_DIR / ENGINE_YAML[engine]
    if not path.is_file():
        raise FeatureStoreConfigError(
            f"{FEAST_YAML_ENV} names {path}, which does not exist: point it at a feature_store*.yaml file "
            f"(e.g. {FEATURE_REPO_DIR / 'feature_store.redis.yaml'}) or unset it for the SQLite default."
        )
    return path


def _substitute(text: str, variables: Mapping[str, str], source: Path) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise FeatureStoreConfigError(
                f"{source.name} uses ${{{name}}}, which is not set: export {name} "
                "(see feature_repo/README.md for what it means)."
            )
        return variables[name]

    return _VARIABLE.sub(value, text)


def config_dict(settings: Settings, yaml_path: Path | None = None) -> dict[str, Any]:
    """The configuration file as a plain mapping, with ``${...}`` filled in (no Feast import; Feast validates it).

    Raises:
        FeatureStoreConfigError: the file named does not exist, a variable it uses is not set, its offline store
            is not the engine's (the repo's sources are FileSources for duckdb and SparkSources for spark: the two
            must agree), or its Redis online store's address is not HOST:PORT.
    """
    path = yaml_path or feature_store_yaml(settings.engine)
    variables = {**os.environ, "TAILOR_HOME": str(settings.home)}
    text = path.read_text()
    raw: dict[str, Any] = yaml.safe_load(_substitute(text, variables, path))
    offline = str((raw.get("offline_store") or {}).get("type", "dask"))  # Feast's default offline store
    expected = ENGINE_OFFLINE_STORE[settings.engine]
    if (offline == "spark") != (expected == "spark"):
        raise FeatureStoreConfigError(
            f"TAILOR_ENGINE={settings.engine} reads features with Feast's {expected} offline store, but {path} "
            f"names offline_store type {offline!r}: use {FEATURE_REPO_DIR / ENGINE_YAML[settings.engine]} (unset "
            f"{FEAST_YAML_ENV}), or copy its offline_store block into {path.name}."
        )
    _check_redis(raw, path, "${TAILOR_FEAST_REDIS}" in text)
    return raw


def _check_redis(raw: Mapping[str, Any], path: Path, from_variable: bool) -> None:
    """Refuse a Redis online store whose ``connection_string`` Feast would fail on later, deep in a run or as a
    bare ValueError inside a request (a trial: empty, and ``127.0.0.1:abc``): it must be ``HOST:PORT`` entries
    (several for a cluster) and ``name=value`` options, comma-separated (Feast's RedisOnlineStoreConfig).
    ``from_variable``: the file takes the address from ``${TAILOR_FEAST_REDIS}``, which the message then names."""
    store = raw.get("online_store") or {}
    if not isinstance(store, Mapping) or str(store.get("type")) != "redis":
        return
    text = str(store.get("connection_string") or "").strip()
    source = "TAILOR_FEAST_REDIS" if from_variable else f"connection_string in {path}"
    example = "e.g. 127.0.0.1:6379 or 127.0.0.1:6379,db=1 (feature_repo/README.md)"
    if not text:
        raise FeatureStoreConfigError(
            f"{source} is empty: set the Redis online store's address as HOST:PORT, {example}"
        )
    for part in (p.strip() for p in text.split(",")):
        if "=" in part:  # an option: password=..., ssl=true, db=1
            continue
        host, _, port = part.rpartition(":")  # Feast splits on ":": one colon, no scheme, no IPv6 literal
        if part.count(":") != 1 or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise FeatureStoreConfigError(
                f"{source}={text!r}: {part!r} is not HOST:PORT with a port from 1 to 65535; use {example}"
            )


def feature_store_problem(settings: Settings) -> str | None:
    """Why the feature store configuration in use cannot work for this home, in words (a missing file or variable,
    an offline store of another engine, a Redis address Feast cannot read); None when it can. No Feast import:
    commands say it before they start work, instead of a traceback (or a whole dbt build) later."""
    try:
        config_dict(settings)
    except FeatureStoreConfigError as exc:
        return str(exc)
    return None


def load_config(settings: Settings, yaml_path: Path | None = None) -> RepoConfig:
    """The Feast configuration for this home, with ``${...}`` filled in."""
    silence_known_noise()  # before Feast's imports too: they import sqlglot
    from feast import RepoConfig

    config = RepoConfig(**config_dict(settings, yaml_path))
    # After Feast's imports, which put their own filters first: Feast's, and (building the config imports it) its
    # Spark offline store's, which puts a RuntimeWarning "once" filter in front of everything.
    silence_known_noise()
    config.repo_path = FEATURE_REPO_DIR
    return config


def open_store(settings: Settings, yaml_path: Path | None = None) -> FeatureStore:
    """The feature store of this Tailor home. Run `feast apply` (or the Dagster asset) first to register views."""
    silence_known_noise()  # before Feast's imports too: they import sqlglot
    from feast import FeatureStore

    return FeatureStore(repo_path=str(FEATURE_REPO_DIR), config=load_config(settings, yaml_path))


def feast_env(settings: Settings) -> dict[str, str]:
    """Environment for a `feast` subprocess working on this home: the home, the engine (the repo's sources follow
    it) and the configuration in use (a FEAST_FS_YAML_FILE_PATH already set, else the engine's file)."""
    return {
        **TELEMETRY_OFF,
        "TAILOR_HOME": str(settings.home),
        "TAILOR_ENGINE": settings.engine,
        FEAST_YAML_ENV: str(feature_store_yaml(settings.engine)),
    }


def online_store_type(settings: Settings) -> str:
    """`sqlite` or `redis`: which online store the configuration in use selects."""
    return str(load_config(settings).online_store.type)


# Known, harmless warnings of the Feast stack, silenced so that real ones stand out in `tailor run` and pytest.
# Feast puts its own "once" filters in front of every other filter when it is imported, so these must be added
# after Feast is imported (load_config does it, so every store opened here is quiet).
# dagster-dbt pulls sqlglot[rs]; sqlglot warns on import that the Rust tokenizer is deprecated (sqlglotc is used).
_SQLGLOTRS = (r".*sqlglotrs is deprecated", DeprecationWarning)
_NOISE = (
    _SQLGLOTRS,
    # dagster-dbt 0.29 reads `context.op` itself on every dbt step (nothing a user can act on).
    (r"AssetExecutionContext\.op is deprecated", DeprecationWarning),
    # ibis 12 calls a DuckDB 2.0 method that DuckDB has renamed; the result is the same.
    (r"fetch_arrow_table\(\) is deprecated", DeprecationWarning),
    # Feast flags on-demand feature views as experimental on every use; ours are tested online and offline.
    (r"On demand feature view is an experimental feature", RuntimeWarning),
    # Feast flags its Spark source and offline store as alpha on every use; TAILOR_ENGINE=spark is tested against
    # DuckDB's (tests/integration/test_spark_parity.py).
    (r"The spark (data source API|offline store) is an experimental feature", RuntimeWarning),
)


def silence_known_noise() -> None:
    """Put the `_NOISE` filters in front, and import sqlglot (if not yet) with its import-time warning ignored:
    sqlglot imports sqlglotrs, which warns once, at import, and Feast's own "once" filter would show it whatever
    the order of filters later (found in a benchmark's output)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SQLGLOTRS[0], category=_SQLGLOTRS[1])
        import sqlglot  # noqa: F401
    for message, category in _NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)

"""What the asset graph cannot run yet on each engine (TAILOR_ENGINE), and which engine built a home, in one place.

`tailor run` refuses an engine with something listed here before it starts, and the warehouse asset refuses it too
(a run started from the Dagster UI), both with `refusal()`. Everything else in the graph follows the engine: dbt's
target and build arguments (orchestration/lib/dbt.py), Spark's marts published as Parquet after the build
(orchestration/lib/spark_marts.py), Feast's offline store and sources (tailor/feature_store.py, feature_repo/).
docs/scaling_out.md says what runs on Spark and how it is tested.

A home holds one engine's warehouse: `tailor run` refuses to build a home with another engine than the one that
built it (`engine_switch_refusal`), as `tailor recommend` refuses to read features registered for another engine
(`ml.features.repo.engine_mismatch`), both naming the engine to set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tailor.settings import DBT_PROJECT_DIR, ENGINES, Engine, EngineNotInstalledError, Settings, require_engine

#: Pieces of the graph an engine cannot run yet, in words; an empty tuple: `tailor run` runs everything on it.
NOT_SUPPORTED_YET: dict[Engine, tuple[str, ...]] = {
    "duckdb": (),
    # The whole graph runs on Spark (tests/integration/test_spark_parity.py runs `TAILOR_ENGINE=spark tailor run`).
    "spark": (),
}


def refusal(engine: Engine) -> str | None:
    """Why the whole graph cannot run on ``engine`` here, in one message: its optional packages are not installed
    (spark: the `spark` extra, which `make install` leaves out; a trial got a 49-line traceback after "Running every
    asset"), or a piece of the graph it cannot run yet; None when it can."""
    try:
        require_engine(engine)
    except EngineNotInstalledError as exc:
        return str(exc)
    missing = NOT_SUPPORTED_YET[engine]
    if not missing:
        return None
    return (
        f"TAILOR_ENGINE={engine}: `tailor run` cannot run the whole graph on {engine} yet: {'; '.join(missing)}. "
        "docs/scaling_out.md says what runs on it and how. Unset TAILOR_ENGINE to run everything on duckdb"
    )


def dbt_target_refusal(engine: Engine = "duckdb", env: Mapping[str, str] | None = None) -> str | None:
    """Why dbt cannot run with ``TAILOR_DBT_TARGET`` on ``engine``, in words; None when the variable is unset or
    names a target it may use.

    - It names no output of dbt_project/profiles.yml: dbt stops before building anything then, and says why only in
      its log ("does not have a target named ..."), while the run failed on the run_results.json it never wrote.
    - It names a target of another of Tailor's engines (a ``spark`` target with TAILOR_ENGINE=duckdb): dbt would
      build that engine's warehouse while everything after dbt (the published marts, Feast's offline store, the
      home's engine check) follows TAILOR_ENGINE. A trial's run built a Spark warehouse in a DuckDB home for eight
      minutes, published nothing, and left the home counted as built by both engines, so the check that keeps a
      home to one engine let everything through from then on.

    A target of another adapter (a team's own warehouse, e.g. Postgres) is left to run: docs/scaling_out.md.
    """
    import yaml

    target = (os.environ if env is None else env).get("TAILOR_DBT_TARGET", "").strip()
    if not target:  # unset or empty: TAILOR_ENGINE's target (dbt_project/profiles.yml)
        return None
    profiles = DBT_PROJECT_DIR / "profiles.yml"
    outputs = (yaml.safe_load(profiles.read_text()).get("tailor") or {}).get("outputs") or {}
    if target not in outputs:
        return (
            f"TAILOR_DBT_TARGET={target!r} names no dbt target: {profiles} has {', '.join(sorted(outputs))}. Set it "
            f"to one of them (or add an output named {target!r} there), or unset it for TAILOR_ENGINE's target"
        )
    adapter = str((outputs[target] or {}).get("type", "")).strip().lower()
    if adapter in ENGINES and adapter != engine:
        return (
            f"TAILOR_DBT_TARGET={target!r} is a {adapter} target, but TAILOR_ENGINE is {engine}: the marts, the "
            f"feature store and this home's engine follow TAILOR_ENGINE, so dbt must build with it. To run on "
            f"{adapter}, set TAILOR_ENGINE={adapter} and unset TAILOR_DBT_TARGET (docs/scaling_out.md); to stay on "
            f"{engine}, unset TAILOR_DBT_TARGET"
        )
    return None


#: Spark 4 runs on Java 17 or later (its "Downloading" page); older runtimes fail inside the JVM's start.
SPARK_JAVA_MIN = 17


def java_refusal(engine: Engine, env: Mapping[str, str] | None = None) -> str | None:
    """Why Spark cannot start on this machine, in words: no Java runtime where pyspark looks for one (JAVA_HOME's
    ``bin/java``, else ``java`` on PATH), or one older than `SPARK_JAVA_MIN`; None when it can, or for duckdb.

    Without it Spark fails after half a minute with "Java gateway process exited before sending its port number",
    the cause only in dbt's log (a trial: JAVA_HOME=/nonexistent)."""
    import shutil
    import subprocess

    if engine != "spark":
        return None
    env = os.environ if env is None else env
    install = "install Java 17 (e.g. `apt-get install -y openjdk-17-jre-headless`)"
    java_home = env.get("JAVA_HOME", "").strip()
    java: str | None
    if java_home:
        java = str(Path(java_home) / "bin" / "java")
        if not os.access(java, os.X_OK):
            return (
                f"TAILOR_ENGINE=spark needs Java {SPARK_JAVA_MIN}+, but JAVA_HOME={java_home} has no bin/java: point "
                f"JAVA_HOME at a Java {SPARK_JAVA_MIN}+ runtime, unset it to use the `java` on PATH, or {install}"
            )
    else:
        java = shutil.which("java", path=env.get("PATH"))
        if java is None:
            return f"TAILOR_ENGINE=spark needs Java {SPARK_JAVA_MIN}+, and no `java` is on PATH: {install}"
    try:
        shown = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"TAILOR_ENGINE=spark needs Java {SPARK_JAVA_MIN}+, and {java} -version failed ({exc}): {install}"
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown.stderr + shown.stdout)
    if found is None:
        return None  # a runtime that words its version otherwise: let Spark judge it
    major = int(found.group(1)) if found.group(1) != "1" else int(found.group(2) or 0)  # "1.8.0" is Java 8
    if major < SPARK_JAVA_MIN:
        return f"TAILOR_ENGINE=spark needs Java {SPARK_JAVA_MIN}+, and {java} is Java {major}: {install}"
    return None


def build_refusal(settings: Settings) -> str | None:
    """Why this home must not be built with its engine now, in one message (`refusal`, `engine_switch_refusal`,
    `dbt_target_refusal`, `java_refusal`, in that order); None when it may. `tailor run` says it before it starts,
    the warehouse asset when a run came from the UI, a schedule or a sensor."""
    return (
        refusal(settings.engine)
        or engine_switch_refusal(settings)
        or dbt_target_refusal(settings.engine)
        or java_refusal(settings.engine)
    )


def serving_refusal(settings: Settings) -> str | None:
    """Why this home's features cannot be served with the configuration in use, in one message: the engine's
    packages (`refusal`), a home another engine built (its features are not this engine's: `engine_switch_refusal`),
    or a feature store configuration that cannot work (`feature_store_problem`: a traceback, or a Redis address read
    as a store that is down, found by trials); None when they can. `recommend` and `serve` say it before any work."""
    from tailor.feature_store import feature_store_problem

    return refusal(settings.engine) or engine_switch_refusal(settings) or feature_store_problem(settings)


def warehouse_of(settings: Settings, engine: Engine) -> Path:
    """Where ``engine`` keeps this home's warehouse: DuckDB's file, or Spark's folder of tables (and metastore)."""
    return settings.warehouse if engine == "duckdb" else settings.spark_dir / "warehouse"


def built_engines(settings: Settings) -> list[Engine]:
    """The engines whose warehouse this home holds (in `ENGINES` order); empty before the first build."""
    return [engine for engine in ENGINES if warehouse_of(settings, engine).exists()]


def engine_switch_refusal(settings: Settings) -> str | None:
    """Why `tailor run` must not build this home with ``settings.engine``, in words; None when it may.

    It may not when the home's warehouse was built by another engine only. Running anyway would build a second
    warehouse from the landed files beside the first, publish its marts over the other's and register the features
    for both engines, so the home would answer differently depending on TAILOR_ENGINE: a silent switch. The message
    names both engines, the one to set for this home, and how to build the other engine's home from the same files.
    A home both engines have built already (before this check) is left to run.
    """
    built = built_engines(settings)
    if not built or settings.engine in built:
        return None
    other, wanted = built[0], settings.engine
    return (
        f"this home's warehouse was built with TAILOR_ENGINE={other} ({warehouse_of(settings, other)}), not "
        f"{wanted}: set TAILOR_ENGINE={other} for every command on it. To build the same events with {wanted}, "
        f"give {wanted} a home of its own from this home's landed files (this home stays as it is): "
        f"`mkdir <new home> && cp -r {settings.landing} <new home>/landing`, then "
        f"`TAILOR_HOME=<new home> TAILOR_ENGINE={wanted} tailor run` (docs/scaling_out.md)"
    )

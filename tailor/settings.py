"""Where Tailor keeps its data, resolved in one place.

Every path the project uses derives from ``TAILOR_HOME`` (default ``./data``, resolved against the current
directory), so one variable moves the whole installation: landing zone, warehouse, published marts and the
Dagster instance. ``TAILOR_ENGINE`` (duckdb | spark) picks the engine dbt builds the warehouse with
(docs/scaling_out.md). Nothing here touches the disk at import time.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
FEATURE_REPO_DIR = REPO_ROOT / "feature_repo"

#: The ranking training set holds the newest this many UTC days of impressions (TAILOR_TRAINING_WINDOW_DAYS).
#: 21 gives the ranker 15 days to train on before its tune, calibration and test days (6 in all), and leaves out
#: the demo's first week, whose 28-day features have not filled yet (docs/decisions.md, "Training data").
DEFAULT_TRAINING_WINDOW_DAYS = 21
#: ...each day sampled by whole request to about this many impressions (TAILOR_TRAINING_MAX_IMPRESSIONS_PER_DAY;
#: 0 = every impression). The demo (~14k a day) and 1M events (~27k) are not sampled; at 10M events (~300k a day)
#: it keeps the training set near a million rows, which is what a 2-core training run can use.
DEFAULT_TRAINING_MAX_IMPRESSIONS_PER_DAY = 50_000

#: The SQL engines the dbt project runs on (TAILOR_ENGINE). duckdb: one embedded file, the default. spark: Apache Spark
#: (local mode here, a cluster by changing the dbt profile), from the optional `spark` extra (docs/scaling_out.md).
Engine = Literal["duckdb", "spark"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark")
DEFAULT_ENGINE: Engine = "duckdb"
SPARK_INSTALL_HINT = "make install-spark"

# Environment variables every tool we drive must see: the machines have no internet, and a blocked
# telemetry call slows or hangs a run.
TELEMETRY_OFF = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DAGSTER_DISABLE_TELEMETRY": "true",
    "FEAST_USAGE": "False",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
}


@dataclass(frozen=True)
class Settings:
    """Resolved paths for one Tailor home, and the few settings read from the environment with them."""

    home: Path
    #: Days of impressions in the ranking training set (the newest); see DEFAULT_TRAINING_WINDOW_DAYS.
    training_window_days: int = DEFAULT_TRAINING_WINDOW_DAYS
    #: Impressions per day in the training set at most (about; None = all); see the default's comment.
    training_max_impressions_per_day: int | None = DEFAULT_TRAINING_MAX_IMPRESSIONS_PER_DAY
    #: The engine dbt builds the warehouse with (TAILOR_ENGINE); selects the dbt target in dbt_project/profiles.yml.
    engine: Engine = DEFAULT_ENGINE

    @property
    def inbox(self) -> Path:
        """Files dropped here are picked up by the sensor and by ``tailor run``."""
        return self.home / "inbox"

    @property
    def landing(self) -> Path:
        """Validated, immutable Parquet batches (one folder per source)."""
        return self.home / "landing"

    @property
    def landing_manifest(self) -> Path:
        return self.landing / "_manifest.jsonl"

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def warehouse(self) -> Path:
        """The DuckDB file dbt builds. One writer at a time: readers use ``marts_dir``."""
        return self.warehouse_dir / "tailor.duckdb"

    @property
    def spark_dir(self) -> Path:
        """Spark's warehouse folder and Derby metastore (engine spark only; one Spark process at a time)."""
        return self.home / "spark"

    @property
    def spark_marts_dir(self) -> Path:
        """Spark's tables of the marts schema, one folder of Parquet parts per table (engine spark only)."""
        return self.spark_dir / "warehouse" / "marts.db"

    @property
    def marts_dir(self) -> Path:
        """Marts published as Parquet for Feast, the app and anyone else who reads."""
        return self.home / "marts"

    @property
    def feast_dir(self) -> Path:
        """Feast's registry and SQLite online store (feature_repo/feature_store.yaml points here)."""
        return self.home / "feast"

    @property
    def training_dir(self) -> Path:
        """Training sets built from the feature store, as Parquet."""
        return self.home / "training"

    @property
    def models_dir(self) -> Path:
        """Trained models: the MLflow registry (mlflow.db, artifacts/), Optuna studies, fitted candidate sets."""
        return self.home / "models"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def run_summary(self) -> Path:
        """The last runs, checks and materializations, published by the orchestration layer for readers that do not
        open the Dagster instance (orchestration/lib/run_summary.py)."""
        return self.dagster_home / "run_summary.json"

    def dagster_env(self) -> dict[str, str]:
        """Environment for Dagster: the repo's dagster.yaml, with storage under this home.

        A DAGSTER_HOME already set (a team's own instance, e.g. on a cluster) is kept.
        """
        return {
            **TELEMETRY_OFF,
            "TAILOR_HOME": str(self.home),
            "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(REPO_ROOT)),
            "TAILOR_DAGSTER_DIR": str(self.dagster_home / "storage"),
            "TAILOR_DAGSTER_LOGS": str(self.dagster_home / "logs"),
        }

    def dbt_env(self) -> dict[str, str]:
        """Environment for a dbt subprocess: dbt's profile reads these (TAILOR_ENGINE picks its target).

        Raises:
            EngineNotInstalledError: the engine is spark and the `spark` extra is not installed.
        """
        require_engine(self.engine)
        return {**TELEMETRY_OFF, "TAILOR_HOME": str(self.home), "TAILOR_ENGINE": self.engine}


class EngineNotInstalledError(RuntimeError):
    """TAILOR_ENGINE names an engine whose optional packages are not installed."""


def require_engine(engine: Engine) -> None:
    """Check that ``engine``'s packages are importable (spark: pyspark and dbt-spark, the `spark` extra).

    Raises:
        EngineNotInstalledError: they are not; the message gives the command that installs them.
    """
    if engine != "spark":
        return
    missing = [name for name in ("pyspark", "dbt.adapters.spark") if importlib.util.find_spec(name) is None]
    if missing:
        raise EngineNotInstalledError(
            f"TAILOR_ENGINE=spark needs the optional 'spark' extra ({', '.join(missing)} not installed): "
            f"run `{SPARK_INSTALL_HINT}` in the repository (`python3 -m uv sync --frozen --inexact --extra spark`), "
            "or unset TAILOR_ENGINE for the default duckdb"
        )


def get_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    """Resolve settings from an explicit path, else ``TAILOR_HOME`` (empty counts as unset), else ``./data``; the
    training window from ``TAILOR_TRAINING_WINDOW_DAYS`` and ``TAILOR_TRAINING_MAX_IMPRESSIONS_PER_DAY`` when set;
    the engine from ``TAILOR_ENGINE`` (duckdb | spark, default duckdb).

    Raises:
        ValueError: one of those variables is not a whole number in range, TAILOR_ENGINE is not a known engine,
            or the home (or a folder above it) is a file, not a directory (the message names it).
    """
    # Empty counts as unset, as for TAILOR_ENGINE: Path("") would be the current folder.
    raw = home if home is not None else (os.environ.get("TAILOR_HOME", "").strip() or "data")
    per_day = _int_env("TAILOR_TRAINING_MAX_IMPRESSIONS_PER_DAY", DEFAULT_TRAINING_MAX_IMPRESSIONS_PER_DAY, low=0)
    return Settings(
        home=_checked_home(Path(raw).expanduser().resolve(), "the Tailor home" if home is not None else "TAILOR_HOME"),
        training_window_days=_int_env("TAILOR_TRAINING_WINDOW_DAYS", DEFAULT_TRAINING_WINDOW_DAYS, low=1),
        training_max_impressions_per_day=per_day or None,
        engine=engine_from_env(),
    )


def _checked_home(home: Path, name: str) -> Path:
    """``home`` if it is a directory or can become one; every command creates the folders it writes in it.

    Checked here, once, because a file in its place otherwise surfaced as a NotADirectoryError from whichever
    command first made a folder under it (or, for one that only reads, as data that "is not built yet").

    Raises:
        ValueError: ``home``, or the nearest existing folder above it, is not a directory.
    """
    existing = next((path for path in (home, *home.parents) if path.exists()), None)
    if existing is None or existing.is_dir():
        return home
    where = "is a file" if existing == home else f"cannot be made: {existing} is a file"
    raise ValueError(
        f"{name} {home} {where}, and {name} must be a directory (it holds the inbox, the warehouse and the marts): "
        f"set TAILOR_HOME to a folder (made if missing), or move {existing} out of the way"
    )


def engine_from_env() -> Engine:
    """``TAILOR_ENGINE`` (case and spaces ignored), or duckdb when unset or empty.

    Raises:
        ValueError: it names no known engine (the message lists them).
    """
    text = os.environ.get("TAILOR_ENGINE", "").strip().lower() or DEFAULT_ENGINE
    for engine in ENGINES:
        if text == engine:
            return engine
    raise ValueError(
        f"TAILOR_ENGINE={os.environ['TAILOR_ENGINE']!r} is not an engine Tailor runs on: "
        f"use one of {', '.join(ENGINES)}, or unset it for {DEFAULT_ENGINE}"
    )


def _int_env(name: str, default: int, low: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise ValueError(
            f"{name}={text!r} is not a whole number >= {low}: use such a number, or unset it for {default}"
        )
    return value


def disable_telemetry() -> None:
    """Set the telemetry opt-outs in this process (and so in every child it starts)."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)

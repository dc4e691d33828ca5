"""Where the local Dagster instance keeps its runs and logs: under the Tailor home, whoever starts Dagster.

dagster.yaml names these classes instead of Dagster's own so that the instance needs no environment of its own:
`make ui`, `tailor run` and a plain `dagster dev` typed in the repository root all put runs, schedules, sensor ticks
and compute logs in ``<TAILOR_HOME>/dagster/`` (TAILOR_HOME defaults to ./data, as everywhere in Tailor). Dagster's
classes require ``base_dir``, and its only way to read a variable (``{env: NAME}``) fails when the variable is unset,
which is what a data engineer's shell has.

Each class accepts an explicit ``base_dir`` (a team pointing the instance elsewhere). Without one, every process
that loads the instance resolves the folder itself; the webserver, daemon, code server and run workers that `dagster
dev` starts inherit its environment and working directory, so they all resolve the same folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from dagster import Field, StringSource
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData

from tailor.settings import get_settings

_OPTIONAL_BASE_DIR = {"base_dir": Field(StringSource, is_required=False)}


def storage_dir() -> Path:
    """Runs, event logs, schedules and artifacts: ``<TAILOR_HOME>/dagster/storage`` (absolute)."""
    return get_settings().dagster_home / "storage"


def compute_logs_dir() -> Path:
    """Captured stdout/stderr of each step: ``<TAILOR_HOME>/dagster/logs`` (absolute)."""
    return get_settings().dagster_home / "logs"


def _base_dir(config: Mapping[str, Any], default: Path) -> str:
    return str(config.get("base_dir") or default)


class TailorSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event logs, schedules), in `storage_dir()` unless ``base_dir`` is given."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return dict(_OPTIONAL_BASE_DIR)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> TailorSqliteStorage:
        return cls(_base_dir(config_value, storage_dir()), inst_data=inst_data)


class TailorArtifactStorage(LocalArtifactStorage):
    """Dagster's local artifact storage, beside the runs in `storage_dir()` unless ``base_dir`` is given."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return dict(_OPTIONAL_BASE_DIR)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> TailorArtifactStorage:
        return cls(_base_dir(config_value, storage_dir()), inst_data=inst_data)


class TailorComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs, in `compute_logs_dir()` unless ``base_dir`` is given."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {**cast(Mapping[str, Any], LocalComputeLogManager.config_type()), **_OPTIONAL_BASE_DIR}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> TailorComputeLogManager:
        return cls(inst_data=inst_data, **{**config_value, "base_dir": _base_dir(config_value, compute_logs_dir())})

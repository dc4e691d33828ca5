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

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

from dagster import Field, StringSource
from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
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
    """Dagster's local compute logs, in `compute_logs_dir()` unless ``base_dir`` is given.

    On Linux each step's output is mirrored to the terminal by ``tail --pid`` alone (`_mirrored`). Dagster's own
    mirror also starts a Python watcher per stream that kills the tail if the process dies; a Ctrl-C reaches the
    whole process group, and each watcher printed a ``KeyboardInterrupt`` traceback above `tailor run`'s own
    "the run was interrupted" message (found by a new-user trial). GNU tail's ``--pid`` does the watcher's job.
    """

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        """As Dagster's: stdout and stderr of the step go to its log files and are mirrored to the terminal."""
        if not _TAIL_HAS_PID:
            with super().capture_logs(log_key) as context:
                yield context
            return
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with _mirrored(sys.stdout, out), _mirrored(sys.stderr, err):
            yield CapturedLogContext(log_key)
        Path(self.complete_artifact_path(log_key)).touch()  # marks the capture complete, as Dagster's does

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {**cast(Mapping[str, Any], LocalComputeLogManager.config_type()), **_OPTIONAL_BASE_DIR}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> TailorComputeLogManager:
        return cls(inst_data=inst_data, **{**config_value, "base_dir": _base_dir(config_value, compute_logs_dir())})


#: GNU tail (Linux) stops following once a process has died (``--pid``); BSD tail (macOS) has no such option.
_TAIL_HAS_PID = sys.platform.startswith("linux") and shutil.which("tail") is not None


@contextmanager
def _mirrored(stream: IO[str], path: str) -> Iterator[None]:
    """Redirect ``stream``'s file descriptor to ``path`` and mirror the file back to where the stream went.

    ``tail -F --pid`` ends by itself once this process is gone (killed included), so no watcher process is needed.
    A stream without a file descriptor (a test runner's) is only redirected, as in Dagster.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).touch()
    try:
        target: int | None = stream.fileno()
    except (AttributeError, OSError, ValueError):
        target = None
    tail = None
    if target is not None:
        tail = subprocess.Popen(["tail", "-F", "-c", "+0", f"--pid={os.getpid()}", path], stdout=target)
    try:
        with redirect_to_file(stream, path):
            yield
    finally:
        if tail is not None:
            tail.terminate()
            tail.wait(timeout=30)

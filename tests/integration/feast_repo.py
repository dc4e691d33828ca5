"""A Feast repository with the project's recent-activity definitions, applied in a folder of its own.

Streaming tests need a registry and an online store they own (SQLite or Redis), independent of what other tests do
to the home's feature store, so they copy the definition files into a temporary repo and run the real `feast apply`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tailor.settings import FEATURE_REPO_DIR, TELEMETRY_OFF

FEAST = str(Path(sys.executable).parent / "feast")
#: recent_activity.py and what it imports.
DEFINITIONS = ("conventions.py", "entities.py", "data_sources.py", "recent_activity.py")


def apply_recent_activity_repo(folder: Path, online_store: str, home: Path) -> Path:
    """Copy the definitions into ``folder``, write a feature_store.yaml with ``online_store``, `feast apply` it.

    Args:
        folder: a new folder for the repo, its registry and (SQLite) online store.
        online_store: the ``online_store:`` YAML block.
        home: the Tailor home whose marts the batch source reads.
    """
    folder.mkdir(parents=True)
    for name in DEFINITIONS:
        shutil.copy(FEATURE_REPO_DIR / name, folder / name)
    (folder / "feature_store.yaml").write_text(
        textwrap.dedent(f"""\
            project: tailor_stream_test
            provider: local
            registry: {folder / "registry.db"}
            offline_store:
              type: duckdb
            entity_key_serialization_version: 3
            """)
        + online_store
    )
    env = {**os.environ, **TELEMETRY_OFF, "TAILOR_HOME": str(home)}
    done = subprocess.run([FEAST, "apply"], cwd=folder, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def sqlite_online_store(folder: Path) -> str:
    return f"online_store:\n  type: sqlite\n  path: {folder / 'online.db'}\n"


def redis_online_store(redis_url: str) -> str:
    return f"online_store:\n  type: redis\n  connection_string: '{redis_url.removeprefix('redis://')}'\n"

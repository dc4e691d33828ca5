"""`feast apply` for a Tailor home: register the definitions in feature_repo/ and create online-store tables.

It runs the real `feast` CLI in feature_repo/, exactly as a person would, rather than Feast's internals: `feast
apply` imports every file there as a top-level module and changes the working directory, neither of which belongs
in a long-lived orchestrator process. The CLI costs seconds (importing Feast), so a run is skipped when nothing it
depends on changed since the last successful apply.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import feast

from tailor.feature_store import feast_env, feature_store_yaml, load_config
from tailor.settings import FEATURE_REPO_DIR, Settings

FEAST_EXECUTABLE = str(Path(sys.executable).parent / "feast")


@dataclass(frozen=True)
class ApplyResult:
    applied: bool  # false: skipped, nothing changed since the last apply
    registry: Path
    online_store: str
    output: str


def _fingerprint(settings: Settings, yaml_path: Path) -> str:
    """Everything `feast apply` reads: the definitions, .feastignore, the yaml, the home and Feast's version."""
    digest = hashlib.sha256()
    files = [*sorted(FEATURE_REPO_DIR.glob("*.py")), FEATURE_REPO_DIR / ".feastignore", yaml_path]
    for path in files:
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{settings.home}\0{feast.__version__}\0{os.environ.get('TAILOR_FEAST_REDIS', '')}".encode())
    return digest.hexdigest()


def apply_feature_repo(settings: Settings, force: bool = False) -> ApplyResult:
    """Register feature_repo/ in this home's registry (the configured online store's), unless already current.

    Raises:
        RuntimeError: `feast apply` failed; the message carries its output.
    """
    yaml_path = feature_store_yaml()
    config = load_config(settings, yaml_path)
    registry = Path(str(config.registry.path))
    online = str(config.online_store.type)
    marker = settings.feast_dir / f".applied-{yaml_path.stem}"
    fingerprint = _fingerprint(settings, yaml_path)
    # A deleted registry or SQLite file needs a new apply even if the definitions did not change.
    store_files = [registry] + ([Path(str(config.online_store.path))] if online == "sqlite" else [])
    current = marker.exists() and marker.read_text() == fingerprint and all(p.exists() for p in store_files)
    if current and not force:
        return ApplyResult(applied=False, registry=registry, online_store=online, output="")
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [FEAST_EXECUTABLE, "apply"],
        cwd=FEATURE_REPO_DIR,
        env={**os.environ, **feast_env(settings)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        marker.unlink(missing_ok=True)
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        raise RuntimeError(f"`feast apply` failed in {FEATURE_REPO_DIR}:\n{output}")
    marker.write_text(fingerprint)
    return ApplyResult(applied=True, registry=registry, online_store=online, output=result.stdout)

"""`feast apply` for a Tailor home: register the definitions in feature_repo/ and create online-store tables.

It runs the real `feast` CLI in feature_repo/, exactly as a person would, rather than Feast's internals: `feast
apply` imports every file there as a top-level module and changes the working directory, neither of which belongs
in a long-lived orchestrator process. The CLI costs seconds (it imports Feast), so a run is skipped when nothing it
depends on changed since the last successful apply. Deciding that imports no Feast either (importing it costs
3-6 s on 2 cores): the fingerprint is made of file bytes and the installed version, read from package metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor.feature_store import config_dict, feast_env, feature_store_yaml
from tailor.settings import FEATURE_REPO_DIR, Settings

FEAST_EXECUTABLE = str(Path(sys.executable).parent / "feast")


@dataclass(frozen=True)
class ApplyResult:
    applied: bool  # false: skipped, nothing changed since the last apply
    registry: Path
    online_store: str
    output: str
    #: What was applied (or found current): a digest of everything `feast apply` reads (a Dagster data version).
    fingerprint: str = ""


def definitions_fingerprint() -> str:
    """A digest of the feature definitions (feature_repo/*.py, .feastignore) and the installed Feast version:
    what decides the values of a feature, whatever store or home it is applied to."""
    digest = hashlib.sha256()
    for path in [*sorted(FEATURE_REPO_DIR.glob("*.py")), FEATURE_REPO_DIR / ".feastignore"]:
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(importlib.metadata.version("feast").encode())
    return digest.hexdigest()


def _fingerprint(settings: Settings, yaml_path: Path) -> str:
    """Everything `feast apply` reads: the definitions, .feastignore, the yaml, the home and Feast's version."""
    digest = hashlib.sha256(definitions_fingerprint().encode())
    digest.update(yaml_path.name.encode() + b"\0" + yaml_path.read_bytes() + b"\0")
    digest.update(f"{settings.home}\0{os.environ.get('TAILOR_FEAST_REDIS', '')}".encode())
    return digest.hexdigest()


def _in_repo(path: str) -> Path:
    """A path of the configuration; Feast resolves relative ones against the repo folder."""
    return Path(path) if Path(path).is_absolute() else FEATURE_REPO_DIR / path


def _registry_path(config: dict[str, Any]) -> Path:
    registry = config.get("registry", "data/registry.db")
    return _in_repo(str(registry["path"] if isinstance(registry, dict) else registry))


def _online_store(config: dict[str, Any]) -> tuple[str, Path | None]:
    """The online store's type, and its file for SQLite (Feast's default store when none is configured)."""
    online = config.get("online_store") or {"type": "sqlite"}
    kind = str(online.get("type", "sqlite"))
    return kind, _in_repo(str(online.get("path", "data/online_store.db"))) if kind == "sqlite" else None


def store_files(settings: Settings) -> tuple[Path, Path | None]:
    """The registry file and, for SQLite, the online store's file that the configuration in use names."""
    config = config_dict(settings)
    return _registry_path(config), _online_store(config)[1]


def apply_marker(settings: Settings) -> Path:
    """The file a successful apply writes its fingerprint to (rewritten by every apply)."""
    return _marker_of(settings, feature_store_yaml(settings.engine))


def _marker_of(settings: Settings, yaml_file: Path) -> Path:
    return settings.feast_dir / f".applied-{yaml_file.stem}"


def engine_mismatch(settings: Settings) -> str | None:
    """Why this home's feature repo does not answer for ``settings.engine``, when it was applied for another engine
    only (e.g. a Spark home read without ``TAILOR_ENGINE=spark``): the advice in words, else None."""
    from tailor.feature_store import ENGINE_YAML

    if apply_marker(settings).exists():
        return None
    others = [
        engine
        for engine, name in ENGINE_YAML.items()
        if engine != settings.engine and _marker_of(settings, Path(name)).exists()
    ]
    if not others:
        return None
    return (
        f"this home's features were registered for TAILOR_ENGINE={others[0]}, not {settings.engine}: "
        f"set TAILOR_ENGINE={others[0]} for every command on it"
    )


def registry_problem(settings: Settings) -> str | None:
    """Why this home's feature registry cannot answer for the configuration in use, in words: registered for another
    engine only (`engine_mismatch`), or never registered with this configuration (e.g. the Redis yaml before any
    `tailor run` with it: `recommend` said only that the store "did not answer", FeatureServiceNotFoundException, a
    re-check trial); None when it was registered."""
    if apply_marker(settings).exists():
        return None
    mismatch = engine_mismatch(settings)
    if mismatch:
        return mismatch
    yaml_file = feature_store_yaml(settings.engine)
    return (
        f"this home's features were never registered with {yaml_file.name} (the configuration in use): `tailor run` "
        "with it registers them and loads its online store"
    )


def _holds_tables(online_file: Path) -> bool:
    """Whether the SQLite online store has any table (read-only; a file that cannot be read counts as none)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{online_file}?mode=ro", uri=True)) as con:
            return bool(con.execute("select count(*) from sqlite_master where type = 'table'").fetchone()[0])
    except sqlite3.Error:
        return False


def apply_feature_repo(settings: Settings, force: bool = False) -> ApplyResult:
    """Register feature_repo/ in this home's registry (the configured online store's), unless already current.

    Raises:
        RuntimeError: `feast apply` failed; the message carries its output.
    """
    yaml_path = feature_store_yaml(settings.engine)
    config = config_dict(settings, yaml_path)
    registry = _registry_path(config)
    online, online_file = _online_store(config)
    marker = apply_marker(settings)
    fingerprint = _fingerprint(settings, yaml_path)
    # A deleted registry or SQLite file needs a new apply even if the definitions did not change, and so does a
    # SQLite file whose tables are gone (emptied by another home's apply before the check below existed).
    store_files = [registry, *([online_file] if online_file else [])]
    holds_tables = online_file is None or _holds_tables(online_file)
    current = marker.exists() and marker.read_text() == fingerprint and all(p.exists() for p in store_files)
    if current and holds_tables and not force:
        return ApplyResult(applied=False, registry=registry, online_store=online, output="", fingerprint=fingerprint)
    foreign = online_file is not None and registry.exists() and str(online_file).encode() not in registry.read_bytes()
    if registry.exists() and (foreign or not holds_tables):
        # The registry lists the SQLite tables as its infrastructure, and `feast apply` creates or drops only what
        # differs from that list. A registry copied with its home names the original home's tables, which the apply
        # would drop (a copied home's run emptied the original's online store: found by a trial); and for tables
        # that are gone, it sees "no changes to infrastructure" and creates none. Either way this home's registry
        # is made afresh; the apply marker changes, so the online store is materialized again.
        registry.unlink()
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
    return ApplyResult(
        applied=True, registry=registry, online_store=online, output=result.stdout, fingerprint=fingerprint
    )

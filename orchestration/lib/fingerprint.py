"""What an asset's work was made from, and whether that changed since: the "nothing new, nothing done" rule.

The feature assets decide from content digests of what they read (`ml.features.digests`) whether anything
changed, and return at once, saying so, when nothing did (docs/decisions.md, "Training data and the fixed cost
of a run"). The model assets follow the same rule with this module: each names its inputs (content digests of the
Parquet files it reads, the configuration that shapes its output, the source of the code that makes it) as an
`Inputs`, records the inputs in its materialization's metadata, and on the next run compares them with what its
latest materialization recorded (`recorded_inputs`). Equal: nothing it would compute can differ, so it keeps what
it made. Different: `Inputs.changed` names the parts that moved, for the reason it reports.

Digests are of content, not file times: dbt rewrites every published file on every run. A file is digested once
per process and modification (`file_digest_cached`): the three model assets read the same marts in one run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg

from ml.features.digests import DIGEST_VERSION, file_digest

#: Metadata keys under which an asset records its inputs (the digest, and the parts as JSON).
FINGERPRINT_KEY = "inputs_fingerprint"
INPUTS_KEY = "inputs"
#: The value of the ``action`` metadata of a run that found nothing changed (as the feature assets say it).
UP_TO_DATE = "up to date"


@dataclass(frozen=True)
class Inputs:
    """Named digests of everything an asset's output depends on.

    Attributes:
        parts: name -> digest (e.g. ``"marts/fct_impressions": "1234:98765"``, ``"config": "<sha256>"``).
    """

    parts: Mapping[str, str]

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the parts (sorted by name) and the digest method: equal fingerprints, equal inputs."""
        return _sha({"digests": DIGEST_VERSION, "parts": sorted(self.parts.items())})

    def changed(self, recorded: Mapping[str, str] | None) -> list[str]:
        """The names of the parts that differ from ``recorded`` (or are new or gone), sorted; every part when
        nothing was recorded."""
        if recorded is None:
            return sorted(self.parts)
        names = set(self.parts) | set(recorded)
        return sorted(n for n in names if self.parts.get(n) != recorded.get(n))

    def metadata(self) -> dict[str, Any]:
        """The metadata entries that record these inputs on a materialization or check evaluation."""
        return {FINGERPRINT_KEY: self.fingerprint, INPUTS_KEY: dg.MetadataValue.json(dict(self.parts))}


@dataclass(frozen=True)
class Recorded:
    """What a materialization (or check evaluation) recorded: its inputs and the rest of its metadata.

    Attributes:
        metadata: the recorded entries as they were (``MetadataValue``s), to carry forward unchanged.
    """

    fingerprint: str
    parts: dict[str, str]
    metadata: dict[str, Any]

    @property
    def values(self) -> dict[str, Any]:
        """The recorded entries' plain values (numbers, text, dicts)."""
        return {k: getattr(v, "value", v) for k, v in self.metadata.items()}


def recorded_from_metadata(metadata: Mapping[str, Any]) -> Recorded | None:
    """The inputs recorded in Dagster metadata (raw values or ``MetadataValue``s); None when none were recorded."""
    fingerprint = getattr(metadata.get(FINGERPRINT_KEY), "value", metadata.get(FINGERPRINT_KEY))
    parts = getattr(metadata.get(INPUTS_KEY), "value", metadata.get(INPUTS_KEY))
    if not isinstance(fingerprint, str) or not isinstance(parts, dict):
        return None
    return Recorded(fingerprint, {str(k): str(v) for k, v in parts.items()}, dict(metadata))


def recorded_inputs(instance: dg.DagsterInstance, key: dg.AssetKey) -> Recorded | None:
    """The inputs the asset's latest materialization recorded (None: never materialized, or without inputs)."""
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    return recorded_from_metadata(materialization.metadata) if materialization is not None else None


def unchanged(inputs: Inputs, recorded: Recorded | None) -> bool:
    """Whether the inputs equal what was recorded."""
    return recorded is not None and recorded.fingerprint == inputs.fingerprint


def change_reason(inputs: Inputs, recorded: Recorded | None, first: str = "first run") -> str:
    """``first run`` or e.g. ``changed: config, marts/fct_impressions``."""
    if recorded is None:
        return first
    return "changed: " + ", ".join(inputs.changed(recorded.parts))


def file_digest_cached(path: Path) -> str:
    """`ml.features.digests.file_digest` of a Parquet file, computed once per process and file modification.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    stat = path.stat()
    return _file_digest(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


@lru_cache(maxsize=64)
def _file_digest(path: str, mtime_ns: int, size: int, inode: int) -> str:
    return file_digest(Path(path))


def optional_file_digest(path: Path) -> str:
    """The file's digest, or ``missing`` (an optional input that does not exist yet is a state too)."""
    return file_digest_cached(path) if path.exists() else "missing"


def bytes_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (e.g. the model registry's SQLite file: any registration or alias change
    rewrites it), or ``missing``."""
    if not path.exists():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_digest(modules: Iterable[str]) -> str:
    """SHA-256 of the source of the named modules and packages (every ``.py`` file of a package): the code
    version of what they compute. Tailor's package version does not move with every change, so the source is the
    honest version; a change of a comment retrains once, which is cheaper than a stale model.

    Raises:
        ModuleNotFoundError: a name that is not an importable module.
    """
    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"no module named {name!r}: cannot take its code version")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{name}/{path.relative_to(origin.parent)}".encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def config_digest(config: Any) -> str:
    """SHA-256 of a JSON-able configuration (dicts are compared by content, not key order)."""
    return _sha(config)


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

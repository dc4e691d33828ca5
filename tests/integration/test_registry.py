"""The MLflow registry under a Tailor home: `load` returns what `log` stored and leaves nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from ml.registry import Registry, RegistryError

pytestmark = pytest.mark.integration


def test_a_logged_model_loads_back_and_the_read_leaves_no_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    registry = Registry(tmp_path / "models")
    model = {"weights": [0.25, 0.5], "name": "toy"}
    version = registry.log(model, {"test.ranker.auc": 0.7}, {"max_depth": 3}, {"feature_service": "ranker_v1"}, {})

    assert registry.load(version.version) == model
    assert registry.load(version.version) == model
    assert sorted(p.name for p in scratch.iterdir()) == []
    assert version.aliases == ["challenger"]
    with pytest.raises(RegistryError, match=f"no ranker version 99; versions: {version.version}"):
        registry.load(99)

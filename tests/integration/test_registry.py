"""The MLflow registry under a Tailor home: `load` returns what `log` stored and leaves nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from ml.registry import Registry, RegistryError
from tailor.settings import Settings

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


def test_promote_by_hand_says_what_changed_and_keeps_the_champions_record(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(settings.models_dir)
    first = registry.log({"v": 1}, {}, {}, {}, {})
    second = registry.log({"v": 2}, {}, {}, {}, {})
    runner = CliRunner()

    promoted = runner.invoke(main, ["models", "promote", str(first.version)])
    assert promoted.exit_code == 0, promoted.output
    assert f"ranker version {first.version} is now the champion" in promoted.output
    assert registry.alias("champion") == registry.get(first.version)

    again = runner.invoke(main, ["models", "promote", str(first.version)])
    assert again.exit_code == 0, again.output
    assert f"ranker version {first.version} is already the champion; nothing changed" in again.output

    switched = runner.invoke(main, ["models", "promote", str(second.version)])
    assert f"ranker version {second.version} is now the champion (was version {first.version})" in switched.output
    assert "champion" not in registry.get(first.version).aliases

    unknown = runner.invoke(main, ["models", "promote", "42"])
    assert unknown.exit_code != 0 and "no ranker version 42" in unknown.output

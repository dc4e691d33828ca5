"""The MLflow registry under a Tailor home: `load` returns what `log` stored and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from ml.registry import Registry, RegistryError, decide
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
    unchanged = json.loads(runner.invoke(main, ["models", "promote", str(first.version), "--json"]).output)
    assert (unchanged["changed"], unchanged["previous_champion"]) == (False, first.version)
    assert unchanged["version"] == first.version and "champion" in unchanged["aliases"]  # the fields kept

    switched = runner.invoke(main, ["models", "promote", str(second.version)])
    assert f"ranker version {second.version} is now the champion (was version {first.version})" in switched.output
    assert "champion" not in registry.get(first.version).aliases
    back = json.loads(runner.invoke(main, ["models", "--json", "promote", str(first.version)]).output)
    assert (back["changed"], back["previous_champion"], back["version"]) == (True, second.version, first.version)

    unknown = runner.invoke(main, ["models", "promote", "42"])
    assert unknown.exit_code != 0 and "no ranker version 42" in unknown.output


def test_promote_json_from_no_champion_says_nobody_held_it(settings: Settings) -> None:
    registry = Registry(settings.models_dir)
    only = registry.log({"v": 1}, {}, {}, {}, {})
    promoted = json.loads(CliRunner().invoke(main, ["models", "promote", str(only.version), "--json"]).output)
    assert (promoted["changed"], promoted["previous_champion"], promoted["aliases"]) == (
        True,
        None,
        ["challenger", "champion"],
    )


def _metrics(auc: float, log_loss: float, ndcg: float, ndcg_popularity: float) -> dict[str, float]:
    return {
        "classification.ranker.auc": auc,
        "classification.popularity.auc": 0.55,
        "classification.ranker.log_loss": log_loss,
        "classification.ranker.ece": 0.01,
        "ranking.ranker.ndcg_at_k": ndcg,
        "ranking.popularity.ndcg_at_k": ndcg_popularity,
    }


def test_models_say_what_their_numbers_measure_and_on_which_window(settings: Settings) -> None:
    """The list metric is judged against logged clicks, where popularity wins by construction: the table says so and
    which numbers the gate uses; a promotion reason quotes both versions on the challenger's window, named."""
    registry = Registry(settings.models_dir)
    params = {"config.ranking_k": 10}
    first = registry.log(
        {"v": 1}, _metrics(0.74, 0.260, 0.09, 0.11), params, {"test_window": "2026-01-14..2026-01-17"}, {}
    )
    registry.record_decision(first.version, decide({"log_loss": 0.260, "ndcg_at_k": 0.09}, None))
    window = "2026-01-18..2026-01-21"
    second = registry.log({"v": 2}, _metrics(0.76, 0.252, 0.097, 0.108), params, {"test_window": window}, {})
    # The champion re-scored on the second version's window: not its own row's numbers.
    decision = decide(
        {"log_loss": 0.252, "ndcg_at_k": 0.097},
        {"log_loss": 0.255, "ndcg_at_k": 0.094},
        window=window,
        champion_version=first.version,
        champion_window="2026-01-14..2026-01-17",
    )
    registry.record_decision(second.version, decision)
    runner = CliRunner()

    listed = runner.invoke(main, ["models"])
    assert listed.exit_code == 0, listed.output
    assert "Ranker versions (each on its own test window)" in listed.output and window in listed.output
    assert "ndcg_at_k (ranker, lists)" not in listed.output
    assert (
        "AUC, log loss, ECE: click prediction on the version's logged test impressions: what the promotion gate uses "
        "(AUC above popularity's and calibrated, then a log loss below the champion's on the same window"
    ) in listed.output
    assert (
        "* NDCG@10 vs logged clicks (and the other list metrics, ranking.*): top-k lists judged against the clicks "
        "logged in the test window: favours the logging policy"
    ) in listed.output

    as_json = json.loads(runner.invoke(main, ["models", "--json"]).output)
    assert [v["version"] for v in as_json] == [second.version, first.version]
    assert as_json[0]["metrics"]["ranking.ranker.ndcg_at_k"] == 0.097  # the stored names, unchanged
    assert "favours the logging policy" in as_json[0]["metric_notes"]["ranking"]
    assert "promotion gate" in as_json[0]["metric_notes"]["classification"]

    shown = runner.invoke(main, ["models", "show", str(second.version)])
    assert shown.exit_code == 0, shown.output
    assert (
        f"promotion: promoted: both scored on the challenger's test window {window} (champion v{first.version} "
        "re-scored there; its row in `tailor models` is on its own test window 2026-01-14..2026-01-17, hence other "
        "numbers): log loss 0.25200 < 0.25500"
    ) in shown.output
    assert "favours the logging policy" in shown.output
    detail = json.loads(runner.invoke(main, ["models", "show", str(second.version), "--json"]).output)
    recorded = json.loads(detail["tags"]["promotion"])
    assert (recorded["window"], recorded["champion_version"]) == (window, first.version)
    assert "favours the logging policy" in detail["metric_notes"]["ranking"]


def test_a_first_registry_open_prints_no_mlflow_info_lines(tmp_path: Path) -> None:
    """A new registry made MLflow announce its database tables on stderr ('INFO mlflow.store.db.utils: Creating
    initial MLflow database tables...'), which read as Tailor's output. In a fresh process: MLflow's logger is set
    up when mlflow is first imported, which in a test session may have happened long before. MLflow's warnings and
    Tailor's own still show."""
    script = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from ml.registry import Registry\n"
        "registry = Registry(Path(sys.argv[1]))\n"
        "registry.log({'v': 1}, {'a': 1.0}, {}, {}, {})\n"
        "logging.getLogger('mlflow.store').warning('an MLflow warning')\n"
        "logging.getLogger('ml.registry').warning('a Tailor warning')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DO_NOT_TRACK": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "models")],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "mlflow.db").is_file()  # the tables were created: the INFO lines' occasion
    assert " INFO " not in done.stderr, done.stderr
    assert "WARNING mlflow.store: an MLflow warning" in done.stderr
    assert "a Tailor warning" in done.stderr

"""The MLflow registry under a Tailor home: `load` returns what `log` stored and leaves nothing behind."""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from ml.registry import (
    CHALLENGER,
    ModelVersion,
    Promotion,
    PromotionRefused,
    Registry,
    RegistryError,
    alias_holder,
    decide,
    gate,
)
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
    first = registry.log({"v": 1}, _metrics(0.74, 0.26, 0.09, 0.11), {}, {}, {})
    second = registry.log({"v": 2}, _metrics(0.75, 0.25, 0.09, 0.11), {}, {}, {})
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
    only = registry.log({"v": 1}, _metrics(0.74, 0.26, 0.09, 0.11), {}, {}, {})
    promoted = json.loads(CliRunner().invoke(main, ["models", "promote", str(only.version), "--json"]).output)
    assert (promoted["changed"], promoted["previous_champion"], promoted["aliases"]) == (
        True,
        None,
        ["champion"],  # a challenger that wins is no longer one
    )


def test_a_challenger_that_wins_holds_champion_alone_and_one_that_loses_stays_challenger(tmp_path: Path) -> None:
    """A trial read "challenger, champion" on v1 as undecided: the challenger alias names a version that did not
    win; it leaves the version that wins, automatically or by hand."""
    registry = Registry(tmp_path / "models")
    first = registry.log({"v": 1}, _metrics(0.74, 0.26, 0.09, 0.11), {}, {}, {})
    registry.record_decision(first.version, Promotion(True, "the first version", {}, None))
    second = registry.log({"v": 2}, _metrics(0.73, 0.27, 0.09, 0.11), {}, {}, {})
    registry.record_decision(second.version, Promotion(False, "log loss not lower", {}, {}))

    def aliases() -> list[list[str]]:  # newest first
        return [v.aliases for v in registry.versions()]

    models = tmp_path / "models"
    assert aliases() == [["challenger"], ["champion"]]
    # What a run that trains nothing reads without MLflow says what MLflow says, after each change.
    assert (alias_holder(models), alias_holder(models, CHALLENGER)) == (first.version, second.version)
    registry.promote(second.version, by="alice")  # by hand: the challenger wins
    assert aliases() == [["champion"], []]
    assert (alias_holder(models), alias_holder(models, CHALLENGER)) == (second.version, None)
    registry.promote(first.version, by="alice")  # back: no version is challenger now
    assert aliases() == [[], ["champion"]]
    assert alias_holder(models) == first.version and alias_holder(tmp_path / "no-models") is None


def _metrics(
    auc: float, log_loss: float, ndcg: float, ndcg_popularity: float, ece: float = 0.01, ece_noise: float = 0.017
) -> dict[str, float]:
    return {
        "classification.ranker.auc": auc,
        "classification.popularity.auc": 0.55,
        "classification.ranker.log_loss": log_loss,
        "classification.ranker.ece": ece,
        "classification.ranker.ece_noise": ece_noise,
        "ranking.ranker.ndcg_at_k": ndcg,
        "ranking.popularity.ndcg_at_k": ndcg_popularity,
    }


FIRST_WINDOW, SECOND_WINDOW = "2026-01-14..2026-01-17", "2026-01-18..2026-01-21"


def _champion_then_challenger(
    registry: Registry,
    first: tuple[float, float, float],
    second: tuple[float, float, float],
    champion_rescored: tuple[float, float],
    params: dict[str, Any] | None = None,
) -> tuple[ModelVersion, ModelVersion, Promotion]:
    """v1 registered and promoted (no champion before), then v2 judged against v1 re-scored on v2's window (the
    decision is returned). Each version's numbers are (AUC, log loss, NDCG@k); ``champion_rescored`` is v1's
    (log loss, NDCG@k) on v2's window."""
    one = registry.log(
        {"v": 1}, _metrics(first[0], first[1], first[2], 0.11), params or {}, {"test_window": FIRST_WINDOW}, {}
    )
    registry.record_decision(one.version, decide({"log_loss": first[1], "ndcg_at_k": first[2]}, None))
    two = registry.log(
        {"v": 2}, _metrics(second[0], second[1], second[2], 0.108), params or {}, {"test_window": SECOND_WINDOW}, {}
    )
    decision = decide(
        {"log_loss": second[1], "ndcg_at_k": second[2]},
        {"log_loss": champion_rescored[0], "ndcg_at_k": champion_rescored[1]},
        window=SECOND_WINDOW,
        champion_version=one.version,
        champion_window=FIRST_WINDOW,
    )
    registry.record_decision(two.version, decision)
    return one, two, decision


def test_models_say_what_their_numbers_measure_and_on_which_window(settings: Settings) -> None:
    """The list metric is judged against logged clicks, where popularity wins by construction: the table says so and
    which numbers the gate uses; a promotion reason quotes both versions on the challenger's window, named."""
    registry = Registry(settings.models_dir)
    # The champion re-scored on the second version's window: not its own row's numbers.
    first, second, _ = _champion_then_challenger(
        registry, (0.74, 0.260, 0.09), (0.76, 0.252, 0.097), (0.255, 0.094), {"config.ranking_k": 10}
    )
    window = "2026-01-18 to 2026-01-20"  # SECOND_WINDOW's days: the tag excludes its end
    runner = CliRunner()

    listed = runner.invoke(main, ["models"])
    assert listed.exit_code == 0, listed.output
    assert "Ranker versions (each on its own test window)" in listed.output and window in listed.output
    assert "ndcg_at_k (ranker, lists)" not in listed.output
    # Headings on two lines, the metric over the model: on one line the table took 220 columns (a trial).
    rows = [line for line in listed.output.splitlines() if line.startswith(("┃", "│"))]
    assert rows and max(len(line) for line in rows) <= 150, "\n".join(rows)
    assert "NDCG@10*" in rows[0] and "pop." in rows[1]
    assert "pop.: the popularity baseline, scored on the same test window." in listed.output
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
        f"promoted by the rule: both scored on the challenger's test window {window} (champion v{first.version} "
        "re-scored there; its row in `tailor models` is on its own test window 2026-01-14 to 2026-01-16, hence other "
        "numbers): log loss 0.25200 < 0.25500"
    ) in shown.output
    assert "favours the logging policy" in shown.output
    # Notes for the names this view shows: no "pop." or "*" heading here to explain (a trial).
    assert "pop.:" not in shown.output and "* NDCG" not in shown.output
    assert "classification.<model>.*: click prediction" in shown.output and "ranking.<model>.* (k = 10)" in shown.output
    # The window tag as the days it holds (the stored end is excluded: 3 days, not 4), as `tailor models` lists it.
    assert re.search(r"test_window\s*│\s*2026-01-18 to 2026-01-20\s", shown.output), shown.output
    detail = json.loads(runner.invoke(main, ["models", "show", str(second.version), "--json"]).output)
    assert detail["tags"]["test_window"] == SECOND_WINDOW  # --json keeps the stored tag
    recorded = json.loads(detail["tags"]["promotion"])
    assert (recorded["window"], recorded["champion_version"]) == (SECOND_WINDOW, first.version)  # the tag, as stored
    assert "favours the logging policy" in detail["metric_notes"]["ranking"]


def test_a_promotion_by_hand_keeps_the_automatic_decision_and_adds_who_when_and_the_previous_champion(
    settings: Settings,
) -> None:
    """The trial: `promote 1` then `promote 2` left v2's record as "promoted by hand" only, its automatic decision
    (the comparison on the challenger's window) gone. Now the decision stays and each promotion by hand is added."""
    registry = Registry(settings.models_dir)
    first, second, automatic = _champion_then_challenger(
        registry, (0.79, 0.20548, 0.09), (0.80, 0.20516, 0.09), (0.20548, 0.09)
    )
    window = "2026-01-18 to 2026-01-20"  # SECOND_WINDOW's days
    runner = CliRunner()
    started = datetime.now(UTC).replace(microsecond=0)

    for version in (first.version, second.version):
        done = runner.invoke(main, ["models", "promote", str(version)])
        assert done.exit_code == 0, done.output
    finished = datetime.now(UTC)

    shown = runner.invoke(main, ["models", "show", str(second.version)])
    assert shown.exit_code == 0, shown.output
    assert f"promoted by the rule: both scored on the challenger's test window {window}" in shown.output
    assert "log loss 0.20516 < 0.20548" in shown.output
    assert f"by {getpass.getuser()}, replacing champion v{first.version}" in shown.output
    assert "promoted by hand: " in shown.output and " UTC by " in shown.output
    assert "promotion.manual" not in shown.output  # said in words, not again as raw tags
    # One history, oldest first: promoted by the rule at registration, replaced when the first was promoted by hand,
    # then promoted by hand itself (it listed its own promotions first, then the replacement: a re-check trial).
    history = [
        line.split(":")[0].split(",")[0] for line in shown.output.splitlines() if line.startswith(("prom", "repl"))
    ]
    assert history == ["promoted by the rule", f"replaced as champion by v{first.version}", "promoted by hand"]
    # VERSION may be the alias a version holds (a re-check trial's `models show champion` was "not a valid integer").
    by_alias = runner.invoke(main, ["models", "show", "Champion"])
    assert by_alias.exit_code == 0 and by_alias.output == shown.output
    nobody = runner.invoke(main, ["models", "promote", "challenger"])
    assert nobody.exit_code == 1 and "no ranker version is challenger now" in nobody.output

    detail = json.loads(runner.invoke(main, ["models", "show", str(second.version), "--json"]).output)
    assert json.loads(detail["tags"]["promotion"]) == {**automatic.as_dict()}  # the existing field, unchanged
    automatic_entry, by_hand = detail["promotion_history"]
    assert automatic_entry == {"kind": "automatic", **json.loads(json.dumps(automatic.as_dict()))}
    assert (by_hand["kind"], by_hand["by"], by_hand["previous_champion"], by_hand["forced"], by_hand["gate"]) == (
        "manual",
        getpass.getuser(),
        first.version,
        False,
        None,
    )
    at = datetime.fromisoformat(by_hand["at"])
    assert at.utcoffset() is not None and at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert started <= at <= finished

    # The first version (champion by the rule, replaced by the second's automatic promotion, then promoted back by
    # hand): its automatic decision, then its promotion by hand.
    first_history = json.loads(runner.invoke(main, ["models", "show", str(first.version), "--json"]).output)[
        "promotion_history"
    ]
    assert [e["kind"] for e in first_history] == ["automatic", "manual"]
    assert first_history[0]["reason"] == "no champion yet: the first model becomes champion"
    assert first_history[1]["previous_champion"] == second.version
    # ...and how it lost the alias, though the records are on the version that took it (a trial: `models show`
    # of the version replaced by hand did not say so).
    first_shown = runner.invoke(main, ["models", "show", str(first.version)]).output
    assert f"replaced as champion by v{second.version} (promoted by the rule), " in first_shown
    assert f"replaced as champion by v{second.version}, promoted by hand: " in first_shown
    replaced = [line for line in first_shown.splitlines() if line.startswith("replaced as champion")]
    assert len(replaced) == 2 and "(promoted by the rule)" in replaced[0]  # oldest first
    lost = json.loads(runner.invoke(main, ["models", "show", str(first.version), "--json"]).output)["replaced_by"]
    assert [(e["kind"], e["by_version"]) for e in lost] == [("automatic", second.version), ("manual", second.version)]
    assert lost[1]["by"] == getpass.getuser() and started <= datetime.fromisoformat(lost[1]["at"]) <= finished
    second_shown = runner.invoke(main, ["models", "show", str(second.version)]).output
    assert f"replaced as champion by v{first.version}, promoted by hand: " in second_shown

    # Back and forth: each promotion by hand is one more entry, numbered in order.
    runner.invoke(main, ["models", "promote", str(first.version)])
    again = json.loads(runner.invoke(main, ["models", "promote", str(second.version), "--json"]).output)
    assert [e["kind"] for e in again["promotion_history"]] == ["automatic", "manual", "manual"]
    assert again["manual_promotion"] == again["promotion_history"][-1]
    assert again["manual_promotion"]["previous_champion"] == first.version
    assert sorted(k for k in again["tags"] if k.startswith("promotion.manual.")) == [
        "promotion.manual.1",
        "promotion.manual.2",
    ]


def test_a_version_that_fails_the_gate_is_refused_unless_forced_and_the_force_is_recorded(
    settings: Settings,
) -> None:
    """The trial: promoting by hand a version that failed the gate gave no warning and it then served pages."""
    registry = Registry(settings.models_dir)
    good = registry.log({"v": 1}, _metrics(0.79, 0.205, 0.09, 0.11), {}, {}, {})
    registry.record_decision(good.version, decide({"log_loss": 0.205, "ndcg_at_k": 0.09}, None))
    # ECE 0.0312 where a perfectly calibrated model shows at most 0.0170: miscalibrated beyond the noise.
    skewed = registry.log({"v": 2}, _metrics(0.80, 0.204, 0.09, 0.11, ece=0.0312, ece_noise=0.0170), {}, {}, {})
    weak = registry.log({"v": 3}, _metrics(0.55, 0.204, 0.09, 0.11), {}, {}, {})  # popularity's AUC is 0.55
    runner = CliRunner()

    refused = runner.invoke(main, ["models", "promote", str(skewed.version)])
    assert refused.exit_code == 1
    assert (
        f"error: ranker version {skewed.version} fails the promotion gate, so it was not promoted (champion "
        f"v{good.version} keeps serving): miscalibrated: ECE 0.0312 above the limit 0.02, above the 0.0170 a "
        "perfectly calibrated model can show on this window."
    ) in refused.output
    assert f"tailor models promote {skewed.version} --force" in refused.output
    # A command that runs as written (a trial: a bare `tailor models show` lacks its VERSION argument).
    assert f"`tailor models show {skewed.version}` has its numbers" in refused.output
    assert registry.alias("champion") == registry.get(good.version)
    assert not any(k.startswith("promotion.manual.") for k in registry.get(skewed.version).tags)  # nothing recorded

    as_json = runner.invoke(main, ["models", "promote", str(weak.version), "--json"])
    assert as_json.exit_code == 1
    error = json.loads(as_json.stdout)
    assert error["gate"] == "AUC 0.5500 is not above popularity's 0.5500 on the test window"
    assert (error["changed"], error["champion"], error["version"]) == (False, good.version, weak.version)
    assert registry.alias("champion") == registry.get(good.version)

    forced = runner.invoke(main, ["models", "promote", str(skewed.version), "--force"])
    assert forced.exit_code == 0, forced.output
    assert f"ranker version {skewed.version} is now the champion (was version {good.version})" in forced.output
    assert "forced past the promotion gate: miscalibrated: ECE 0.0312 above the limit 0.02" in forced.output
    assert registry.alias("champion") == registry.get(skewed.version)
    shown = runner.invoke(main, ["models", "show", str(skewed.version)])
    assert (
        f"replacing champion v{good.version}; FORCED past the promotion gate: miscalibrated: ECE 0.0312" in shown.output
    )
    (entry,) = json.loads(runner.invoke(main, ["models", "show", str(skewed.version), "--json"]).output)[
        "promotion_history"
    ]
    assert (entry["kind"], entry["forced"], entry["previous_champion"]) == ("manual", True, good.version)
    assert entry["gate"].startswith("miscalibrated: ECE 0.0312 above the limit 0.02")

    # Back to the good version needs no force, and --force on a version that passes is not recorded as forced.
    back = json.loads(runner.invoke(main, ["models", "promote", str(good.version), "--force", "--json"]).output)
    assert (back["manual_promotion"]["forced"], back["manual_promotion"]["previous_champion"]) == (
        False,
        skewed.version,
    )


def test_the_gate_on_stored_metrics_is_the_training_rule_and_refuses_what_it_cannot_check(tmp_path: Path) -> None:
    passing = _metrics(0.79, 0.2, 0.09, 0.11, ece=0.025, ece_noise=0.03)  # above the limit, within the noise
    assert gate(passing) is None
    assert gate({**passing, "classification.ranker.auc": 0.54}) == (
        "AUC 0.5400 is not above popularity's 0.5500 on the test window"
    )
    without_noise = {k: v for k, v in passing.items() if k != "classification.ranker.ece_noise"}
    assert gate(without_noise) == "miscalibrated: ECE 0.0250 above the limit 0.02"  # judged on the limit alone
    assert gate({}) == (
        "the gate cannot be checked: no classification.ranker.auc, classification.popularity.auc, "
        "classification.ranker.ece stored with it"
    )
    registry = Registry(tmp_path / "models")
    bare = registry.log({"v": 1}, {}, {}, {}, {})
    with pytest.raises(PromotionRefused, match=r"the gate cannot be checked: no classification\.ranker\.auc"):
        registry.promote(bare.version)
    assert registry.alias("champion") is None
    promoted = registry.promote(bare.version, force=True, by="alice", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert promoted.aliases == ["champion"]
    assert json.loads(promoted.tags["promotion.manual.1"]) == {
        "at": "2026-01-02T03:04:05.000+00:00",  # to the millisecond: a history orders promotions within a second
        "by": "alice",
        "previous_champion": None,
        "forced": True,
        "gate": "the gate cannot be checked: no classification.ranker.auc, classification.popularity.auc, "
        "classification.ranker.ece stored with it",
    }


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


def test_the_models_table_fits_a_120_column_terminal_without_cutting_a_name(settings: Settings) -> None:
    """Found by a trial: in a 120-column terminal the aliases read "chall…" / "champ…" and the headings "NDCG@…"."""
    import io

    from rich.console import Console

    from cli import models as models_cli

    registry = Registry(settings.models_dir)
    _champion_then_challenger(
        registry, (0.74, 0.260, 0.09), (0.76, 0.252, 0.097), (0.255, 0.094), {"config.ranking_k": 10}
    )
    registry.promote(1, force=True)  # one version holds two aliases: the widest cell
    screen = io.StringIO()
    terminal = Console(file=screen, width=120, force_terminal=False, soft_wrap=True)
    original = models_cli.out
    models_cli.out = terminal
    try:
        assert CliRunner().invoke(main, ["models"]).exit_code == 0
    finally:
        models_cli.out = original
    rows = [line for line in screen.getvalue().splitlines() if line.startswith(("┃", "│", "┏"))]
    assert rows and max(len(line) for line in rows) <= 120, "\n".join(rows)
    assert "…" not in "\n".join(rows), "\n".join(rows)
    assert "champion" in "\n".join(rows) and "NDCG@10*" in rows[1]


def test_replacements_are_ordered_by_time_and_the_rule_first_within_a_second() -> None:
    """A promotion by hand is recorded in whole seconds: in the second of the winner's registration (``...:28`` and
    ``...:28.44``) it sorted first, though it came after (a flaky order found while writing the lines)."""
    from ml.registry import ModelVersion, replacement_lines, replacements

    decision = json.dumps({"promoted": True, "reason": "r", "challenger": {}, "champion": {}, "champion_version": 1})
    by_hand = json.dumps({"at": "2026-12-01T11:36:28+00:00", "by": "ana", "previous_champion": 1, "forced": False})
    first = ModelVersion(1, "run1", [], "2026-12-01T11:30:00+00:00", {}, {}, {})
    second = ModelVersion(2, "run2", ["champion"], "2026-12-01T11:36:28.440000+00:00", {}, {}, {"promotion": decision})
    third = ModelVersion(3, "run3", [], "2026-12-01T11:36:28.900000+00:00", {}, {}, {"promotion.manual.1": by_hand})
    found = replacements([third, second, first], 1)
    assert [(e["kind"], e["by_version"]) for e in found] == [("automatic", 2), ("manual", 3)]
    assert replacement_lines(found) == [
        "replaced as champion by v2 (promoted by the rule), 2026-12-01 11:36:28 UTC",
        "replaced as champion by v3, promoted by hand: 2026-12-01 11:36:28 UTC by ana",
    ]
    assert replacements([first, second, third], 2) == []

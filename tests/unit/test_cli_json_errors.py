"""Under --json every `tailor` command that fails says why as one JSON object on stdout (a script reading stdout
never gets nothing), exits non-zero, and keeps the readable `error:` line on stderr; without --json stdout stays
empty and the message is unchanged."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from tailor.settings import Settings

pytestmark = pytest.mark.unit


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def _json_error(result: Result, code: int = 1) -> str:
    """The error message of a failed --json command; asserts stdout is exactly one JSON object saying it."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    assert isinstance(data, dict) and isinstance(data["error"], str) and data["error"]
    return str(data["error"])


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    """One input of each kind the new-user trial met: a path that does not exist, a folder whose only file has a
    name ingest does not read, a file of an unsupported type, and a file that cannot be read (a broken gzip)."""
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "events 2026-01-05.txt").write_text('{"event_id": "e1"}\n')
    broken = tmp_path / "events.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"event_id": "e1"}\n' * 100)[:40])
    return {
        "missing": tmp_path / "nowhere.jsonl",
        "folder": folder,
        "unsupported": folder / "events 2026-01-05.txt",
        "unreadable": broken,
    }


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("missing", "no such file or folder"),
        ("folder", "the folder holds no files to ingest"),
        ("unsupported", "unsupported file type"),
        ("unreadable", "cannot be read"),
    ],
)
def test_ingest_json_errors_are_a_json_object(
    settings: Settings, bad_inputs: dict[str, Path], case: str, says: str
) -> None:
    path = bad_inputs[case]
    message = _json_error(_invoke("ingest", "--json", str(path)))
    assert says in message and "Nothing was ingested." in message
    assert str(path.name) in message  # which input was wrong
    readable = _invoke("ingest", str(path))
    assert readable.exit_code == 1 and readable.stdout == ""
    assert readable.stderr.endswith(f"error: {message}\n")  # the same words, readable (after progress lines)
    assert not settings.landing.exists() or not any(settings.landing.glob("*/batch-*"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_ingest_of_a_file_it_may_not_read_names_it_instead_of_a_traceback(settings: Settings, tmp_path: Path) -> None:
    private = tmp_path / "events.jsonl"
    private.write_text('{"event_id": "e1"}\n')
    private.chmod(0)
    message = _json_error(_invoke("ingest", "--json", str(private)))
    assert message.startswith(f"{private}: cannot be read (Permission denied)")


def test_usage_errors_are_json_under_json(settings: Settings) -> None:
    """A bad option value is found while parsing, before the command runs: click's exit status 2, still JSON."""
    bad = _invoke("generate", "--users", "0", "--json")
    assert "--users" in _json_error(bad, code=2)
    assert "Invalid value for '--users'" in bad.stderr
    missing_argument = _invoke("recommend", "--json")
    assert "USER_ID" in _json_error(missing_argument, code=2)
    plain = _invoke("generate", "--users", "0")
    assert plain.exit_code == 2 and plain.stdout == ""


def test_every_command_with_json_fails_in_json(settings: Settings) -> None:
    """One failure each, reached before any heavy work: run, experiments (and a flag given to the group only),
    recommend, generate and stream (models is the group flag's other user: see the next test)."""
    empty = _json_error(_invoke("run", "--json"))
    assert empty.startswith("nothing to run on: the inbox")
    unknown_engine = _json_error(_invoke("run", "--json", env={"TAILOR_ENGINE": "oracle"}))
    assert unknown_engine.startswith("TAILOR_ENGINE='oracle' is not an engine Tailor runs on")
    assert "does not exist: nothing was generated or run there" in _json_error(_invoke("experiments", "--json"))
    settings.home.mkdir(parents=True)  # a home where nothing ran yet
    assert "run `tailor run` first" in _json_error(_invoke("experiments", "--json"))
    too_big = _json_error(_invoke("experiments", "--json", "plan", "--baseline", "0.99", "--mde", "0.05"))
    assert "choose a smaller --mde" in too_big
    assert "is not an ISO 8601 time" in _json_error(_invoke("recommend", "u1", "--at", "yesterday", "--json"))
    assert "--pages is served with --policy cached" in _json_error(
        _invoke("generate", "--continue", "--pages", "p.parquet", "--json")
    )
    unreachable = _json_error(_invoke("stream", "status", "--json", "--redis", "redis://127.0.0.1:1/0"))
    assert unreachable.startswith("cannot reach Redis at redis://127.0.0.1:1/0")


def test_a_group_json_flag_is_honoured_by_its_subcommands(settings: Settings) -> None:
    plan = _invoke("experiments", "--json", "plan", "--baseline", "0.05", "--mde", "0.02")
    assert plan.exit_code == 0 and json.loads(plan.stdout)["units_per_variant"] == 2349
    settings.home.mkdir(parents=True)  # a home where nothing was trained yet
    assert _json_error(_invoke("models", "--json", "show", "7")).startswith("no ranker version 7")
    # A negative version is a version, not an option ("No such option: -1", a trial); a typo is still an option.
    assert _json_error(_invoke("models", "promote", "-1", "--json")).startswith("no ranker version -1")
    typo = _invoke("models", "show", "1", "--jsno")
    assert typo.exit_code == 2 and "No such option '--jsno'. Did you mean '--json'?" in typo.output


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TAILOR_RANKER_SEARCH_TRIALS", "abc", "TAILOR_RANKER_SEARCH_TRIALS='abc' is not a whole number"),
        ("TAILOR_RANKER_MAX_ITER", "1.5", "TAILOR_RANKER_MAX_ITER='1.5' is not a whole number"),
        ("TAILOR_RANKER_SEARCH_TIMEOUT_S", "soon", "TAILOR_RANKER_SEARCH_TIMEOUT_S='soon' is not a number"),
        ("TAILOR_RANKER_TEST_DAYS", "-2", "(from TAILOR_RANKER_TEST_DAYS=-2)"),
        ("TAILOR_DRIFT_ALPHA", "2", "TAILOR_DRIFT_ALPHA must be in (0, 0.5), got 2"),
        (
            "TAILOR_RETRAIN_NEW_DAYS",
            "0",
            "TAILOR_RETRAIN_NEW_DAYS must be a whole number of days >= 1 (default 7), got 0",
        ),
        ("TAILOR_RECOMMEND_BUDGET_MS", "-5", "TAILOR_RECOMMEND_BUDGET_MS='-5' is not a positive number"),
    ],
)
def test_a_bad_model_setting_stops_tailor_run_before_anything_starts(
    settings: Settings, variable: str, value: str, says: str
) -> None:
    """Not after the whole warehouse build, when the model assets read it: at once, naming the variable."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events.jsonl").write_text('{"event_id": "e1"}\n')  # something to run on
    ran = _invoke("run", "--json", env={variable: value})
    error = _json_error(ran)
    assert says in error and error.endswith(": fix or unset it; nothing was run")
    assert not (settings.home / "dagster").exists() and not settings.warehouse.exists()


def test_models_on_a_home_without_a_ranker_says_when_one_is_trained(settings: Settings) -> None:
    """A young platform: `tailor run` said it could not train yet; `models` says how much history it takes (from the
    ranker settings in force) and what serves meanwhile, instead of suggesting another `tailor run`."""
    settings.home.mkdir(parents=True)
    listed = _invoke("models", env={"TAILOR_RANKER_WARMUP_DAYS": "3"})
    assert listed.exit_code == 0
    assert "`tailor run` trains one once the history spans 10 days (3 warm-up, 1 train, 2 tune" in listed.stdout
    assert "until then the pages come from popular items" in listed.stdout
    shown = _invoke("models", "show", "1", "--json")
    assert _json_error(shown).startswith("no ranker version 1: none trained yet. `tailor run` trains one once the")


@pytest.mark.parametrize(
    "command",
    [
        ["models"],
        ["models", "list"],
        ["models", "show", "1"],
        ["models", "promote", "1"],
        ["recommend", "u0000001"],
        ["experiments"],
    ],
)
def test_reading_commands_on_a_home_that_does_not_exist_say_so_and_how_to_make_one(
    settings: Settings, command: list[str]
) -> None:
    """Found by a trial: TAILOR_HOME=/tmp/does-not-exist `tailor models` said "No ranker trained yet" (exit 0, and
    `[]` under --json), sending the user to `tailor run` in a folder that was never made; `recommend` and
    `experiments` said to run `tailor run` first."""
    expected = (
        f"the Tailor home {settings.home} does not exist: nothing was generated or run there. `make demo` builds a "
        "demo home (./data in the repository); to use another home, set TAILOR_HOME to the folder `tailor generate` "
        "and `tailor run` used"
    )
    readable = _invoke(*command)
    assert readable.exit_code == 1 and readable.stdout == "" and readable.stderr == f"error: {expected}\n"
    assert _json_error(_invoke(*command, "--json")) == expected
    if command[0] == "models":
        assert _json_error(_invoke("models", "--json", *command[1:])) == expected
    assert not settings.home.exists()  # the question made nothing

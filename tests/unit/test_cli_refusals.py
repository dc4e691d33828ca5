"""Bad settings and inputs a new-user trial met, each refused at once with one line that names the value and says
what to do: no traceback, no progress output, nothing built."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from cli.main import main
from ml.experiments.summary_csv import SummaryFileError, read_summary_csv
from ml.ranker.config import RankerConfig
from ml.ranker.dataset import TrainingDataError, plan_windows
from tailor.feature_store import FEAST_YAML_ENV
from tailor.settings import FEATURE_REPO_DIR, Settings, get_settings

pytestmark = pytest.mark.unit


def _invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def _refused(result: Result) -> str:
    """The one-line error of a refused command (exit 1, no traceback, nothing on stdout)."""
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", ["status", "publish", "consume", "dead-letters"])
def test_a_redis_url_that_is_not_one_is_refused_by_every_stream_command(settings: Settings, command: str) -> None:
    error = _refused(_invoke("stream", command, env={"TAILOR_REDIS_URL": "http://x"}))
    assert "TAILOR_REDIS_URL='http://x' is not a Redis URL" in error and "use redis://HOST:PORT/DB" in error


def test_a_bad_redis_option_is_named_as_the_option(settings: Settings) -> None:
    error = _refused(_invoke("stream", "status", "--redis", "notaurl", env={"TAILOR_REDIS_URL": None}))
    assert "--redis='notaurl' is not a Redis URL" in error and "redis://127.0.0.1:6379/0" in error
    # A port that is not a number is the client's other refusal.
    assert "--redis='redis://h:abc' is not a Redis URL" in _refused(
        _invoke("stream", "status", "--redis", "redis://h:abc")
    )
    # The client reads a database that is not a number as 0, silently: refused here.
    error = _refused(_invoke("stream", "status", "--redis", "redis://127.0.0.1:6379/events"))
    assert "names database 'events', which is not a database number" in error
    error = _refused(_invoke("stream", "status", "--redis", "redis://127.0.0.1:6379/-1"))
    assert "names database '-1', which is not a database number" in error


def test_a_database_the_server_does_not_have_is_named_not_called_unreachable(redis_url: str) -> None:
    """Found by a trial: /99 on a 16-database server was a traceback (ResponseError: DB index is out of range)."""
    error = _refused(_invoke("stream", "status", "--redis", f"{redis_url}/99"))
    assert f"Redis at {redis_url}/99 answered but refused the connection: DB index is out of range" in error
    assert "below the server's `databases` setting" in error


def test_tailor_serve_refuses_the_same_value_before_it_starts(settings: Settings, held_port: str) -> None:
    error = _refused(_invoke("serve", "--port", held_port, env={"TAILOR_REDIS_URL": "notaurl"}))
    assert "TAILOR_REDIS_URL='notaurl' is not a Redis URL" in error and "set it empty" in error


@pytest.fixture
def held_port() -> Iterator[str]:
    """A loopback port something listens on: `tailor serve --port` on it is refused at the latest when it checks the
    port, so a check that should have refused earlier and did not fails the test instead of starting a server."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        yield str(held.getsockname()[1])


def _with_port(command: tuple[str, ...], port: str) -> tuple[str, ...]:
    return tuple(port if part == "HELD" else part for part in command)


@pytest.fixture
def no_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tailor ui` replaces its process with `dagster dev`: a refusal that did not happen must fail the test, not turn
    the test process into a Dagster UI."""

    def exec_refused(*args: object) -> None:
        raise AssertionError(f"tailor ui exec'd {args[1]} instead of refusing")

    monkeypatch.setattr(os, "execve", exec_refused)


@pytest.mark.parametrize("port", ["-5", "0", "65536"])
@pytest.mark.usefixtures("no_exec")
def test_tailor_ui_refuses_a_port_that_is_not_one(settings: Settings, port: str) -> None:
    """Found by a trial: --port -5 printed http://127.0.0.1:-5, the webserver failed and the daemon ran on."""
    result = _invoke("ui", "--port", port)
    assert result.exit_code == 2 and f"Invalid value for '--port': {port} is not in the range 1<=x<=65535" in (
        result.stderr
    )
    assert not settings.home.exists()  # nothing made, nothing started


@pytest.mark.usefixtures("no_exec")
def test_tailor_ui_refuses_a_taken_port_before_starting_dagster(settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        error = _refused(_invoke("ui", "--port", str(port)))
    assert error == (
        f"error: port {port} on 127.0.0.1 is in use: choose another with --port (`make`: UI_PORT=N), or stop what "
        "holds it "
        f"(e.g. `ss -ltnp 'sport = :{port}'` shows it)\n"
    )
    assert not settings.home.exists()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        # used to fail in the ranker step ("no user has any relevant item")
        ("TAILOR_RANKER_EVAL_USERS", "0", "eval_users must be at least 1, got 0"),
        # used to fail in the ranker step, after the warehouse build, with numpy's "Seed must be between 0 and
        # 2**32 - 1" (a new-user trial, 2026-12-03)
        ("TAILOR_RANKER_SEED", "-1", "seed must be between 0 and 4294967295 (2**32 - 1), got -1"),
        ("TAILOR_RANKER_SEED", "4294967296", "seed must be between 0 and 4294967295 (2**32 - 1), got 4294967296"),
        ("TAILOR_RANKER_SEARCH_TIMEOUT_S", "nan", "search_timeout_s must be a number of seconds above 0, got nan"),
    ],
)
def test_a_model_setting_out_of_range_stops_tailor_run_before_anything_starts(
    settings: Settings, variable: str, value: str, said: str
) -> None:
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events.jsonl").write_text('{"event_id": "e1"}\n')
    error = _refused(_invoke("run", env={variable: value}))
    assert f"{said} (from {variable}={value}): fix or unset it; nothing was run" in error
    assert not (settings.home / "dagster").exists() and not settings.warehouse.exists()


def test_the_largest_seed_numpy_takes_is_accepted() -> None:
    assert RankerConfig.from_env({"TAILOR_RANKER_SEED": "4294967295"}).seed == 2**32 - 1
    np.random.RandomState(2**32 - 1)  # the bound is numpy's: its largest seed is accepted there, the next is not
    with pytest.raises(ValueError, match="Seed must be between 0 and 2\\*\\*32 - 1"):
        np.random.RandomState(2**32)


def test_an_unknown_dbt_target_is_refused_with_the_profiles_targets(settings: Settings) -> None:
    """It used to end in FileNotFoundError: .../run_results.json, the cause only in dbt.log."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events.jsonl").write_text('{"event_id": "e1"}\n')
    error = _refused(_invoke("run", env={"TAILOR_DBT_TARGET": "nope"}))
    assert "TAILOR_DBT_TARGET='nope' names no dbt target" in error and "profiles.yml has local, spark" in error
    assert not (settings.home / "dagster").exists() and not settings.warehouse.exists()
    from orchestration.lib.engine_support import dbt_target_refusal

    assert dbt_target_refusal("duckdb", {}) is None
    assert dbt_target_refusal("duckdb", {"TAILOR_DBT_TARGET": "local"}) is None
    assert dbt_target_refusal("duckdb", {"TAILOR_DBT_TARGET": ""}) is None  # empty: TAILOR_ENGINE's target
    assert dbt_target_refusal("spark", {"TAILOR_DBT_TARGET": "spark"}) is None


@pytest.mark.parametrize(("engine", "target"), [("duckdb", "spark"), ("spark", "local")])
def test_a_dbt_target_of_the_other_engine_is_refused_before_anything_is_built(
    settings: Settings, engine: str, target: str
) -> None:
    """Found by a trial: TAILOR_DBT_TARGET=spark on a DuckDB home built a Spark warehouse beside DuckDB's for eight
    minutes, published nothing, and left the home counted as built by both engines (the engine check then let any
    engine through). The marts, Feast and the home follow TAILOR_ENGINE: dbt must build with the same engine."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events.jsonl").write_text('{"event_id": "e1"}\n')
    adapter = {"local": "duckdb", "spark": "spark"}[target]
    error = _refused(_invoke("run", env={"TAILOR_ENGINE": engine, "TAILOR_DBT_TARGET": target}))
    assert f"TAILOR_DBT_TARGET='{target}' is a {adapter} target, but TAILOR_ENGINE is {engine}" in error
    assert f"set TAILOR_ENGINE={adapter} and unset TAILOR_DBT_TARGET" in error
    assert not (settings.home / "dagster").exists() and not settings.warehouse.exists()
    assert not settings.spark_dir.exists()


@pytest.mark.parametrize("command", [("run",), ("recommend", "u1"), ("serve", "--port", "HELD")])
def test_a_feature_store_configuration_that_cannot_work_is_refused_before_anything_starts(
    settings: Settings, command: tuple[str, ...], held_port: str
) -> None:
    """Found by a trial: TAILOR_FEAST_REDIS=127.0.0.1:abc failed `tailor run` after the whole dbt build (int()'s
    ValueError), `recommend` served popular pages as if the store were down, and the service's /readyz said only
    "ValueError"; a Redis configuration on a Spark home was a 40-line traceback."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events.jsonl").write_text('{"event_id": "e1"}\n')
    settings.marts_dir.mkdir(parents=True)
    command = _with_port(command, held_port)
    env = {FEAST_YAML_ENV: str(FEATURE_REPO_DIR / "feature_store.redis.yaml"), "TAILOR_FEAST_REDIS": "127.0.0.1:abc"}
    error = _refused(_invoke(*command, env=env))
    assert "TAILOR_FEAST_REDIS='127.0.0.1:abc': '127.0.0.1:abc' is not HOST:PORT" in error
    spark = _refused(_invoke(*command, env={**env, "TAILOR_FEAST_REDIS": "127.0.0.1:6390", "TAILOR_ENGINE": "spark"}))
    assert "TAILOR_ENGINE=spark reads features with Feast's spark offline store" in spark
    assert not (settings.home / "dagster").exists() and not settings.warehouse.exists()


@pytest.mark.parametrize("command", [("run",), ("recommend", "u1"), ("serve", "--port", "HELD")])
def test_spark_without_its_extra_is_one_error_line_naming_the_install_command(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...], held_port: str
) -> None:
    """Found by a re-check trial: `make install` leaves the spark extra out, and `TAILOR_ENGINE=spark tailor run`
    printed "Running every asset" then a 49-line traceback (recommend: 67 lines from Feast's Spark store)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events.jsonl").write_text('{"event_id": "e1"}\n')
    error = _refused(_invoke(*_with_port(command, held_port), env={"TAILOR_ENGINE": "spark"}))
    assert "TAILOR_ENGINE=spark needs the optional 'spark' extra (pyspark not installed)" in error
    assert "run `make install-spark` in the repository" in error
    assert not (settings.home / "dagster").exists() and not settings.spark_dir.exists()


def _fake_java(folder: Path, version: str) -> Path:
    """A `java` whose -version says ``version`` (on stderr, as the real one does); its folder is a JAVA_HOME."""
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    java.chmod(0o755)
    return folder


def test_spark_without_a_java_it_can_run_on_is_refused_before_anything_starts(
    settings: Settings, tmp_path: Path
) -> None:
    """Found by a trial: with JAVA_HOME=/nonexistent, `TAILOR_ENGINE=spark tailor run` failed after half a minute
    with "Java gateway process exited before sending its port number", pointing at an empty spark.log."""
    from orchestration.lib.engine_support import java_refusal

    settings.inbox.mkdir(parents=True)
    (settings.inbox / "events.jsonl").write_text('{"event_id": "e1"}\n')
    error = _refused(_invoke("run", env={"TAILOR_ENGINE": "spark", "JAVA_HOME": "/nonexistent"}))
    assert "TAILOR_ENGINE=spark needs Java 17+, but JAVA_HOME=/nonexistent has no bin/java" in error
    assert not (settings.home / "dagster").exists() and not settings.spark_dir.exists()
    no_path = {"PATH": str(tmp_path / "empty")}
    assert "no `java` is on PATH" in (java_refusal("spark", no_path) or "")
    old, older, new = (_fake_java(tmp_path / v, v) for v in ("11.0.2", "1.8.0_292", "17.0.15"))
    assert "is Java 11: install Java 17" in (java_refusal("spark", {"JAVA_HOME": str(old)}) or "")
    assert "is Java 8: install Java 17" in (java_refusal("spark", {"JAVA_HOME": str(older)}) or "")
    assert java_refusal("spark", {"JAVA_HOME": str(new)}) is None
    assert java_refusal("duckdb", no_path) is None  # DuckDB needs no Java


def test_an_empty_tailor_home_means_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        monkeypatch.setenv("TAILOR_HOME", empty)
        assert get_settings().home == tmp_path / "data"


def test_too_few_days_for_the_ranker_names_the_variables_to_shorten_the_windows() -> None:
    times = pd.Series(pd.date_range("2026-01-05", periods=5, freq="D"))
    with pytest.raises(TrainingDataError) as raised:
        plan_windows(times, RankerConfig())
    assert "TAILOR_RANKER_WARMUP_DAYS, _TRAIN_DAYS, _TUNE_DAYS, _CALIBRATION_DAYS and _TEST_DAYS" in str(raised.value)
    assert "ranker configuration" not in str(raised.value)


def test_a_summary_csv_without_columns_names_them_as_the_header_spells_them(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SummaryFileError, match="the file is empty; its first line must be a header with experiment,"):
        read_summary_csv(empty)
    partial = tmp_path / "partial.csv"
    partial.write_text("metric,variant,n,sum,sum_squares\nctr,a,10,1,1\n")
    with pytest.raises(SummaryFileError) as raised:
        read_summary_csv(partial)
    assert "missing column(s) experiment;" in str(raised.value) and "experiment_id" not in str(raised.value)
    # A spreadsheet in a locale whose decimal mark is a comma exports ';' (a trial: told it lacked every column).
    # Quoted names, and a header that also lacks a column, are told the same (a review).
    quoted = '"experiment";"metric";"variant";"n";"sum";"sum_squares"'
    for header in ("experiment;metric;variant;n;sum;sum_squares", quoted, "experiment;metric;variant;n;sum"):
        semicolons = tmp_path / "semicolons.csv"
        semicolons.write_text(f"{header}\nx;ctr;a;10;1,5;2,5\n")
        with pytest.raises(SummaryFileError) as raised:
            read_summary_csv(semicolons)
        assert str(raised.value) == (
            f"{semicolons}: the header is one column separated by ';', not by commas; export the summary with comma "
            "separators and '.' as the decimal mark (its header: experiment, metric, variant, n, sum, sum_squares)"
        ), header


def test_generate_refuses_before_any_progress_output(settings: Settings, tmp_path: Path) -> None:
    made = _invoke("generate", "--users", "10", "--days", "1")
    assert made.exit_code == 0 and "for 10 users over 1 day to" in made.output, made.output
    error = _refused(_invoke("generate", "--users", "10", "--days", "1"))
    assert "already holds simulator output. Pass --overwrite" in error and "simulating" not in error
    other = get_settings(tmp_path / "other")
    error = _refused(_invoke("generate", "--continue", "--days", "5", env={"TAILOR_HOME": str(other.home)}))
    assert "holds no simulation to continue" in error
    blocker = tmp_path / "a-file"
    blocker.write_text("hi")
    error = _refused(_invoke("generate", "--days", "2", "--out", str(blocker / "sim")))
    assert f"{blocker} is a file, not a folder" in error


def test_generate_refuses_a_history_the_contract_would_quarantine(settings: Settings) -> None:
    """A trial: `--start-date 1999-12-30` wrote a history whose rows were mostly quarantined as bad_timestamp (its
    users sign up to 730 days before the start), and `--start-date 2030-01-01` one whose every event was
    future_timestamp when ingested; both said "Wrote ... event rows" and exited 0."""
    today = datetime.now(UTC).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    error = _refused(_invoke("generate", "--users", "10", "--days", "3", "--start-date", "1999-12-30"))
    assert "start_date 1999-12-30 with 3 day(s) writes timestamps outside the contract's years 2000 to 2999" in error
    assert "start on 2002-01-01 or later and end by 2999-12-26" in error
    # Past year 9999 too (end_date itself overflowed: a review).
    error = _refused(_invoke("generate", "--users", "10", "--days", "30", "--start-date", "9999-12-20"))
    assert "start_date 9999-12-20 with 30 day(s) writes timestamps outside the contract's years" in error
    error = _refused(_invoke("generate", "--users", "10", "--days", "2", "--start-date", str(today)))
    assert error == (
        f"error: --start-date {today} with 2 days ends on {tomorrow}, not before today ({today} UTC): ingested now, "
        "its events would be quarantined as future_timestamp (an event may be at most 24 h ahead of its arrival, and "
        f"a day's last sessions run past midnight). End it by {yesterday}: start earlier (--start-date), or use "
        "fewer --days\n"
    )
    # Ending today is refused too: the day's last sessions run past midnight, more than 24 h ahead of an early ingest.
    error = _refused(_invoke("generate", "--users", "10", "--days", "1", "--start-date", str(today)))
    assert f"ends on {today}, not before today" in error
    assert not settings.inbox.exists()  # nothing written
    # Ending yesterday is fine, and so is continuing up to yesterday; a day more is refused, with nothing written.
    made = _invoke("generate", "--users", "10", "--days", "2", "--start-date", str(today - timedelta(days=3)))
    assert made.exit_code == 0, made.output
    files = sorted(settings.inbox.rglob("*"))
    error = _refused(_invoke("generate", "--continue", "--days", "2"))
    assert error.startswith(
        f"error: --continue by 2 days from {yesterday} ends on {today}, not before today"
    ) and error.endswith(f"End it by {yesterday}: add fewer --days, or wait for those days to pass\n")
    assert sorted(settings.inbox.rglob("*")) == files
    assert _invoke("generate", "--continue", "--days", "1").exit_code == 0
    # A simulation this version would not write (a start in 2001) is told so, not a traceback (a review).
    truth = settings.inbox / "_truth" / "truth.json"
    doc = json.loads(truth.read_text())
    doc["config"]["start_date"] = "2001-06-01"
    truth.write_text(json.dumps(doc))
    error = _refused(_invoke("generate", "--continue", "--days", "1"))
    assert "start_date 2001-06-01 with 2 day(s) writes timestamps outside" in error
    assert error.endswith(f"the simulation in {settings.inbox.resolve()} cannot be continued\n")


def test_generate_names_the_default_start_when_no_start_date_was_given(settings: Settings) -> None:
    days = (datetime.now(UTC).date() - date(2026, 1, 5)).days + 1  # the default start, through today
    error = _refused(_invoke("generate", "--users", "10", "--days", str(days)))
    assert error.startswith(f"error: the default start 2026-01-05 with {days} days ends on ")


def _land(settings: Settings) -> None:
    assert _invoke("ingest", str(settings.inbox)).exit_code == 0


def test_generating_a_continued_history_again_keeps_it(settings: Settings) -> None:
    """`make demo` again (`generate --overwrite` of the same world) after a continuation had landed used to rewind
    the simulation to the first run's last day, after which `--continue` could add no day. It is kept and said."""
    world = ("--users", "20", "--days", "3")
    assert _invoke("generate", *world).exit_code == 0
    _land(settings)
    assert _invoke("generate", "--continue", "--days", "1").exit_code == 0  # 2026-01-08, landed
    _land(settings)
    truth = (settings.inbox / "_truth" / "truth.json").read_text()
    files = sorted(p.name for p in (settings.inbox / "events").iterdir())
    kept = _invoke("generate", *world, "--overwrite")
    assert kept.exit_code == 0, kept.stderr
    assert f"Kept the simulation in {settings.inbox}" in kept.stdout and "continued to 2026-01-08" in kept.stdout
    assert "its days up to 2026-01-08 have landed" in kept.stdout
    assert (settings.inbox / "_truth" / "truth.json").read_text() == truth
    assert sorted(p.name for p in (settings.inbox / "events").iterdir()) == files
    assert _invoke("generate", "--continue", "--days", "1").exit_code == 0  # 2026-01-09: the history goes on
    # Without --days, --continue adds one day (a trial's `generate --continue` wrote 28 more days, the first run's
    # default, 550k rows into the inbox).
    added = _invoke("generate", "--continue")
    assert added.exit_code == 0, added.stderr
    assert f"Continued {settings.inbox} by 1 day (2026-01-10 to 2026-01-10" in added.stdout
    # Another world is still refused.
    assert "a different simulated history" in _refused(
        _invoke("generate", "--users", "21", "--days", "3", "--overwrite")
    )


def test_another_history_written_below_the_inbox_is_refused_as_one_written_into_it(
    settings: Settings, tmp_path: Path
) -> None:
    """Found by a trial: `generate --out $TAILOR_HOME/inbox/events` of another seed was written, and the next run
    landed it beside the home's history (the inbox is read with its subfolders)."""
    world = ("--users", "20", "--days", "3")
    assert _invoke("generate", *world).exit_code == 0
    _land(settings)
    below = settings.inbox / "events" / "more"
    error = _refused(_invoke("generate", "--users", "20", "--days", "3", "--seed", "5", "--out", str(below)))
    assert f"{below} is inside the inbox of {settings.home}, which already holds a different simulated history" in (
        " ".join(error.split())
    )
    assert not below.exists()
    # The same world below the inbox, and another world outside it, are fine.
    assert _invoke("generate", *world, "--out", str(settings.inbox / "again")).exit_code == 0
    assert (
        _invoke("generate", "--users", "20", "--days", "3", "--seed", "5", "--out", str(tmp_path / "x")).exit_code == 0
    )


def test_continuing_a_rewound_simulation_refuses_days_that_have_landed(settings: Settings) -> None:
    """A simulation generated from scratch after a continuation had landed (its truth deleted first, or rewound
    before the rule above): continuing would write the landed day again, and `tailor run` would find nothing new."""
    world = ("--users", "20", "--days", "3")
    assert _invoke("generate", *world).exit_code == 0
    _land(settings)
    assert _invoke("generate", "--continue", "--days", "1").exit_code == 0  # 2026-01-08, landed
    _land(settings)
    assert _invoke("generate", "--continue", "--days", "1").exit_code == 0  # 2026-01-09, not landed: continues
    import shutil

    shutil.rmtree(settings.inbox / "_truth")
    assert _invoke("generate", *world, "--overwrite").exit_code == 0
    before = sorted(p.name for p in (settings.inbox / "events").iterdir())
    error = _refused(_invoke("generate", "--continue", "--days", "1"))
    assert (
        f"the simulation in {settings.inbox} ends on 2026-01-07, but its events up to 2026-01-08 have landed" in error
    )
    assert "start from an empty home" in error
    assert sorted(p.name for p in (settings.inbox / "events").iterdir()) == before  # nothing written


def test_a_session_running_past_midnight_is_not_a_landed_day(settings: Settings) -> None:
    """The last day's sessions can run minutes into the next day: that is no day of a continuation."""
    from tailor.ingest.landed_days import newest_landed_day

    events = settings.inbox / "events"
    events.mkdir(parents=True)

    def impression(at: str) -> str:
        return (
            f'{{"event_type":"impression","event_id":"e{at[11:13]}","user_id":"u1","occurred_at":"{at}",'
            f'"received_at":"{at}","content_id":"c1","request_id":"r1","position":1,"surface":"feed"}}\n'
        )

    (events / "events-2026-01-08.jsonl").write_text(impression("2026-01-08T00:10:00.000Z"))
    _land(settings)
    assert newest_landed_day(settings, settings.inbox, date(2026, 1, 8)) is None
    (events / "events-2026-01-08.2.jsonl").write_text(impression("2026-01-08T09:00:00.000Z"))
    (events / "events-2026-01-09.jsonl").write_text(
        impression("2099-01-01T09:00:00.000Z").replace(
            '"received_at":"2099-01-01T09:00:00.000Z"', '"received_at":"2026-01-09T09:00:00.000Z"'
        )
    )  # a future time
    _land(settings)
    assert newest_landed_day(settings, settings.inbox, date(2026, 1, 8)) == date(2026, 1, 8)
    assert newest_landed_day(settings, settings.inbox, date(2026, 1, 9)) is None


def test_a_negative_seed_is_refused_by_its_option(settings: Settings) -> None:
    """Found by a trial: --seed -3 ended in numpy's 'expected non-negative integer' traceback and left an empty
    output folder."""
    result = _invoke("generate", "--users", "5", "--days", "1", "--seed", "-3")
    assert result.exit_code == 2 and "Invalid value for '--seed': -3 is not in the range x>=0" in result.stderr
    assert not settings.inbox.exists()


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder no file can be created in: a read-only bind mount as root (root ignores permission bits), else
    mode 0555. Skipped where root may not mount."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    import subprocess

    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        pytest.skip("root may not mount here: no read-only folder to test with")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("inside", [False, True], ids=["home-is-read-only", "home-to-be-made-in-read-only"])
def test_a_home_that_cannot_be_written_is_one_error_line_before_anything_starts(
    read_only_folder: Path, tmp_path: Path, inside: bool
) -> None:
    """Found by a trial: on a read-only home `tailor run` was a traceback from its run lock (OSError: Read-only file
    system), `tailor generate` one from mkdir, and `tailor ingest` said the landing zone's lock "cannot be read"."""
    home = read_only_folder / "home" if inside else read_only_folder
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e1"}\n')
    env = {"TAILOR_HOME": str(home)}
    for command, writes in (("run", "its run lock, warehouse"), ("ingest", "the landing zone")):
        error = _refused(_invoke(command, *([str(events)] if command == "ingest" else []), env=env))
        assert error.startswith(f"error: the Tailor home {home} cannot be written"), error
        assert f"`tailor {command}` writes {writes}" in error and "Set TAILOR_HOME to a folder this user can" in error
    error = _refused(_invoke("generate", "--users", "5", "--days", "1", env=env))
    assert error.startswith(f"error: {home / 'inbox'} cannot be written (it would be made in {read_only_folder})")
    assert "the simulated events go there (the inbox of TAILOR_HOME)" in error
    assert sorted(p.name for p in read_only_folder.iterdir()) == []


@pytest.mark.usefixtures("no_exec")
def test_the_ui_refuses_a_read_only_home_and_an_address_is_recorded_only_where_it_can_be(
    read_only_folder: Path,
) -> None:
    """Found by a re-check trial: on a read-only home `tailor serve` and `tailor app` crashed writing their address
    file (they only read the home), and `tailor ui` started `dagster dev`, which failed in SQLAlchemy."""
    from tailor.faces import ANALYST_APP, record_address

    error = _refused(_invoke("ui", "--port", "18999", env={"TAILOR_HOME": str(read_only_folder)}))
    assert error.startswith(f"error: the Tailor home {read_only_folder} cannot be written"), error
    assert "`tailor ui` writes the Dagster instance" in error
    assert record_address(ANALYST_APP, read_only_folder, "127.0.0.1", 8501) is False
    assert list(read_only_folder.iterdir()) == []

"""What a data engineer sees in the Dagster UI: plain `dagster dev` starts, the code location is `tailor`, and every
asset in the catalog is described in words (dbt models by their YAML description, never by their SQL)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestration.lib.dbt import TailorDbtTranslator
from tailor.faces import DAGSTER_UI, hint
from tailor.settings import REPO_ROOT, TELEMETRY_OFF
from tests.conftest import default_signals, group_alive

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 180  # webserver, daemon and a code server loading the definitions (and parsing dbt if stale)
STOP_TIMEOUT_S = 60

# SQL or dbt Jinja in a description: a code fence, template tags, or a line that starts a query.
SQL_SIGNS = re.compile(r"```|\{\{|\{%|\{#|Raw SQL|^\s*(select|with)\b", re.IGNORECASE | re.MULTILINE)

LOCATION_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation { repositories { name assetNodes { assetKey { path } description } } }
        }
      }
    }
  }
}
"""

SENSOR_QUERY = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 1) { status skipReason } } }
  }
}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


def _clean_environment(home: Path) -> dict[str, str]:
    """A data engineer's shell with the venv activated: no TAILOR_HOME, DAGSTER_HOME or TAILOR_DAGSTER_*."""
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **TELEMETRY_OFF}


@pytest.fixture
def repository_root(tmp_path: Path) -> Path:
    """A folder that `dagster dev` sees as the repository root: the repository's own pyproject.toml and dagster.yaml.

    Not the checkout itself: there, with no TAILOR_HOME, the instance would be the developer's ./data/dagster and the
    inbox sensor (running by default) would ingest whatever waits in their ./data/inbox. Links keep the files the real
    ones; the code is the installed project, as in the checkout.
    """
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("pyproject.toml", "dagster.yaml"):
        (root / name).symlink_to(REPO_ROOT / name)
    return root


@dataclass(frozen=True)
class Server:
    """A running `dagster dev`: its port, process (the group leader), log, and the Tailor home it should use."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    tailor_home: Path
    command: str  # "dagster dev" or "tailor ui"


def _start(
    command: list[str], cwd: Path, env: dict[str, str], log: Path, preexec: Callable[[], None]
) -> subprocess.Popen[bytes]:
    """``command`` in its own process group (the webserver, daemon and code servers it starts), output to ``log``."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            start_new_session=True,
        )


@pytest.fixture(params=["dagster dev", "tailor ui"])
def server(request: pytest.FixtureRequest, repository_root: Path, tmp_path: Path) -> Iterator[Server]:
    """`dagster dev` typed in the repository root with a clean environment, or `tailor ui` (what `make ui` runs)
    with TAILOR_HOME set; stopped with SIGTERM afterwards."""
    port = _free_port()
    log = tmp_path / "dagster-dev.log"
    home = tmp_path / "user-home"
    home.mkdir()
    env = _clean_environment(home)
    if request.param == "dagster dev":
        command, cwd, tailor_home = (
            [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
            repository_root,
            repository_root / "data",
        )
    else:
        tailor_home = tmp_path / "tailor-home"
        command, cwd = [str(BIN / "tailor"), "ui", "--host", "127.0.0.1", "--port", str(port)], tmp_path
        env["TAILOR_HOME"] = str(tailor_home)
    process = _start(command, cwd, env, log, default_signals)
    try:
        yield Server(port, process, log, tailor_home, request.param)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)


def _wait_for_location(port: int, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """The workspace once every code location has loaded (or failed to)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            workspace = _graphql(port, LOCATION_QUERY)["workspaceOrError"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            workspace = None
        entries = workspace["locationEntries"] if workspace else []
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            return workspace
        time.sleep(1)
    pytest.fail(f"dagster dev did not load its code location in {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def test_dagster_dev_serves_the_tailor_location_on_the_tailor_home(server: Server, repository_root: Path) -> None:
    port, process, log = server.port, server.process, server.log
    workspace = _wait_for_location(port, process, log)

    [entry] = workspace["locationEntries"]
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location.get("message")
    assert entry["name"] == "tailor"
    [repository] = location["repositories"]
    assets = {"/".join(node["assetKey"]["path"]): node["description"] for node in repository["assetNodes"]}
    assert {"landing/events", "marts/fct_events", "intermediate/int_experiment_unit_days"} <= set(assets)
    assert not [key for key, text in assets.items() if not text or SQL_SIGNS.search(text)]

    # The instance and the inbox sensor (evaluated by the daemon through the code server) both use the Tailor home:
    # TAILOR_HOME, or ./data beside dagster.yaml when it is unset.
    assert (server.tailor_home / "dagster" / "storage" / "history" / "runs.db").exists()
    selector = {"repositoryLocationName": "tailor", "repositoryName": repository["name"], "sensorName": "inbox_sensor"}
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    ticks: list[dict[str, Any]] = []
    # A tick is recorded as STARTED while the daemon evaluates it (seconds on a busy machine: a CI run saw one).
    while not [t for t in ticks if t["status"] != "STARTED"] and time.monotonic() < deadline:
        sensor = _graphql(port, SENSOR_QUERY, {"selector": selector})["sensorOrError"]
        assert sensor["__typename"] == "Sensor", sensor
        ticks = sensor["sensorState"]["ticks"]
        time.sleep(1)
    ticks = [t for t in ticks if t["status"] != "STARTED"]
    assert ticks, f"the daemon never finished a tick of the inbox sensor:\n{log.read_text()[-4000:]}"
    assert ticks[0]["status"] == "SKIPPED"
    assert str(server.tailor_home / "inbox") in ticks[0]["skipReason"]
    # The daemon keeps the run summary the app reads current (orchestration/defs/runs/sensors.py): no run yet.
    summary = server.tailor_home / "dagster" / "run_summary.json"
    while not summary.exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert summary.exists(), f"the daemon never published the run summary:\n{log.read_text()[-4000:]}"
    assert json.loads(summary.read_text())["runs"] == []
    # Dagster reads a property it deprecated on every schedule snapshot: the log repeated that warning (a trial).
    assert "environment_vars" not in log.read_text()
    if server.command == "tailor ui":
        # Dagster's advice to use `dg dev` (a CLI this stack does not install) is not shown to `tailor ui` users.
        assert "SupersessionWarning" not in log.read_text() and "dg dev" not in log.read_text()
    else:
        assert "Use 'dg dev' instead" in log.read_text(), "the filter above would hide nothing: drop it"
    # A second UI on the same home would start a second daemon (a trial's interrupted a run): refused, in words.
    second = subprocess.run(
        [str(BIN / "tailor"), "ui", "--host", "127.0.0.1", "--port", str(_free_port())],
        env={**_clean_environment(server.tailor_home.parent), "TAILOR_HOME": str(server.tailor_home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"error: a Dagster daemon is already running on {server.tailor_home} (its last heartbeat" in second.stderr

    # Stopped as a terminal's Ctrl-C or a supervisor would: SIGTERM, a clean exit, and no process left behind.
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()[-4000:]
    while group_alive(process.pid) and time.monotonic() - began < STOP_TIMEOUT_S:
        time.sleep(0.5)
    assert not group_alive(process.pid), "dagster dev left processes running after SIGTERM"
    assert "Dagster services shut down." in log.read_text()
    assert not list(repository_root.glob(".tmp_dagster_home_*")), "dagster dev left its temporary home behind"


def test_every_asset_is_described_in_words() -> None:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    undescribed, sql, placeholder = [], [], []
    for key in graph.get_all_asset_keys():
        text = (graph.get(key).description or "").strip()
        name = key.to_user_string()
        if not text:
            undescribed.append(name)
        elif SQL_SIGNS.search(text):
            sql.append(name)
        elif "has no description yet" in text:
            placeholder.append(name)
    assert not undescribed, f"assets without a description: {undescribed}"
    assert not sql, f"assets described by SQL: {sql}"
    # Every dbt model, snapshot and seed has its own description in the YAML beside it.
    assert not placeholder, f"dbt nodes without a description in their YAML: {placeholder}"


def test_a_dbt_node_without_a_description_gets_a_sentence_not_its_sql() -> None:
    translator = TailorDbtTranslator()
    props = {
        "resource_type": "model",
        "name": "int_new_thing",
        "original_file_path": "models/intermediate/int_new_thing.sql",
        "description": "",
        "raw_code": "{{ config(materialized='table') }}\nselect * from {{ ref('fct_events') }}",
    }
    text = translator.get_description(props)
    assert text == (
        "dbt model int_new_thing (models/intermediate/int_new_thing.sql); "
        "it has no description yet: add one in the YAML file beside it."
    )
    assert not SQL_SIGNS.search(text)
    # A described node shows exactly its description: dagster-dbt's default would append the SQL to it.
    assert translator.get_description({**props, "description": "Things, one row per thing.\n"}) == (
        "Things, one row per thing."
    )


def _ignore_interrupts() -> None:
    """What a non-interactive shell gives a command it starts in the background (`tailor ui &` in a script, CI):
    SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_tailor_ui_stops_on_ctrl_c_even_when_started_with_it_ignored(tmp_path: Path) -> None:
    """An ignored signal stays ignored across exec: `dagster dev` logged the interrupt and forwarded it to its
    webserver and code server, which ignored it and ran on (a trial's `kill -INT` left six processes)."""
    port = _free_port()
    home = tmp_path / "user-home"
    home.mkdir()
    tailor_home = tmp_path / "tailor-home"
    env = {**_clean_environment(home), "TAILOR_HOME": str(tailor_home)}
    log = tmp_path / "ui.log"
    command = [str(BIN / "tailor"), "ui", "--host", "127.0.0.1", "--port", str(port)]
    process = _start(command, tmp_path, env, log, _ignore_interrupts)
    try:
        _wait_for_location(port, process, log)
        # Messages that send a person to the UI give the port it is on, not 3000 (a trial's UI was on another).
        assert hint(DAGSTER_UI, tailor_home) == f"the Dagster UI at http://127.0.0.1:{port}"
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground group
        process.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not group_alive(process.pid), f"processes of `tailor ui` outlived Ctrl-C:\n{log.read_text()[-2000:]}"
        # Stopped: how to start one.
        assert hint(DAGSTER_UI, tailor_home) == "the Dagster UI (`make ui`, http://127.0.0.1:3000)"
    finally:
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

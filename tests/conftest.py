"""Shared fixtures: an isolated TAILOR_HOME per test and a real `dbt` runner."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tailor.settings import DBT_PROJECT_DIR, Settings, get_settings

DBT = str(Path(sys.executable).parent / "dbt")
#: Warehouse columns that name the build that wrote a row, not data: two builds of the same rows differ in them
#: (stg_landing__events.built_in_invocation, dbt's invocation id).
PER_BUILD_COLUMNS = frozenset({"built_in_invocation"})


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh, empty Tailor home under the test's tmp_path (also exported as TAILOR_HOME)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    yield get_settings(home)


def run_dbt(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run plain dbt from dbt_project/, as a user would, with its own target folder (tests run in parallel).

    A `build` leaves out dbt's unit tests, as `tailor run` does (orchestration/lib/dbt.py, BUILD_ARGS): they test the
    SQL on fixed rows, whatever the home, and tests/integration/test_warehouse.py::test_dbts_unit_tests_pass runs
    them; in every build of the suite's homes they cost about 2 s each."""
    if args[:1] == ("build",) and not {"--resource-type", "--exclude-resource-type"} & set(args):
        args = (*args, "--exclude-resource-type", "unit_test")
    scratch = settings.home / "dbt"
    env = {
        **os.environ,
        **settings.dbt_env(),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(scratch / "target"),
        "DBT_LOG_PATH": str(scratch / "logs"),
    }
    result = subprocess.run([DBT, *args], cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    return result


def query_warehouse(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query against the warehouse, opened read-only and closed again (one writer at a time)."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis://127.0.0.1:PORT` of a real redis-server started for this test session and stopped after it.

    Skips when redis-server is missing, except under TAILOR_REQUIRE_SERVICES=1 (CI), where that is a failure.
    Tests share the server: give keys, streams and entity ids names of their own.
    """
    from tests.redis_server import INSTALL_HINT, RedisServer, redis_server_binary, services_required

    binary = redis_server_binary()
    if binary is None:
        if services_required():
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    with RedisServer(binary, tmp_path_factory.mktemp("redis")) as server:
        yield server.url


#: The small world behind `served_home`: enough days for the ranker's windows (14), small enough to build in ~1 min.
SERVED_WORLD = ("--users", "150", "--days", "16", "--seed", "3")
#: A small search budget: the tests check what is served, bench/bench_ranker.py what the search finds.
SERVED_ENV = {
    "TAILOR_RANKER_SEARCH_TRIALS": "2",
    "TAILOR_RANKER_SEARCH_TIMEOUT_S": "60",
    "TAILOR_RANKER_EVAL_USERS": "50",
}


def default_signals() -> None:
    """A subprocess's preexec_fn: SIGINT and SIGTERM as a terminal gives them. A shell that started pytest in the
    background passes them as ignored, and a child would then never stop on them (docs: STACK_NOTES)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def tailor_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `tailor` command on a home, as a user would (small ranker search budget)."""
    full_env = {**os.environ, "TAILOR_HOME": str(home), **SERVED_ENV, **(env or {})}
    command = [str(Path(sys.executable).parent / "tailor"), *args]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, check=False, timeout=1500)


@pytest.fixture(scope="session")
def served_home(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Settings:
    """A small history after one `tailor run`: warehouse, Feast (SQLite online store), a trained champion, the
    batch pages. Built once per test session and shared by every pytest-xdist worker (a file lock makes the others
    wait for the first), because recommend, the service and the app all serve from the same kind of home.

    Read-only: a test that changes a home (streams events into it, rewrites its pages) uses `copy_home`."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # each worker has its own basetemp under the session's
        root = root.parent
    folder = root / "served_home"
    folder.mkdir(exist_ok=True)
    home = folder / "home"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "ready").exists():
            shutil.rmtree(home, ignore_errors=True)
            made = tailor_cli(home, "generate", *SERVED_WORLD)
            assert made.returncode == 0, made.stderr
            ran = tailor_cli(home, "run", "--quiet")
            assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
            (folder / "ready").touch()
    return get_settings(home)


def copy_home(settings: Settings, target: Path) -> Settings:
    """A copy of a home to change freely (paths inside derive from TAILOR_HOME; MLflow's artifact URIs still name
    the original, which is only read)."""
    shutil.copytree(settings.home, target / "home")
    return get_settings(target / "home")

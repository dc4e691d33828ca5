"""Shared fixtures: an isolated TAILOR_HOME per test and a real `dbt` runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tailor.settings import DBT_PROJECT_DIR, Settings, get_settings

DBT = str(Path(sys.executable).parent / "dbt")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh, empty Tailor home under the test's tmp_path (also exported as TAILOR_HOME)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    yield get_settings(home)


def run_dbt(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run plain dbt from dbt_project/, as a user would, with its own target folder (tests run in parallel)."""
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

"""What Tailor's dbt resource leaves out of dagster-dbt, and the parse state a home keeps between its builds
(orchestration/lib/dbt.py). A real `dbt` call that reuses a home's parse is in tests/integration/test_warehouse.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster_dbt import DbtCliResource
from dagster_dbt.compat import DBT_PYTHON_VERSION

from orchestration.lib import dbt as dbt_lib
from orchestration.lib.dbt import (
    PARTIAL_PARSE_FILE,
    TailorDbtCliResource,
    invocation_target,
    keep_parse_state,
    parse_stamp,
    parse_state,
    reuse_parse_state,
)
from tailor.settings import Settings

pytestmark = pytest.mark.unit


def test_the_methods_it_replaces_are_still_dagster_dbts() -> None:
    """An upgrade that renames either would leave the override unused and the fixed costs back, silently."""
    for name in ("_cli_version", "_initialize_dbt_core_adapter"):
        assert name in vars(DbtCliResource), name
        assert name in vars(TailorDbtCliResource), name


def test_the_version_is_read_without_running_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster_dbt.core.resource as resource

    def no_process(*args: object, **kwargs: object) -> bytes:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(resource, "check_output", no_process)
    ours = TailorDbtCliResource(project_dir=str(dbt_lib.DBT_PROJECT_DIR), dbt_executable=dbt_lib.DBT_EXECUTABLE)
    assert DBT_PYTHON_VERSION is not None and ours._cli_version == DBT_PYTHON_VERSION
    assert ours._initialize_dbt_core_adapter(["build"]) is None


def test_another_dbt_executable_is_asked_for_its_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import dagster_dbt.core.resource as resource

    elsewhere = tmp_path / "dbt"
    elsewhere.write_text("#!/bin/sh\n")
    elsewhere.chmod(0o755)

    asked: list[object] = []

    def version_of(command: list[str], **kwargs: object) -> bytes:
        asked.append(command)
        return b"Core:\n  - installed: 1.10.3\n"

    monkeypatch.setattr(resource, "check_output", version_of)
    other = TailorDbtCliResource(project_dir=str(dbt_lib.DBT_PROJECT_DIR), dbt_executable=str(elsewhere))
    assert str(other._cli_version) == "1.10.3"
    assert asked == [[str(elsewhere), "--version"]]


def test_a_build_folder_is_named_as_dagster_dbt_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    first, second = invocation_target("0123456789abcdef"), invocation_target("0123456789abcdef")
    assert first.parent == dbt_lib.DBT_PROJECT_DIR / "target" and first.name.startswith("warehouse-0123456-")
    assert first != second  # two builds of one run (a retry) never share a folder
    monkeypatch.setenv("DBT_TARGET_PATH", "/elsewhere/target")
    assert invocation_target("0123456789abcdef").parent == Path("/elsewhere/target")


def test_a_home_without_parse_state_leaves_the_build_folder_alone(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "target" / "warehouse-x"
    assert reuse_parse_state(settings, target) is False
    assert not target.exists()  # dagster-dbt then copies the project's own, as before
    assert keep_parse_state(settings, target) is False  # dbt stopped before parsing: nothing to keep
    assert not parse_state(settings).exists()


def test_the_state_a_build_wrote_is_what_the_next_build_starts_from(settings: Settings, tmp_path: Path) -> None:
    first, second = tmp_path / "t" / "warehouse-1", tmp_path / "t" / "warehouse-2"
    first.mkdir(parents=True)
    (first / PARTIAL_PARSE_FILE).write_bytes(b"parse of build 1")  # a first build: nothing was placed
    assert keep_parse_state(settings, first, placed=None) is True
    kept = parse_state(settings)
    assert kept == settings.home / "warehouse" / f"dbt_partial_parse.{settings.engine}"
    assert reuse_parse_state(settings, second) is True
    assert (second / PARTIAL_PARSE_FILE).read_bytes() == b"parse of build 1"
    placed = parse_stamp(second)
    assert placed is not None
    (second / PARTIAL_PARSE_FILE).write_bytes(b"parse of build 2")  # dbt parsed again (a model changed)
    os.utime(second / PARTIAL_PARSE_FILE, ns=(placed + 10**9, placed + 10**9))  # seconds after it started
    assert keep_parse_state(settings, second, placed) is True
    assert kept.read_bytes() == b"parse of build 2"
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]  # no half-written copy left beside it


def test_a_state_dbt_did_not_write_is_not_kept(settings: Settings, tmp_path: Path) -> None:
    """dbt stopped before it parsed (or found nothing changed): the folder holds what it was given, perhaps the
    project-wide state dagster-dbt copies in, made for another home; the home's own state stays as it was."""
    kept = parse_state(settings)
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"this home's parse")
    target = tmp_path / "t" / "warehouse-1"
    target.mkdir(parents=True)
    (target / PARTIAL_PARSE_FILE).write_bytes(b"another home's parse")
    assert keep_parse_state(settings, target, placed=parse_stamp(target)) is False
    assert kept.read_bytes() == b"this home's parse"

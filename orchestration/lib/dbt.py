"""The dbt project as Dagster sees it, found by path beside this package."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from tailor.settings import DBT_PROJECT_DIR, get_settings

# The dbt next to this interpreter: without an activated venv, `dbt` may not be on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


def export_dbt_env() -> None:
    """Put TAILOR_HOME (absolute) and the telemetry opt-outs where the dbt subprocess will read them."""
    os.environ.update(get_settings().dbt_env())


def _manifest_is_stale(manifest: Path) -> bool:
    """True when the manifest is missing or older than any file dbt parses."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml"]
    for folder in ("models", "macros", "snapshots", "seeds", "tests"):
        sources.extend(p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file())
    return any(p.stat().st_mtime > built for p in sources)


@cache
def dbt_project() -> DbtProject:
    """The project, with a manifest that matches the files: re-parsed when missing or stale.

    Loading the definitions needs the manifest, so a fresh clone (or an edited model) is parsed here once,
    in the few seconds `dbt parse` takes, rather than failing or running an old graph.
    """
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    if _manifest_is_stale(project.manifest_path):
        export_dbt_env()
        DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            ["--quiet", "parse"], target_path=project.target_path
        ).wait()
    return project


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project(), dbt_executable=DBT_EXECUTABLE)

"""The dbt project as Dagster sees it, found by path beside this package, and how its nodes appear as assets."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject
from dagster_dbt.compat import DBT_PYTHON_VERSION
from packaging.version import Version

if TYPE_CHECKING:
    from dbt.adapters.base import BaseAdapter

from tailor.durable import write_atomic
from tailor.settings import DBT_PROJECT_DIR, Engine, Settings, get_settings

# The dbt next to this interpreter: without an activated venv, `dbt` may not be on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


#: Spark's options for the JVM dbt starts on Spark (see export_dbt_env).
SPARK_SUBMIT_ARGS = "--conf spark.ui.showConsoleProgress=false pyspark-shell"

#: `dbt build` per engine, as `tailor run` and the Dagster UI run it. Neither runs dbt's unit tests: their inputs are
#: fixed rows, so they test the SQL, not the data, and say the same on every run until a model changes. dbt's
#: documentation advises running them in development and CI only (docs.getdbt.com/docs/build/unit-tests, "When to
#: run unit tests"); `make test` runs them on DuckDB (tests/integration/test_warehouse.py), and they took about 2 s
#: of every run's build on a 40-user home. Spark also leaves out the snapshots (dbt-spark snapshots need Delta or
#: Hudi's merge; the dimensions' history comes from int_*_versions on both engines); docs/scaling_out.md.
BUILD_ARGS: dict[Engine, tuple[str, ...]] = {
    "duckdb": ("build", "--exclude-resource-type", "unit_test"),
    "spark": ("build", "--exclude-resource-type", "snapshot", "unit_test"),
}


def export_dbt_env() -> None:
    """Put TAILOR_HOME (absolute), the engine and the telemetry opt-outs where the dbt subprocess will read them.

    On Spark also Spark's console progress bar off, for the JVM dbt starts (pyspark reads PYSPARK_SUBMIT_ARGS; one
    already set is kept): dagster-dbt reads dbt's JSON events from dbt's output with stderr merged in, and the bar
    (carriage returns, no newline) glues itself to the next event line, which is then lost. A lost event is a model
    Dagster never sees built, and every asset after it is skipped while the run still succeeds.
    """
    settings = get_settings()
    os.environ.update(settings.dbt_env())
    if settings.engine == "spark":
        os.environ.setdefault("PYSPARK_SUBMIT_ARGS", SPARK_SUBMIT_ARGS)


def _manifest_is_stale(manifest: Path) -> bool:
    """True when the manifest is missing or older than any file dbt parses."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml"]
    for folder in ("models", "macros", "snapshots", "seeds", "tests"):
        sources.extend(p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file())
    return any(p.stat().st_mtime > built for p in sources)


@contextmanager
def _parse_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<target>/.parse.lock` (blocking) while the manifest is checked and parsed.

    `dbt parse` writes manifest.json in place: without the lock a second process (a second pytest-xdist worker,
    `dagster dev`'s code server beside a `tailor run`) loading the definitions at the same moment sees a manifest
    newer than every model, takes it as fresh and reads it half written (orjson: "unexpected end of data"; the
    clean-clone CI run of 2026-11-30 failed so).
    """
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".parse.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@cache
def dbt_project() -> DbtProject:
    """The project, with a manifest that matches the files: re-parsed when missing or stale.

    Loading the definitions needs the manifest, so a fresh clone (or an edited model) is parsed here once,
    in the few seconds `dbt parse` takes, rather than failing or running an old graph. Processes starting
    together take turns (`_parse_lock`): one parses, the others then find the manifest fresh and whole.
    """
    # One manifest per engine: the project parses differently on each (on Spark the snapshots and unit tests are
    # disabled), and the asset graph must list what the engine in use builds.
    engine = get_settings().engine
    target = Path("target") if engine == "duckdb" else Path("target") / engine
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=target)
    with _parse_lock(project.manifest_path.parent):
        if _manifest_is_stale(project.manifest_path):
            export_dbt_env()
            _resource(project).cli(["--quiet", "parse"], target_path=project.target_path).wait()
    return project


#: Invocation folders the warehouse step leaves in dbt's target folder (``target/warehouse-<run>-<id>/``: the
#: manifest, compiled SQL, run results and dbt's log, ~10 MB each) that are kept: the newest, for a failed node's
#: compiled SQL that the step's error cites. dagster-dbt makes one per build and never removes it (a working copy
#: held 391 of them, 3.6 GB, after a few days of runs and tests).
KEPT_INVOCATIONS = 5
#: A folder younger than this is never removed: it may be a build still running in another process.
INVOCATION_GRACE_S = 3600.0


#: dbt's partial-parse file: what a `dbt` call reads to skip parsing the project again.
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def invocation_target(run_id: str) -> Path:
    """A new folder for one warehouse build's artifacts, ``dbt_project/target/warehouse-<run>-<random>/``: the name
    dagster-dbt gives one (so `prune_invocations` finds it), chosen here so that the build can start from the home's
    own parse state (`reuse_parse_state`)."""
    root = DBT_PROJECT_DIR / os.environ.get("DBT_TARGET_PATH", "target")  # dagster-dbt's root, which dbt's env sets
    return root / f"warehouse-{run_id[:7]}-{uuid.uuid4().hex[:7]}"


def parse_state(settings: Settings) -> Path:
    """Where a home keeps the parse state of its last build on its engine: ``warehouse/dbt_partial_parse.<engine>``.

    dbt reuses a parse only when the profile it was made with is the same, and the profile names the home (the
    DuckDB file, Spark's folders). dagster-dbt starts every build from `dbt_project/target/`'s one parse state, made
    for whichever home parsed last, so any other home's build parsed the whole project again: about 5 s of every
    `tailor run` on a 40-user home, a sixth of it (dbt's log says "Unable to do partial parsing because profile has
    changed"). On Spark the profile's connection keys do not name the home, but the project's sources do (through
    TAILOR_HOME). dbt checks a saved state before using it (its version, the profile and target, the connection,
    the environment variables the project reads, every file's hash) and parses again what changed, so a stale or
    copied state costs time; should dbt's checks ever miss a change, deleting this file makes the next build parse
    the whole project.
    """
    return settings.warehouse_dir / f"dbt_partial_parse.{settings.engine}"


def reuse_parse_state(settings: Settings, target: Path) -> bool:
    """Put the home's parse state where the build in ``target`` reads it; False when the home has none yet."""
    kept = parse_state(settings)
    if not kept.is_file():
        return False
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept, target / PARTIAL_PARSE_FILE)
    return True


def parse_stamp(target: Path) -> int | None:
    """The modification time (ns) of the parse state in a build folder, None when there is none: taken once dbt
    has started, it tells the state dbt wrote from the one put there for it to read."""
    try:
        return (target / PARTIAL_PARSE_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        return None


def keep_parse_state(settings: Settings, target: Path, placed: int | None = None) -> bool:
    """Keep the parse state the build in ``target`` wrote as the home's (replaced whole, never half-written).

    ``placed`` is the `parse_stamp` of the state the build was given; False when the folder holds only that one, or
    none (dbt stopped before it parsed: what was put there, maybe another home's, is not kept)."""
    written = target / PARTIAL_PARSE_FILE
    stamp = parse_stamp(target)
    if stamp is None or stamp == placed:
        return False
    kept = parse_state(settings)
    kept.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(kept, written.read_bytes())
    return True


def prune_invocations(target: Path, keep: int = KEPT_INVOCATIONS, grace_s: float = INVOCATION_GRACE_S) -> list[Path]:
    """Remove the ``warehouse-*`` invocation folders under ``target`` beyond the ``keep`` newest (by modification
    time) that are older than ``grace_s`` seconds; return what was removed."""
    folders = sorted(target.glob("warehouse-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    cutoff = time.time() - grace_s
    removed = [p for p in folders[keep:] if p.is_dir() and p.stat().st_mtime < cutoff]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


class TailorDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two fixed costs it pays on every `dbt` call and that Tailor has no use for.

    Measured on a 40-user home (`tailor run` under cProfile, dagster-dbt 0.29.27, dbt-core 1.11): `cli()` took
    5.8 s before dbt itself started, every run and every test that builds, on the critical path of the warehouse
    step (docs/benchmarks.md, "The warehouse step's fixed cost"):
    - 2.7 s running `dbt --version` in a subprocess to learn the executable's version. The executable is the one
      beside this interpreter (`DBT_EXECUTABLE`), so its version is the installed dbt-core's, read without a process.
    - 3.1 s loading the project, the profile and every macro into an in-process adapter. dagster-dbt uses that
      adapter only for `fetch_row_counts()` and `fetch_column_metadata()`, which Tailor does not call (the row
      counts it reports come from the published marts); without one, the invocation is what it is for the dbt
      Fusion engine, which has no adapter either.
    Both are private methods of the pinned dagster-dbt; tests/unit/test_dbt_resource.py fails when an upgrade
    renames them, and every test that builds the warehouse runs without the adapter.
    """

    @cached_property
    def _cli_version(self) -> Version:
        if DBT_PYTHON_VERSION is None or Path(self.dbt_executable) != Path(DBT_EXECUTABLE):
            return super()._cli_version  # another executable: ask it, as dagster-dbt does
        return DBT_PYTHON_VERSION

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> BaseAdapter:
        return None  # type: ignore[return-value]  # no adapter: see the class docstring


def _resource(project: DbtProject) -> TailorDbtCliResource:
    # DbtCliResource's own __init__ takes a DbtProject; type checkers see only the fields (project_dir: str).
    return TailorDbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE)  # type: ignore[arg-type]


def dbt_resource() -> TailorDbtCliResource:
    return _resource(dbt_project())


class TailorDbtTranslator(DagsterDbtTranslator):
    """Groups assets by warehouse layer and describes each one in words, never with its SQL."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """staging, intermediate, marts, snapshots or seeds."""
        if dbt_resource_props["resource_type"] == "seed":
            return "seeds"
        if dbt_resource_props["resource_type"] == "snapshot":
            return "snapshots"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "warehouse"

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The node's dbt description, which the catalog shows to analysts.

        dagster-dbt's default appends the raw SQL (Jinja included) to it, and for a node without a description
        shows little but that SQL; such a node gets a sentence saying where its description belongs instead.
        """
        description = str(dbt_resource_props.get("description") or "").strip()
        if description:
            return description
        kind, name = dbt_resource_props["resource_type"], dbt_resource_props["name"]
        where = dbt_resource_props.get("original_file_path") or "the dbt project"
        return f"dbt {kind} {name} ({where}); it has no description yet: add one in the YAML file beside it."

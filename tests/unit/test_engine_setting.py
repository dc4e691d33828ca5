"""TAILOR_ENGINE: one setting picks the engine; a wrong value or a missing extra says what to do."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest
import yaml

from tailor import settings as settings_module
from tailor.settings import DBT_PROJECT_DIR, SPARK_INSTALL_HINT, EngineNotInstalledError, get_settings, require_engine

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "engine"), [(None, "duckdb"), ("", "duckdb"), ("spark", "spark"), (" Spark ", "spark")]
)
def test_the_engine_comes_from_tailor_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None, engine: str
) -> None:
    if value is None:
        monkeypatch.delenv("TAILOR_ENGINE", raising=False)
    else:
        monkeypatch.setenv("TAILOR_ENGINE", value)
    assert get_settings(tmp_path).engine == engine


def test_an_unknown_engine_is_refused_with_the_known_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAILOR_ENGINE", "snowflake")
    with pytest.raises(ValueError, match=r"TAILOR_ENGINE='snowflake' is not an engine .*duckdb, spark"):
        get_settings(tmp_path)


def test_spark_without_its_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        settings_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyspark" else real(name, *a),
    )
    with pytest.raises(EngineNotInstalledError) as caught:
        require_engine("spark")
    assert SPARK_INSTALL_HINT in str(caught.value) and "pyspark" in str(caught.value)
    require_engine("duckdb")  # the default needs nothing optional


def test_the_dbt_environment_carries_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TAILOR_ENGINE", raising=False)
    assert get_settings(tmp_path).dbt_env()["TAILOR_ENGINE"] == "duckdb"


def _profile_target(env: dict[str, str]) -> str:
    """The target profiles.yml selects under ``env``, rendered as dbt renders it (env_var with a default)."""
    text = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())["tailor"]["target"]

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        assert default is not None, f"{name} has no default"
        return default

    return jinja2.Environment().from_string(text).render(env_var=env_var)


def test_the_profile_target_follows_the_engine() -> None:
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())["tailor"]["outputs"]
    assert _profile_target({}) == "local" and profile["local"]["type"] == "duckdb"
    assert _profile_target({"TAILOR_ENGINE": "duckdb"}) == "local"
    assert _profile_target({"TAILOR_ENGINE": "spark"}) == "spark" and profile["spark"]["type"] == "spark"
    # A team's own target, named directly, wins.
    assert _profile_target({"TAILOR_ENGINE": "spark", "TAILOR_DBT_TARGET": "prod"}) == "prod"
    # Empty means unset, as for every setting (docs/configuration.md).
    assert _profile_target({"TAILOR_ENGINE": "spark", "TAILOR_DBT_TARGET": " "}) == "spark"
    parameters = profile["spark"]["server_side_parameters"]
    assert parameters["spark.sql.session.timeZone"] == "UTC"
    assert "TAILOR_HOME" in parameters["spark.sql.warehouse.dir"]
    assert "TAILOR_HOME" in parameters["spark.hadoop.javax.jdo.option.ConnectionURL"]


def test_a_home_registered_for_the_other_engine_says_which_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ml.features.repo import apply_marker, engine_mismatch

    monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
    monkeypatch.setenv("TAILOR_ENGINE", "spark")
    spark_home = get_settings(tmp_path)
    spark_home.feast_dir.mkdir(parents=True)
    apply_marker(spark_home).write_text("applied")
    assert engine_mismatch(spark_home) is None

    monkeypatch.delenv("TAILOR_ENGINE")
    read_as_duckdb = get_settings(tmp_path)
    assert engine_mismatch(read_as_duckdb) == (
        "this home's features were registered for TAILOR_ENGINE=spark, not duckdb: "
        "set TAILOR_ENGINE=spark for every command on it"
    )
    apply_marker(read_as_duckdb).write_text("applied")  # registered for both: nothing to advise
    assert engine_mismatch(read_as_duckdb) is None


def test_tailor_run_refuses_to_switch_a_homes_engine_and_says_how_to_proceed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Refused before anything starts (no Spark, no Dagster): a DuckDB home run with TAILOR_ENGINE=spark, and a Spark
    home run without it. A fresh home and a home's own engine run."""
    import duckdb
    from click.testing import CliRunner

    from cli.main import main
    from orchestration.lib.engine_support import engine_switch_refusal

    home = tmp_path / "home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.delenv("TAILOR_ENGINE", raising=False)
    duck = get_settings(home)
    spark = replace(duck, engine="spark")
    assert engine_switch_refusal(duck) is None and engine_switch_refusal(spark) is None  # nothing built yet

    duck.warehouse_dir.mkdir(parents=True)
    duckdb.connect(str(duck.warehouse)).close()  # what a DuckDB build leaves
    assert engine_switch_refusal(duck) is None
    expected = (
        f"this home's warehouse was built with TAILOR_ENGINE=duckdb ({duck.warehouse}), not spark: set "
        "TAILOR_ENGINE=duckdb for every command on it. To build the same events with spark, give spark a home of its "
        f"own from this home's landed files (this home stays as it is): `mkdir <new home> && cp -r {duck.landing} "
        "<new home>/landing`, then `TAILOR_HOME=<new home> TAILOR_ENGINE=spark tailor run` (docs/scaling_out.md)"
    )
    assert engine_switch_refusal(spark) == expected
    ran = CliRunner().invoke(main, ["run"], env={"TAILOR_ENGINE": "spark"})
    assert ran.exit_code == 1 and ran.stderr == f"error: {expected}. Nothing was run\n"
    assert not spark.spark_dir.exists() and not (home / "dagster").exists()  # refused before anything started
    as_json = CliRunner().invoke(main, ["run", "--json"], env={"TAILOR_ENGINE": "spark"})
    assert as_json.exit_code == 1 and json.loads(as_json.stdout) == {"error": f"{expected}. Nothing was run"}
    # Serving from it with the other engine would read features registered for neither: refused the same way.
    for command in (["recommend", "u0000001"], ["serve", "--port", "1"]):
        served = CliRunner().invoke(main, command, env={"TAILOR_ENGINE": "spark"})
        assert served.exit_code == 1 and served.stderr == f"error: {expected}\n", command
    # A run from the Dagster UI, a schedule or a sensor does not pass through `tailor run`: the warehouse asset
    # refuses the same way before dbt starts.
    import dagster as dg

    from orchestration.defs.warehouse.assets import warehouse
    from orchestration.lib.dbt import dbt_resource

    monkeypatch.setenv("TAILOR_ENGINE", "spark")
    materialized = dg.materialize([warehouse], resources={"dbt": dbt_resource()}, raise_on_error=False)
    failures = [e for e in materialized.all_events if e.event_type_value == "STEP_FAILURE"]
    assert not materialized.success and len(failures) == 1
    assert expected in str(failures[0].step_failure_data.error)
    assert not spark.spark_dir.exists()
    monkeypatch.delenv("TAILOR_ENGINE")

    duck.warehouse.unlink()
    (spark.spark_dir / "warehouse" / "marts.db").mkdir(parents=True)  # what a Spark build leaves
    assert engine_switch_refusal(spark) is None
    refused = engine_switch_refusal(duck)
    assert refused is not None and refused.startswith(
        f"this home's warehouse was built with TAILOR_ENGINE=spark ({spark.spark_dir / 'warehouse'}), not duckdb: "
        "set TAILOR_ENGINE=spark for every command on it."
    )
    assert "TAILOR_HOME=<new home> TAILOR_ENGINE=duckdb tailor run" in refused

    duckdb.connect(str(duck.warehouse)).close()  # both engines built it already (before this check): left to run
    assert engine_switch_refusal(duck) is None and engine_switch_refusal(spark) is None

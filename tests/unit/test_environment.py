"""`tailor.environment.KNOWN` is every TAILOR_* variable the code reads, and a misspelled one is named."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ml.monitoring.config import DriftConfig, RetrainPolicy
from ml.ranker.config import RankerConfig
from ml.recommend.rules import PageRules
from ml.recommend.serving import ServingConfig
from service.config import ServiceConfig
from tailor.environment import FAMILIES, FLAGS, KNOWN, PREFIX, SINGLE, flag, flag_warnings, unknown_variables
from tailor.settings import REPO_ROOT

pytestmark = pytest.mark.unit

NAME = re.compile(r"TAILOR_[A-Z0-9_]*[A-Z0-9]\b")


def _source_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    skip = ("docs/", "tests/", ".ci/")
    return [
        REPO_ROOT / name
        for name in listed.split()
        if not name.startswith(skip) and not name.endswith(".md") and (REPO_ROOT / name).is_file()
    ]


def test_every_name_written_in_the_source_is_known() -> None:
    written = {match for path in _source_files() for match in NAME.findall(path.read_text(errors="ignore"))}
    assert written, "the scan found no TAILOR_ name: the pattern or the file list is wrong"
    assert written - KNOWN == set()


def test_each_family_is_the_fields_its_configuration_reads() -> None:
    """A field added to a configuration class (and so read as TAILOR_<FAMILY><FIELD>) must be added here."""
    ranker = {f.name for f in dataclasses.fields(RankerConfig)} - {
        "feature_service",
        "ranking_k",
        "candidates",
    }
    assert set(FAMILIES["TAILOR_RANKER_"]) == ranker
    assert set(FAMILIES["TAILOR_DRIFT_"]) == {f.name for f in dataclasses.fields(DriftConfig)} - {"clusters"}
    assert set(FAMILIES["TAILOR_RETRAIN_"]) == {f.name for f in dataclasses.fields(RetrainPolicy)}
    assert set(FAMILIES["TAILOR_RECOMMEND_"]) == {"budget_ms"} | {f.name for f in dataclasses.fields(PageRules)}
    service = {f.name for f in dataclasses.fields(ServiceConfig)} - {"budget_ms", "stream_url"}
    assert set(FAMILIES["TAILOR_SERVICE_"]) == service | {"metrics_dir"}


def test_each_family_field_is_read_by_its_configuration() -> None:
    """Setting a family's variable to a word is refused by the class that reads it: the name is really read."""
    readers = {
        "TAILOR_RANKER_": RankerConfig.from_env,
        "TAILOR_DRIFT_": DriftConfig.from_env,
        "TAILOR_RETRAIN_": RetrainPolicy.from_env,
        "TAILOR_RECOMMEND_": PageRules.from_env,
    }
    for family, read in readers.items():
        for field in FAMILIES[family]:
            if family == "TAILOR_RECOMMEND_" and field == "budget_ms":
                continue
            name = family + field.upper()
            with pytest.raises(ValueError, match=name):
                read({name: "lots"})


def test_an_empty_value_means_the_default() -> None:
    """As for TAILOR_HOME: `VAR= tailor run` is how a shell unsets a setting for one command."""
    env = {
        f"TAILOR_{family[len(PREFIX) :]}{field.upper()}": "" for family, fields in FAMILIES.items() for field in fields
    }
    assert RankerConfig.from_env(env) == RankerConfig()
    assert DriftConfig.from_env(env) == DriftConfig()
    assert RetrainPolicy.from_env(env) == RetrainPolicy()
    assert PageRules.from_env(env) == PageRules()
    assert ServingConfig.from_env(env) == ServingConfig()
    assert ServiceConfig.from_env(env) == ServiceConfig(stream_url=ServiceConfig().stream_url)


def test_the_configuration_page_lists_every_setting() -> None:
    page = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert set(NAME.findall(page)) == KNOWN
    assert set(SINGLE) <= KNOWN


def test_a_misspelled_name_gets_the_closest_known_one() -> None:
    env = {
        "TAILOR_RANKER_SEARCH_TRAILS": "3",
        "TAILOR_HOME": "/tmp/x",
        "TAILOR_RANKER_LEARNING_RATE": "0.1",
        "TAILOR_NOTHING_LIKE_IT": "1",
        "HOME": "/root",
    }
    assert unknown_variables(env) == [
        "TAILOR_NOTHING_LIKE_IT is not a Tailor setting and is ignored: docs/configuration.md lists the settings",
        "TAILOR_RANKER_LEARNING_RATE is not a Tailor setting and is ignored: the TAILOR_RANKER_* settings are "
        + ", ".join(f"TAILOR_RANKER_{f.upper()}" for f in FAMILIES["TAILOR_RANKER_"]),
        "TAILOR_RANKER_SEARCH_TRAILS is not a Tailor setting and is ignored: did you mean TAILOR_RANKER_SEARCH_TRIALS?",
    ]
    assert unknown_variables({name: "1" for name in KNOWN}) == []


def test_the_command_warns_before_it_runs(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TAILOR_HOME": str(tmp_path), "TAILOR_RETRAIN_NEW_DAY": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "models", "list"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert (
        "Warning: TAILOR_RETRAIN_NEW_DAY is not a Tailor setting and is ignored: did you mean TAILOR_RETRAIN_NEW_DAYS?"
        in done.stderr
    )


def test_a_flag_is_on_or_off_and_anything_else_is_named() -> None:
    for value in ("1", "true", "YES", " on "):
        assert flag({"TAILOR_FEAST_TYPECHECKS": value}, "TAILOR_FEAST_TYPECHECKS")
    for value in ("", "0", "false", "Off", "no", "ture"):
        assert not flag({"TAILOR_FEAST_TYPECHECKS": value}, "TAILOR_FEAST_TYPECHECKS")
    assert not flag({}, "TAILOR_FEAST_TYPECHECKS")
    assert flag_warnings({name: "off" for name in FLAGS} | {"TAILOR_HOME": "ture"}) == []
    assert flag_warnings({"TAILOR_FEAST_TYPECHECKS": "ture"}) == [
        "TAILOR_FEAST_TYPECHECKS='ture' is neither on (1, true, yes, on) nor off (0, false, no, off, empty): "
        "it counts as off"
    ]

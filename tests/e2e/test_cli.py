"""The tailor CLI end to end, as a user runs it: generate, ingest, run, on a tiny history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

TAILOR = str(Path(sys.executable).parent / "tailor")


def _tailor(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAILOR_HOME": str(home)}
    result = subprocess.run([TAILOR, *args], env=env, capture_output=True, text=True, check=False, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"tailor {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_generate_ingest_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    generated = tmp_path / "generated"
    made = json.loads(
        _tailor(
            home, "generate", "--users", "80", "--days", "4", "--seed", "5", "--out", str(generated), "--json"
        ).stdout
    )
    truth = json.loads((generated / "_truth" / "truth.json").read_text())["counts"]
    assert made["events_written"] == truth["events_written"] > 0

    ingested = json.loads(_tailor(home, "ingest", "--json", str(generated)).stdout)
    events_received = sum(f["received"] for f in ingested["files"] if f["kind"] == "events")
    assert events_received == truth["events_written"]
    assert {f["kind"] for f in ingested["files"]} == {"events", "users", "content"}
    assert ingested["rejected_by_reason"] == {k: v for k, v in truth["malformed"].items() if v}
    again = json.loads(_tailor(home, "ingest", "--json", str(generated)).stdout)
    assert again["received"] == 0
    assert {f["status"] for f in again["files"]} == {"already_ingested"}

    ran = _tailor(home, "run", "--json")
    summary = json.loads(ran.stdout)
    assert summary["run"]["success"] is True and summary["run"]["failed_checks"] == []
    assert summary["run"]["reconciliation_checked"] is True
    assert summary["run"]["checks_evaluated"] >= 25  # the dbt tests arrive as asset checks too
    assert summary["events"] == {
        "received": truth["events_written"],
        "accepted": truth["clean_events"],
        "duplicates": truth["duplicates"],
        "quarantined": truth["malformed_total"],
        "balanced": True,
        "batches_landed": summary["events"]["batches_in_warehouse"],
        "batches_in_warehouse": summary["events"]["batches_landed"],
    }
    assert summary["marts"]["fct_impressions"] == truth["clean_events_by_type"]["impression"]
    assert summary["marts"]["dim_users"] == 80
    assert Path(summary["warehouse"]).is_file()
    assert (home / "dagster" / "storage").is_dir()  # the run is recorded in the local Dagster instance

    # Regenerating the same history into the inbox is fine; another one would mix two worlds in one home.
    _tailor(home, "generate", "--users", "80", "--days", "4", "--seed", "5", "--overwrite")
    _tailor(home, "ingest", str(home / "inbox"))
    other = _tailor(home, "generate", "--users", "80", "--days", "4", "--seed", "6", "--overwrite", check=False)
    assert other.returncode == 1 and "different simulated history" in other.stderr

    human = _tailor(home, "run")
    assert "balanced" in human.stdout and "Published marts" in human.stdout and "make ui" in human.stdout


def test_errors_exit_non_zero_with_a_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = _tailor(home, "ingest", str(tmp_path / "nowhere.jsonl"), check=False)
    assert missing.returncode == 1
    assert "no such file" in missing.stderr
    bad_option = _tailor(home, "generate", "--users", "0", check=False)
    assert bad_option.returncode == 2 and "--users" in bad_option.stderr
    out = str(tmp_path / "gen")
    _tailor(home, "generate", "--users", "5", "--days", "1", "--out", out)
    again = _tailor(home, "generate", "--users", "5", "--days", "1", "--out", out, check=False)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    _tailor(home, "generate", "--users", "5", "--days", "1", "--out", out, "--overwrite")
    for command in ("generate", "ingest", "run", "ui"):
        assert _tailor(home, command, "--help").stdout.startswith("Usage: tailor " + command)

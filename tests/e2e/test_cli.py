"""The tailor CLI end to end, as a user runs it: generate, ingest, run, on a tiny history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.experiments.analysis import RESULT_COLUMNS
from tests.conftest import tailor_cli

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
        "pending_rows": 0,
        "pending_batches": 0,
        "balanced_except_pending": True,
    }
    by_reason = summary["quarantined_by_reason"]  # every source's quarantine (events, users, content)
    assert sum(by_reason.values()) >= summary["events"]["quarantined"] > 0
    assert set(by_reason) <= {"invalid_json", "missing_field", "bad_type", "bad_value", "bad_timestamp",
                              "unknown_event_type", "future_timestamp"}  # fmt: skip
    assert summary["marts"]["fct_impressions"] == truth["clean_events_by_type"]["impression"]
    assert summary["marts"]["dim_users"] == 80
    assert Path(summary["warehouse"]).is_file()
    assert (home / "dagster" / "storage").is_dir()  # the run is recorded in the local Dagster instance

    # The run also produced the experiment results, printed in the documented JSON shape.
    report = json.loads(_tailor(home, "experiments", "--json").stdout)
    assert report["schema_version"] == 1 and report["alpha"] == 0.05
    assert {e["experiment_id"] for e in report["experiments"]} <= {
        "exp_feed_ranker",
        "exp_checkout_nudge",
        "exp_aa_feed",
    }
    assert report["results"] and all(set(r) == set(RESULT_COLUMNS) for r in report["results"])
    one = report["experiments"][0]["experiment_id"]
    only = json.loads(_tailor(home, "experiments", "--experiment", one, "--json").stdout)
    assert {r["experiment_id"] for r in only["results"]} == {one}
    assert "SRM" in _tailor(home, "experiments").stdout

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
    for command in ("generate", "ingest", "run", "ui", "experiments"):
        assert _tailor(home, command, "--help").stdout.startswith("Usage: tailor " + command)


def test_run_on_an_unknown_engine_says_which_exist(tmp_path: Path) -> None:
    """`TAILOR_ENGINE=spark tailor run` itself is run by tests/integration/test_spark_parity.py."""
    unknown = tailor_cli(tmp_path / "home", "run", env={"TAILOR_ENGINE": "oracle"})
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert unknown.stderr.startswith("error: TAILOR_ENGINE='oracle' is not an engine Tailor runs on: use one of")


def test_run_on_an_empty_home_says_what_to_do_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    empty = tailor_cli(home, "run")
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert empty.stderr.startswith(f"error: nothing to run on: the inbox {home / 'inbox'} has no files")
    assert "`tailor generate --users 500 --days 14`" in empty.stderr
    assert not (home / "warehouse").exists()  # refused before building anything


def test_experiments_analyze_and_plan(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = _tailor(home, "experiments", check=False)
    assert missing.returncode == 1 and f"the Tailor home {home} does not exist" in missing.stderr
    home.mkdir()
    none_yet = _tailor(home, "experiments", check=False)
    assert none_yet.returncode == 1 and "run `tailor run` first" in none_yet.stderr

    summary = tmp_path / "summary.csv"
    summary.write_text(
        "experiment,metric,variant,n,sum,sum_squares,denominator_sum,denominator_sum_squares,"
        "main_denominator_sum_product,planned_units_per_variant\n"
        "checkout,conversion,control,5000,500,500,,,,5000\n"
        "checkout,conversion,treatment,5000,600,600,,,,5000\n"
        "checkout,ctr,control,5000,1000,1400,20000,90000,4500,5000\n"
        "checkout,ctr,treatment,5000,1100,1550,20000,90000,4900,5000\n"
    )
    report = json.loads(_tailor(home, "experiments", "analyze", str(summary), "--json").stdout)
    treated = {r["metric"]: r for r in report["results"] if not r["is_control"]}
    assert treated["conversion"]["absolute_effect"] == pytest.approx(0.02)
    assert treated["conversion"]["relative_lift"] == pytest.approx(0.2)
    assert treated["ctr"]["relative_lift"] == pytest.approx(0.1)
    # The planned size is reached: one fixed-horizon read, Holm over both metrics (docs/experiments.md, Decisions).
    assert treated["conversion"]["decision"] == "better" and treated["conversion"]["decision_basis"] == "fixed_horizon"
    assert "checkout" in _tailor(home, "experiments", "analyze", str(summary)).stdout

    broken = tmp_path / "broken.csv"
    broken.write_text("experiment,metric,variant,n,sum,sum_squares\ncheckout,conversion,control,5000,lots,500\n")
    failed = _tailor(home, "experiments", "analyze", str(broken), check=False)
    assert failed.returncode == 1 and "line 2, column 'sum': 'lots' is not a number" in failed.stderr

    plan = json.loads(_tailor(home, "experiments", "plan", "--baseline", "0.05", "--mde", "0.02", "--json").stdout)
    # Sized for the planned read's alpha (0.04 of 0.05; 0.01 goes to the always-valid looks before it).
    assert plan["units_per_variant"] == 2349 and plan["days_needed"] is None  # no traffic history yet
    relative = _tailor(home, "experiments", "plan", "--baseline", "0.05", "--mde", "0.1", "--relative")
    assert "33,343 units per variant" in relative.stdout
    bad = _tailor(home, "experiments", "plan", "--baseline", "0.99", "--mde", "0.05", check=False)
    assert bad.returncode == 1 and "choose a smaller --mde" in bad.stderr


def test_a_failed_run_says_which_model_or_test_failed_why_and_where_the_rows_came_from(tmp_path: Path) -> None:
    """A warehouse changed by hand (the one way left to break a build) fails `tailor run` with the failing node,
    the database error and the offending rows traced to their landed batch and line, not a traceback."""
    import duckdb

    home = tmp_path / "home"
    generated = tmp_path / "generated"
    _tailor(home, "generate", "--users", "40", "--days", "6", "--seed", "11", "--out", str(generated))
    _tailor(home, "ingest", str(generated))
    _tailor(home, "run", "--quiet")
    warehouse = home / "warehouse" / "tailor.duckdb"

    # A duplicated accepted event, on a day the next run does not recompute: the unique test on event_id fails.
    con = duckdb.connect(str(warehouse))
    event_id = con.execute("select event_id from marts.fct_events order by occurred_at limit 1").fetchall()[0][0]
    con.execute("insert into marts.fct_events select * from marts.fct_events where event_id = ?", [event_id])
    con.close()
    failed = _tailor(home, "run", check=False)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr + failed.stdout
    assert "dbt test unique_fct_events_event_id fail: Got 1 result" in failed.stderr, failed.stderr
    assert f"event_id={event_id!r}" in failed.stderr
    assert "from landed rows:" in failed.stderr and " line " in failed.stderr
    assert "Published marts" not in failed.stdout  # no counts that look like a successful run

    # A model the database cannot build (a column narrowed by hand): its name and the database error.
    con = duckdb.connect(str(warehouse))
    con.execute(
        "delete from marts.fct_events where event_id = ? and rowid = (select max(rowid) from marts.fct_events "
        "where event_id = ?)",
        [event_id, event_id],
    )
    con.execute("alter table marts.fct_sessions alter column events type tinyint")
    con.execute("update marts.fct_sessions set events = 127 where events > 127")
    con.close()
    with (generated / "more.jsonl").open("w") as handle:
        for i in range(200):  # one session with more events than a tinyint holds
            handle.write(
                json.dumps(
                    {
                        "event_id": f"burst-{i}",
                        "event_type": "view",
                        "user_id": "u-burst",
                        "content_id": "c1",
                        "occurred_at": f"2026-01-03T10:{i // 60:02d}:{i % 60:02d}Z",
                        "dwell_seconds": 1,
                    }
                )
                + "\n"
            )
    _tailor(home, "ingest", str(generated / "more.jsonl"))
    broken = _tailor(home, "run", check=False)
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr + broken.stdout
    assert "dbt model fct_sessions error" in broken.stderr, broken.stderr
    assert "Conversion Error" in broken.stderr or "out of range" in broken.stderr.lower()

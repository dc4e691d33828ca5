"""The warehouse on a small simulated history, judged against the simulator's ground truth.

One history is generated, ingested and built (`dbt build` without the unit tests, as `tailor run` builds) per
module; tests read the warehouse read-only and the published Parquet marts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orchestration.lib.dbt_failures import WARNED, failed_nodes, with_offending_rows
from simulator import SimulationConfig, simulate
from tailor.ingest import ingest_paths
from tailor.quality import reconcile
from tailor.settings import Settings, get_settings
from tests.conftest import copy_home, run_dbt
from tests.conftest import query_warehouse as _query

pytestmark = pytest.mark.integration

MARTS = (
    "fct_events",
    "fct_sessions",
    "fct_impressions",
    "fct_daily_user_engagement",
    "dim_users",
    "dim_content",
    "dim_users_history",
    "dim_content_history",
    "fct_rejected_rows",
    "fct_batch_fates",
    "fct_user_features_daily",
    "fct_content_features_daily",
    "fct_content_profile",
    "fct_user_recent_activity",
    "fct_user_content_interactions",
    "fct_experiment_units",
    "dim_experiments",
    "fct_experiment_stats",
    "fct_experiment_daily_stats",
    "fct_experiment_novelty_stats",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, Any], Path]]:
    root = tmp_path_factory.mktemp("warehouse")
    generated = root / "generated"
    simulate(SimulationConfig(users=250, days=10, seed=3), generated)
    settings = get_settings(root / "home")
    ingest_paths([generated], settings)
    run_dbt(settings, "build")
    truth = json.loads((generated / "_truth" / "truth.json").read_text())
    yield settings, truth, generated


def _fingerprints(settings: Settings) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent hash of every mart's full content."""
    return {
        name: tuple(_query(settings, f"select count(*), coalesce(sum(hash(t)), 0)::varchar from marts.{name} t")[0])
        for name in MARTS
    }


def test_every_row_is_accounted_for_exactly_as_planted(built: tuple[Settings, dict[str, Any], Path]) -> None:
    settings, truth, _ = built
    counts = truth["counts"]
    result = reconcile(settings)
    assert result.balanced
    assert result.received == counts["events_written"]
    assert result.accepted == counts["clean_events"]
    assert result.duplicates == counts["duplicates"]
    assert result.quarantined == counts["malformed_total"]


def test_each_malformed_kind_lands_in_quarantine_with_its_reason(built: tuple[Settings, dict[str, Any], Path]) -> None:
    settings, truth, _ = built
    quarantined = dict(
        _query(
            settings, "select reject_reason, count(*) from marts.fct_rejected_rows where source = 'events' group by 1"
        )
    )
    planted = {kind: n for kind, n in truth["counts"]["malformed"].items() if n}
    assert quarantined == planted
    assert len(planted) == 6  # every kind the simulator plants is present in this history
    [(missing_detail,)] = _query(
        settings, "select count(*) from marts.fct_rejected_rows where reject_detail is null or raw is null"
    )
    assert missing_detail == 0


def test_accepted_events_match_the_clean_stream_by_type(built: tuple[Settings, dict[str, Any], Path]) -> None:
    settings, truth, _ = built
    by_type = dict(_query(settings, "select event_type, count(*) from marts.fct_events group by 1"))
    assert by_type == truth["counts"]["clean_events_by_type"]
    [(clicked,)] = _query(settings, "select count(*) filter (where is_clicked) from marts.fct_impressions")
    assert clicked == truth["counts"]["clean_events_by_type"]["click"]  # every click finds its impression


def test_profile_history_holds_every_delivered_version(built: tuple[Settings, dict[str, Any], Path]) -> None:
    settings, _, generated = built
    delivered = duckdb.sql(
        f"select count(*), count(distinct user_id) from (select distinct user_id, updated_at from read_json("
        f"'{generated}/users/*.jsonl', columns={{user_id: 'VARCHAR', updated_at: 'VARCHAR'}}))"
    ).fetchall()[0]
    history = _query(settings, "select count(*), count(*) filter (where is_current) from marts.dim_users_history")[0]
    assert history == delivered  # one row per version, one current row per user
    assert delivered[0] > delivered[1]  # the simulator planted profile changes, and all of them are kept
    [(overlaps,)] = _query(settings, "select count(*) from marts.dim_users_history where valid_to <= valid_from")
    assert overlaps == 0


def test_published_parquet_equals_the_warehouse(built: tuple[Settings, dict[str, Any], Path]) -> None:
    settings, _, _ = built
    in_warehouse = _fingerprints(settings)
    published = {path.stem for path in settings.marts_dir.glob("*.parquet")}
    assert published == set(MARTS) - {"fct_events"}  # every mart but the event table is published
    for name in published:
        path = settings.marts_dir / f"{name}.parquet"
        copy = duckdb.sql(f"select count(*), coalesce(sum(hash(t)), 0)::varchar from read_parquet('{path}') t")
        assert copy.fetchall()[0] == in_warehouse[name], name


def test_building_again_changes_nothing_and_equals_a_full_refresh(
    built: tuple[Settings, dict[str, Any], Path],
) -> None:
    settings, _, _ = built
    before = _fingerprints(settings)
    run_dbt(settings, "build")
    assert _fingerprints(settings) == before
    run_dbt(settings, "build", "--full-refresh", "--exclude", "resource_type:snapshot")
    assert _fingerprints(settings) == before


def test_daily_deliveries_build_the_same_warehouse_as_one_full_build(tmp_path: Path) -> None:
    """Files arrive one delivery day at a time with a build after each (late events, re-deliveries and all):
    the incremental marts must equal a full rebuild, and the profile history must hold every change."""
    generated = tmp_path / "generated"
    simulate(SimulationConfig(users=300, days=6, seed=9), generated)
    settings = get_settings(tmp_path / "home")
    days = sorted({p.stem.split("-", 1)[1] for p in generated.glob("*/*.jsonl")})
    for day in days:
        ingest_paths(sorted(generated.glob(f"*/*-{day}.jsonl")), settings)
        run_dbt(settings, "build")
    incremental = _fingerprints(settings)
    truth = json.loads((generated / "_truth" / "truth.json").read_text())["counts"]
    assert reconcile(settings).accepted == truth["clean_events"]
    [(in_marts,)] = _query(settings, "select count(*) from marts.fct_events")
    assert in_marts == truth["clean_events"]  # nothing lost between staging and the marts
    # Profile changes and catalog corrections delivered on later days are tracked as versions.
    for snapshot, key in (("snp_users", "user_id"), ("snp_content", "content_id")):
        [(changed,)] = _query(
            settings, f"select count(*) from (select {key} from snapshots.{snapshot} group by 1 having count(*) > 1)"
        )
        assert changed > 0, snapshot
    run_dbt(settings, "build", "--full-refresh", "--exclude", "resource_type:snapshot")
    assert _fingerprints(settings) == incremental


def test_an_event_id_used_again_with_other_content_is_warned_not_dropped_silently(
    built: tuple[Settings, dict[str, Any], Path], tmp_path: Path
) -> None:
    """Found by a trial: `tailor ingest` of another seed's files landed events whose ids the home had used, with
    other users and items; they were counted as duplicates without a word. The simulator's own duplicates are
    re-deliveries of the same event: the check passes on them."""
    settings, _, generated = built
    home = copy_home(settings, tmp_path)
    passed = run_dbt(home, "test", "--select", "duplicates_repeat_their_event")
    assert "PASS=1" in passed.stdout and "WARN=0" in passed.stdout, passed.stdout[-2000:]
    accepted = {e for (e,) in _query(home, "select event_id from staging.stg_landing__events where fate = 'accepted'")}
    delivered = sorted((generated / "events").glob("*.jsonl"))[0].read_text().splitlines()
    raw = next(line for line in delivered if _event_id(line) in accepted)
    event = json.loads(raw)
    again = tmp_path / "other-history.jsonl"
    again.write_text(json.dumps({**event, "user_id": "u_someone_else"}) + "\n" + raw + "\n")
    ingest_paths([again], home)
    warned = run_dbt(home, "build", "--select", "stg_landing__events", "duplicates_repeat_their_event")
    assert "WARN=1" in warned.stdout, warned.stdout[-2000:]
    assert "Got 1 result, configured to warn if != 0" in warned.stdout  # the exact copy is a plain duplicate
    # Said once, by the build that added the row: a later build (nothing new) does not say it again (a trial's
    # every run repeated it, with nothing to fix and no way to acknowledge it).
    later = run_dbt(home, "build", "--select", "stg_landing__events", "duplicates_repeat_their_event")
    assert "WARN=0" in later.stdout and "PASS duplicates_repeat_their_event" in later.stdout, later.stdout[-2000:]
    fates = _query(
        home,
        f"select fate, count(*) from staging.stg_landing__events where event_id = '{event['event_id']}' group by 1",
    )
    assert dict(fates) == {"accepted": 1, "duplicate": 2}  # nothing changed in what was accepted


def test_a_profile_or_item_whose_first_fact_moved_is_warned_and_kept(
    built: tuple[Settings, dict[str, Any], Path], tmp_path: Path
) -> None:
    """Found by a trial: another seed's users and items, ingested into the same home, became new versions of the
    ids it had used without a word. Their signup and publication times differ: a warn-severity test lists those
    ids. The simulator's own profile changes and catalog corrections keep them: the tests pass on those."""
    settings, _, generated = built
    home = copy_home(settings, tmp_path)
    selected = ("int_user_versions", "int_content_versions")
    passed = run_dbt(home, "test", "--select", *selected)
    assert "PASS=2" in passed.stdout and "WARN=0" in passed.stdout, passed.stdout[-2000:]

    user = json.loads(sorted((generated / "users").glob("*.jsonl"))[0].read_text().splitlines()[0])
    item = json.loads(sorted((generated / "content").glob("*.jsonl"))[0].read_text().splitlines()[0])
    later = "2030-01-01T00:00:00Z"
    other_users, other_content = tmp_path / "other-users.jsonl", tmp_path / "other-content.jsonl"
    other_users.write_text(json.dumps({**user, "signup_at": "2021-03-04T05:06:07Z", "updated_at": later}) + "\n")
    other_content.write_text(json.dumps({**item, "published_at": "2021-03-04T05:06:07Z", "updated_at": later}) + "\n")
    ingest_paths([other_users], home, kind="users")
    ingest_paths([other_content], home, kind="content")
    warned = run_dbt(home, "build", "--select", "+int_user_versions", "+int_content_versions")
    assert "WARN=2" in warned.stdout and "ERROR=0" in warned.stdout, warned.stdout[-3000:]
    assert "unchanging_across_versions_int_user_versions_signup_at__user_id" in warned.stdout
    # The versions are kept as delivered: the user now has one more version, with the moved signup.
    versions = _query(
        home,
        f"select signup_at from intermediate.int_user_versions where user_id = '{user['user_id']}' order by valid_from",
    )
    assert len(versions) >= 2 and str(versions[-1][0]).startswith("2021-03-04")


def test_an_event_of_any_type_naming_an_unknown_user_or_item_is_accepted_and_warned(
    built: tuple[Settings, dict[str, Any], Path], tmp_path: Path
) -> None:
    """The contract: an event may arrive before its user's profile or its item's catalog row; it is accepted and
    a dbt test warns. A trial's click from an unknown user on an unknown item went unwarned: the checks were on
    impressions only."""
    settings, _, _ = built
    home = copy_home(settings, tmp_path)
    click = {"event_id": "t-unknown-click", "event_type": "click", "user_id": "u_nobody", "content_id": "c_nothing",
             "occurred_at": "2026-01-06T10:00:00Z", "request_id": "r-unknown"}  # fmt: skip
    events = tmp_path / "unknown.jsonl"
    events.write_text(json.dumps(click) + "\n")
    ingest_paths([events], home)
    warned = run_dbt(home, "build", "--select", "stg_landing__events", "fct_events")
    assert "ERROR=0" in warned.stdout, warned.stdout[-3000:]
    tests = {"known_in_fct_events_user_id__user_id__ref_dim_users_": ("user_id", "u_nobody"),
             "known_in_fct_events_content_id__content_id__ref_dim_content_": ("content_id", "c_nothing")}  # fmt: skip
    target = home.home / "dbt" / "target"  # run_dbt's own target folder
    run_results, manifest = (json.loads((target / name).read_text()) for name in ("run_results.json", "manifest.json"))
    # What `tailor run` says of each warning: the same description as a failed test's, rows traced to their line.
    warned_tests = failed_nodes(run_results, target, manifest, WARNED)
    said = {test.name: test for test in with_offending_rows(warned_tests, home.warehouse)}
    for test, (column, unknown) in tests.items():
        assert re.search(rf"WARN 1 {test}", warned.stdout), (test, warned.stdout[-3000:])
        assert said[test].rows == [{"event_id": "t-unknown-click", column: unknown}]
        [source] = said[test].sources
        assert source["source_file"].endswith("unknown.jsonl") and source["line_number"] == 1, source
        # The warned rows stay readable where it says they are (the content test's name is too long for a
        # relation: its view has a hashed name, read from the manifest).
        view = said[test].stored_view
        assert view is not None and view.startswith("dbt_test__audit.known_in_fct_events_")
        assert f"  all of them: `select * from {view}` in the warehouse" in said[test].row_lines()
        assert _query(home, f"select * from {view}") == [("t-unknown-click", unknown)]
    [(kept,)] = _query(home, "select count(*) from marts.fct_events where event_id = 't-unknown-click'")
    assert kept == 1


def test_a_long_gap_in_the_history_is_warned_naming_the_event_after_it(
    built: tuple[Settings, dict[str, Any], Path], tmp_path: Path
) -> None:
    """Found by a trial: one event POSTed with the current time into a simulated history ten months older was
    accepted, and every daily mart then spanned the ten months (content feature rows x35) without a word."""
    settings, _, _ = built
    home = copy_home(settings, tmp_path)
    passed = run_dbt(home, "test", "--select", "history_has_no_long_gap")
    assert "PASS=1" in passed.stdout and "WARN=0" in passed.stdout, passed.stdout[-2000:]
    [(user, item, last_day)] = _query(
        home,
        "select min(user_id), min(content_id), max(event_date) from marts.fct_events where user_id in "
        "(select user_id from marts.dim_users) and content_id in (select content_id from marts.dim_content)",
    )
    later = last_day + timedelta(days=30)
    click = {"event_id": "t-after-gap", "event_type": "click", "user_id": user, "content_id": item,
             "occurred_at": f"{later:%Y-%m-%d}T10:00:00Z", "request_id": "r-gap"}  # fmt: skip
    events = tmp_path / "after-gap.jsonl"
    events.write_text(json.dumps(click) + "\n")
    ingest_paths([events], home)
    warned = run_dbt(home, "build", "--select", "stg_landing__events", "fct_events")
    assert "ERROR=0" in warned.stdout and re.search(r"WARN 1 history_has_no_long_gap", warned.stdout), warned.stdout[
        -3000:
    ]
    target = home.home / "dbt" / "target"
    run_results, manifest = (json.loads((target / name).read_text()) for name in ("run_results.json", "manifest.json"))
    [test] = [t for t in failed_nodes(run_results, target, manifest, WARNED) if t.name == "history_has_no_long_gap"]
    [said] = with_offending_rows([test], home.warehouse)
    assert said.rows == [
        {
            "event_id": "t-after-gap",
            "last_day_before_the_gap": last_day,
            "first_day_after_the_gap": later,
            "days_without_events": 29,
        }
    ]
    # Dates as ISO 8601 in what `tailor run` prints, not Python's datetime.date(...).
    assert f"first_day_after_the_gap={later.isoformat()}, days_without_events=29" in "\n".join(said.row_lines())
    [source] = said.sources  # once, though the row names its event
    assert source["source_file"].endswith("after-gap.jsonl") and source["fate"] == "accepted", source

    # A lone event dated long before the history: the gap's quieter side is its first day, and it is named.
    [(first_day,)] = _query(home, "select min(event_date) from marts.fct_events")
    earlier = first_day - timedelta(days=20)
    before = {**click, "event_id": "t-before-gap", "occurred_at": f"{earlier:%Y-%m-%d}T10:00:00Z"}
    events.write_text(json.dumps(before) + "\n")
    ingest_paths([events], home)
    run_dbt(home, "build", "--select", "stg_landing__events", "fct_events")
    run_results, manifest = (json.loads((target / name).read_text()) for name in ("run_results.json", "manifest.json"))
    [test] = [t for t in failed_nodes(run_results, target, manifest, WARNED) if t.name == "history_has_no_long_gap"]
    [said] = with_offending_rows([test], home.warehouse)
    assert sorted((row["event_id"], row["days_without_events"]) for row in said.rows) == [
        ("t-after-gap", 29),
        ("t-before-gap", 19),
    ]


def _event_id(line: str) -> object:
    """A delivered line's event_id (None for the malformed lines the simulator plants)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event.get("event_id") if isinstance(event, dict) else None


def test_dbt_ending_before_its_results_says_why_and_who_holds_the_warehouse(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a trial: two runs at once, and the second one's warehouse step failed with dagster-dbt's
    `FileNotFoundError: .../run_results.json`; DuckDB's reason (the lock and the PID holding it) was only in dbt's
    output. The step's error now says it (`ended_early_text`, on the error dagster-dbt parsed from a real dbt)."""
    import subprocess
    import sys

    from orchestration.lib.dbt import dbt_resource
    from orchestration.lib.dbt_failures import ended_early_text

    settings.warehouse.parent.mkdir(parents=True)
    duckdb.connect(str(settings.warehouse)).close()
    hold = "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('holding', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(settings.warehouse)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        for key, value in settings.dbt_env().items():  # what the warehouse step exports, restored after the test
            monkeypatch.setenv(key, value)
        invocation = dbt_resource().cli(["build", "--select", "stg_landing__events"], raise_on_error=False)
        for _ in invocation.stream_raw_events():
            pass
        with pytest.raises(FileNotFoundError):
            invocation.get_artifact("run_results.json")
        said = ended_early_text(invocation.get_error())
    finally:
        holder.communicate("", timeout=60)
    assert said.startswith("dbt ended before it wrote its results: Encountered an error: IO Error: Could not set lock")
    assert f"(PID {holder.pid})" in said and "Traceback" not in said, said
    assert said.endswith("; see logs/dbt.log, or the step's stdout in the Dagster UI")


def test_dbts_unit_tests_pass(built: tuple[Settings, dict[str, Any], Path], tmp_path: Path) -> None:
    """dbt's unit tests (fixed input rows per model) run here and in any plain `dbt build`; `tailor run` leaves them
    out, as dbt advises for production runs (orchestration/lib/dbt.py, BUILD_ARGS)."""
    from orchestration.lib.dbt import BUILD_ARGS

    assert "unit_test" in BUILD_ARGS["duckdb"]
    home = copy_home(built[0], tmp_path)
    ran = run_dbt(home, "test", "--select", "test_type:unit")
    manifest = json.loads((home.home / "dbt" / "target" / "manifest.json").read_text())
    count = len(manifest["unit_tests"])
    assert count >= 12, count
    assert f"PASS={count} WARN=0 ERROR=0" in ran.stdout, ran.stdout[-3000:]


def test_a_homes_next_build_reuses_its_own_parse_of_the_project(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found profiling the suite: dbt reuses a parse only for the profile it was made with, and the profile names
    the home, so every build of a home other than the one `dbt_project/target/` was parsed for parsed the whole
    project again ("Unable to do partial parsing because profile has changed"), about 5 s of each `tailor run`. The
    warehouse step now starts from the home's own last parse (orchestration/lib/dbt.py, `parse_state`)."""
    from orchestration.lib.dbt import (
        dbt_resource,
        invocation_target,
        keep_parse_state,
        parse_stamp,
        parse_state,
        reuse_parse_state,
    )

    for key, value in settings.dbt_env().items():  # what the warehouse step exports
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))  # no project-wide parse to start from
    logs = []
    for run in ("first-run", "second-run"):
        target = invocation_target(run)
        reused = reuse_parse_state(settings, target)
        invocation = dbt_resource().cli(["parse"], target_path=target)
        placed = parse_stamp(target)
        invocation.wait()
        kept = keep_parse_state(settings, target, placed)
        logs.append((reused, kept, (target / "dbt.log").read_text()))
    (first_reused, first_kept, first_log), (second_reused, second_kept, second_log) = logs
    assert not first_reused and first_kept and "Starting full parse" in first_log
    assert second_reused and "Nothing changed, skipping partial parsing" in second_log
    assert "Starting full parse" not in second_log and "Unable to do partial parsing" not in second_log
    assert not second_kept and parse_state(settings).is_file()  # nothing new to keep: the first build's stays

"""The landing asset says what it did, which `tailor run` prints: files landed, nothing new, or a file set aside."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from cli.run_report import print_report, run_fields
from orchestration.defs.ingestion.assets import landing
from orchestration.lib.progress import progress_logger
from orchestration.lib.runner import outcome_of
from tailor.ingest.inbox import ingest_inbox
from tailor.settings import Settings

pytestmark = pytest.mark.integration


def _actions(instance: dg.DagsterInstance) -> dict[str, str]:
    """What `tailor run` prints for each landing asset (its progress line, without the indent)."""
    result = dg.materialize([landing], instance=instance)
    assert result.success
    lines = {}
    for m in result.asset_materializations_for_node("landing"):
        note = m.metadata["note"].value if "note" in m.metadata else None
        lines[m.asset_key.to_user_string()] = str(m.metadata["action"].value) + (f": {note}" if note else "")
    return lines


def test_landing_says_landed_nothing_new_or_set_aside(settings: Settings) -> None:
    events = settings.inbox / "events"
    events.mkdir(parents=True)
    (events / "day1.jsonl").write_text(
        '{"event_id": "e1", "event_type": "click", "user_id": "u1", "content_id": "c1", '
        '"occurred_at": "2026-01-05T10:00:00Z", "surface": "home", "position": 1}\n'
    )
    (settings.inbox / "not_json.jsonl").write_text("user,content\nu1,c1\n")
    with dg.instance_for_test() as instance:
        first = _actions(instance)
        again = _actions(instance)
    rejected = settings.inbox / "_rejected"
    assert first == {
        "landing/events": f"landed 1 inbox file(s): 1 file(s) set aside in {rejected}, each beside a <name>.error.txt "
        "saying why",
        "landing/users": "no new inbox file",
        "landing/content": "no new inbox file",
    }
    assert again == {key: "no new inbox file" for key in first}


def test_the_progress_line_and_the_runs_end_name_the_files_set_aside_and_how_to_retry(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """Found by a trial: the progress line read 'landed 1 file(s), 5 set aside in .../inbox/_rejected landing/events'
    (the asset's name glued on after the folder), and the run's end never mentioned the files set aside."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "day1.jsonl").write_text(
        '{"event_id": "e1", "event_type": "click", "user_id": "u1", "content_id": "c1", '
        '"occurred_at": "2026-01-05T10:00:00Z", "surface": "home", "position": 1}\n'
    )
    for name in ("broken.jsonl", "export.csv"):
        (settings.inbox / name).write_text("user,content\nu1,c1\n")
    rejected = settings.inbox / "_rejected"
    defs = dg.Definitions(
        assets=[landing], jobs=[dg.define_asset_job("land")], loggers={"tailor_progress": progress_logger}
    )
    # An ephemeral instance: a test instance's compute log manager would capture the progress lines.
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("land").execute_in_process(
            run_config={"loggers": {"tailor_progress": {}}}, instance=instance
        )
        outcome = outcome_of(result, instance)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("  ")]
    assert (
        f"  landed 1 inbox file(s) landing/events: 2 file(s) set aside in {rejected}, each beside a <name>.error.txt "
        "saying why"
    ) in lines

    assert outcome.set_aside == {
        str(settings.inbox / "broken.jsonl"): str(rejected / "broken.jsonl"),
        str(settings.inbox / "export.csv"): str(rejected / "export.csv"),
    }
    assert run_fields(outcome)["set_aside"] == outcome.set_aside
    # With an asset left unbuilt the report skips the counts (tests/unit/test_run_report.py), which need marts.
    print_report({}, replace(outcome, not_built=["marts"]))
    assert capfd.readouterr().out.splitlines() == [
        f"Set aside 2 inbox file(s) that could not be ingested: broken.jsonl, export.csv, moved to {rejected}, each "
        "beside a <name>.error.txt saying why. To retry one, fix it and move it back into the inbox; the next "
        "`tailor run` ingests it."
    ]

    note = (rejected / "broken.jsonl.error.txt").read_text()
    assert note.endswith(
        f"To retry: fix the file, then move it back into the inbox ({settings.inbox}; where it was: "
        f"{settings.inbox / 'broken.jsonl'}). The next `tailor run` ingests it (a file set aside was never landed, so "
        "nothing of it is ingested twice).\n"
    )
    # Doing what the note says works: the fixed file lands.
    fixed = settings.inbox / "broken.jsonl"
    (rejected / "broken.jsonl").replace(fixed)
    fixed.write_text(
        '{"event_id": "e2", "event_type": "click", "user_id": "u1", "content_id": "c1", '
        '"occurred_at": "2026-01-05T11:00:00Z", "surface": "home", "position": 2}\n'
    )
    again = ingest_inbox(settings)
    assert [Path(f.path).name for f in again.report.files] == ["broken.jsonl"] and again.rejected_files == {}


def test_landing_stops_before_touching_anything_while_an_earlier_run_is_in_progress(settings: Settings) -> None:
    """The moment between `tailor run`'s look at the instance and its run's start, when the daemon may launch a
    queued run: the later of the two stops at its first step (orchestration/lib/active_runs.py)."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "day1.jsonl").write_text(
        '{"event_id": "e1", "event_type": "click", "user_id": "u1", "content_id": "c1", '
        '"occurred_at": "2026-01-05T10:00:00Z", "surface": "home", "position": 1}\n'
    )
    with dg.instance_for_test() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="tailor_job",
                run_id="c0ffee00-0000-4000-8000-000000000001",
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/schedule_name": "daily_tailor"},
            )
        )
        result = dg.materialize([landing], instance=instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data.user_failure_data
    description = data.description if data is not None else None
    assert (description or "").startswith(
        "stopped before touching anything: run c0ffee00 of tailor_job (started by the schedule daily_tailor) is in "
        "progress"
    ), description
    assert (settings.inbox / "day1.jsonl").exists() and not settings.landing.exists(), "nothing was landed"

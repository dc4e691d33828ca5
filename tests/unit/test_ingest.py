"""`tailor ingest`: counts, idempotence, and bad input that leaves the landing zone untouched."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cli.main import main
from tailor.ingest import IngestError, ingest_paths, read_log
from tailor.ingest.inbox import ingest_inbox
from tailor.settings import Settings

pytestmark = pytest.mark.unit


def _event(i: int, **extra: object) -> dict[str, object]:
    return {
        "event_id": f"e{i}",
        "event_type": "click",
        "user_id": "u1",
        "occurred_at": f"2026-01-05T10:{i % 60:02d}:00Z",
        "content_id": "c1",
        "request_id": "r1",
        **extra,
    }


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _landing_listing(settings: Settings) -> list[str]:
    if not settings.landing.exists():
        return []
    return sorted(str(p.relative_to(settings.landing)) for p in settings.landing.rglob("*") if p.is_file())


def test_counts_received_accepted_and_rejected_by_reason(tmp_path: Path, settings: Settings) -> None:
    lines = [json.dumps(_event(i)) for i in range(8)]
    lines += ['{"broken": ', json.dumps(_event(90, event_type="scroll")), "", json.dumps(_event(91, user_id=None))]
    report = ingest_paths([_write_jsonl(tmp_path / "events.jsonl", lines)], settings)
    assert (report.received, report.accepted) == (11, 8)
    assert report.rejected == {"invalid_json": 1, "missing_field": 1, "unknown_event_type": 1}
    [batch] = (settings.landing / "events").glob("batch-*.parquet")
    landed = pq.read_table(batch).to_pydict()
    assert landed["line_number"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]  # numbered as in the file, blank line skipped
    assert landed["raw"][8] == '{"broken": '  # kept exactly as delivered


def test_reingesting_the_same_file_is_a_no_op(tmp_path: Path, settings: Settings) -> None:
    path = _write_jsonl(tmp_path / "events.jsonl", [json.dumps(_event(i)) for i in range(3)])
    first = ingest_paths([path], settings)
    copy = _write_jsonl(tmp_path / "renamed-copy.jsonl", [json.dumps(_event(i)) for i in range(3)])
    before = _landing_listing(settings)
    second = ingest_paths([path, copy], settings)
    assert [f.status for f in first.files] == ["landed"]
    assert [f.status for f in second.files] == ["already_ingested", "already_ingested"]
    assert second.received == 0
    assert _landing_listing(settings) == before
    assert [r.status for r in read_log(settings)] == ["landed", "already_ingested", "already_ingested"]


def test_kinds_are_detected_and_parquet_is_accepted(tmp_path: Path, settings: Settings) -> None:
    _write_jsonl(
        tmp_path / "users.jsonl",
        [
            json.dumps(
                {
                    "user_id": "u1",
                    "signup_at": "2025-12-01T00:00:00Z",
                    "country": "DE",
                    "plan": "free",
                    "updated_at": "2025-12-01T00:00:00Z",
                }
            )
        ],
    )
    table = pa.table(
        {
            "event_id": ["p1", "p2"],
            "event_type": ["view", "view"],
            "user_id": ["u1", "u2"],
            "occurred_at": pa.array([1767607200000000, 1767607260000000], pa.timestamp("us", tz="UTC")),
            "content_id": ["c1", "c2"],
            "dwell_seconds": [12.5, 3.0],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    gz = tmp_path / "more.jsonl.gz"
    gz.write_bytes(gzip.compress((json.dumps(_event(5)) + "\n").encode()))
    report = ingest_paths([tmp_path], settings)
    kinds = {Path(f.path).name: (f.kind, f.received, f.accepted) for f in report.files}
    assert kinds == {
        "events.parquet": ("events", 2, 2),
        "more.jsonl.gz": ("events", 1, 1),
        "users.jsonl": ("users", 1, 1),
    }
    raw = duckdb.sql(
        f"select raw from read_parquet('{settings.landing}/events/batch-*.parquet') where raw like '%\"p1\"%'"
    )
    # Typed Parquet timestamps are written as ISO 8601 UTC, so the contract's checks accept them.
    assert '"occurred_at":"2026-01-05T10:00:00.000000Z"' in raw.fetchall()[0][0]


def test_folders_skip_names_starting_with_underscore(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "_truth").mkdir()
    _write_jsonl(tmp_path / "_truth" / "secret.jsonl", ['{"not": "an event"}'])
    _write_jsonl(tmp_path / "events.jsonl", [json.dumps(_event(1))])
    report = ingest_paths([tmp_path], settings)
    assert [Path(f.path).name for f in report.files] == ["events.jsonl"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "no such file"),
        ("binary.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("empty.jsonl", b"", "empty"),
        ("blank.jsonl", b"\n\n  \n", "empty"),
        ("wrong.jsonl", b'{"order_id": 1, "amount": 3}\n{"order_id": 2, "amount": 4}\n', "wrong schema"),
        ("csv.jsonl", b"event_id,event_type\ne1,click\n", "not a JSON Lines file"),
        ("notes.txt", b"hello", "unsupported file type"),
        ("bad.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_landed(
    tmp_path: Path, settings: Settings, name: str, content: bytes | None, message: str
) -> None:
    good = _write_jsonl(tmp_path / "good.jsonl", [json.dumps(_event(1))])
    ingest_paths([good], settings)
    before = _landing_listing(settings)
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    later_good = _write_jsonl(tmp_path / "later.jsonl", [json.dumps(_event(2))])
    with pytest.raises(IngestError, match=message):
        ingest_paths([later_good, bad], settings)  # the good file in the same call is not landed either
    assert _landing_listing(settings) == before
    assert not list((settings.landing / ".tmp").glob("batch-*"))


def test_cli_reports_errors_on_stderr_with_a_non_zero_exit(tmp_path: Path, settings: Settings) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["ingest", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1
    assert "no such file" in missing.output and "Nothing was ingested" in missing.output
    path = _write_jsonl(tmp_path / "events.jsonl", [json.dumps(_event(1)), "{oops"])
    ok = runner.invoke(main, ["ingest", "--json", str(path)])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert (data["received"], data["accepted"], data["rejected_by_reason"]) == (2, 1, {"invalid_json": 1})


def test_bulk_landing_without_row_checks_lands_the_same_batch(tmp_path: Path, settings: Settings) -> None:
    path = _write_jsonl(tmp_path / "events.jsonl", [json.dumps(_event(1)), "{oops"])
    report = ingest_paths([path], settings, check_rows=False)
    assert report.as_dict()["received"] == 2
    assert report.as_dict()["accepted"] is None and report.as_dict()["rows_checked"] is False
    [batch] = (settings.landing / "events").glob("batch-*.parquet")
    assert pq.read_table(batch).num_rows == 2  # every line still lands; the warehouse quarantines "{oops"


def test_a_bad_inbox_file_is_set_aside_with_its_reason(settings: Settings) -> None:
    settings.inbox.mkdir(parents=True)
    _write_jsonl(settings.inbox / "good.jsonl", [json.dumps(_event(1))])
    (settings.inbox / "photo.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = ingest_inbox(settings)
    assert [Path(f.path).name for f in result.report.files] == ["good.jsonl"]  # the good file still lands
    assert list(result.rejected_files) == [str(settings.inbox / "photo.jsonl")]
    aside = settings.inbox / "_rejected"
    assert (aside / "photo.jsonl").read_bytes().startswith(b"\x89PNG")  # kept, not lost
    assert "binary" in (aside / "photo.jsonl.error.txt").read_text()
    assert ingest_inbox(settings).report.files == []  # neither file is read again

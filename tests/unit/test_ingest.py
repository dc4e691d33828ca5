"""`tailor ingest`: counts, idempotence, bad input that leaves the landing zone untouched, and crash safety."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cli.main import main
from tailor.ingest import IngestError, ingest_paths, landing_session, read_log
from tailor.ingest.inbox import ingest_inbox, pending_files, pending_fingerprint
from tailor.ingest.ingest import land_files
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
    # The first rejected lines are named at once, with the contract's reason and detail (a trial had only counts
    # until `tailor run`); the warehouse's quarantine has every one.
    [file] = report.files
    assert [(r["line"], r["reason"]) for r in file.first_rejected] == [
        (9, "invalid_json"), (10, "unknown_event_type"), (12, "missing_field")
    ]  # fmt: skip
    assert all(r["detail"] for r in file.first_rejected), file.first_rejected
    assert "user_id" in str(file.first_rejected[2]["detail"])


def test_lines_of_only_whitespace_are_skipped_and_others_kept_as_sent(tmp_path: Path, settings: Settings) -> None:
    # Unicode whitespace counts as blank (an ideographic space, a no-break space), a line with text around it does not.
    lines = [json.dumps(_event(1)), "   ", "\t", "\u3000", "\u00a0 \u2003", "", " x ", json.dumps(_event(2))]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ingest_paths([path], settings)
    assert (report.received, report.accepted, report.rejected) == (3, 2, {"invalid_json": 1})
    [batch] = (settings.landing / "events").glob("batch-*.parquet")
    landed = pq.read_table(batch).to_pydict()
    assert landed["line_number"] == [1, 7, 8]
    assert landed["raw"][1] == " x "


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


def _damaged_gzip() -> bytes:
    """A gzip file whose compressed bytes are damaged well past the first 64 KiB of its text."""
    rng = np.random.default_rng(3)
    lines = "".join(json.dumps({"event_id": f"e{i}", "x": float(v)}) + "\n" for i, v in enumerate(rng.random(60_000)))
    packed = bytearray(gzip.compress(lines.encode()))
    middle = len(packed) // 2
    packed[middle : middle + 50] = bytes(b ^ 0xFF for b in packed[middle : middle + 50])
    return bytes(packed)


def test_a_folder_whose_files_are_all_skipped_says_why(tmp_path: Path, settings: Settings) -> None:
    """A trial: a folder holding only `_x.jsonl` "holds no files to ingest", without saying that '_' names are
    skipped."""
    _write_jsonl(tmp_path / "_x.jsonl", [json.dumps(_event(1))])
    (tmp_path / "_truth").mkdir()  # the simulator's truth is not offered for renaming (a review)
    _write_jsonl(tmp_path / "_truth" / "a.jsonl", ['{"not": "an event"}'])
    with pytest.raises(IngestError) as refused:
        ingest_paths([tmp_path], settings)
    assert str(refused.value).endswith(
        "holds no files to ingest (.jsonl, .ndjson, .json, .jsonl.gz, .ndjson.gz, .json.gz, .parquet). 1 such "
        "file(s) (e.g. _x.jsonl) have a name starting with '_' or '.', which ingestion skips (producers name so "
        "what must not land and files still being written): rename them to ingest them."
    )
    (tmp_path / "_x.jsonl").unlink()
    with pytest.raises(IngestError) as refused:
        ingest_paths([tmp_path], settings)
    assert str(refused.value).endswith("holds no files to ingest (.jsonl, .ndjson, .json, .jsonl.gz, .ndjson.gz, "
                                       ".json.gz, .parquet).")  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "no such file"),
        ("binary.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("empty.jsonl", b"", "empty"),
        ("blank.jsonl", b"\n\n  \n", "the file holds only blank lines: send a file with events"),
        ("data.jsonl", b"PAR1\x15\x04\x15\x00", "this is a Parquet file .* rename it to end in .parquet"),
        ("long.jsonl", b'{"event_id": "' + b"x" * (40 * 2**20) + b'"}\n', "a line is too long to read"),
        ("wrong.jsonl", b'{"order_id": 1, "amount": 3}\n{"order_id": 2, "amount": 4}\n', "wrong schema"),
        ("csv.jsonl", b"event_id,event_type\ne1,click\n", "not a JSON Lines file"),
        ("notes.txt", b"hello", "unsupported file type"),
        ("bad.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
        # A trial's UTF-16 file was "a binary file": with or without a byte-order mark, either byte order.
        ("utf16.jsonl", '{"event_id": "e1"}\n'.encode("utf-16"), r"this is UTF-16 text, not UTF-8 .* `iconv -f UTF-16"),
        ("utf16be.jsonl", '{"event_id": "e1"}\n'.encode("utf-16-be"), "this is UTF-16 text, not UTF-8"),
        ("utf16le.jsonl", '{"event_id": "e1"}\n'.encode("utf-16-le"), "this is UTF-16 text, not UTF-8"),
        # UTF-32 is told first: its little-endian mark starts with UTF-16's (a review).
        ("utf32.jsonl", '{"event_id": "e1"}\n'.encode("utf-32"), "this is UTF-32 text, not UTF-8 .* `iconv -f UTF-32"),
        ("utf32be.jsonl", '[{"event_id": "e1"}]\n'.encode("utf-32-be"), "this is UTF-32 text, not UTF-8"),
        # A .gz damaged past the head the sniff reads: it was "a file: cannot be read" (a review).
        ("damaged.jsonl.gz", _damaged_gzip(), r"damaged.jsonl.gz: cannot be read \(.*\). Is it a complete file\?"),
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


def test_every_bad_file_of_a_call_is_named_at_once(tmp_path: Path, settings: Settings) -> None:
    """Found by a trial: a folder of eight bad files named only the first, one fix per attempt."""
    folder = tmp_path / "delivery"
    folder.mkdir()
    _write_jsonl(folder / "a-good.jsonl", [json.dumps(_event(1))])
    (folder / "b-empty.jsonl").write_bytes(b"")
    (folder / "c-photo.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    _write_jsonl(folder / "d-good.jsonl", [json.dumps(_event(2))])
    (folder / "e-orders.jsonl").write_bytes(b'{"order_id": 1, "amount": 3}\n')
    with pytest.raises(IngestError) as refused:
        ingest_paths([folder], settings)
    lines = str(refused.value).splitlines()
    assert lines[0] == "3 files cannot be ingested:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        str(folder / name) for name in ("b-empty.jsonl", "c-photo.jsonl", "e-orders.jsonl")
    ]
    assert "empty" in lines[1] and "binary" in lines[2] and "wrong schema" in lines[3]
    assert [p for p in _landing_listing(settings) if "batch-" in p] == []  # all or nothing: the good ones wait
    assert not list((settings.landing / ".tmp").glob("*/batch-*"))


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
    # The landing log says the same: nothing was counted as accepted (it said 0, which read as "all refused").
    [record] = read_log(settings).records
    assert (record.received, record.accepted) == (2, None)
    checked = ingest_paths([_write_jsonl(tmp_path / "more.jsonl", [json.dumps(_event(2)), "{oops"])], settings)
    assert checked.accepted == 1
    assert [(r.received, r.accepted) for r in read_log(settings).records][-1] == (2, 1)


def test_rows_the_caller_already_checked_are_counted_as_accepted(tmp_path: Path, settings: Settings) -> None:
    # POST /events checks every event before it lands: its record counts them, without a second check.
    path = _write_jsonl(tmp_path / "posted.jsonl", [json.dumps(_event(1)), json.dumps(_event(2))])
    with landing_session(settings):
        report = land_files([path], settings, kind="events", rows="passed")
    assert (report.as_dict()["accepted"], report.as_dict()["rows_checked"]) == (2, True)
    [record] = read_log(settings).records
    assert (record.received, record.accepted, record.rejected) == (2, 2, {})


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


def test_a_link_to_nothing_in_the_inbox_is_set_aside_and_the_sensor_sees_it(settings: Settings) -> None:
    """Found by a trial: a dangling `events.jsonl` link stayed in the inbox on every run, never said (neither a file
    to read nor a folder to look in). An empty folder stays: folders only hold files."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "empty.jsonl").mkdir()
    for round_ in (1, 2):
        (settings.inbox / "dangling.jsonl").symlink_to(settings.home / "nowhere.jsonl")
        assert pending_fingerprint(settings)[1] == 1  # the inbox sensor asks for a run
        result = ingest_inbox(settings)
        assert result.report.files == [] and list(result.rejected_files) == [str(settings.inbox / "dangling.jsonl")]
        moved = Path(result.set_aside_as[str(settings.inbox / "dangling.jsonl")])
        assert moved.name == ("dangling.jsonl" if round_ == 1 else "dangling.2.jsonl")  # the first one kept
        assert moved.is_symlink() and str(moved.readlink()) == str(settings.home / "nowhere.jsonl")
        note = moved.with_name(moved.name + ".error.txt").read_text()
        assert f"a symbolic link to {settings.home / 'nowhere.jsonl'}, which does not exist" in note
        assert pending_fingerprint(settings)[1] == 0
    assert (settings.inbox / "empty.jsonl").is_dir()
    # Named directly, such a link is said to be one (it was "no such file or folder": a re-check trial).
    link = settings.home / "direct.jsonl"
    link.symlink_to(settings.home / "nowhere.jsonl")
    with pytest.raises(IngestError, match=r"direct.jsonl: a symbolic link to .*nowhere.jsonl, which does not exist"):
        ingest_paths([link], settings)


def test_a_rejected_file_never_replaces_an_earlier_one_of_the_same_name(settings: Settings) -> None:
    settings.inbox.mkdir(parents=True)
    deliveries = [b"\x89PNG first\x00", b"", b'{"order_id": 1}\n']  # binary, then empty, then the wrong schema
    for content in deliveries:
        (settings.inbox / "events.jsonl").write_bytes(content)
        ingest_inbox(settings)
    aside = settings.inbox / "_rejected"
    names = ["events.jsonl", "events.2.jsonl", "events.3.jsonl"]
    assert sorted(p.name for p in aside.iterdir()) == sorted([*names, *(n + ".error.txt" for n in names)])
    assert [(aside / n).read_bytes() for n in names] == deliveries  # each kept as delivered, in order
    reasons = [(aside / f"{n}.error.txt").read_text() for n in names]
    assert ["binary" in reasons[0], "empty" in reasons[1], "wrong schema" in reasons[2]] == [True, True, True]
    assert all(str(settings.inbox / "events.jsonl") in r for r in reasons)  # each note says where it came from


# --- crash safety ---------------------------------------------------------------------------------------------

# Runs one `ingest_paths` in a child process and SIGKILLs it at a chosen point: the landing code is the real one,
# only the moment of death is chosen (fault injection, as a crash or `kill -9` would do it).
_KILL_AT = """
import os, pathlib, signal, sys
import tailor.ingest.ingest as ingest
from tailor.settings import get_settings

point, home, *files = sys.argv[1:]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
commit = ingest.append_log
if point == "before_commit":
    ingest.append_log = die
elif point == "mid_commit":  # the log write itself is cut short: half a line reaches the file
    def torn(settings, records, txn=None):
        with settings.landing_manifest.open("ab") as handle:
            handle.write(b'{"batch_id": "' + records[0].batch_id.encode())
        die()
    ingest.append_log = torn
elif point == "after_commit":
    ingest.append_log = lambda *a, **k: (commit(*a, **k), die())
elif point == "after_first_rename":
    rename = pathlib.Path.replace
    pathlib.Path.replace = lambda self, target: (rename(self, target), die())
ingest.ingest_paths(files, get_settings(home), check_rows=False)
raise SystemExit("not killed")
"""


def _ingest_killed_at(point: str, settings: Settings, files: list[Path]) -> None:
    args = [sys.executable, "-c", _KILL_AT, point, str(settings.home), *map(str, files)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _three_files(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    # The same event in two files: which copy the warehouse keeps depends on the ingestion order of the batches.
    return [
        _write_jsonl(folder / f"events-{day}.jsonl", [json.dumps(_event(day * 10 + i)) for i in range(3)])
        for day in range(1, 4)
    ]


def _landed_rows(settings: Settings) -> list[tuple[str, int, object]]:
    with duckdb.connect() as con:
        return con.execute(
            f"select batch_id, count(*), min(ingested_at) from read_parquet('{settings.landing}/events/*.parquet') "
            "group by all order by 1"
        ).fetchall()


@pytest.mark.parametrize(
    ("point", "lands_in_first_call"),
    [("before_commit", False), ("mid_commit", False), ("after_commit", True), ("after_first_rename", True)],
)
def test_a_killed_ingest_lands_all_or_nothing_and_the_rerun_completes_it(
    tmp_path: Path, settings: Settings, point: str, lands_in_first_call: bool, caplog: pytest.LogCaptureFixture
) -> None:
    files = _three_files(tmp_path / "in")
    _ingest_killed_at(point, settings, files)
    visible = len(_landed_rows(settings))
    assert visible in ((0, 1) if point == "after_first_rename" else (0,))  # dbt may already see a partial call

    rerun = ingest_paths(files, settings, check_rows=False)

    landed = _landed_rows(settings)
    assert [rows for _, rows, _ in landed] == [3, 3, 3]  # every file exactly once
    assert len({at for _, _, at in landed}) == 1  # one call, one ingestion time: its batches keep their order
    statuses = [f.status for f in rerun.files]
    assert statuses == (["already_ingested"] * 3 if lands_in_first_call else ["landed"] * 3)
    assert len(rerun.recovery.rolled_forward) == (3 - visible if lands_in_first_call else 0)
    assert bool(rerun.recovery.rolled_back) == (point in ("before_commit", "mid_commit"))
    assert bool(rerun.recovery.log_lines_dropped) == (point == "mid_commit")
    assert not list((settings.landing / ".tmp").iterdir())  # no staged leftovers
    log = read_log(settings)
    assert log.skipped == []  # the torn line was moved out of the log
    assert sorted(r.batch_id for r in log if r.status == "landed") == [batch for batch, _, _ in landed]
    if point != "after_commit":
        assert any("landing" in m for m in caplog.messages)  # the repair is reported, not silent


def test_the_inbox_sensor_asks_for_a_run_to_finish_a_killed_ingestion(settings: Settings) -> None:
    settings.inbox.mkdir(parents=True)
    files = _three_files(settings.inbox)
    _ingest_killed_at("after_commit", settings, files)
    # The files are recorded (committed), so none is pending, but their batches still wait in landing/.tmp.
    assert pending_files(settings) == []
    assert pending_fingerprint(settings)[1] == 1
    ingest_inbox(settings)  # what the requested run does first
    assert pending_fingerprint(settings)[1] == 0 and len(_landed_rows(settings)) == 3


def test_a_torn_last_log_line_never_blocks_later_ingests_or_the_inbox(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.inbox.mkdir(parents=True)
    first = _write_jsonl(settings.inbox / "events-1.jsonl", [json.dumps(_event(1))])
    ingest_paths([first], settings)
    with settings.landing_manifest.open("ab") as handle:
        handle.write(b'{"batch_id": "4f2a", "kind": "ev')  # a write cut short by a crash
    log = read_log(settings)  # read without raising: the complete records, and what was skipped
    assert [r.status for r in log] == ["landed"]
    assert log.problems() == ["line 2: incomplete last line (a write was interrupted)"]
    second = _write_jsonl(settings.inbox / "events-2.jsonl", [json.dumps(_event(2))])
    assert pending_files(settings) == [second]  # the inbox sensor's view still works

    report = ingest_paths([second], settings)

    assert [f.status for f in report.files] == ["landed"]
    assert report.as_dict()["recovery"] == {
        "rolled_forward": 0, "rolled_back": 0, "adopted": 0, "log_lines_dropped": 1, "problems": [],
    }  # fmt: skip
    assert "moved to _manifest.dropped.txt" in caplog.text
    dropped = (settings.landing / "_manifest.dropped.txt").read_text()
    assert dropped.endswith('\t{"batch_id": "4f2a", "kind": "ev\n')  # kept for inspection, out of the log
    assert [json.loads(line)["status"] for line in settings.landing_manifest.read_text().splitlines()] == [
        "landed",
        "landed",
    ]
    assert pending_files(settings) == []


def test_a_batch_without_a_log_record_is_adopted_from_the_folder(tmp_path: Path, settings: Settings) -> None:
    """Older code renamed batches into place before writing the log: a crash in between left landed batches
    with no record. The folder is the source of truth (dbt reads it), so the log gets a record rebuilt from
    the batch, and the inbox does not offer the file again."""
    settings.inbox.mkdir(parents=True)
    path = _write_jsonl(settings.inbox / "events-1.jsonl", [json.dumps(_event(i)) for i in range(4)])
    ingest_paths([path], settings, now=datetime(2026, 1, 6, 3, 0, tzinfo=UTC))
    settings.landing_manifest.write_text("")  # the record never made it
    assert pending_files(settings) == [path]

    report = ingest_inbox(settings).report

    assert [f.status for f in report.files] == []  # recovered first, so nothing is left to ingest
    assert len(report.recovery.adopted) == 1
    [record] = list(read_log(settings))
    assert (record.status, record.received, record.ingested_at) == ("recovered", 4, "2026-01-06T03:00:00Z")
    assert (record.source_file, record.source_size) == (str(path.resolve()), path.stat().st_size)
    assert pending_files(settings) == []


def test_a_recorded_batch_missing_from_the_folder_is_reported_with_what_to_do(
    tmp_path: Path, settings: Settings
) -> None:
    path = _write_jsonl(tmp_path / "events-1.jsonl", [json.dumps(_event(1))])
    [landed] = ingest_paths([path], settings).files
    (settings.landing / "events" / f"batch-{landed.batch_id}.parquet").unlink()
    report = ingest_paths([path], settings)  # the folder decides: the file lands again
    assert [f.status for f in report.files] == ["landed"]
    [problem] = report.recovery.missing
    assert f"batch {landed.batch_id}" in problem and f"ingest {path.resolve()} again" in problem
    assert ingest_paths([path], settings).recovery.as_dict()["problems"] == []  # landed again: consistent


def test_lines_of_an_unfinished_ingestion_do_not_count(settings: Settings, tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "events-1.jsonl", [json.dumps(_event(1))])
    ingest_paths([path], settings)
    good = settings.landing_manifest.read_text()
    half = dict(json.loads(good), txn="t" * 32, txn_size=2, batch_id="b" * 24)  # one line of a two-line commit
    settings.landing_manifest.write_text(good + json.dumps(half) + "\n" + "not json\n")
    log = read_log(settings)
    assert [r.batch_id for r in log] == [json.loads(good)["batch_id"]]
    assert [s.number for s in log.skipped] == [2, 3]
    assert "other lines are missing" in log.skipped[0].reason and "not valid JSON" in log.skipped[1].reason


def test_a_second_ingestion_waits_for_the_landing_lock_and_says_for_whom(settings: Settings) -> None:
    with landing_session(settings):
        waited: list[str] = []
        started = time.monotonic()
        busy = pytest.raises(IngestError, match=rf"busy: process {os.getpid()} has been landing files")
        with busy, landing_session(settings, timeout=0.5, on_wait=waited.append):
            pass
        assert time.monotonic() - started >= 0.5
        assert waited == [f"waiting for process {os.getpid()}, which is landing files in {settings.landing}"]
    with landing_session(settings):  # released when the holder is done
        pass


def test_a_file_that_is_not_utf8_names_the_line_byte_and_column(tmp_path: Path, settings: Settings) -> None:
    """Found by a trial: the error quoted the CSV reader underneath ("In CSV column #0: CSV conversion error")."""
    events = tmp_path / "latin1.jsonl"
    events.write_bytes(json.dumps(_event(1)).encode() + b"\n" + '{"note": "café"}\n'.encode("latin-1"))
    with pytest.raises(IngestError) as refused:
        ingest_paths([events], settings)
    assert str(refused.value) == (
        f"{events}: line 2 is not UTF-8 text (byte 0xe9 at byte 13 of the line). Save the file as UTF-8 (JSON Lines "
        "are UTF-8, RFC 8259), then send it again."
    )
    assert "CSV" not in str(refused.value) and read_log(settings).records == []  # nothing landed


def test_a_file_whose_every_row_is_rejected_is_landed_with_a_warning(tmp_path: Path, settings: Settings) -> None:
    """Found by a trial: five rows, all bad_type, said only "landed" and exit 0. It is landed (its lines are kept,
    each with its reason), exit 0 as for any quarantine, and a warning says none of it reaches the marts."""
    events = tmp_path / "late.jsonl"
    events.write_text("".join(json.dumps(_event(i, occurred_at="yesterday")) + "\n" for i in range(3)))
    result = CliRunner().invoke(main, ["ingest", str(events)], env={"TAILOR_HOME": str(settings.home)})
    assert result.exit_code == 0, result.stderr
    assert "warning: every row of late.jsonl was rejected (bad_timestamp 3): none of it reaches the marts" in (
        result.stderr
    )
    partly = tmp_path / "partly.jsonl"
    partly.write_text(json.dumps(_event(7)) + "\n" + json.dumps(_event(8, occurred_at="yesterday")) + "\n")
    result = CliRunner().invoke(main, ["ingest", str(partly)], env={"TAILOR_HOME": str(settings.home)})
    assert result.exit_code == 0 and "warning" not in result.stderr

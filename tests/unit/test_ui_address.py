"""Messages that send a person to the Dagster UI give the address of the one running on the home (a trial's UI was
on port 3001 while every message said `make ui` and the summary said port 3000)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.lib.run_lock import RunBusyError, run_lock
from tailor import faces
from tailor.faces import ANALYST_APP, DAGSTER_UI, HTTP_SERVICE, Face, hint, open_line, record_address, running_url

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NO_UI = "the Dagster UI (`make ui`, http://127.0.0.1:3000)"

#: Stands in for `dagster dev`: a process whose program is named `dagster` records its address, as `tailor ui` does
#: just before it becomes `dagster dev`.
FAKE_DAGSTER = """
import sys, time
from pathlib import Path
from tailor import faces
faces.record_address(getattr(faces, sys.argv[4]), Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
print("recorded", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def fake_dagster(
    tmp_path: Path, home: Path, host: str, port: int, face: Face = DAGSTER_UI
) -> Iterator[subprocess.Popen[str]]:
    """A live process named as ``face``'s program (`dagster`) that has recorded ``host``:``port`` for ``home``;
    killed on leaving."""
    program = tmp_path / "bin" / face.program
    program.parent.mkdir(exist_ok=True)
    program.write_text(FAKE_DAGSTER)
    process = subprocess.Popen(
        [sys.executable, str(program), str(home), host, str(port), _name(face)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "recorded\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_running_ui_is_named_by_its_address_and_a_stopped_one_is_not(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with fake_dagster(tmp_path, home, "0.0.0.0", 3001):
        # Listening everywhere: loopback is the address here.
        assert running_url(DAGSTER_UI, home) == "http://127.0.0.1:3001"
        assert hint(DAGSTER_UI, home) == "the Dagster UI at http://127.0.0.1:3001"
        with run_lock(home), pytest.raises(RunBusyError) as refused, run_lock(home):
            pass
        assert str(refused.value).endswith("; its progress is in the Dagster UI at http://127.0.0.1:3001")
    assert running_url(DAGSTER_UI, home) is None  # stopped
    assert hint(DAGSTER_UI, home) == NO_UI


def test_no_record_a_reused_process_id_or_a_damaged_file_means_no_ui(tmp_path: Path) -> None:
    assert hint(DAGSTER_UI, tmp_path) == NO_UI  # never started
    # Recorded by a process that is not `dagster dev` (this one).
    record_address(DAGSTER_UI, tmp_path, "127.0.0.1", 3002)
    assert (tmp_path / DAGSTER_UI.record).exists()
    assert hint(DAGSTER_UI, tmp_path) == NO_UI
    (tmp_path / DAGSTER_UI.record).write_text('{"url": "http://127.0.0.1:3002", "pid": "not a number"}')
    assert hint(DAGSTER_UI, tmp_path) == NO_UI
    (tmp_path / DAGSTER_UI.record).write_text("{half a fi")
    assert hint(DAGSTER_UI, tmp_path) == NO_UI


def test_a_ui_restarted_on_another_port_is_found_there(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for port in (3005, 3006):
        with fake_dagster(tmp_path, home, "127.0.0.1", port):
            assert running_url(DAGSTER_UI, home) == f"http://127.0.0.1:{port}"
    assert running_url(DAGSTER_UI, home) is None


def _name(face: Face) -> str:
    return next(name for name in ("DAGSTER_UI", "ANALYST_APP", "HTTP_SERVICE") if getattr(faces, name) == face)


def test_the_run_summary_names_the_analyst_app_where_it_runs(tmp_path: Path) -> None:
    """Found by a trial: `tailor run` said the app was at port 8501 while `make app APP_PORT=...` served it on another
    port. `tailor app` records its address as `tailor ui` does; a Dagster UI's record is not the app's."""
    home = tmp_path / "home"
    assert open_line(ANALYST_APP, home) == "make app, then open http://127.0.0.1:8501"
    with fake_dagster(tmp_path, home, "127.0.0.1", 8642, ANALYST_APP):
        assert open_line(ANALYST_APP, home) == "http://127.0.0.1:8642 (running)"
        assert hint(ANALYST_APP, home) == "the analyst app at http://127.0.0.1:8642"
        assert running_url(DAGSTER_UI, home) is None
    assert open_line(ANALYST_APP, home) == "make app, then open http://127.0.0.1:8501"


def test_the_run_summary_names_the_http_service_where_it_runs(tmp_path: Path) -> None:
    """Found by a trial: with `tailor serve --port 18001` running, the summary still said only "tailor serve"."""
    home = tmp_path / "home"
    assert open_line(HTTP_SERVICE, home) == "tailor serve, then open http://127.0.0.1:8000"
    with fake_dagster(tmp_path, home, "0.0.0.0", 18001, HTTP_SERVICE):
        assert open_line(HTTP_SERVICE, home) == "http://127.0.0.1:18001 (running)"
        assert running_url(ANALYST_APP, home) is None
    assert open_line(HTTP_SERVICE, home) == "tailor serve, then open http://127.0.0.1:8000"


@pytest.mark.parametrize("face", [ANALYST_APP, HTTP_SERVICE], ids=["app", "service"])
def test_a_second_server_stopped_at_once_leaves_the_first_ones_address(tmp_path: Path, face: Face) -> None:
    """Found by a trial: `tailor serve --port 18004` started beside a running `--port 18001` on the same home and
    stopped with Ctrl-C left the record naming 18004 and its dead process, and the next run summary sent people to
    the default port while the first service still answered on 18001."""
    home = tmp_path / "home"
    with fake_dagster(tmp_path, home, "127.0.0.1", 18001, face):
        with fake_dagster(tmp_path, home, "127.0.0.1", 18004, face):
            assert running_url(face, home) == "http://127.0.0.1:18004"  # the newest live one
        assert running_url(face, home) == "http://127.0.0.1:18001"
        assert open_line(face, home) == "http://127.0.0.1:18001 (running)"
        # A third one records while the first still runs: the dead second one is dropped from the file.
        with fake_dagster(tmp_path, home, "127.0.0.1", 18007, face):
            recorded = json.loads((home / face.record).read_text())
            assert [r["url"] for r in recorded] == ["http://127.0.0.1:18001", "http://127.0.0.1:18007"]
    assert running_url(face, home) is None


def test_an_address_file_of_the_one_record_format_is_still_read(tmp_path: Path) -> None:
    """Homes recorded before 2026-12-03 hold one object, not a list."""
    home = tmp_path / "home"
    with fake_dagster(tmp_path, home, "127.0.0.1", 8643, ANALYST_APP) as process:
        (home / ANALYST_APP.record).write_text(json.dumps({"url": "http://127.0.0.1:8643", "pid": process.pid}))
        assert running_url(ANALYST_APP, home) == "http://127.0.0.1:8643"

"""Messages that send a person to the Dagster UI give the address of the one running on the home (a trial's UI was
on port 3001 while every message said `make ui` and the summary said port 3000)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.lib.run_lock import RunBusyError, run_lock
from orchestration.lib.ui_address import UI_FILE, record_ui, running_ui_url, ui_hint

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NO_UI = "the Dagster UI (`make ui`, http://127.0.0.1:3000)"

#: Stands in for `dagster dev`: a process whose program is named `dagster` records its address, as `tailor ui` does
#: just before it becomes `dagster dev`.
FAKE_DAGSTER = """
import sys, time
from pathlib import Path
from orchestration.lib.ui_address import record_ui
record_ui(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
print("recorded", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def fake_dagster(tmp_path: Path, home: Path, host: str, port: int) -> Iterator[subprocess.Popen[str]]:
    """A live process named `dagster` that has recorded ``host``:``port`` for ``home``; killed on leaving."""
    program = tmp_path / "bin" / "dagster"
    program.parent.mkdir(exist_ok=True)
    program.write_text(FAKE_DAGSTER)
    process = subprocess.Popen(
        [sys.executable, str(program), str(home), host, str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True
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
        assert running_ui_url(home) == "http://127.0.0.1:3001"  # listening everywhere: loopback is the address here
        assert ui_hint(home) == "the Dagster UI at http://127.0.0.1:3001"
        with run_lock(home), pytest.raises(RunBusyError) as refused, run_lock(home):
            pass
        assert str(refused.value).endswith("; its progress is in the Dagster UI at http://127.0.0.1:3001")
    assert running_ui_url(home) is None  # stopped
    assert ui_hint(home) == NO_UI


def test_no_record_a_reused_process_id_or_a_damaged_file_means_no_ui(tmp_path: Path) -> None:
    assert ui_hint(tmp_path) == NO_UI  # never started
    record_ui(tmp_path, "127.0.0.1", 3002)  # recorded by a process that is not `dagster dev` (this one)
    assert (tmp_path / UI_FILE).exists()
    assert ui_hint(tmp_path) == NO_UI
    (tmp_path / UI_FILE).write_text('{"url": "http://127.0.0.1:3002", "pid": "not a number"}')
    assert ui_hint(tmp_path) == NO_UI
    (tmp_path / UI_FILE).write_text("{half a fi")
    assert ui_hint(tmp_path) == NO_UI


def test_a_ui_restarted_on_another_port_is_found_there(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for port in (3005, 3006):
        with fake_dagster(tmp_path, home, "127.0.0.1", port):
            assert running_ui_url(home) == f"http://127.0.0.1:{port}"
    assert running_ui_url(home) is None

"""A step's output is mirrored to the terminal without leaving a traceback on Ctrl-C or a process behind on a kill.

Found by a new-user trial: Ctrl-C during `tailor run` printed two `KeyboardInterrupt` tracebacks from Dagster's
`watch_orphans` helper (one per mirrored stream) above the run's own "interrupted" message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import default_signals

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GNU tail's --pid (elsewhere Dagster's mirror)"),
]

ROOT = Path(__file__).resolve().parents[2]

STEP = """
import sys, time
from orchestration.lib.instance import TailorComputeLogManager

manager = TailorComputeLogManager(base_dir=sys.argv[1])
try:
    with manager.capture_logs(["run", "step"]):
        # stderr first: the test signals once it has read the stdout line, so both lines are whole by then
        # (a signal between print's text and its newline left the warning without its line end).
        print("a warning inside the step", file=sys.stderr, flush=True)
        print("inside the step", flush=True)
        time.sleep(120)
except KeyboardInterrupt:
    print("the step was interrupted", file=sys.stderr, flush=True)
"""


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    step = subprocess.Popen(
        [sys.executable, "-c", STEP, str(tmp_path / "logs")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=default_signals,  # SIGINT as a terminal gives it, also when pytest was started in the background
    )
    assert step.stdout is not None
    assert step.stdout.readline() == "inside the step\n"  # mirrored from the log file to the terminal
    return step


def test_ctrl_c_leaves_no_traceback_and_the_output_is_kept(tmp_path: Path) -> None:
    step = _start(tmp_path)
    os.killpg(step.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    _, err = step.communicate(timeout=30)
    assert "the step was interrupted" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    logged = {p.suffix: p.read_text() for p in (tmp_path / "logs").rglob("*") if p.suffix in (".out", ".err")}
    assert logged == {".out": "inside the step\n", ".err": "a warning inside the step\n"}


def test_a_killed_step_leaves_no_tail_behind(tmp_path: Path) -> None:
    step = _start(tmp_path)
    step.kill()  # SIGKILL: no cleanup runs in the step
    step.wait()  # reaped, as a shell reaps a killed job (tail sees a zombie as alive)
    # The pipes close only when every process holding them has exited, the mirroring tails included.
    step.communicate(timeout=30)
    leftover = subprocess.run(["pgrep", "-f", f"--pid={step.pid} "], capture_output=True, text=True, check=False)
    assert leftover.stdout == ""

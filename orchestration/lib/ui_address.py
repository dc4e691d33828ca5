"""Where this home's Dagster UI listens, so that a message sending a person to it gives the address that works.

`tailor ui --port 3001` (a trial, with 3000 taken) left every message saying "`make ui`" and the summary saying
http://127.0.0.1:3000. `tailor ui` now records its address in ``<TAILOR_HOME>/dagster/ui.json`` with its process id
(the same process becomes `dagster dev`: it is exec'd); `ui_hint` gives that address while the process lives, else
how to start a UI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tailor.ingest.durable import write_atomic
from tailor.processes import process_alive

#: Relative to TAILOR_HOME, beside the Dagster instance's storage.
UI_FILE = Path("dagster") / "ui.json"
#: Where `make ui` / `tailor ui` listen unless told otherwise.
DEFAULT_URL = "http://127.0.0.1:3000"


def record_ui(home: Path, host: str, port: int) -> None:
    """Record that the calling process serves ``home``'s Dagster UI on ``host``:``port`` (replaced atomically)."""
    (home / UI_FILE).parent.mkdir(parents=True, exist_ok=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # listening everywhere: loopback works here
    write_atomic(home / UI_FILE, json.dumps({"url": f"http://{shown}:{port}", "pid": os.getpid()}).encode())


def running_ui_url(home: Path) -> str | None:
    """The address of ``home``'s Dagster UI while the process that recorded it runs, else None (none recorded, the
    file unreadable, or that process gone)."""
    try:
        recorded = json.loads((home / UI_FILE).read_text())
        url, pid = str(recorded["url"]), int(recorded["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _is_dagster(pid) else None


def _is_dagster(pid: int) -> bool:
    """Whether ``pid`` is a live `dagster dev`: a reused process id is not (`record_ui` runs just before the exec)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.exists():  # Linux: the command line tells a reused id apart
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return any(Path(os.fsdecode(word)).name == "dagster" for word in words)
    return process_alive(pid)  # elsewhere: alive is the best we know


def ui_hint(home: Path) -> str:
    """Where to see runs, in words for a message: the running UI's address, else how to start one."""
    url = running_ui_url(home)
    if url is not None:
        return f"the Dagster UI at {url}"
    return f"the Dagster UI (`make ui`, {DEFAULT_URL})"

"""Where this home's Dagster UI, analyst app and HTTP service listen, so that a message sending a person to one
gives the address that works.

`tailor ui --port 3001` (a trial, with 3000 taken) left every message saying "`make ui`" and the summary saying
http://127.0.0.1:3000; the analyst app on another port was still announced at 8501 (the next trial). `tailor ui`
and `tailor app` record their address in the home (``dagster/ui.json``, ``app/address.json``) with their process
id: the same process then becomes the server (it is exec'd); `tailor serve` records ``service/address.json`` and
stays the server's process. `hint` gives that address while the process lives,
else how to start one.

Light on purpose: the run lock and `tailor ui` import it before anything heavy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tailor.durable import LockTimeout, exclusive_lock, write_atomic
from tailor.processes import process_alive


@dataclass(frozen=True)
class Face:
    """A server a person opens in a browser.

    Attributes:
        title: in words, for messages ("the Dagster UI").
        record: its address file, relative to TAILOR_HOME.
        program: the executable its process runs (a live process id running another program is not it).
        default_url: where it listens unless told otherwise.
        start: the command that starts it.
    """

    title: str
    record: Path
    program: str
    default_url: str
    start: str


DAGSTER_UI = Face("the Dagster UI", Path("dagster") / "ui.json", "dagster", "http://127.0.0.1:3000", "make ui")
ANALYST_APP = Face("the analyst app", Path("app") / "address.json", "streamlit", "http://127.0.0.1:8501", "make app")
#: `tailor serve` stays the `tailor` process (uvicorn runs inside it; its workers are its children).
HTTP_SERVICE = Face(
    "the HTTP service", Path("service") / "address.json", "tailor", "http://127.0.0.1:8000", "tailor serve"
)


def record_address(face: Face, home: Path, host: str, port: int) -> bool:
    """Record that the calling process serves ``face`` for ``home`` on ``host``:``port`` (the file replaced
    atomically); call it just before the process execs or starts the server.

    The file keeps every recorded server whose process still runs, newest last: a second `tailor serve` or
    `tailor app` on another port of the same home, stopped at once, used to replace the first one's address with
    its own dead one, so the next run summary sent people to a default port (a trial). Best effort: False when the
    home cannot be written (a read-only mount, where the app and the service still serve what is there; a trial's
    crashed on this file)."""
    path = home / face.record
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # listening everywhere: loopback works here
    me = {"url": f"http://{shown}:{port}", "pid": os.getpid()}
    try:
        # Read, add, write under a lock: two servers starting at once must not each drop the other (a review).
        with exclusive_lock(path.with_name(path.name + ".lock"), timeout=5.0):
            live = [r for r in _recorded(path) if r["pid"] != me["pid"] and _runs(int(r["pid"]), face.program)]
            write_atomic(path, json.dumps([*live, me]).encode())
    except (OSError, LockTimeout):
        return False
    return True


def running_url(face: Face, home: Path) -> str | None:
    """The address of ``home``'s ``face`` recorded last by a process that still runs it, else None (none recorded,
    the file unreadable, or every recording process gone or now running another program)."""
    for recorded in reversed(_recorded(home / face.record)):
        if _runs(int(recorded["pid"]), face.program):
            return str(recorded["url"])
    return None


def _recorded(path: Path) -> list[dict[str, str | int]]:
    """The records in an address file, oldest first: a list of ``{"url", "pid"}``, or the one object that files
    written before 2026-12-03 hold. Empty when the file is missing or unreadable; malformed records are left out."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    records = data if isinstance(data, list) else [data]
    kept: list[dict[str, str | int]] = []
    for record in records:
        try:
            kept.append({"url": str(record["url"]), "pid": int(record["pid"])})
        except (KeyError, TypeError, ValueError):
            continue
    return kept


def hint(face: Face, home: Path) -> str:
    """Where to look, in words for a message: the running server's address, else how to start one."""
    url = running_url(face, home)
    if url is not None:
        return f"{face.title} at {url}"
    return f"{face.title} (`{face.start}`, {face.default_url})"


def open_line(face: Face, home: Path) -> str:
    """Its address for a summary line: ``"<url> (running)"``, else ``"<start>, then open <default url>"``."""
    url = running_url(face, home)
    return f"{url} (running)" if url else f"{face.start}, then open {face.default_url}"


def _runs(pid: int, program: str) -> bool:
    """Whether ``pid`` is a live process running ``program`` (`record_address` runs just before the exec)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.exists():  # Linux: the command line tells a reused id apart
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return any(Path(os.fsdecode(word)).name == program for word in words)
    return process_alive(pid)  # elsewhere: alive is the best we know

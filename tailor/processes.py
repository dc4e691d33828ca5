"""Whether a process still runs, for the files that name the process that wrote them (a run's tags, the service's
metrics folder, the Dagster UI's address)."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (someone else's counts). A recycled id reads as alive: callers that
    must tell one apart check more (`tailor.faces` reads its command line)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True

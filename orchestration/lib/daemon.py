"""Whether a Dagster daemon already runs on a home's instance, so that `tailor ui` does not start a second one.

A second `tailor ui` (or `dagster dev`) on the same home starts a second daemon: Dagster logs that more than one is
"not supported", both evaluate the sensors, and stopping one interrupted the run it had launched (a trial). Dagster's
daemons record a heartbeat in the instance every `HEARTBEAT_INTERVAL_S`; a heartbeat younger than `FRESH_S` means
one is running. They leave their last heartbeat behind when they stop, so a UI stopped less than `FRESH_S` ago
reads as running for that long (the message says so).
"""

from __future__ import annotations

import os
import time

from tailor.faces import DAGSTER_UI, running_url
from tailor.settings import REPO_ROOT, Settings

#: Dagster's daemons beat every 30 s (dagster/_daemon/controller.py, DEFAULT_HEARTBEAT_INTERVAL_SECONDS).
HEARTBEAT_INTERVAL_S = 30.0
#: Two beats: a heartbeat younger than this is a daemon alive.
FRESH_S = 2 * HEARTBEAT_INTERVAL_S


def running_daemon(settings: Settings) -> str | None:
    """Why `tailor ui` must not start on ``settings``' home, in words, or None when no daemon runs on its instance.
    Opens the instance only where one exists (never creates one)."""
    env = settings.dagster_env()
    if env["DAGSTER_HOME"] == str(REPO_ROOT) and not (settings.dagster_home / "storage" / "history").exists():
        return None
    import dagster as dg

    os.environ.update(env)
    with dg.DagsterInstance.get() as instance:
        beats = instance.get_daemon_heartbeats()
    newest = max((beat.timestamp for beat in beats.values()), default=None)
    age = time.time() - newest if newest is not None else None
    if age is None or age >= FRESH_S:
        return None
    url = running_url(DAGSTER_UI, settings.home)
    return (
        f"a Dagster daemon is already running on {settings.home} (its last heartbeat {age:.0f} s "
        "ago: a `tailor ui`, `make ui` or `dagster dev` started there): use its UI"
        + (f" at {url}" if url else "")
        + ", or stop it first; a second one "
        f"would run the same sensors and schedule. If you have just stopped it, wait {FRESH_S:.0f} s"
    )

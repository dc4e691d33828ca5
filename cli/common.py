"""What every `tailor` command shares: how it fails (readable, or as JSON under --json), and how it reads the
settings."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from tailor.settings import Settings, get_settings

#: Where the root group keeps the command line it was given, for errors raised before a command's options exist.
_ARGV = "tailor.argv"


def emit_json(data: Any) -> None:
    """Print ``data`` on stdout as indented JSON with sorted keys (values JSON cannot hold, e.g. dates, as text)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def json_requested() -> bool:
    """Whether the command running was given --json, on itself or on a group above it (`tailor models --json show
    3`). False outside a command (a function called directly)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.params.get("as_json"):
            return True
        ctx = ctx.parent
    return False


#: Least width of tables written to a file or a pipe. Rich's default there is 80 columns (or COLUMNS, which shells,
#: CI runners and pytest-xdist's workers export as 80), which cut file names and labels to "events-2026-01-…" and
#: "no_detectable_effe…" (found by new-user trials). A file has no width: COLUMNS can only make it wider.
PIPE_WIDTH = 240


def console(stderr: bool = False) -> Console:
    """A Rich console for the CLI's output: the terminal's width, or at least `PIPE_WIDTH` when writing elsewhere.

    In a terminal Rich wraps lines at spaces to its width (a trial at 80 columns read notes the terminal had broken
    mid-word: "lif / t's"); written elsewhere, a line stays whole (soft wrap) for whatever reads it."""
    if Console(stderr=stderr).is_terminal:
        return Console(stderr=stderr)
    columns = os.environ.get("COLUMNS", "").strip()
    wider = int(columns) if columns.isdigit() else 0
    return Console(stderr=stderr, soft_wrap=True, width=max(PIPE_WIDTH, wider))


def plural(count: int, noun: str) -> str:
    """``1 event``, ``3 events``, ``1,200 days``: the count with separators and the noun in its number."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


#: The exit status of a command a signal interrupted: 128 + SIGINT, the shells' convention for Ctrl-C (bash's manual,
#: "Exit Status"), so a script can tell "stopped" from "failed". Dagster handles SIGTERM as SIGINT, so both give it.
INTERRUPTED_STATUS = 130


def fail(message: str, data: Mapping[str, Any] | None = None, status: int = 1) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``status``: 1, or `INTERRUPTED_STATUS` for work a signal
    stopped (a usage error click reports is status 2).

    Under --json, stdout gets the JSON object ``{"error": message}`` first (with ``data``'s keys beside it, e.g. the
    summary of a run that failed), so a script reading stdout always gets one JSON object, never nothing.
    """
    if json_requested():
        emit_json({**(data or {}), "error": message})
    click.echo(f"error: {message}", err=True)
    raise SystemExit(status)


class JsonErrorsGroup(click.Group):
    """The root `tailor` group: errors raised outside a command's own code honour --json too.

    A usage error (a bad option value, a missing argument) is raised while the command's options are parsed, so
    before --json is known from them: the command line is the only witness, and --json anywhere on it counts. An
    unexpected exception (a bug) prints its JSON object and then its traceback, as without --json.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV] = list(args)  # meta is shared with every subcommand's context
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Ctrl-C (SIGINT) outside a run's steps: click would print "Aborted!" and exit 1.
            name = ctx.invoked_subcommand or ""
            command = f"tailor {name}".strip()
            # Ingestion commits all of a call's files or none, and a run keeps what its steps built.
            kept = "; what it had finished is kept: run it again to finish" if name in ("ingest", "run") else ""
            fail(f"`{command}` was interrupted (a signal: Ctrl-C) before it finished{kept}", status=INTERRUPTED_STATUS)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise  # --help, an answer of no: not errors of ours (and RuntimeErrors, so caught before Exception)
        except click.ClickException as exc:
            if "--json" in ctx.meta.get(_ARGV, ()):
                emit_json({"error": exc.format_message()})
            raise
        except Exception as exc:
            if "--json" in ctx.meta.get(_ARGV, ()):
                emit_json({"error": f"unexpected {type(exc).__name__}: {exc} (a bug; the traceback is on stderr)"})
            raise


def load_settings() -> Settings:
    """The settings from the environment; a TAILOR_* variable that is out of range or names no engine is an error
    line that names it (`fail`), not a traceback."""
    try:
        return get_settings()
    except ValueError as error:
        fail(str(error))


def write_problem(folder: Path) -> str | None:
    """Why this process could not create files in ``folder`` (or create ``folder``, when it does not exist yet),
    or None when it can: a file is created and removed in the nearest existing folder, which also finds a
    read-only file system (where root's permissions do not help) and a full disk's inode table. Creates nothing
    that stays."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return None  # a file in the way: the command's own checks name it
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".tailor-write-check-")
    except OSError as exc:
        made = "" if existing == folder else f" (it would be made in {existing})"
        return f"{folder} cannot be written{made}: {exc.strerror or exc}"
    os.close(handle)
    os.unlink(probe)
    return None


def writable_home(command: str, writes: str) -> Settings:
    """`load_settings`, for a command that writes the home: a home this user cannot write (a read-only mount, a
    folder of another user) is one error line naming it and what to do (`fail`), before anything starts, instead of
    a traceback from the first file the command makes. ``writes``: what the command writes there, for the message."""
    settings = load_settings()
    problem = write_problem(settings.home)
    if problem:
        fail(
            f"the Tailor home {problem}; `tailor {command}` writes {writes} there. Set TAILOR_HOME to a folder this "
            "user can write, or make that one writable (a read-only mount: remount it read-write), then rerun. "
            "Nothing was done"
        )
    return settings


def existing_home() -> Settings:
    """`load_settings`, for a command that reads what runs made: a home that does not exist is an error that says so
    (`fail`), not "no ranker yet" or "run `tailor run` first", which send the user to run in a folder that was never
    made (a mistyped TAILOR_HOME, or a command run outside the repository, where ./data is another folder)."""
    settings = load_settings()
    if not settings.home.exists():
        fail(
            f"the Tailor home {settings.home} does not exist: nothing was generated or run there. `make demo` "
            "builds a demo home (./data in the repository); to use another home, set TAILOR_HOME to the folder "
            "`tailor generate` and `tailor run` used"
        )
    return settings


def bind_problem(host: str, port: int, make_variable: str | None = None) -> str | None:
    """Why a web server (uvicorn: `tailor serve`'s, and `dagster dev`'s under `tailor ui`) could not listen on
    ``host``:``port``, checked before anything is loaded or started, or None when it can.

    Binds and closes a socket of the family uvicorn picks (IPv6 when the host has a colon, else IPv4) with
    SO_REUSEADDR, as uvicorn does, so a port in TIME_WAIT is not reported as taken. Something may still take the
    port between this check and uvicorn's bind; then uvicorn's own error is what the user sees. Port 0 (the
    system would pick one and no client would be told which) is refused by the commands' option range, 1-65535.
    ``make_variable``: the Makefile variable that sets the port, for a command a make target runs (APP_PORT).
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        return (
            f"--host {host!r} is not an address this machine can listen on ({why}): give one of its addresses, "
            "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        )
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is in use: choose another with --port"
                    + (f" (`make`: {make_variable}=N)" if make_variable else "")
                    + ", or stop what holds it "
                    f"(e.g. `ss -ltnp 'sport = :{port}'` shows it)"
                )
            if exc.errno == errno.EADDRNOTAVAIL:
                return (
                    f"--host {host} is not an address of this machine: give one of its addresses, e.g. 127.0.0.1 "
                    "(this machine only) or 0.0.0.0 (every interface)"
                )
            if exc.errno == errno.EACCES:
                return f"port {port} needs privileges to listen on: choose a port above 1023 with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None

"""What every `tailor` command shares: how it fails (readable, or as JSON under --json), and how it reads the
settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import click

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


def fail(message: str, data: Mapping[str, Any] | None = None) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with status 1 (a usage error click reports is status 2).

    Under --json, stdout gets the JSON object ``{"error": message}`` first (with ``data``'s keys beside it, e.g. the
    summary of a run that failed), so a script reading stdout always gets one JSON object, never nothing.
    """
    if json_requested():
        emit_json({**(data or {}), "error": message})
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


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
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise  # --help, Ctrl-C: not errors of ours (and RuntimeErrors, so caught before Exception)
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

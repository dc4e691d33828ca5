"""What every `tailor` command shares: how it fails, and how it reads the settings."""

from __future__ import annotations

from typing import NoReturn

import click

from tailor.settings import Settings, get_settings


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with status 1 (a usage error click reports is status 2)."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def load_settings() -> Settings:
    """The settings from the environment; a TAILOR_* variable that is out of range or names no engine is an error
    line that names it (`fail`), not a traceback."""
    try:
        return get_settings()
    except ValueError as error:
        fail(str(error))

"""Feast's run-time argument checks (typeguard's ``@typechecked``) are skipped unless the user asks for them.

Feast 0.67 decorates 34 of its modules' classes and functions with typeguard's ``@typechecked``. Typeguard 4
instruments a decorated object when it is decorated, i.e. while Feast is imported: it reads the source, rewrites
the syntax tree and compiles it again (agronholm/typeguard#468, "Using typecheck decorator slows module import
dramatically"). That is most of what ``import feast`` costs, in every process that opens the feature store: each
``tailor`` command, every Dagster step process, the app and the service (figures: docs/benchmarks.md, "Starting a
process that opens Feast"). The checks then run at every call of a decorated Feast function.

The checks guard the types of arguments Tailor passes to Feast from code that is itself type-checked (mypy) and
tested; they are not how Feast validates a feature repository (that is `feast apply`'s own validation, unchanged).
So by default the decorator is replaced, for Feast's modules only, by one that returns its target unchanged;
``TAILOR_FEAST_TYPECHECKS=1`` keeps typeguard's instrumentation (e.g. while writing new feature definitions).
Other libraries that use typeguard are left alone. Typeguard itself skips the same instrumentation under
``python -O``; that switch would also drop every ``assert`` in the process, so it is not the one used here.

`skip_feast_typechecks` must run before Feast's first import in the process: Feast's modules bind the decorator
when they are imported. The ``tailor`` and ``ml`` packages call it from their ``__init__``, which every Tailor
entry point imports before anything imports Feast. It only registers an import hook: typeguard is imported and its
decorator replaced when Feast itself starts loading, so a process that never opens Feast (``tailor --help``,
ingestion) does not import typeguard at all.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from tailor.environment import flag

#: Set to 1 (or true/yes/on) to keep typeguard's checks in Feast.
KEEP_ENV = "TAILOR_FEAST_TYPECHECKS"
_MARK = "_tailor_skips_feast"


def feast_typechecks_kept() -> bool:
    """True when ``TAILOR_FEAST_TYPECHECKS`` asks to keep Feast's typeguard checks."""
    return flag(os.environ, KEEP_ENV)


def skip_feast_typechecks() -> bool:
    """Arrange for typeguard's ``typechecked`` to return Feast's objects undecorated (idempotent).

    Returns:
        True when Feast, once imported, skips the checks (the switch is made, or will be at Feast's first import);
        False when ``TAILOR_FEAST_TYPECHECKS`` keeps them or Feast was imported before this call (its modules
        keep what they were decorated with).
    """
    if feast_typechecks_kept():
        return False
    if "feast" in sys.modules:
        return _skipping()
    if not any(isinstance(finder, _BeforeFeast) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BeforeFeast())
    return True


class _BeforeFeast(importlib.abc.MetaPathFinder):
    """Replaces typeguard's decorator when ``feast`` starts importing, then steps aside (finds nothing)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "feast":
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            if not feast_typechecks_kept():
                _replace_decorator()
        return None


def _skipping() -> bool:
    typeguard = sys.modules.get("typeguard")
    return bool(typeguard is not None and getattr(typeguard.typechecked, _MARK, False))


def _replace_decorator() -> None:
    try:
        import typeguard
    except ImportError:
        return
    original = typeguard.typechecked
    if getattr(original, _MARK, False):
        return

    def typechecked(target: Any = None, **options: Any) -> Any:
        # Both forms typeguard supports: @typechecked and @typechecked(**options).
        if target is None:
            return lambda inner: typechecked(inner, **options)
        if _in_feast(target):
            return target
        return original(target, **options) if options else original(target)

    setattr(typechecked, _MARK, True)
    typechecked.__doc__ = original.__doc__
    setattr(typeguard, "typechecked", typechecked)  # noqa: B010 (a module attribute, replaced on purpose)


def _in_feast(target: Callable[..., Any] | type) -> bool:
    module = getattr(target, "__module__", None) or ""
    return module == "feast" or module.startswith("feast.")

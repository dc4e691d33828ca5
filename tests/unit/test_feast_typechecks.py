"""Feast skips typeguard's run-time checks unless TAILOR_FEAST_TYPECHECKS=1, and nothing else loses them.

Each case runs in a fresh interpreter: the switch acts at Feast's first import in a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

# Typeguard rewrites an instrumented function so that it calls its checkers: their names are in its code object.
PROBE = textwrap.dedent(
    """
    import sys
    import tailor
    assert "typeguard" not in sys.modules, "importing tailor imported typeguard"
    import feast.feature_view
    names = feast.feature_view.FeatureView.__init__.__code__.co_names
    print("feast_checked", "check_argument_types_internal" in names)
    import other_library
    try:
        other_library.double("not a number")
        print("other_checked", False)
    except Exception as exc:
        print("other_checked", type(exc).__name__ == "TypeCheckError")
    """
)
# A module of another library that uses typeguard, imported after the switch: it must keep its checks.
OTHER = textwrap.dedent(
    """
    from typeguard import typechecked

    @typechecked
    def double(x: int) -> int:
        return 2 * x
    """
)


def _probe(tmp_path: Path, keep: str | None) -> dict[str, bool]:
    (tmp_path / "other_library.py").write_text(OTHER)
    env = {k: v for k, v in os.environ.items() if k != "TAILOR_FEAST_TYPECHECKS"}
    if keep is not None:
        env["TAILOR_FEAST_TYPECHECKS"] = keep
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[2])])
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line.split()[1] == "True" for line in done.stdout.splitlines()}


def test_feast_is_imported_without_typeguard_instrumentation_and_other_libraries_keep_theirs(tmp_path: Path) -> None:
    assert _probe(tmp_path, None) == {"feast_checked": False, "other_checked": True}


@pytest.mark.parametrize("keep", ["1", "true", " YES "])
def test_tailor_feast_typechecks_keeps_feasts_checks(tmp_path: Path, keep: str) -> None:
    assert _probe(tmp_path, keep) == {"feast_checked": True, "other_checked": True}

"""Typed text shown in the app's Markdown exactly as typed."""

from __future__ import annotations

import pytest

from app.lib.ui import literal

pytestmark = pytest.mark.unit


def test_typed_text_becomes_a_code_span_that_shows_it_as_typed() -> None:
    assert literal("u0000042") == "`u0000042`"
    assert literal("' OR 1=1 --") == "`' OR 1=1 --`"
    assert literal("a`b") == "``a`b``"  # a fence longer than any backtick run inside
    assert literal("`x``") == "``` `x`` ```"  # a space inside when it starts or ends with one
    assert literal("*bold* _em_ $x$") == "`*bold* _em_ $x$`"

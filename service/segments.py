"""The segments `/recommendations/segments/{segment}` serves, and what to suggest for a segment misspelt.

A segment is ``all``, ``surface:<surface>`` or ``country:<code>``. Its kind is lower case; a country code is as the
data spells it (ISO 3166-1 alpha-2, upper case: ``country:DE``); a surface as the events name it (``home``).
Two answers for a segment that is not served, each with a hint where one can be given:

- it does not have the segment's shape (``Country:DE``, ``ALL``): 422, and `shape_hint` suggests the spelling the
  shape takes;
- it has the shape but the data has no such segment (``country:de``): 404 with the known segments, and
  `known_hint` suggests the one that differs only in case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The shape of a segment (the path parameter's pattern; ids as the data has them, at most 64 characters).
SEGMENT_PATTERN = r"^(all|surface:[A-Za-z0-9_-]{1,64}|country:[A-Za-z0-9_-]{1,64})$"


def shape_hint(value: str) -> str | None:
    """The conventional spelling of ``value`` when that has a segment's shape and ``value`` does not, else None:
    the kind in lower case, a country code in upper case, a surface in lower case (``Country:de`` -> ``country:DE``,
    ``ALL`` -> ``all``)."""
    kind, colon, rest = value.partition(":")
    kind = kind.lower()
    guess = kind + colon + (rest.upper() if kind == "country" else rest.lower())
    return guess if guess != value and re.fullmatch(SEGMENT_PATTERN, guess) else None


def known_hint(value: str, known: Iterable[str]) -> str | None:
    """The known segment that differs from ``value`` only in case (``country:de`` -> ``country:DE``), else None."""
    return next((name for name in sorted(known) if name.casefold() == value.casefold()), None)

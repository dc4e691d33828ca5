"""Vectorised text formatting: numbers, ids and timestamps as fixed-width byte matrices.

Writing millions of JSON lines with per-row Python is far too slow, so every value is rendered as an
``(n, width)`` uint8 matrix with numpy arithmetic. Values narrower than their column are padded with ``PAD``
(a NUL byte, which never occurs in the output): the writer drops every ``PAD`` byte when it flattens the lines,
so padding costs nothing in the files. Ids are scrambled counters: unique, deterministic and unordered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

PAD = 0
DAY_MS = 86_400_000
_QUOTE = ord('"')
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_MASK48 = np.uint64((1 << 48) - 1)
# Odd multipliers (bijective modulo 2**48); the xor-shifts spread high bits into the low ones.
_MUL1 = np.uint64(0x9E3779B97F4B)
_MUL2 = np.uint64(0xC2B2AE3D27D5)


@dataclass
class Field:
    """One JSON member across the rows of a batch: its literal per row (PAD-padded) and where it is present.

    Absent members are left out of the line altogether (not written as null), as the contract asks.
    """

    name: str
    values: np.ndarray
    present: np.ndarray


def scramble48(numbers: np.ndarray, key: int) -> np.ndarray:
    """A keyed bijection of [0, 2**48): distinct counters give distinct, random-looking ids.

    Args:
        numbers: Non-negative integers below 2**48 (event or request counters).
        key: Salt (e.g. derived from the seed) so different kinds of id never look alike.
    """
    x = (numbers.astype(np.uint64) ^ np.uint64(key & ((1 << 48) - 1))) & _MASK48
    x = (x * _MUL1) & _MASK48
    x ^= x >> np.uint64(23)
    x = (x * _MUL2) & _MASK48
    x ^= x >> np.uint64(21)
    return x


def hex_ids(prefix: bytes, numbers: np.ndarray, digits: int = 12) -> np.ndarray:
    """``prefix`` followed by ``digits`` lower-case hex digits of each number."""
    n = len(numbers)
    out = np.empty((n, len(prefix) + digits), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    x = numbers.astype(np.uint64)
    for j in range(digits):
        shift = np.uint64(4 * (digits - 1 - j))
        out[:, len(prefix) + j] = _HEX[(x >> shift) & np.uint64(15)]
    return out


def decimal_ids(prefix: bytes, numbers: np.ndarray, digits: int) -> np.ndarray:
    """``prefix`` followed by the zero-padded decimal number, e.g. ``u0000042``."""
    n = len(numbers)
    out = np.empty((n, len(prefix) + digits), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    out[:, len(prefix) :] = _digits(numbers, digits)
    return out


def unsigned(numbers: np.ndarray, width: int) -> np.ndarray:
    """Decimal text of non-negative integers, right-aligned in ``width`` columns (leading ``PAD``)."""
    digits = _digits(numbers, width)
    # A leading zero is padding unless it is the last digit (the number 0 itself).
    limits = 10 ** np.arange(width - 1, 0, -1, dtype=np.int64)
    leading = np.asarray(numbers, dtype=np.int64)[:, None] < limits[None, :]
    digits[:, : width - 1][leading] = PAD
    return digits


def fixed_point(scaled: np.ndarray, decimals: int, int_width: int) -> np.ndarray:
    """Decimal text of ``scaled / 10**decimals`` with exactly ``decimals`` decimals (e.g. ``12.50``)."""
    scaled = np.asarray(scaled, dtype=np.int64)
    whole, frac = np.divmod(scaled, 10**decimals)
    out = np.empty((len(scaled), int_width + 1 + decimals), dtype=np.uint8)
    out[:, :int_width] = unsigned(whole, int_width)
    out[:, int_width] = ord(".")
    out[:, int_width + 1 :] = _digits(frac, decimals)
    return out


def timestamps(ms: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC with milliseconds and ``Z`` (``2026-03-01T08:15:02.123Z``), 24 columns.

    Identical to ``np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")``, about
    ten times faster: the date part is looked up per distinct day, the clock part is integer arithmetic.
    """
    ms = np.asarray(ms, dtype=np.int64)
    out = np.empty((len(ms), 24), dtype=np.uint8)
    if len(ms) == 0:
        return out
    days, rest = np.divmod(ms, DAY_MS)
    first, last = int(days.min()), int(days.max())
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    table = np.frombuffer(
        b"".join((epoch + timedelta(days=d)).strftime("%Y-%m-%dT").encode() for d in range(first, last + 1)),
        dtype=np.uint8,
    ).reshape(-1, 11)
    out[:, :11] = table[days - first]
    hours, rest = np.divmod(rest, 3_600_000)
    minutes, rest = np.divmod(rest, 60_000)
    seconds, millis = np.divmod(rest, 1_000)
    out[:, 11:13] = _digits(hours, 2)
    out[:, 13] = ord(":")
    out[:, 14:16] = _digits(minutes, 2)
    out[:, 16] = ord(":")
    out[:, 17:19] = _digits(seconds, 2)
    out[:, 19] = ord(".")
    out[:, 20:23] = _digits(millis, 3)
    out[:, 23] = ord("Z")
    return out


def quoted(values: np.ndarray) -> np.ndarray:
    """The same text inside double quotes (a JSON string literal; values never need escaping)."""
    out = np.empty((values.shape[0], values.shape[1] + 2), dtype=np.uint8)
    out[:, 0] = _QUOTE
    out[:, 1:-1] = values
    out[:, -1] = _QUOTE
    return out


def literal_table(texts: Sequence[bytes], width: int | None = None) -> np.ndarray:
    """One row per text, ``PAD``-padded to a common width, for rendering codes with ``table[codes]``."""
    width = max([len(t) for t in texts] + [width or 0])
    table = np.full((len(texts), width), PAD, dtype=np.uint8)
    for i, text in enumerate(texts):
        table[i, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return table


def json_strings(names: Sequence[str], width: int | None = None) -> np.ndarray:
    """A ``literal_table`` of JSON string literals (quoted names)."""
    return literal_table([f'"{name}"'.encode() for name in names], width)


def to_strings(matrix: np.ndarray, strip_quotes: bool = True) -> list[str]:
    """Rows back to Python strings without padding (and quotes): for tests and small tables only."""
    drop = {PAD, _QUOTE} if strip_quotes else {PAD}
    return [bytes(b for b in row.tobytes() if b not in drop).decode() for row in matrix]


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits (as ASCII) of non-negative integers, most significant first."""
    x = np.asarray(numbers, dtype=np.int64).copy()
    out = np.empty((len(x), width), dtype=np.uint8)
    for j in range(width - 1, -1, -1):
        x, r = np.divmod(x, 10)
        out[:, j] = r + 48
    return out

"""One id given by hand (`tailor recommend USER_ID`, the service's path, the app's box), judged as the contract
judges an id in a row: the same length limit, blank characters and forbidden control characters, read from the
published JSON Schema so the two cannot drift apart."""

from __future__ import annotations

import re

from tailor.contract.spec import BLANK_CHARACTERS, CONTROL_CHARACTERS, load_schema

#: The most characters an id may have (the schema's maxLength).
MAX_ID_LENGTH = int(load_schema("events")["$defs"]["id"]["maxLength"])
#: The control characters an id must not hold (the schemas' ``not`` pattern, which a test holds them to; Python
#: reads its \uXXXX escapes).
_CONTROL = re.compile(CONTROL_CHARACTERS)


def user_id_problem(value: str) -> str | None:
    """What makes ``value`` impossible as a user id under the contract, said so the sender can fix it; None if nothing.

    An id is blank when it holds only the contract's blank characters (`BLANK_CHARACTERS`, which counts U+200B,
    U+2060 and U+FEFF that ``str.strip`` keeps); too long past the schema's ``maxLength`` (in characters, not
    bytes); not UTF-8 text when it holds a surrogate (a command-line byte that was not UTF-8 arrives as one, and
    crashed the holdout's hashing: a trial); and refused when it holds a control character (U+0000-U+001F,
    U+007F-U+009F), named by its code point and 1-based place rather than echoed (a NUL or an escape sequence
    would garble a terminal or a log).
    """
    if all(ch in BLANK_CHARACTERS for ch in value):
        return "user_id is empty or blank: pass the user's id, e.g. u0000042"
    if len(value) > MAX_ID_LENGTH:
        return f"user_id is {len(value)} characters; ids have at most {MAX_ID_LENGTH}"
    surrogate = next((i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
    if surrogate is not None:  # a byte that is not UTF-8, as Python decodes argv (surrogateescape), or a lone half
        return (
            f"user_id is not UTF-8 text (a byte that is not UTF-8, or half a surrogate pair, at character "
            f"{surrogate + 1}): send the id encoded as UTF-8"
        )
    found = _CONTROL.search(value)
    if found is not None:
        return (
            f"user_id holds a control character (U+{ord(found.group()):04X} at character {found.start() + 1}); "
            "ids are printable text: check how the id was encoded"
        )
    return None

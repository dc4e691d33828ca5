"""HTTP caching of pages: validators (ETag, If-None-Match) and lifetimes (Cache-Control), per RFC 9110 / RFC 9111.

Two kinds of response, two policies (docs/service.md explains the choice):

- a user's page is ``private``: a browser may keep it for a short ``max-age``, a shared cache (CDN, proxy) never;
- a segment page (non-personalized) is ``public`` with ``s-maxage``, so an edge cache can serve it to everyone.

The ETag is weak (``W/"..."``): it covers what the page says (items, reasons, which path served, the model
version, the fallback reason, the notes), not the timing fields that differ on every computation (``latency_ms``,
``generated_at``), nor the page's own moment where a note quotes it (``no explore slot: ... before <moment>``):
that moment is the start of the page's window, so a note quoting it would give an unchanged page a new tag every
window. Two responses with the same tag are the same page, which is what a revalidation asks (RFC 9110 8.8.1,
weak comparison).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: Fields of a page left out of its tag: they change on every computation without changing the page.
VOLATILE_FIELDS = ("latency_ms", "generated_at")
#: What stands for the page's moment in its notes when the tag is computed.
MOMENT_PLACEHOLDER = "<generated_at>"
#: Error responses, health and metrics: never stored anywhere.
NO_STORE = "no-store"


def page_etag(page: Mapping[str, Any]) -> str:
    """A weak entity tag for a page (a `Recommendation.as_dict()`): SHA-256 of its canonical JSON, timing left out.

    A note's quote of the page's moment (``generated_at`` to the second, as `ml.recommend` writes it) counts as
    the same text whatever the moment; any other change of a note changes the tag.
    """
    stable = {key: value for key, value in page.items() if key not in VOLATILE_FIELDS}
    moment = _moment_text(page.get("generated_at"))
    if moment and stable.get("notes"):
        stable["notes"] = [str(note).replace(moment, MOMENT_PLACEHOLDER) for note in stable["notes"]]
    text = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
    return 'W/"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def _moment_text(generated_at: object) -> str | None:
    """``generated_at`` as the notes quote it (ISO 8601 to the second), or None when it is not a timestamp."""
    if not isinstance(generated_at, str | datetime):
        return None
    try:
        moment = generated_at if isinstance(generated_at, datetime) else datetime.fromisoformat(generated_at)
    except ValueError:
        return None
    return moment.isoformat(timespec="seconds")


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether a request's If-None-Match matches ``etag`` (weak comparison; ``*`` matches any current page)."""
    if not if_none_match:
        return False
    wanted = _opaque(etag)
    for token in if_none_match.split(","):
        token = token.strip()
        if token == "*" or (token and _opaque(token) == wanted):
            return True
    return False


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/").strip()


def private_page(max_age_s: int) -> str:
    """Cache-Control of a user's page: the browser may reuse it briefly; shared caches must not store it."""
    return f"private, max-age={max_age_s}"


def public_page(max_age_s: int, s_maxage_s: int) -> str:
    """Cache-Control of a segment page: browsers ``max-age``, shared caches ``s-maxage``; an edge may serve a stale
    copy while it refetches (a minute) and while the origin fails (an hour): a popular list an hour old beats an
    error page."""
    return f"public, max-age={max_age_s}, s-maxage={s_maxage_s}, stale-while-revalidate=60, stale-if-error=3600"


def page_moment(now: datetime, window_s: int) -> datetime:
    """``now`` rounded down to the start of its ``window_s``-second window (UTC).

    The page is computed as of this moment, so the exploration slot's random draw (seeded by user, surface and
    moment in `ml.recommend`) stays the same within a window: a browser revalidating its copy gets 304 instead of
    a different draw. A click still changes the page at once (the session boost reads the online store).
    """
    stamp = now.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(stamp - stamp % window_s, UTC)

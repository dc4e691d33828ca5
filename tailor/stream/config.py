"""Names and limits of the streaming path, in one place.

The broker is a Redis Stream read by one consumer group. Every key the path uses derives from the stream name, so
two deployments (or two tests) on one Redis server only need different stream names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The Feast push source (and feature view) the consumer writes to.
PUSH_SOURCE = "recent_activity_push"


def default_redis_url() -> str:
    """``TAILOR_REDIS_URL``, else a Redis on this machine's default port."""
    return os.environ.get("TAILOR_REDIS_URL", DEFAULT_REDIS_URL)


def default_stream() -> str:
    """``TAILOR_SERVICE_STREAM`` (the key the HTTP service publishes to), else `StreamConfig`'s: `tailor stream`
    reads and writes the stream the service feeds without a --stream of its own."""
    return os.environ.get("TAILOR_SERVICE_STREAM") or StreamConfig.stream


class RedisURLError(ValueError):
    """A Redis URL that the Redis client cannot use; the message names where it came from and the expected form."""


def check_redis_url(url: str, source: str = "TAILOR_REDIS_URL") -> str:
    """``url`` when the Redis client can connect with it, read with the client's own parser (redis-py's parse_url).

    Args:
        url: the value given, e.g. ``redis://127.0.0.1:6379/0``.
        source: where it came from (``--redis``, ``TAILOR_REDIS_URL``), named in the message.

    Raises:
        RedisURLError: it has no redis://, rediss:// or unix:// scheme, or a part the client cannot read (a port
            that is not a number); the message says which value, from where, and the form expected.
    """
    from urllib.parse import urlparse

    from redis.connection import parse_url

    form = (
        f"use redis://HOST:PORT/DB, e.g. {DEFAULT_REDIS_URL} (rediss:// for TLS, unix:///path/to/redis.sock for a "
        "socket)"
    )
    try:
        parse_url(url)
    except ValueError as exc:
        raise RedisURLError(f"{source}={url!r} is not a Redis URL ({exc}): {form}") from None
    # The client reads the database from the path only when it is a number and else silently uses 0.
    path = urlparse(url).path.strip("/") if url.startswith(("redis://", "rediss://")) else ""
    if path and not path.isdigit():
        raise RedisURLError(
            f"{source}={url!r} names database {path!r}, which is not a database number (0, 1, ...): {form}"
        )
    return url


@dataclass(frozen=True)
class StreamConfig:
    """Where events flow and how the consumer treats them.

    Args:
        stream: the Redis Stream events are appended to.
        group: the consumer group that feeds the online store.
        window: length of the sliding window the recent-activity features count over.
        retention: how long the stream keeps entries. The consumer rebuilds its window from the stream after a
            restart, so this must be well above ``window``; producers trim older entries as they append.
        max_deliveries: an entry delivered more often than this is a poison message and goes to the dead letters.
        lease: how long a consumer's claim on the group lasts without renewal (one consumer at a time: the
            window of a user must live in one process).
    """

    stream: str = "tailor:events"
    group: str = "recent-activity"
    window: timedelta = field(default=timedelta(minutes=30))
    retention: timedelta = field(default=timedelta(hours=24))
    max_deliveries: int = 5
    lease: timedelta = field(default=timedelta(seconds=30))

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValueError(f"window must be positive, got {self.window}")
        if self.retention < 2 * self.window:
            raise ValueError(
                f"retention ({self.retention}) must be at least twice the window ({self.window}): the consumer "
                "rebuilds its window from the stream after a restart."
            )
        if self.max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, got {self.max_deliveries}")

    @property
    def dead_letters(self) -> str:
        """Entries that can never be processed, with the reason, for a person to inspect and replay."""
        return f"{self.stream}:dead"

    @property
    def lease_key(self) -> str:
        return f"{self.stream}:{self.group}:lease"

    @property
    def checkpoint_key(self) -> str:
        """Hash with the time up to which window expiries have been pushed (``swept_until``, epoch ms)."""
        return f"{self.stream}:{self.group}:checkpoint"

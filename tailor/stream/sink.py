"""Where the consumer's rows go: a Feast push source, online only.

Pushing to the offline store rewrites the whole Parquet file on each push (STACK_NOTES), so the offline history of
these features comes from the batch pipeline instead; the stream keeps the online store fresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from tailor.stream.window import COUNTS, FEATURES

if TYPE_CHECKING:
    from feast import FeatureStore


class Sink(Protocol):
    """Writes feature rows; must be idempotent for a row written twice (rows are absolute values)."""

    def push(self, rows: pd.DataFrame) -> None: ...


def frame(rows: Mapping[str, Mapping[str, Any]], as_of: datetime) -> pd.DataFrame:
    """A push DataFrame: one row per user with ``user_id``, ``event_timestamp`` (UTC) and the features."""
    users: Sequence[str] = sorted(rows)
    data: dict[str, Any] = {
        "user_id": list(users),
        "event_timestamp": pd.Series([as_of] * len(users), dtype="datetime64[us]").dt.tz_localize(UTC),
    }
    for name in FEATURES:
        data[name] = [rows[u][name] for u in users]
    df = pd.DataFrame(data)
    return df.astype({name: "int64" for name in COUNTS})


class FeastSink:
    """``store.push(push_source, rows, to=PushMode.ONLINE)``."""

    def __init__(self, store: FeatureStore, push_source: str) -> None:
        from feast.data_source import PushMode

        self.store = store
        self.push_source = push_source
        self._mode = PushMode.ONLINE

    def push(self, rows: pd.DataFrame) -> None:
        if not rows.empty:
            self.store.push(self.push_source, rows, to=self._mode)


def open_store(repo_path: Path | None = None) -> FeatureStore:
    """The Feast store to push to: the project's (via ``tailor.feature_store``, which picks the SQLite or Redis
    configuration and fills in TAILOR_HOME), or the repository at ``repo_path``."""
    from tailor.settings import disable_telemetry, get_settings

    disable_telemetry()
    if repo_path is not None:
        from feast import FeatureStore

        return FeatureStore(repo_path=str(repo_path))
    from tailor.feature_store import open_store as open_project_store
    from tailor.feature_store import silence_known_noise

    silence_known_noise()
    return open_project_store(get_settings())

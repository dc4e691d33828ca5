"""Content id -> category, read from the published `dim_content` mart so a click can name its category.

Events carry the content id only. The mart is re-read when the file changes (a `tailor run` republishes it), so
a long-running consumer picks up new content without a restart. Without the mart, clicks still count and their
category is unknown (null).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq

log = logging.getLogger(__name__)


class Catalog:
    """Categories of content, reloaded from ``path`` whenever its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._categories: dict[str, str] = {}
        self._warned = False

    def refresh(self) -> None:
        """Reload if the mart changed since the last read (a cheap stat otherwise)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            if not self._warned:
                log.warning("%s not found: click categories stay unknown until `tailor run` publishes it", self.path)
                self._warned = True
            return
        if mtime == self._mtime:
            return
        table = pq.read_table(self.path, columns=["content_id", "category"])
        self._categories = dict(
            zip(table.column("content_id").to_pylist(), table.column("category").to_pylist(), strict=True)
        )
        self._mtime = mtime
        log.info("loaded %d content categories from %s", len(self._categories), self.path)

    def category(self, content_id: str | None) -> str | None:
        return self._categories.get(content_id) if content_id is not None else None

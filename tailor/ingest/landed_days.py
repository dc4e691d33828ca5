"""Which days of a dated delivery folder's events have already landed in a home.

`tailor generate --continue` asks it before playing more days: a simulation regenerated from scratch (`make demo`,
`--overwrite`) after an earlier continuation has landed would otherwise play days whose files have landed already,
and `tailor run` would find nothing new in them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb

from tailor.ingest.landing import batch_path, read_log
from tailor.settings import Settings

#: A delivery file named by its day, as the simulator writes them: events-2026-02-02.jsonl, events-2026-02-02.2.jsonl.
_DATED = re.compile(r"^events-(\d{4}-\d{2}-\d{2})(?:\.\d+)?\.(?:jsonl|parquet)$")


#: How far past midnight the previous day's last sessions may run (a few requests, clicks and views: minutes).
SPILL_OVER = timedelta(hours=3)


def newest_landed_day(settings: Settings, folder: Path, since: date) -> date | None:
    """The newest day on or after ``since`` with an event landed from ``folder``'s dated event files, or None.

    Only files delivered on ``since`` or later can hold events of those days (an event is delivered on its day or
    later), so only their batches are read. An event counts by its ``occurred_at``, when that is a time and not
    after its ``received_at`` (a malformed row's impossible future time is no day of the history). A session begun
    before midnight runs minutes into the next day, so a day counts only from SPILL_OVER after its midnight on.

    Args:
        settings: the home whose landing zone is read.
        folder: the delivery folder (e.g. the inbox); its ``events/`` files are the ones considered.
        since: the first day asked about.
    """
    events = (folder / "events").resolve()
    batches: set[Path] = set()
    for record in read_log(settings):
        source = Path(record.source_file)
        named = _DATED.match(source.name)
        if record.kind != "events" or source.parent != events or named is None:
            continue
        if date.fromisoformat(named.group(1)) >= since:
            path = batch_path(settings, "events", record.batch_id)
            if path.exists():
                batches.add(path)
    if not batches:
        return None
    with duckdb.connect() as con:
        row = con.execute(
            "select (max(occurred) - ?)::date from (select try_cast(raw ->> 'occurred_at' as timestamp) as occurred, "
            "try_cast(raw ->> 'received_at' as timestamp) as received from read_parquet(?) where json_valid(raw)) "
            "where occurred >= ? and occurred <= received",
            [SPILL_OVER, sorted(str(p) for p in batches), datetime.combine(since, time()) + SPILL_OVER],
        ).fetchone()
    return row[0] if row and row[0] is not None else None

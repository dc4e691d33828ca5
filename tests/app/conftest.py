"""The app tests' history (the session's shared `served_home`) and AppTest helpers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.lib.ui import PAGES
from tailor.settings import TELEMETRY_OFF, Settings

#: Long enough for the preview's first render (opening the recommender) on a loaded 2-core machine.
RENDER_TIMEOUT_S = 240

#: The newest complete day (events after 23:00 UTC): a newest day of a few minutes after midnight is partial.
NEWEST_COMPLETE_DAY = (
    "(select max(activity_date) from (select activity_date from marts.fct_daily_user_engagement group by 1 "
    "having max(last_event_at) >= activity_date + interval 23 hour))"
)


@pytest.fixture(scope="session")
def app_home(served_home: Settings) -> Settings:
    """The session's small trained home (tests/conftest.py `served_home`: 150 users x 16 days, warehouse, marts,
    Feast, a champion, batch pages, the Dagster run, the simulator's truth). Shared: the app tests only read it."""
    return served_home


def page_test(slug: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """An AppTest of one page (app/views/<slug>.py) reading ``home``, not yet run."""
    monkeypatch.setenv("TAILOR_HOME", str(home))
    for key, value in TELEMETRY_OFF.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(PAGES[slug][0], default_timeout=RENDER_TIMEOUT_S)


def shown_metrics(at: AppTest) -> dict[str, str]:
    """label -> value of every st.metric the page shows."""
    return {m.label: m.value for m in at.metric}


def table(at: AppTest, *columns: str, nth: int = 0) -> pd.DataFrame:
    """The ``nth`` table on the page that has all of ``columns`` (AppTest does not expose st.dataframe keys)."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    if len(found) <= nth:
        raise AssertionError(
            f"no table #{nth} with columns {columns}; tables: {[list(d.value.columns) for d in at.dataframe]}"
        )
    return found[nth]

"""One small history for every app test (built once per session: `tailor generate` + `tailor run`), AppTest helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.lib.ui import PAGES
from tailor.settings import TELEMETRY_OFF, Settings, get_settings

TAILOR = str(Path(sys.executable).parent / "tailor")
#: Long enough for the preview's first render (opening the recommender) on a loaded 2-core machine.
RENDER_TIMEOUT_S = 240

#: The newest complete day (events after 23:00 UTC): a newest day of a few minutes after midnight is partial.
NEWEST_COMPLETE_DAY = (
    "(select max(activity_date) from (select activity_date from marts.fct_daily_user_engagement group by 1 "
    "having max(last_event_at) >= activity_date + interval 23 hour))"
)


def _tailor(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        "TAILOR_HOME": str(home),
        # A quick ranker: the app shows what the registry holds, whatever its quality.
        "TAILOR_RANKER_SEARCH_TRIALS": "2",
        "TAILOR_RANKER_SEARCH_TIMEOUT_S": "60",
        "TAILOR_RANKER_EVAL_USERS": "50",
    }
    return subprocess.run([TAILOR, *args], env=env, capture_output=True, text=True, check=False, timeout=1500)


@pytest.fixture(scope="session")
def app_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A home with 150 users x 16 days simulated and every asset built (warehouse, marts, Feast, a champion
    ranker, batch pages, the Dagster run), and the simulator's truth in inbox/_truth. About 2 minutes."""
    home = tmp_path_factory.mktemp("app") / "home"
    made = _tailor(home, "generate", "--users", "150", "--days", "16", "--seed", "3")
    assert made.returncode == 0, made.stderr
    ran = _tailor(home, "run", "--quiet")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    yield get_settings(home)


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

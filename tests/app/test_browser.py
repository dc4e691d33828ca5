"""The app in a real browser: `streamlit run` on a loopback port, Debian's chromium through Playwright.

Opens every page, picks an experiment and a user, checks the key numbers against the warehouse, and saves a
screenshot of each page. Skipped without chromium, except under TAILOR_REQUIRE_SERVICES=1 (CI), where a missing
browser is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from app.browser import INSTALL_HINT, PAGES, browser_page, chromium_path, tour, wait_ready
from app.server import running_app
from tailor.settings import Settings
from tests.app.conftest import NEWEST_COMPLETE_DAY
from tests.conftest import query_warehouse
from tests.redis_server import services_required

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        if services_required():
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    return path


def test_every_page_in_chromium_shows_the_warehouses_numbers(chromium: str, app_home: Settings, tmp_path: Path) -> None:
    pages = pd.read_parquet(app_home.marts_dir / "batch_recommendations.parquet")
    user = str(pages.loc[pages["policy"] == "personalized", "user_id"].iloc[0])
    experiment = "exp_feed_ranker"
    with running_app(app_home.home, log=tmp_path / "streamlit.log") as url:
        assert url.startswith("http://127.0.0.1:")
        seen = tour(url, experiment, user, tmp_path / "img")  # the overview at /overview (a trial's 404)
        with browser_page() as page:  # and at /, where `make app` opens it
            page.goto(url)
            wait_ready(page, *PAGES["overview"])

    assert set(seen.metrics) == set(PAGES)
    [(active, impressions, clicks)] = query_warehouse(
        app_home,
        "select count(*), sum(impressions), sum(clicks) from marts.fct_daily_user_engagement "
        f"where activity_date = {NEWEST_COMPLETE_DAY}",
    )
    assert seen.metrics["overview"]["Active users (latest day)"] == f"{active:,}"
    assert seen.metrics["overview"]["CTR (latest day)"] == f"{clicks / impressions:.2%}"

    units = dict(query_warehouse(
        app_home,
        "select variant, units_analysed from marts.dim_experiments where experiment_id = 'exp_feed_ranker'",
    ))  # fmt: skip
    assert seen.metrics["experiments"]["Units: control (control)"] == f"{units['control']:,}"
    assert seen.metrics["experiments"]["Units: treatment"] == f"{units['treatment']:,}"
    assert "exp_feed_ranker" in seen.texts["experiments"]

    [(user_impressions, user_clicks)] = query_warehouse(
        app_home, f"select sum(impressions), sum(clicks) from marts.fct_daily_user_engagement where user_id = '{user}'"
    )
    assert seen.metrics["preview"]["Impressions"] == f"{user_impressions:,}"
    assert seen.metrics["preview"]["Clicks"] == f"{user_clicks:,}"
    assert f"Preview of {user}" in seen.texts["preview"]
    assert "True expected CTR of their page" in seen.metrics["preview"], "the truth toggle was turned on"

    assert seen.metrics["health"]["Champion"].startswith("v")
    for path in seen.screenshots:
        assert path.stat().st_size > 50_000, f"{path} looks empty"
    assert all(s < 180 for s in seen.first_render_s.values()), seen.first_render_s

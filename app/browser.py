"""Drive the running app in Debian's chromium through Playwright: open every page, pick an experiment and a user,
read the numbers the page shows, save screenshots. Used by the browser test, `make screenshots` and the
time-to-first-render benchmark.

Playwright never downloads a browser here: it launches the system's chromium (`apt-get install chromium`) by path
(../shared/STACK_NOTES.md). A Streamlit page is ready when its title is shown, the script has finished running
(no "running" status widget) and the elements asked for are attached.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where Debian puts chromium; TAILOR_CHROMIUM overrides.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
#: Tall enough for a whole page in one screenshot (full_page captures only the viewport with Streamlit's layout).
VIEWPORT_WIDTH, VIEWPORT_HEIGHT = 1440, 2600
INSTALL_HINT = (
    "chromium is missing: install Debian's package (`apt-get install -y chromium`, as .ci/run does); "
    "never `playwright install`, which downloads a browser"
)


def chromium_path() -> str | None:
    """The system chromium's path, or None when it is not installed."""
    configured = os.environ.get("TAILOR_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


@contextmanager
def browser_page() -> Iterator[Any]:
    """A Playwright page in the system chromium (headless). Raises RuntimeError with `INSTALL_HINT` without it."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError(INSTALL_HINT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS)
        try:
            yield browser.new_page(viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT})
        finally:
            browser.close()


def wait_ready(page: Any, title: str, selectors: Sequence[str] = (), timeout_ms: float = 180_000) -> None:
    """Wait until the page shows ``title`` as its heading, every selector is attached, the script has stopped
    running (Streamlit's status widget gone) and no element is left from the previous run (``data-stale``).

    The last condition matters after a widget changes: the rerun writes the new heading first and keeps the old
    run's elements (marked stale) until it replaces them, and its status widget may show only after a moment; a
    trial's screenshot caught one experiment's heading above another's charts.
    """
    page.get_by_role("heading", name=title).first.wait_for(timeout=timeout_ms)
    for selector in selectors:
        page.locator(selector).first.wait_for(timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')",
        timeout=timeout_ms,
        polling=200,
    )


def metrics(page: Any) -> dict[str, str]:
    """Every ``st.metric`` on the page: label -> the value as shown."""
    out = {}
    for element in page.locator('[data-testid="stMetric"]').all():
        label = element.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label] = element.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option, exact=True).click()


def type_into(page: Any, label: str, text: str) -> None:
    """Type ``text`` into the text input labelled ``label`` and submit it (Enter)."""
    field_ = page.get_by_label(label)
    field_.fill(text)
    field_.press("Enter")


@dataclass
class Tour:
    """What a tour of the app saw: the metrics of each page, seconds to first render, and the screenshots."""

    metrics: dict[str, dict[str, str]] = field(default_factory=dict)
    first_render_s: dict[str, float] = field(default_factory=dict)
    screenshots: list[Path] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)


#: slug -> (heading, selectors that mean "rendered" on a history with data).
PAGES = {
    "overview": ("Overview", ['[data-testid="stPlotlyChart"]', '[data-testid="stMetric"]']),
    "experiments": ("Experiments", ['[data-testid="stPlotlyChart"]', '[data-testid="stDataFrame"]']),
    "preview": ("Personalization preview", ['[data-testid="stDataFrame"]', '[data-testid="stMetric"]']),
    "health": ("Model and data health", ['[data-testid="stDataFrame"]']),
}


def tour(url: str, experiment: str | None, user: str | None, out_dir: Path | None = None) -> Tour:
    """Open every page of the app at ``url``; on Experiments pick ``experiment``, on the preview type ``user``
    (and turn the truth toggle on when it is there); read each page's metrics and text; save
    ``<out_dir>/app-<page>.png``. ``first_render_s`` is from navigation to the page being ready."""
    result = Tour()
    with browser_page() as page:
        for slug, (title, selectors) in PAGES.items():
            started = time.perf_counter()
            page.goto(f"{url}/{slug}")  # /overview too: the default page, also at /
            wait_ready(page, title, selectors)
            result.first_render_s[slug] = time.perf_counter() - started
            if slug == "experiments" and experiment is not None:
                choose(page, "Experiment", experiment)
                page.get_by_role("heading", name=experiment).first.wait_for(timeout=120_000)
                wait_ready(page, title, selectors)
            if slug == "preview" and user is not None:
                type_into(page, "...or type a user id", user)
                page.get_by_text(f"Preview of {user} on").first.wait_for(timeout=120_000)
                wait_ready(page, title, selectors)
                toggle = page.get_by_text("Show the simulator's true click probabilities")
                if toggle.count():
                    toggle.first.click()
                    page.get_by_text("True expected CTR of their page").first.wait_for(timeout=120_000)
                    wait_ready(page, title, selectors)
            result.metrics[slug] = metrics(page)
            result.texts[slug] = page.locator("section.main, [data-testid='stMain']").first.inner_text()
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                path = out_dir / f"app-{slug}.png"
                page.screenshot(path=str(path), full_page=True)
                result.screenshots.append(path)
    return result

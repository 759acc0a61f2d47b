"""The History page and the stakeholder report in a real browser (Debian's chromium).

The page: opened by direct URL on an app whose run log already holds the known runs and two
real races against a playback server; its charts must draw, a ticked row must show that
run's detail, the CSV and Parquet downloads must equal the filtered table, and nothing may
come from outside 127.0.0.1. The report: opened from a file with every non-file request
aborted; its charts must still draw.

Screenshots go to artifacts/ (git-ignored).
"""

from __future__ import annotations

from urllib.parse import urlparse

import pandas as pd
import pytest
from conftest import DATABASES, endpoint_for

from lib import report
from lib.core.trace import Params
from lib.race import run_headless
from lib.storage import history
from lib.storage.history import Filters
from lib.storage.store import Store
from tests.support.browser_harness import (
    ARTIFACTS,
    LOCAL_HOSTS,
    LOCAL_SCHEMES,
    PAGE_TIMEOUT_MS,
    VIEWPORT,
    save_screenshot,
    start_app,
    stop_app,
)
from tests.support.history_runs import known_runs

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=DATABASES)
def filled_app(request, tmp_path_factory, playback):
    """The app on a run log with the known runs and two real races (the playback server):
    a SQLite file, then a PostgreSQL database. Yields (app, the log's URL)."""
    folder = tmp_path_factory.mktemp("app-history")
    url = (f"sqlite:///{folder / 'runs.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres").new_database())
    store = Store(url)
    store.log(known_runs())
    for _ in range(2):
        run_headless(endpoint_for(playback.base_url, "scripted"), "Why stream? (browser)",
                     Params(max_tokens=32), store, timeout_s=10)
    store.engine.dispose()
    app = start_app(folder, DATABASE_URL=url, STREAMRACE_ENDPOINT="compatible",
                    STREAMRACE_BASE_URL=playback.base_url, STREAMRACE_MODEL="scripted")
    yield app, url
    stop_app(app)

CHARTS = '[data-testid="stPlotlyChart"], [data-testid="stVegaLiteChart"]'
"""The page's charts: plotly's, and the patience chart, first on the page, in Vega-Lite."""


def visible(locator) -> None:
    playwright_api.expect(locator).to_be_visible(timeout=PAGE_TIMEOUT_MS)


def count(locator, n: int) -> None:
    playwright_api.expect(locator).to_have_count(n, timeout=PAGE_TIMEOUT_MS)


def remote(urls: list[str]) -> list[str]:
    return [u for u in urls if urlparse(u).scheme not in LOCAL_SCHEMES
            and urlparse(u).hostname not in LOCAL_HOSTS]


def test_history_page_draws_its_charts_a_selected_run_and_its_exports(browser, filled_app,
                                                                     tmp_path):
    app, url = filled_app
    suffix = "" if url.startswith("sqlite") else "-postgresql"
    store = Store(url)
    expected = history.table(store.engine, Filters(), limit=None)  # the default filter
    store.engine.dispose()
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    requests: list[str] = []
    files = {}
    try:
        page = context.new_page()
        page.on("request", lambda req: requests.append(req.url))
        page.goto(app.url + "/history")
        visible(page.locator("h1").filter(has_text="StreamRace history"))
        visible(page.get_by_text("Streaming would have kept").first)
        charts = page.locator(CHARTS)
        count(charts, 5)  # patience (Vega-Lite), distribution, length, race lanes, comparison
        for index in range(5):
            visible(charts.nth(index).locator("svg, canvas").first)
        visible(page.get_by_text("Tick runs in the table"))
        assert page.locator('[data-testid="stException"]').count() == 0, app.log()
        save_screenshot(page, ARTIFACTS / f"history{suffix}.png")

        # Tick the first row of the runs table (the row-marker column, left of the first cell).
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 20, box["y"] + 35 + 17)
        count(page.get_by_text("Tick runs in the table"), 0)
        count(charts, 6)  # + the selected run's chunk timeline
        visible(page.get_by_text("Stall: a gap longer than"))
        visible(page.locator('[data-testid="stExpander"] summary').filter(has_text="scripted"))
        visible(page.get_by_text("Why stream? (browser)").first)  # the run's prompt
        visible(page.locator(".st-key-chart_timelines .main-svg").first)
        assert page.locator('[data-testid="stException"]').count() == 0, app.log()
        save_screenshot(page, ARTIFACTS / f"history-selected{suffix}.png")

        # The exports and the report, downloaded as a user would.
        for name in ("CSV", "Parquet", "Report (HTML, opens offline)"):
            with page.expect_download(timeout=PAGE_TIMEOUT_MS) as download:
                page.get_by_role("button", name=f"⬇️ {name}", exact=True).click()
            files[name] = tmp_path / download.value.suggested_filename
            download.value.save_as(files[name])
    finally:
        context.close()
    assert not remote(requests), f"the History page loaded from outside: {remote(requests)}"

    assert len(expected) == 13 and set(expected["source"]) == {"live"}
    pd.testing.assert_frame_equal(pd.read_parquet(files["Parquet"]), expected)
    csv = pd.read_csv(files["CSV"])
    assert list(csv.columns) == list(expected.columns)
    assert list(csv["run_id"]) == list(expected["run_id"])
    assert csv["perceived_s"].to_numpy() == pytest.approx(
        expected["perceived_s"].to_numpy(dtype=float), nan_ok=True)
    html = files["Report (HTML, opens offline)"].read_text(encoding="utf-8")
    assert "Streaming would have kept" in html and "13 runs" in html


FIRST_SEEN = """
window.__firstSeen = {};
new MutationObserver(() => {
  const seen = window.__firstSeen, now = performance.now();
  if (!seen.chart && document.querySelector(
      '[data-testid="stPlotlyChart"] .main-svg, [data-testid="stVegaLiteChart"] svg')) {
    seen.chart = now;
  }
  if (!seen.table && document.querySelector('[data-testid="stDataFrame"]')) seen.table = now;
  if (!seen.waiting && document.body && document.body.innerText.includes('Drawing the other')) {
    seen.waiting = now;
  }
}).observe(document, {subtree: true, childList: true});
"""


def test_history_paints_its_first_chart_before_the_rest(browser, filled_app):
    """Issue 17, item 5: the headline and the first chart are painted before the slower parts
    (more charts, the runs table) reach the browser (app_pages/first_paint.py); drawn at once,
    the table and three more charts delayed the first chart by seconds."""
    app, _ = filled_app
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        context.add_init_script(FIRST_SEEN)
        page = context.new_page()
        page.goto(app.url + "/history")
        visible(page.locator('[data-testid="stDataFrame"]').first)  # the rest is there too
        count(page.locator(CHARTS), 5)
        seen = page.evaluate("window.__firstSeen")
        # The slower parts were asked for once the first ones were painted, and came after.
        assert "waiting" in seen and seen["chart"] < seen["table"], seen
        count(page.get_by_text("Drawing the other charts"), 0)
        assert page.locator('[data-testid="stException"]').count() == 0, app.log()
    finally:
        context.close()


def test_report_renders_offline(browser, store, tmp_path):
    store.log(known_runs())
    path = tmp_path / "report.html"
    path.write_text(report.build(store.engine, Filters()), encoding="utf-8")

    context = browser.new_context(viewport=VIEWPORT)
    blocked: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    try:
        page = context.new_page()
        page.goto(path.as_uri())
        charts = page.locator(".plotly-graph-div")
        count(charts, 3)
        for index in range(3):
            visible(charts.nth(index).locator(".main-svg").first)
        # The patience chart's curves are drawn: one line per mode.
        assert charts.nth(1).locator(".scatterlayer .trace path.js-line").count() == 2
        assert page.evaluate("() => typeof window.Plotly") == "object"
        save_screenshot(page, ARTIFACTS / "report.png")
    finally:
        context.close()
    assert blocked == [], f"the report tried to load: {blocked}"


"""The app in a real browser: what AppTest cannot see (mid-stream states, timing, direct URLs).

`streamlit run streamlit_app.py` runs as a subprocess on a free port; Debian's chromium is
driven by Playwright's sync API (never `playwright install`). Synchronisation is by DOM
waits: the race's moments are timestamped inside the page by a MutationObserver, so neither
polling nor screenshots can shift them.

Screenshots go to artifacts/ (git-ignored). docs/screenshot.png (committed) is written when
it is missing or when STREAMRACE_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest

from lib.serving.playback import PlaybackServer, Script
from tests.support.browser_harness import (
    ARTIFACTS,
    DOCS_SCREENSHOT,
    LOCAL_HOSTS,
    LOCAL_SCHEMES,
    NAV_TITLES,
    PAGE_TIMEOUT_MS,
    PAGES,
    RACE_TIMEOUT_MS,
    VIEWPORT,
    save_screenshot,
    start_app,
    stop_app,
)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app with the DEFAULT configuration: the embedded llama.cpp model."""
    app = start_app(tmp_path_factory.mktemp("app-default"))
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def direct_playback():
    """The endpoint of the direct-URL apps (nothing is sent: the pages are only opened)."""
    with PlaybackServer({"scripted": Script.regular(ttft_s=0.05, gap_s=0.01, n=30)}) as server:
        yield server


@dataclass
class Opened:
    """A page opened by direct URL in a fresh context, on a freshly started app."""

    path: str
    page: object
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module", params=PAGES, ids=[path for path, _ in PAGES])
def opened(request, browser, direct_playback, tmp_path_factory):
    """Each URL is the FIRST visit of a fresh app process, in a fresh browser context.

    A fresh process matters: how Streamlit resolves a URL (st.navigation, or the `pages/`
    folder's auto-navigation) is process-wide state set by the first script run, so only
    a first visit shows what a user following a shared link to a just-started app sees.
    A compatible endpoint (the playback server) keeps the embedded model out of these tests.
    """
    path, rendered_text = request.param
    app = start_app(
        tmp_path_factory.mktemp("app-direct"),
        STREAMRACE_ENDPOINT="compatible", STREAMRACE_BASE_URL=direct_playback.base_url,
        STREAMRACE_MODEL="scripted",
    )
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    result = Opened(path, page)
    page.on("request", lambda req: result.requests.append(req.url))
    page.on("websocket", lambda ws: result.requests.append(ws.url))
    try:
        page.goto(app.url + path)
        playwright_api.expect(page.get_by_text(rendered_text).first).to_be_visible(
            timeout=PAGE_TIMEOUT_MS)
        page.wait_for_load_state("networkidle")
        yield result
    finally:
        context.close()
        stop_app(app)


# -- page helpers ------------------------------------------------------------------------------


def wait_for_race_page(page) -> None:
    """The title, the Run button and the last section of the race page are on screen."""
    expect = playwright_api.expect
    expect(page.locator("h1").filter(has_text="StreamRace")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Run race")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text("Recent runs")).to_be_visible(timeout=PAGE_TIMEOUT_MS)


RACE_OBSERVER = """() => {
  // Timestamps (performance.now) of the race's visible moments, taken on DOM mutations.
  const STATUS = /^\\s*(⏳|⚡|✅|🚨|⏹️|⬜)/;
  const panel = (title) => [...document.querySelectorAll('[data-testid="stColumn"]')]
    .find(c => (c.querySelector('h3')?.innerText || '').includes(title));
  const bodyText = (column) => [...column.querySelectorAll(
      '[data-testid="stElementContainer"][data-stale="false"] [data-testid="stMarkdown"]')]
    .filter(m => !m.closest('[data-testid="stHeading"]'))
    .map(m => m.innerText.trim())
    .filter(t => t && !STATUS.test(t))
    .join('\\n');
  const race = window.__race = {
    streamAt: null, streamText: null, blockingBlankAtStream: null,
    blockingAt: null, blockingText: null,
  };
  const check = () => {
    const streaming = panel('Streaming call'), blocking = panel('Blocking call');
    if (!streaming || !blocking) return;
    const now = performance.now();
    if (race.streamAt === null) {
      const text = bodyText(streaming);
      if (/\\w/.test(text)) {
        race.streamAt = now;
        race.streamText = text;
        race.blockingBlankAtStream = blocking.innerText.includes('Blank screen')
          && bodyText(blocking) === '';
      }
    }
    if (race.blockingAt === null && race.streamAt !== null) {
      const text = bodyText(blocking);
      if (/\\w/.test(text)) { race.blockingAt = now; race.blockingText = text; }
    }
  };
  new MutationObserver(check).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


# -- tests -------------------------------------------------------------------------------------


def test_streamed_words_appear_before_the_blocking_answer(browser, app):
    """Default configuration: a real race on the embedded model, watched in the browser."""
    expect = playwright_api.expect
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/")
        wait_for_race_page(page)

        # The short preset (48 tokens) keeps the race to a few seconds on a small CPU.
        page.get_by_role("radio", name="One-line answer").click()
        expect(page.get_by_label("Prompt")).to_have_value(re.compile("capital of France"),
                                                          timeout=PAGE_TIMEOUT_MS)

        page.evaluate(RACE_OBSERVER)
        page.get_by_role("button", name="Run race").click()

        page.wait_for_function("() => window.__race.streamAt !== null", timeout=RACE_TIMEOUT_MS)
        save_screenshot(page, ARTIFACTS / "race-midstream.png")
        page.wait_for_function("() => window.__race.blockingAt !== null", timeout=RACE_TIMEOUT_MS)
        race = page.evaluate("() => window.__race")

        assert race["streamAt"] < race["blockingAt"], race
        assert race["blockingBlankAtStream"], (
            f"the blocking panel no longer showed its blank-screen timer when the first "
            f"streamed words appeared: {race}")

        expect(page.get_by_text("What the user experienced")).to_be_visible(timeout=RACE_TIMEOUT_MS)
        expect(page.get_by_text("sooner").first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        # Everything drawn: the timeline chart and the run log table, no spinner left.
        expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible(
            timeout=PAGE_TIMEOUT_MS)
        expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0, timeout=PAGE_TIMEOUT_MS)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0, app.log()

        screenshot = ARTIFACTS / "race.png"
        save_screenshot(page, screenshot)
        if not DOCS_SCREENSHOT.exists() or os.environ.get("STREAMRACE_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(screenshot, DOCS_SCREENSHOT)
    finally:
        context.close()


def test_page_opens_by_direct_url(opened):
    page = opened.page
    assert "StreamRace" in page.title()
    assert page.locator("h1").count() == 1, f"{opened.path}: the page's title is not drawn"
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Page not found").count() == 0, (
        f"{opened.path} is not a page of the app: Streamlit says 'Page not found' "
        f"and falls back to the main page (now at {page.url})")
    # The app around the page ran too: its sidebar has the endpoint picker, and the
    # navigation lists the app's pages only (no helper modules, no entry script).
    sidebar = page.locator('[data-testid="stSidebar"]')
    playwright_api.expect(
        sidebar.locator('[data-testid="stSelectbox"]').first,
        message=f"{opened.path}: no endpoint picker in the sidebar",
    ).to_be_visible(timeout=30_000)
    # Each link reads "<icon>\n\n<title>"; with a single page Streamlit shows no navigation.
    nav = set(page.locator('[data-testid="stSidebarNav"] a').all_inner_texts())
    titles = {t.strip().splitlines()[-1].strip() for t in nav}
    assert titles == (NAV_TITLES if len(NAV_TITLES) > 1 else set()), (
        f"{opened.path}: sidebar navigation {nav}")


def test_page_loads_nothing_from_the_internet(opened):
    assert opened.requests, "no request was recorded"
    remote = []
    for url in opened.requests:
        parsed = urlparse(url)
        if parsed.scheme in LOCAL_SCHEMES:
            continue
        if parsed.hostname not in LOCAL_HOSTS:
            remote.append(url)
    assert not remote, f"{opened.path} loaded from outside 127.0.0.1: {remote}"

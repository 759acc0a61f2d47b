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
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lib.playback import PlaybackServer, Script

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1800}

PAGES = [
    # (direct URL, text the page shows once its script has run to the end)
    ("/", "Recent runs"),  # the race page is the app's home (a default page lives at "/")
]
"""Every page of the app: a new page is one more line here."""
NAV_TITLES = {"Race"}
"""The titles st.navigation gives the pages; the sidebar must list no other."""

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"data", "blob", "about"}

START_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 90_000
RACE_TIMEOUT_MS = 240_000
"""Starting the embedded model and the first race on a busy 2-core machine."""

if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is not installed (make chromium)", allow_module_level=True)


# -- the app as a subprocess ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class App:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_app(folder: Path, **env_vars: str) -> App:
    """`streamlit run streamlit_app.py` on a free port with its own run log; waits for health."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMRACE_") and k != "OPENAI_API_KEY"}
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'runs.db'}",
        XDG_DATA_HOME=str(folder / "data"),  # the embedded servers' logs stay in tmp
        PYTHONUNBUFFERED="1",
        **env_vars,
    )
    port = free_port()
    log_path = folder / "streamlit.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.port", str(port), "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the llama.cpp servers it starts too
        )
    app = App(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{app.log()}")
        try:
            with urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return app
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # polling a server that is starting: nothing in a page to wait on
    stop_app(app)
    raise RuntimeError(f"streamlit did not answer within {START_TIMEOUT_S} s:\n{app.log()}")


def stop_app(app: App) -> None:
    """Stop the app (its atexit stops the embedded servers), then anything left in its group."""
    if app.process.poll() is None:
        app.process.terminate()
        try:
            app.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait()
    try:
        os.killpg(app.process.pid, signal.SIGKILL)  # the group we created, and only it
    except (ProcessLookupError, PermissionError):
        pass


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


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


def save_screenshot(page, path: Path) -> None:
    """A full-page screenshot; the viewport grows if the app's own scroll area is taller."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stAppViewContainer"], body')]
        .map(e => e.scrollHeight))""")
    if height > VIEWPORT["height"]:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": int(height)})
    page.screenshot(path=str(path), full_page=True)


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
    assert page.locator("h1").filter(has_text="StreamRace").count() == 1
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
    nav = set(page.locator('[data-testid="stSidebarNav"] a').all_inner_texts())
    assert {t.strip() for t in nav} <= NAV_TITLES, f"{opened.path}: sidebar navigation {nav}"


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

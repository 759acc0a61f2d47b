"""Secrets in a real browser: the API key reaches the endpoint and nothing else.

The app runs with a canary key in its environment (STREAMRACE_API_KEY, and OPENAI_API_KEY for
the moderation validator) against a playback server that requires it and, like careless
gateways, quotes the Authorization header it got in its error messages. In chromium every page
does its work: races (one answered HTTP 500), a recording saved and exported, a benchmark
(every third request fails), the guardrails lab with the moderation validator, a race with a
second canary typed in the password field (HTTP 401), the History page's exports and report,
and a race on the recording (the app's replay server). Every download is saved; then every
file under the test's folder (run log and its -wal/-shm, downloads, streamlit.log, the replay
server's log in the XDG data folder), every page's HTML and visible text, and every websocket
message the app sent the browser are scanned for both canaries (tests/support/key_scan.py).

The password field itself holds the typed key in the DOM (React mirrors an input's value into
its `value` attribute): that is the user's own input, masked on screen, so the HTML is scanned
without that one attribute of that one field, and the field is checked to be a password field.
"""

from __future__ import annotations

import sqlite3

import pytest

from lib.serving.playback import PlaybackServer, Script
from tests.support.browser_harness import (
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    VIEWPORT,
    expect,
    picker_field,
    save_screenshot,
    settled,
    start_app,
    stop_app,
)
from tests.support.key_scan import (
    CANARY,
    WRONG,
    assert_no_key_in,
    assert_no_key_in_files,
    byte_leaks,
    leaks,
)

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 180_000
SCRIPTS = {
    "keyed": Script.regular(ttft_s=0.05, gap_s=0.01, n=12),
    "e500": Script(status=500),
    # Benchmark: every third request fails, with the key quoted in the server's words.
    "flaky": Script.regular(ttft_s=0.02, gap_s=0.005, n=6, status_schedule=(200, 200, 500)),
}
RECORDING = "key-scan"
PAGE_HTML = """(typed) => {
  // The page's HTML, without the key the user typed where they typed it (a password field).
  const copy = document.documentElement.cloneNode(true);
  copy.querySelectorAll('input[type="password"]').forEach(i => {
    if (typed && i.getAttribute('value') === typed) i.removeAttribute('value');
  });
  return copy.outerHTML;
}"""


@pytest.fixture(scope="module")
def server():
    with PlaybackServer(SCRIPTS, api_key=CANARY, flagged_terms=("blank",),
                        echo_key=True) as server:
        yield server


class Session:
    """The browser side of the test: pages opened, what each showed, files downloaded."""

    def __init__(self, page, app, downloads):
        self.page, self.app, self.downloads = page, app, downloads
        self.checked: list[str] = []  # the pages whose HTML and text were scanned
        self.typed = ""  # the key typed in the sidebar's password field, if any
        self.frames: list[bytes] = []  # everything the server sent the browser
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: self.frames.append(f)))

    def open(self, path: str, ready_text: str) -> None:
        self.page.goto(self.app.url + path)
        expect(self.page.get_by_text(ready_text).first).to_be_visible()
        self.settled()

    def settled(self) -> None:
        settled(self.page)

    def collect(self, where: str) -> None:
        """Scan this page's HTML and visible text, now that its work is done."""
        self.settled()
        html, text = self.page.evaluate(PAGE_HTML, self.typed), self.page.inner_text("body")
        self.checked.append(where)
        assert_no_key_in(html, f"the HTML of {where}")
        assert_no_key_in(text, f"the visible text of {where}")
        assert self.page.locator('[data-testid="stException"]').count() == 0, self.app.log()

    def download(self, button: str, exact: bool = False) -> None:
        with self.page.expect_download(timeout=PAGE_TIMEOUT_MS) as download:
            self.page.get_by_role("button", name=button, exact=exact).click()
        path = self.downloads / download.value.suggested_filename
        download.value.save_as(path)
        assert path.stat().st_size > 0, f"{button}: an empty download"
        self.settled()  # a download button that reruns the page: its run has ended

    def sidebar_model(self, model: str) -> None:
        field = picker_field(self.page)
        field.fill(model)
        field.press("Enter")
        expect(field).to_have_value(model)
        self.settled()

    def run_race(self) -> None:
        self.page.get_by_role("button", name="Run race").click()
        expect(self.page.get_by_text("What the user experienced"), RUN_TIMEOUT_MS).to_be_visible()
        expect(self.page.locator('[data-testid="stSpinner"]')).to_have_count(0)
        self.settled()


def race_page(s: Session) -> None:
    """A race the server fails with HTTP 500 (its message quotes the key), then one that
    succeeds; the Recent runs CSV."""
    page = s.page
    s.open("/", "Recent runs")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("Key set (environment)")).to_be_visible()
    s.sidebar_model("e500")
    s.run_race()
    errors = page.locator('[data-testid="stAlertContentError"]')
    expect(errors).to_have_count(2)
    expect(errors.first).to_contain_text("HTTP 500")
    expect(errors.first).to_contain_text("Received Authorization")  # the echo, scrubbed
    s.collect("the race page, HTTP 500")

    s.sidebar_model("keyed")
    s.run_race()
    expect(page.get_by_text("sooner").first, RUN_TIMEOUT_MS).to_be_visible()
    expect(errors).to_have_count(0)
    expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
    s.download("Download CSV")
    s.collect("the race page")


def replay_page_record(s: Session) -> None:
    """Both rows of the ok race saved as a recording (the only ok runs so far), exported."""
    page = s.page
    s.open("/replay", "Use in race")
    runs = page.locator('[data-testid="stDataFrame"]').first
    expect(runs).to_be_visible()
    runs.click(position={"x": 18, "y": 18})  # the header checkbox: every row (the race's two)
    save = page.get_by_role("button", name="Save recording")
    expect(save).to_be_enabled()
    name = page.get_by_label("Recording name")
    name.fill(RECORDING)
    name.press("Enter")
    expect(name).to_have_value(RECORDING)
    s.settled()
    save.click()
    expect(page.get_by_text(f"Saved '{RECORDING}'")).to_be_visible()
    s.settled()
    s.download("Export JSON")
    s.collect("the replay page")


def benchmark_page(s: Session) -> None:
    """A few requests, one in three failing with the key quoted; its CSV and JSON."""
    page = s.page
    s.open("/benchmark", "Compare with an earlier benchmark")
    s.sidebar_model("flaky")
    for label, value in (("Requests", "6"), ("Warm-up requests", "0")):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")
    page.get_by_role("button", name="Run benchmark").click()
    expect(page.get_by_text("Summary", exact=True), RUN_TIMEOUT_MS).to_be_visible()
    expect(page.get_by_role("button", name="Results CSV")).to_be_visible()
    s.download("Results CSV")
    s.download("Summary JSON")
    s.collect("the benchmark page")


def guardrails_page(s: Session) -> None:
    """The lab with the moderation validator (OPENAI_API_KEY: the canary too); its CSV."""
    page = s.page
    s.open("/guardrails", "Plant a violation")
    validators = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Validators")
    validators.locator("input").click()
    page.get_by_role("option", name="moderation").click()
    expect(validators).to_contain_text("moderation")
    page.keyboard.press("Escape")
    s.settled()
    page.get_by_role("button", name="▶️ Run").click()
    expect(page.get_by_text("The trade-off"), RUN_TIMEOUT_MS).to_be_visible()
    expect(page.get_by_text("moderation").first).to_be_visible()
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, s.app.log()
    s.download("Download table (CSV)")
    s.collect("the guardrails page")


def wrong_key_race(s: Session) -> None:
    """A second canary typed in the password field: the server answers 401."""
    page = s.page
    s.open("/", "Recent runs")
    sidebar = page.locator('[data-testid="stSidebar"]')
    field = sidebar.get_by_role("textbox", name="API key", exact=True)
    assert field.get_attribute("type") == "password"
    field.fill(WRONG)
    s.typed = WRONG
    field.press("Enter")
    expect(sidebar.get_by_text("Key set (typed)")).to_be_visible()
    s.settled()
    s.run_race()
    errors = page.locator('[data-testid="stAlertContentError"]')
    expect(errors).to_have_count(2)
    expect(errors.first).to_contain_text("refused the API key (HTTP 401)")
    for text in errors.all_inner_texts():
        assert not leaks(text), f"the 401 error shows a key: {text}"
    assert field.get_attribute("type") == "password", "the typed key is no longer masked"
    save_screenshot(page, ARTIFACTS / "key-scan-401.png")
    s.collect("the race page, wrong key (HTTP 401)")


def history_page(s: Session) -> None:
    s.typed = ""  # a new session: the typed key is gone
    s.open("/history", "Stakeholder report")
    for name in ("CSV", "Parquet", "Report (HTML, opens offline)"):
        s.download(f"⬇️ {name}", exact=True)
    s.collect("the history page")


def replay_race(s: Session) -> None:
    """'Use in race' on the recording: a race on the app's own replay server (a subprocess)."""
    page = s.page
    s.open("/replay", "Use in race")
    page.get_by_role("button", name="Use in race").click()
    expect(page.get_by_role("button", name="Run race")).to_be_visible()
    expect(page.locator('[data-testid="stSidebar"]').get_by_role(
        "combobox", name="Recording")).to_have_value(f"'{RECORDING}' as recorded")
    s.settled()
    s.run_race()
    expect(page.get_by_text(f"replayed from the recording '{RECORDING}'", exact=False)
           ).to_be_visible()
    s.collect("the race page, replaying")


def test_no_key_in_any_page_export_or_file(browser, server, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    app = start_app(tmp_path / "app", STREAMRACE_ENDPOINT="compatible",
                    STREAMRACE_BASE_URL=server.base_url, STREAMRACE_MODEL="keyed",
                    STREAMRACE_API_KEY=CANARY, OPENAI_API_KEY=CANARY,
                    STREAMRACE_MODERATION_URL=server.base_url)
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    session = Session(page, app, downloads)
    try:
        for step in (race_page, replay_page_record, benchmark_page, guardrails_page,
                     wrong_key_race, history_page, replay_race):
            step(session)
        # While the app runs: the run log's -wal and -shm are there too.
        assert_no_key_in_files(tmp_path, expected=(
            "app/runs.db", "app/runs.db-wal", "app/runs.db-shm", "app/streamlit.log",
            "streamrace-runs.csv", f"{RECORDING}.json", "streamrace-guardrails.csv",
            "streamrace-history.csv", "streamrace-history.parquet", "streamrace-report.html"))
    except Exception:
        save_screenshot(page, ARTIFACTS / "key-scan-failure.png")
        raise
    finally:
        context.close()
        stop_app(app)
    # Stopped: whatever it wrote on the way out.
    scanned = assert_no_key_in_files(tmp_path)
    names = {p.name for p in scanned}
    assert any(n.startswith("replay-server-") for n in names), names  # its log was scanned
    assert {n.split(".")[-1] for n in names if n.startswith("benchmark-")} == {"csv", "json"}

    # The key was really in play: the server got the canary (and the typed one), and the runs
    # it refused are in the run log, their messages scrubbed rather than dropped.
    sent = {r.authorization for r in server.received}
    assert f"Bearer {CANARY}" in sent and f"Bearer {WRONG}" in sent, sent
    with sqlite3.connect(tmp_path / "app" / "runs.db") as conn:
        errors = {e for (e,) in conn.execute("SELECT error FROM runs WHERE error IS NOT NULL")}
    for words in ("Received Authorization: 'Bearer •••'", "refused the API key (HTTP 401)"):
        assert any(words in e for e in errors), (words, errors)
    moderated = [r for r in server.received if "input" in r.body]
    assert moderated and {r.authorization for r in moderated} == {f"Bearer {CANARY}"}
    assert len(session.checked) == 8, session.checked  # each page's HTML and text (collect)
    # Nor did the app ever send a key to the browser (its websocket messages, every page).
    frames = [f if isinstance(f, bytes) else f.encode() for f in session.frames]
    assert any("What the user experienced".encode() in f for f in frames), "no page text seen"
    sent_to_browser = [f"message {i}: {byte_leaks(f)}" for i, f in enumerate(frames)
                       if byte_leaks(f)]
    assert not sent_to_browser, f"the app sent a key to the browser: {sent_to_browser}"

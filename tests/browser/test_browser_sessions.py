"""Many sessions: 20 browser sessions race at once against one app process.

One chromium, 20 browser contexts (separate cookies, so 20 Streamlit sessions), one app
(tests/support/browser_harness.py) on a compatible endpoint: a playback server started here whose
echo script begins every answer with "[<prompt>] ", so a page shows whose answer it got.
Each session types its own prompt and its own API key; all 20 click "Run race" in one
quick loop; then, with values:

- the run log holds exactly one blocking and one streaming row per session, all `ok`;
- each page's two panels show its own prompt's answer and no other session's;
- the server saw each session's prompt only with that session's key, and no key is in
  the run log's files;
- the app's log has no "database is locked" and no Traceback.

Twenty pages in one chromium on two cores cost most of the time: a small viewport and no
animations keep painting cheap. Screenshots go to artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest

from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store
from tests.support.browser_harness import (
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    RACE_TIMEOUT_MS,
    App,
    PageWatch,
    app_stacks,
    expect,
    page_tail,
    picker_field,
    save_screenshot,
    settled,
    start_app,
    stop_app,
)

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

SESSIONS = 20
SESSION_VIEWPORT = {"width": 1100, "height": 800}
"""Smaller than the other browser tests' VIEWPORT: 20 pages are painted at once."""
MODEL = "echo"
ECHO = Script.regular(ttft_s=0.05, gap_s=0.06, n=15, echo=True)
"""Each answer streams for ~0.9 s: longer than the quick loop of 20 clicks takes under load
(~2 s spread, but the app's own sending lags behind it), so the races really overlap."""
MIN_IN_FLIGHT = 14
"""The README's claim: the server had 14-40 requests in hand at once (35 at load ~7)."""
SESSION_MARK = re.compile(r"\[session-(\d\d) ")
"""How an echoed answer names its session: "[session-07 asks ...] Streaming shows ..."."""

PANELS = """() => Object.fromEntries(['Blocking call', 'Streaming call'].map(title => {
  const column = [...document.querySelectorAll('[data-testid="stColumn"]')]
    .find(c => (c.querySelector('h3')?.innerText || '').includes(title));
  return [title, column ? column.innerText : null];
}))"""



def key_field(page):
    return picker_field(page, "API key")


KEY_SALT = uuid.uuid4().hex[:12]


@dataclass
class Session:
    number: int
    context: object
    page: object
    watch: PageWatch

    def not_drawn(self, what: str, app: App) -> AssertionError:
        """A page that stopped drawing: its screenshot kept, and what it was still waiting for
        (seen beside a second suite, 1 page of 20, for 90 s with nothing in the app's log);
        the file also gets the page's last elements and the app's threads."""
        save_screenshot(self.page, ARTIFACTS / f"sessions-{what}-{self.name}.png")
        report = self.watch.final_report()  # slow or stuck: watched two more minutes
        (ARTIFACTS / f"sessions-{what}-{self.name}.txt").write_text(
            f"{report}\n\nthe page's last elements:\n{page_tail(self.page)}\n\n"
            f"the app's threads:\n{app_stacks(app)}\n")
        return AssertionError(f"{self.name} ({what}):\n{report}")

    @property
    def name(self) -> str:
        return f"session-{self.number:02d}"

    @property
    def prompt(self) -> str:
        return f"{self.name} asks why streaming helps"

    @property
    def key(self) -> str:
        # Not `sk-`-shaped: only the app's own care, not the generic mask, keeps it out.
        return f"pbk-{self.name}-{KEY_SALT}"


@pytest.fixture(scope="module")
def server():
    with PlaybackServer({MODEL: ECHO}) as playback:
        yield playback


@pytest.fixture(scope="module")
def app(tmp_path_factory, server):
    app = start_app(tmp_path_factory.mktemp("app-sessions"), STREAMRACE_ENDPOINT="compatible",
                    STREAMRACE_BASE_URL=server.base_url, STREAMRACE_MODEL=MODEL)
    yield app
    stop_app(app)


@pytest.fixture
def sessions(browser):
    opened: list[Session] = []
    try:
        for number in range(1, SESSIONS + 1):
            context = browser.new_context(viewport=SESSION_VIEWPORT, reduced_motion="reduce")
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            page = context.new_page()
            opened.append(Session(number, context, page, PageWatch(page)))
        yield opened
    finally:
        for session in opened:
            session.context.close()


def test_twenty_sessions_race_at_once(app, server, sessions):
    folder = app.log_path.parent
    # Every session opens the race page by direct URL; the loads overlap.
    for session in sessions:
        session.page.goto(app.url + "/", wait_until="commit")
    for session in sessions:
        page = session.page
        try:
            expect(page.get_by_role("button", name="Run race")).to_be_visible()
            expect(page.get_by_text("Recent runs")).to_be_visible()
            expect(key_field(page)).to_be_visible()
            settled(page)
        except AssertionError as failure:
            # Seen once beside a second suite (1 page of 20): the sidebar's headings drawn, its
            # widgets and the page not, for 90 s, nothing in the app's log.
            raise session.not_drawn("not-drawn", app) from failure

    # Each types its own prompt and its own key: moving to the key field commits the prompt,
    # Enter commits the key. The whole page is drawn first (the sidebar too), so that nothing
    # typed goes into a box about to be redrawn.
    for session in sessions:
        page = session.page
        page.get_by_label("Prompt").fill(session.prompt)
        key_field(page).fill(session.key)
        key_field(page).press("Enter")
    retyped = []
    for session in sessions:
        page = session.page
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_text("Key set (typed)")).to_be_visible()
        settled(page)
        if page.get_by_label("Prompt").input_value() != session.prompt:
            # Seen once in CI (1 page of 20, load ~20): the page came back with the preset's
            # prompt and the typed key. A person types it again; so does this test, once, and
            # says so below. What this test pins is that no session sees another's prompt,
            # key or answer, which a retyped prompt does not weaken.
            retyped.append(session.name)
            save_screenshot(page, ARTIFACTS / f"sessions-retyped-{session.name}.png")
            page.get_by_label("Prompt").fill(session.prompt)
            page.get_by_label("Prompt").press("Control+Enter")
            settled(page)
        try:
            expect(page.get_by_label("Prompt")).to_have_value(session.prompt)
        except AssertionError:
            save_screenshot(page, ARTIFACTS / f"sessions-failure-{session.name}.png")
            raise
    assert len(retyped) <= 2, f"prompts lost on {len(retyped)} pages: {retyped}"

    # All 20 click "Run race" in one quick loop.
    clicks_started = time.perf_counter()
    for session in sessions:
        session.page.get_by_role("button", name="Run race").click(no_wait_after=True)
    click_spread_s = time.perf_counter() - clicks_started

    for session in sessions:
        page = session.page
        try:
            expect(page.get_by_text("What the user experienced"), RACE_TIMEOUT_MS).to_be_visible()
            expect(page.locator('[data-testid="stMetric"]'), RACE_TIMEOUT_MS).to_have_count(4)
            expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
            expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0)
            settled(page)
        except AssertionError as failure:
            raise session.not_drawn("failure", app) from failure
    save_screenshot(sessions[6].page, ARTIFACTS / "sessions-race.png")

    # Each page shows its own answer, and no other session's.
    for session in sessions:
        page = session.page
        assert page.locator('[data-testid="stException"]').count() == 0, session.name
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0, session.name
        panels = page.evaluate(PANELS)
        for title, text in panels.items():
            assert text is not None, f"{session.name}: no '{title}' panel"
            assert f"[{session.prompt}]" in text, f"{session.name} {title}: {text!r}"
            assert set(SESSION_MARK.findall(text)) == {f"{session.number:02d}"}, (
                f"{session.name} {title} shows another session's answer: {text!r}"
            )

    # The server saw each prompt twice (blocking, streaming), only with its session's key.
    by_prompt = {session.prompt: session for session in sessions}
    seen: Counter[tuple[str, bool]] = Counter()
    for record in list(server.received):
        [prompt] = [m["content"] for m in record.body["messages"] if m.get("role") == "user"]
        assert prompt in by_prompt, f"an unexpected prompt reached the server: {prompt!r}"
        assert record.authorization == f"Bearer {by_prompt[prompt].key}", (
            f"{prompt!r} was sent with another key: {record.authorization!r}"
        )
        seen[(prompt, bool(record.body.get("stream")))] += 1
    assert seen == Counter({(p, stream): 1 for p in by_prompt for stream in (False, True)})
    # The races overlapped: how many requests the server had in hand at once, at its busiest.
    peak = max(
        sum(
            1
            for other in server.received
            if other.t_received <= record.t_received < (other.t_done or float("inf"))
        )
        for record in server.received
    )
    print(f"\n{SESSIONS} clicks in {click_spread_s:.2f} s; at most {peak} requests at once")
    assert peak >= MIN_IN_FLIGHT, f"the races did not overlap (at most {peak} requests at once)"

    # The run log: one row per call, every prompt twice, all ok, no key in its files.
    store = Store(f"sqlite:///{folder / 'runs.db'}")
    try:
        rows = store.recent(1000)
    finally:
        store.engine.dispose()
    assert len(rows) == 2 * SESSIONS, rows[["prompt", "mode", "status"]]
    assert Counter(rows["prompt"]) == {prompt: 2 for prompt in by_prompt}
    assert set(rows["status"]) == {"ok"}, rows[["prompt", "mode", "status", "error"]]
    assert Counter(zip(rows["prompt"], rows["mode"])) == {
        (prompt, mode): 1 for prompt in by_prompt for mode in ("blocking", "streaming")
    }
    assert len(set(rows["race_id"])) == SESSIONS
    assert all(rows.groupby("prompt")["race_id"].nunique() == 1)
    for _, row in rows.iterrows():
        assert row["output_text"].startswith(f"[{row['prompt']}] "), row["output_text"][:80]
    stored = b"".join(path.read_bytes() for path in sorted(folder.glob("runs.db*")))
    log = app.log_path.read_text(errors="replace")
    for session in sessions:
        assert session.key.encode() not in stored, f"{session.name}'s key is in the run log"
        assert session.key not in log, f"{session.name}'s key is in the app's log"

    assert "database is locked" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]


def test_the_app_writes_its_threads_to_its_log_on_sigusr1(app):
    """What `not_drawn` reports of the server side: every thread's stack, the app still up."""
    stacks = app_stacks(app)
    assert stacks.count("Thread 0x") >= 3, stacks[:2000]
    assert "streamlit" in stacks
    assert app.server.process is not None and app.server.process.poll() is None

"""Faults of tests/support/hostile.py in a real browser, on the race page: what a user at a
demo sees.

AppTest (tests/pages/test_faults.py) checks every fault on every page; here chromium shows the ones
whose rendering matters: HTML that must not run, a stall that keeps the streamed words, and a
megabyte answer that must not freeze the page. One app, the model switched in the sidebar.
"""

from __future__ import annotations

import pytest

from lib.storage.store import Store
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
from tests.support.hostile import BY_MODEL, TIMEOUT_S, hostile_server
from tests.support.waiting import wait_until

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory, warmed):
    folder = tmp_path_factory.mktemp("app-faults")
    with hostile_server() as server:
        app = start_app(
            folder,
            STREAMRACE_ENDPOINT="compatible",
            STREAMRACE_BASE_URL=server.base_url,
            STREAMRACE_MODEL="html",
        )
        try:
            yield app, Store(f"sqlite:///{folder / 'runs.db'}")
        finally:
            stop_app(app)


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(app[0].url + "/")
    expect(page.get_by_text("Recent runs")).to_be_visible()
    yield page
    assert not dialogs, f"model output ran as script: {dialogs}"
    context.close()


def race(page, app, model: str) -> None:
    """Point the sidebar at one fault's model, set the 1 s timeout, run, wait for the outcome:
    its two rows logged (the panels of the race before would already match any text)."""
    store = app[1]
    before = store.count()
    picker_field(page).fill(model)
    picker_field(page).press("Enter")
    settled(page)
    timeout = page.get_by_label("Timeout (s)", exact=True)
    if not timeout.is_visible():
        page.get_by_text("Parameters", exact=True).click()  # the expander holding it
    timeout.fill(f"{TIMEOUT_S:g}")
    timeout.press("Enter")
    settled(page)
    page.get_by_role("button", name="Run race").click()
    wait_until(lambda: store.count() >= before + 2, PAGE_TIMEOUT_MS / 1000, "the race's two rows")
    expect(page.get_by_text("What the user experienced")).to_be_visible()
    settled(page)


def test_html_is_text_and_never_runs(page, app):
    race(page, app, "html")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("<script>alert('x')</script>", exact=False).first).to_be_visible()
    assert main.locator("script, img[src=x], b:text-is('bold')").count() == 0
    assert set(app[1].recent(2)["status"]) == {"ok"}


def test_a_stall_keeps_the_streamed_words_and_says_why(page, app):
    race(page, app, "stall-mid-stream")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("Timed out mid-stream")).to_be_visible()
    # .first: while the page settles, the live outcome and its redraw may both be on it.
    expect(main.get_by_text("Timed out before the first byte").first).to_be_visible()
    expect(main.get_by_text("First words", exact=False).first).to_be_visible()
    expect(main.locator(".js-plotly-plot").first).to_be_visible()  # the timeline, drawn
    save_screenshot(page, ARTIFACTS / "fault-stall-mid-stream.png")
    rows = app[1].recent(2).set_index("mode")
    assert rows.loc["streaming", "output_text"] == "First words "
    assert list(rows["error_kind"]) == ["timeout", "timeout"]


def test_a_megabyte_answer_leaves_the_page_usable(page, app):
    race(page, app, "one-megabyte")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("980,004 more characters not shown").first).to_be_visible()
    # One per panel, once the page has settled: a loaded machine showed a third for a moment,
    # the streamed panel's live note not yet replaced by its final one.
    expect(main.get_by_text("more characters not shown")).to_have_count(2)
    # The page still answers: its text is bounded, and another race runs.
    assert len(main.inner_text()) < 200_000
    assert set(app[1].recent(2)["output_chars"]) == {len(BY_MODEL["one-megabyte"].script.text)}
    before = app[1].count()
    race(page, app, "html")
    assert app[1].count() == before + 2

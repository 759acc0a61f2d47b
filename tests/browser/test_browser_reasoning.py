"""A reasoning model's race in a real browser: the streamed panel's "Thinking…" block fills
with thoughts before the first answer word, then the answer comes below it (issue 13).

The app runs against a playback server streaming 50 thoughts (`reasoning` field) then 20
answer words, 40 ms apart; a MutationObserver inside the page stamps what it shows and when.
"""

from __future__ import annotations

import pytest

from lib.serving.playback import PlaybackServer, Script
from tests.support.browser_harness import (
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    RACE_TIMEOUT_MS,
    VIEWPORT,
    expect,
    save_screenshot,
    start_app,
    stop_app,
)

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

THINKER = Script.reasoning(0.2, 0.04, thoughts=50, words=20)

OBSERVER = """() => {
  const seen = window.__thinking = {lengths: [], thinkingAt: null, answerAt: null,
                                    lengthAtAnswer: null};
  const check = () => {
    const now = performance.now();
    const block = [...document.querySelectorAll('[data-testid="stExpander"]')]
      .find(e => /Thinking…|Thought for/.test(e.innerText));
    const thoughts = block ? (block.innerText.match(/thought\\d+/g) || []).length : 0;
    if (thoughts && seen.thinkingAt === null) seen.thinkingAt = now;
    if (thoughts && seen.lengths[seen.lengths.length - 1] !== thoughts) seen.lengths.push(thoughts);
    if (seen.answerAt === null && document.body.innerText.includes('Streaming shows the first')) {
      seen.answerAt = now; seen.lengthAtAnswer = thoughts;
    }
  };
  new MutationObserver(check).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def reasoning_app(tmp_path_factory):
    with PlaybackServer({"thinker": THINKER}) as server:
        app = start_app(tmp_path_factory.mktemp("app-reasoning"),
                        STREAMRACE_ENDPOINT="compatible", STREAMRACE_BASE_URL=server.base_url,
                        STREAMRACE_MODEL="thinker")
        try:
            yield app
        finally:
            stop_app(app)


def test_the_thinking_block_fills_before_the_answer(browser, reasoning_app):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(reasoning_app.url + "/")
        expect(page.get_by_role("button", name="Run race")).to_be_visible()
        page.evaluate(OBSERVER)
        page.get_by_role("button", name="Run race").click()

        page.wait_for_function("() => (window.__thinking.lengths.at(-1) || 0) >= 15",
                               timeout=RACE_TIMEOUT_MS)
        save_screenshot(page, ARTIFACTS / "race-thinking.png")
        page.wait_for_function("() => window.__thinking.answerAt !== null",
                               timeout=RACE_TIMEOUT_MS)
        expect(page.get_by_text("What the user experienced")).to_be_visible(timeout=RACE_TIMEOUT_MS)
        expect(page.get_by_text("First answer word, streaming")).to_be_visible()
        expect(page.get_by_text("Thought for").first).to_be_visible()
        seen = page.evaluate("() => window.__thinking")
        assert seen["thinkingAt"] < seen["answerAt"], seen
        # It filled as the thoughts arrived, in several steps, all 50 before the first word.
        assert len(seen["lengths"]) >= 4 and seen["lengths"] == sorted(seen["lengths"]), seen
        assert seen["lengthAtAnswer"] == 50, seen
        assert page.locator('[data-testid="stException"]').count() == 0
        save_screenshot(page, ARTIFACTS / "race-reasoning.png")
    finally:
        context.close()

"""The guardrails page in a real browser: what AppTest cannot see.

One run on a scripted stream (a playback server on 127.0.0.1, so the timeline is known), with
a planted violation, watched by a MutationObserver inside the page: the `none` panel shows
words while the `blocking` panel is still blank, the `sentence` panel holds text back, the
`after` panel strikes the violation out once the stream has ended; then the table and both
charts are drawn, nothing is a link, nothing failed. (The direct URL and the no-internet
checks of every page, this one included, are in test_browser.py through PAGES.)

Screenshots go to artifacts/; docs/guardrails.png is written when missing or when
STREAMRACE_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from lib.serving.playback import PlaybackServer, Script
from tests.support.browser_harness import (
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    ROOT,
    VIEWPORT,
    picker_field,
    save_screenshot,
    start_app,
    stop_app,
)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

DOCS_GUARDRAILS = ROOT / "docs" / "guardrails.png"
WORDS = ("Streaming shows the first words at once. For help, write to help@example.com today "
         "or see www.example.com. "
         "The rest of the answer keeps coming while you read it. Validation needs the whole "
         "text, so a guard must hold it back or take it back.").split(" ")
DEMO = Script(offsets=tuple(0.3 + 0.05 * i for i in range(len(WORDS))),
              texts=tuple((" " if i else "") + word for i, word in enumerate(WORDS)))
SLOW = Script.regular(ttft_s=0.1, gap_s=0.5, n=40)
"""20 s of stream: something to stop."""

LAB_OBSERVER = """() => {
  // Timestamps (performance.now) of what each strategy panel shows, taken on DOM mutations.
  const STATUS = /^\\s*(✅|⚡|⬜|🚨|⏹️|⚠️|🔒|⏳)/;
  const panels = () => {
    const found = {};
    for (const title of document.querySelectorAll('strong')) {
      const text = title.innerText.trim();
      if (text.startsWith('🛡️')) {
        found[text.replace('🛡️', '').trim().split(' ')[0]] =
          title.closest('[data-testid="stVerticalBlock"]');
      }
    }
    return found;
  };
  const answer = (panel) => [...panel.querySelectorAll(
      '[data-testid="stElementContainer"][data-stale="false"] [data-testid="stMarkdown"]')]
    .map(m => m.innerText.trim())
    .filter(t => t && !t.startsWith('🛡️') && !STATUS.test(t))
    .join('\\n');
  const lab = window.__lab = {
    noneAt: null, blockingBlankAtNone: null, blockingAt: null, heldAt: null, heldText: null,
    struckAt: null, struck: null,
  };
  const check = () => {
    const p = panels();
    if (!p.none || !p.blocking || !p.sentence || !p.after) return;
    const now = performance.now();
    if (lab.noneAt === null && /\\w/.test(answer(p.none))) {
      lab.noneAt = now;
      lab.blockingBlankAtNone = answer(p.blocking) === ''
        && p.blocking.innerText.includes('Blank screen');
    }
    if (lab.heldAt === null && p.sentence.innerText.includes('Held back')) {
      lab.heldAt = now;
      lab.heldText = p.sentence.innerText;
    }
    if (lab.struckAt === null && p.after.querySelector('del')) {
      lab.struckAt = now;
      lab.struck = [...p.after.querySelectorAll('del')]
        .map(d => d.innerText.replace(/\\u2060/g, ''));  // word joiners: see plain_markdown
    }
    if (lab.blockingAt === null && lab.noneAt !== null && /\\w/.test(answer(p.blocking))) {
      lab.blockingAt = now;
    }
  };
  new MutationObserver(check).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with PlaybackServer({"demo": DEMO, "slow": SLOW}) as server:
        app = start_app(tmp_path_factory.mktemp("app-guardrails"), STREAMRACE_ENDPOINT="compatible",
                        STREAMRACE_BASE_URL=server.base_url, STREAMRACE_MODEL="demo")
        yield app
        stop_app(app)


def test_guardrails_lab_in_the_browser(browser, app):
    expect = playwright_api.expect
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/guardrails")
        title = page.locator("h1").filter(has_text="Guardrails lab")
        expect(title).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        run = page.get_by_role("button", name="Run", exact=False).first
        expect(run).to_be_visible(timeout=PAGE_TIMEOUT_MS)

        page.get_by_text("Plant a violation").click()
        planted = page.get_by_label("Planted text")
        expect(planted).to_be_enabled(timeout=PAGE_TIMEOUT_MS)
        planted.fill("call me at 555-0100")
        planted.press("Enter")
        expect(planted).to_have_value("call me at 555-0100", timeout=PAGE_TIMEOUT_MS)

        page.evaluate(LAB_OBSERVER)
        page.get_by_role("button", name="▶️ Run").click()
        page.wait_for_function("() => window.__lab.heldAt !== null", timeout=PAGE_TIMEOUT_MS)
        save_screenshot(page, ARTIFACTS / "guardrails-midstream.png")
        page.wait_for_function(
            "() => window.__lab.blockingAt !== null && window.__lab.struckAt !== null",
            timeout=PAGE_TIMEOUT_MS,
        )
        lab = page.evaluate("() => window.__lab")

        assert lab["blockingBlankAtNone"], f"blocking showed text as soon as none did: {lab}"
        assert lab["noneAt"] < lab["blockingAt"], lab
        assert "Held back" in lab["heldText"], lab
        # The planted number and the e-mail are struck out in the after panel, as text.
        assert set(lab["struck"]) >= {"555-0100", "help@example.com"}, lab

        expect(page.get_by_text("The trade-off")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        charts = page.locator('[data-testid="stPlotlyChart"]')
        expect(charts).to_have_count(2, timeout=PAGE_TIMEOUT_MS)  # Plotly loads lazily
        for chart in (charts.nth(0), charts.nth(1)):  # the trade-off, the timelines: drawn
            expect(chart.locator(".main-svg").first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
            expect(chart.locator(".scatterlayer .trace")).to_have_count(5, timeout=PAGE_TIMEOUT_MS)
        expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0, timeout=PAGE_TIMEOUT_MS)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0, app.log()
        assert page.locator('[data-testid="stAlertContentWarning"]').count() == 0, app.log()
        # Addresses in model output are text: no mailto (or any other) link in the panels.
        main = page.locator('[data-testid="stMain"]')
        assert main.locator('a[href^="mailto:"]').count() == 0
        links = main.locator(
            '[data-testid="stMarkdownContainer"] a:not([href^="#"])'
        )  # not headings'
        assert links.count() == 0, links.evaluate_all("links => links.map(a => a.outerHTML)")

        screenshot = ARTIFACTS / "guardrails.png"
        save_screenshot(page, screenshot)
        if not DOCS_GUARDRAILS.exists() or os.environ.get("STREAMRACE_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(screenshot, DOCS_GUARDRAILS)
    finally:
        context.close()


def test_stop_cancels_the_run_and_logs_it(browser, app):
    """Stop interrupts the script mid-run: the generation is cancelled, and what each strategy
    had shown is logged as cancelled (the page's finally block, no Streamlit call in it)."""
    expect = playwright_api.expect
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/guardrails")
        model = picker_field(page)
        expect(model).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        model.fill("slow")
        model.press("Enter")
        expect(model).to_have_value("slow", timeout=PAGE_TIMEOUT_MS)
        page.evaluate(LAB_OBSERVER)
        page.get_by_role("button", name="▶️ Run").click()
        page.wait_for_function("() => window.__lab.noneAt !== null", timeout=PAGE_TIMEOUT_MS)
        page.get_by_role("button", name="⏹️ Stop").click()
        expect(page.get_by_text("Stopped: the generation was cancelled")).to_be_visible(
            timeout=PAGE_TIMEOUT_MS
        )
        assert page.locator('[data-testid="stException"]').count() == 0
        with sqlite3.connect(app.log_path.parent / "runs.db") as conn:
            rows = conn.execute("SELECT status, strategy FROM runs WHERE model = 'slow'").fetchall()
        assert sorted(rows) == sorted(
            ("cancelled", s) for s in ("none", "after", "sentence", "window", "blocking")
        )
    finally:
        context.close()

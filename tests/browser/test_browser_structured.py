"""The structured race in a real browser: against a scripted server streaming a known JSON
report token by token, the streamed panel shows the title whole within a frame of its closing
quote, long before the blocking panel shows anything; the blocking panel shows the whole report
at the end; the field chart is drawn. On the embedded model, the race ends with a schema-valid
report in both panels."""

from __future__ import annotations

import json
import re

import pytest

from lib.race import FRAME_S
from lib.serving.playback import REPORT, PlaybackServer, Script
from lib.structured.schemas import PROMPTS
from tests.support.browser_harness import (
    ARTIFACTS,
    RACE_TIMEOUT_MS,
    VIEWPORT,
    expect,
    save_screenshot,
    start_app,
    stop_app,
)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

WATCH = """() => {
  // When each lane first showed the title whole (no cursor), on the page's own clock.
  window.__seen = {};
  const title = %s;
  const check = () => {
    for (const mode of ['blocking', 'streaming']) {
      const lane = document.querySelector(`[class*="st-key-race_lane_${mode}_"]`);
      const h3 = lane && lane.querySelector('h3');
      if (h3 && h3.innerText.trim() === title && !(mode in window.__seen)) {
        window.__seen[mode] = performance.now();
        window.__seen[mode + '_other'] = document.querySelector(
          `[class*="st-key-race_lane_${mode === 'blocking' ? 'streaming' : 'blocking'}_"]`
        )?.innerText || '';
      }
    }
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true,
                                                       characterData: true});
}""" % json.dumps(REPORT["title"])


def run_structured_race(page, app_url: str) -> None:
    page.goto(app_url + "/")
    expect(page.get_by_role("button", name="Run race")).to_be_visible()
    expect(page.get_by_text("Recent runs")).to_be_visible()
    page.get_by_role("radio", name="Structured report").click()
    expect(page.get_by_label("Prompt")).to_have_value(PROMPTS["report"])  # the preset applied
    page.evaluate(WATCH)
    page.get_by_role("button", name="Run race").click()


@pytest.fixture(scope="module")
def report_server():
    # The known report, one token every 25 ms from 0.2 s: the title closes at 0.425 s, the
    # whole object at ~3 s.
    script = Script.tokens(json.dumps(REPORT), ttft_s=0.2, gap_s=0.025)
    with PlaybackServer({"report": script}) as server:
        yield server


def test_the_streamed_report_fills_in_field_by_field(browser, report_server, tmp_path):
    app = start_app(tmp_path / "app", STREAMRACE_ENDPOINT="compatible",
                    STREAMRACE_BASE_URL=report_server.base_url, STREAMRACE_MODEL="report")
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        run_structured_race(page, app.url)
        streamed = page.locator('[class*="st-key-race_lane_streaming_"]')
        expect(streamed.locator("h3", has_text=REPORT["title"]), RACE_TIMEOUT_MS).to_be_visible()
        expect(page.get_by_text("Field by field"), RACE_TIMEOUT_MS).to_be_visible()
        seen = page.evaluate("() => window.__seen")
        # The streamed title came whole while the blocking panel had no report yet …
        assert REPORT["summary"] not in seen["streaming_other"]
        assert seen["blocking"] - seen["streaming"] > 1.5  # the object takes ~2.6 s more
        # … and the blocking panel shows the whole report at the end.
        blocking = page.locator('[class*="st-key-race_lane_blocking_"]')
        text = blocking.inner_text()
        for piece in (REPORT["title"], REPORT["summary"], REPORT["sections"][0]["heading"],
                      REPORT["sections"][1]["body"], *REPORT["risks"]):
            assert piece.replace(" ", "") in text.replace(" ", "").replace("\u2060", ""), piece
        # Each field is drawn whole within a frame of its closing character (measured by the
        # page's renderer against the chunk's arrival).
        caption = page.get_by_text("Each field drawn whole at most").inner_text()
        lag_ms = float(re.search(r"at most ([\d.]+) ms", caption).group(1))
        # One frame on a quiet machine; a second suite on the same 2 cores made it 83 ms. The
        # regression this pins, fields drawn only when the object closes, costs ~2.6 s here.
        assert lag_ms <= FRAME_S * 1000 * 3, caption
        expect(page.locator(".js-plotly-plot").filter(has_text="first character")).to_be_visible()
        save_screenshot(page, ARTIFACTS / "structured-race.png")
    finally:
        context.close()
        stop_app(app)


@pytest.mark.embedded
def test_on_the_embedded_model_the_report_is_schema_valid(browser, tmp_path):
    """The default configuration: Gemma 3 270M under llama-server's grammar (strict mode)."""
    from lib.storage.store import Store
    from lib.structured.schemas import Report

    folder = tmp_path / "app"
    app = start_app(folder)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(app.url + "/")
        expect(page.get_by_role("button", name="Run race")).to_be_visible()
        page.get_by_role("radio", name="Structured report").click()
        expect(page.get_by_label("Prompt")).to_have_value(PROMPTS["report"])
        page.get_by_role("button", name="Run race").click()
        expect(page.get_by_text("Field by field"), RACE_TIMEOUT_MS).to_be_visible()
        save_screenshot(page, ARTIFACTS / "structured-race-embedded.png")
        rows = Store(f"sqlite:///{folder / 'runs.db'}").recent(2)
        assert set(rows["status"]) == {"ok"}, rows[["mode", "status", "error"]].to_dict("records")
        assert rows["object_valid"].all() and set(rows["format_mode"]) == {"strict"}
        for mode, text in zip(rows["mode"], rows["output_text"]):
            report = Report.model_validate_json(text)  # schema-valid, whole
            lane = page.locator(f'[class*="st-key-race_lane_{mode}_"]')
            shown = lane.inner_text().replace("\u2060", "")
            assert report.title.strip()[:12] in shown and report.summary.strip()[:12] in shown
    finally:
        context.close()
        stop_app(app)

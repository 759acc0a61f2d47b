"""Lanes in real Chromium (issue 15's Done-when): two scripted servers of different known speeds,
the second configured as a named endpoint; three lanes (the quick server blocking and streamed,
the slow one streamed) race on the page, and three columns fill at their own pace.

What the page painted is recorded in the browser (a MutationObserver on each lane's text,
keyed `race_lane_<index>_<race_id>`), so the test sees the columns as a user does: the quick
stream first and word by word, the blocking answer at once and whole, the slow stream later
and word by word, ending last. The run log then holds three rows of one race with their labels.
"""

from __future__ import annotations

import sqlite3

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

QUICK = Script.regular(ttft_s=0.1, gap_s=0.05, n=20)  # words 0.10 → 1.05 s, blocking at 1.05 s
SLOW = Script.regular(ttft_s=1.5, gap_s=0.06, n=20)   # words 1.50 → 2.64 s

RECORD = """() => {
  window.__lanes = [];
  const PREFIX = 'st-key-race_lane_';
  new MutationObserver(() => {
    const t = performance.now();
    for (const el of document.querySelectorAll('[class*="' + PREFIX + '"]')) {
      const cls = [...el.classList].find((c) => c.startsWith(PREFIX));
      window.__lanes.push([t, cls.slice(PREFIX.length), el.textContent.trim().length]);
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


@pytest.fixture(scope="module")
def lanes_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-lanes")
    with PlaybackServer({"quick": QUICK}) as a, PlaybackServer({"slow": SLOW}) as b:
        app = start_app(folder, STREAMRACE_ENDPOINT="compatible", STREAMRACE_BASE_URL=a.base_url,
                        STREAMRACE_MODEL="quick", STREAMRACE_ENDPOINT_SLOWBOX_BASE_URL=b.base_url,
                        STREAMRACE_ENDPOINT_SLOWBOX_MODEL="slow")
        try:
            yield app, folder / "runs.db"
        finally:
            stop_app(app)


def idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def paint_history(records: list, race_id: str) -> dict[int, list[tuple[float, int]]]:
    """Per lane index: (moment in ms, characters shown) each time its length changed."""
    lanes: dict[int, list[tuple[float, int]]] = {}
    for t, key, length in records:
        lane, _, race = key.partition("_")
        if race != race_id:
            continue
        history = lanes.setdefault(int(lane), [])
        if not history or history[-1][1] != length:
            history.append((t, length))
    return lanes


def test_three_lanes_fill_their_columns_at_their_own_pace(browser, lanes_app):
    app, database = lanes_app
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/")
        expect(page.get_by_text("Endpoints for lanes")).to_be_visible()
        idle(page)
        page.get_by_text("Lanes: endpoints and models side by side").click()
        page.get_by_text("Race lanes: endpoints, models and modes side by side").click()
        expect(page.get_by_text("Lane 3: endpoint")).to_be_visible()
        idle(page)  # the page's script has finished: the click is not lost in a rerun
        page.evaluate(RECORD)
        page.locator(".st-key-race_run button").click()
        expect(page.get_by_text("What each lane's user experienced"), RACE_TIMEOUT_MS
               ).to_be_visible()
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")

        with sqlite3.connect(database) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY lane_index")]
        assert [r["lane_label"] for r in rows] == [
            "compatible · quick · blocking", "compatible · quick · streaming",
            "slowbox · slow · streaming"]
        assert {r["status"] for r in rows} == {"ok"} and len({r["race_id"] for r in rows}) == 1
        race_id = rows[0]["race_id"]
        # One barrier released the three lanes: t_run − t_start (queue_s) shows each thread's.
        # One race, so a bound a second suite cannot break (1.26 and 34 ms seen); lanes run one
        # after another would be a call apart (≥ 0.21 s here). Issue 15's 1 ms goal is pinned
        # best-of-N in tests/integration/test_lanes.py.
        spread = max(r["queue_s"] for r in rows) - min(r["queue_s"] for r in rows)
        assert spread <= 0.1, spread

        lanes = paint_history(page.evaluate("() => window.__lanes"), race_id)
        assert set(lanes) == {0, 1, 2}

        def first_ms(lane: int) -> float:
            return next(t for t, length in lanes[lane] if length > 0)

        def lengths(lane: int) -> list[int]:
            return [length for _, length in lanes[lane] if length > 0]

        # The quick stream painted first, word by word; the blocking answer at once and whole,
        # after it (1.05 s); the slow stream last to start (1.5 s) and to end, 1.59 s after the
        # quick one by their scripts (a loaded machine paints the quick one's end late: 0.79 s
        # apart once, a fresh install and a second suite beside; lanes painted together at the
        # end would be ~0 apart, so a quarter of the scripted gap).
        # (At load 40 the browser painted the blocking answer and the slow stream's first
        # words, then 0.33 s apart by their scripts, in one frame: never in the wrong order.)
        assert first_ms(1) < first_ms(0) <= first_ms(2)
        assert len(lengths(0)) == 1
        assert len(lengths(1)) >= 3 and len(lengths(2)) >= 3  # 20 words in ~1 s: many frames
        assert lengths(1)[-1] == lengths(0)[0] == lengths(2)[-1]  # the same scripted words
        assert lanes[2][-1][0] - lanes[1][-1][0] >= 400, lanes

        # The browser's clock reports every lane's paint moments into its row.
        expect(page.get_by_text("after your click").nth(2)).to_be_visible()
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
        with sqlite3.connect(database) as conn:
            screen = conn.execute("SELECT lane_index, screen_first_s, screen_done_s FROM runs "
                                  "ORDER BY lane_index").fetchall()
        assert all(first is not None and done >= first for _, first, done in screen), screen
        assert screen[1][1] < screen[0][1] <= screen[2][1]
        expect(page.get_by_text("showed words").first).to_be_visible()
        expect(page.get_by_text("#1 ⚡ compatible · quick · streaming")).to_be_visible()
        expect(page.get_by_text("Lanes released within").first).to_be_visible()
        save_screenshot(page, ARTIFACTS / "race-lanes.png")
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        context.close()

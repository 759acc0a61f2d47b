"""The clock starts at the click (issue 17): in real Chromium, on a fresh app process, the first
race, and the best of the next four, show words soon after (click + scripted first word + the
request's client time), the page shows the browser's figure beside the server's, and the rows
hold it.

The app runs against a playback server whose first word comes 0.3 s after the request, then one
every 30 ms. The browser's figures are the app's own (app_pages/screen_clock.py); the requests'
arrival is the playback server's perf_counter, the click mapped onto it by a round trip. Bounds
are generous for a shared 2-core machine (bench/click_to_words.py measures ~40 ms where these
allow 250 ms); before this issue the first race lost ~0.8 s to the app's own delay.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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

FIRST_WORD_S = 0.3
PACED = Script.regular(FIRST_WORD_S, 0.03, 20)
APP_DELAY_BOUND_S = 0.25
"""Click → first words painted, beyond the scripted first word and the request's client time
(the best of races two to five; issue 17's goal is 100 ms, bench/click_to_words.py measures
it: +42 ms quiet)."""
FIRST_RACE_BOUND_S = 0.75
"""The same for a fresh app's first race. The regression it names, the warm-up on the first
click, cost +0.8 s on a quiet machine and more under load; a second suite on the same 2 cores
made a first race +0.58 s without it (+58 ms quiet)."""
CLICK_TO_REQUEST_BOUND_S = 0.2
"""Click → the server has both requests, the best of races two to five (about 50 ms beside a
second suite)."""
FIRST_CLICK_TO_REQUEST_BOUND_S = 0.5
"""The same for the first race: a second suite made it 0.25 s; the warm-up on the first click
that FIRST_RACE_BOUND_S names would add 0.8 s here too."""
REPORTED = "() => Object.keys((window.__streamraceClock || {reported: {}}).reported)"


@contextmanager
def app_playing(folder: Path, model: str, script: Script) -> Iterator[tuple]:
    """An app on a playback server with one model: (app, server, its run log's path)."""
    with PlaybackServer({model: script}) as server:
        app = start_app(folder, STREAMRACE_ENDPOINT="compatible",
                        STREAMRACE_BASE_URL=server.base_url, STREAMRACE_MODEL=model)
        try:
            yield app, server, folder / "runs.db"
        finally:
            stop_app(app)


@pytest.fixture(scope="module")
def clock_app(tmp_path_factory):
    with app_playing(tmp_path_factory.mktemp("app-clock"), "paced", PACED) as started:
        yield started


def browser_to_perf(page) -> float:
    """Offset from the page's performance.now()/1000 to this process's perf_counter."""
    best = None
    for _ in range(5):
        before = time.perf_counter()
        now_ms = page.evaluate("performance.now()")
        after = time.perf_counter()
        if best is None or after - before < best[0]:
            best = (after - before, (before + after) / 2 - now_ms / 1000)
    assert best is not None
    return best[1]


def rows_of(database, race_id: str) -> dict[str, dict]:
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        return {row["mode"]: dict(row)
                for row in conn.execute("SELECT * FROM runs WHERE race_id = ?", (race_id,))}


def test_the_first_race_and_the_next_four_show_words_soon_after_the_click(browser, clock_app):
    app, server, database = clock_app
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/")
        run = page.locator(".st-key-race_run button")
        expect(run).to_be_visible()
        page.wait_for_function("() => !!window.__streamraceClock")
        time.sleep(1.0)  # a person reads the page before clicking
        figures = []
        for _ in range(5):
            before = set(page.evaluate(REPORTED))
            received_before = len(server.received)
            offset = browser_to_perf(page)
            run.click()
            page.wait_for_function(f"() => ({REPORTED})().length > {len(before)}",
                                   timeout=RACE_TIMEOUT_MS)
            race_id = next(r for r in page.evaluate(REPORTED) if r not in before)
            click_ms = page.evaluate(
                f"() => window.__streamraceClock.lanes['streaming_{race_id}'].click")
            expect(page.get_by_text("after your click").first).to_be_visible()
            page.wait_for_function(
                "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
            rows = rows_of(database, race_id)
            assert set(rows) == {"blocking", "streaming"}
            stream, block = rows["streaming"], rows["blocking"]
            # Every lane holds both browser figures, in order, and none is faked.
            for row in (stream, block):
                assert row["screen_first_s"] is not None and row["screen_done_s"] is not None
                assert row["screen_first_s"] <= row["screen_done_s"]
            # Nothing can be painted before the model sent it.
            assert stream["screen_first_s"] >= FIRST_WORD_S
            # The blocking answer exists once its last word is sent. (Not ">= the streamed
            # lane's first paint": a starved browser painted both in one frame, stamped 0.1 ms
            # apart in the other order.)
            assert block["screen_first_s"] >= FIRST_WORD_S + 19 * 0.03
            assert stream["screen_done_s"] >= FIRST_WORD_S + 19 * 0.03
            received = [r.t_received for r in server.received[received_before:]]
            assert len(received) == 2
            figures.append({
                "click_to_request_s": max(received) - (click_ms / 1000 + offset),
                "app_delay_s": stream["screen_first_s"] - FIRST_WORD_S - stream["client_s"],
            })
        save_screenshot(page, ARTIFACTS / "race-two-clocks.png")
        # The first race alone (its regression is a first-race cost); the others by their
        # best: a regression slows them all, a loaded machine only some (seen: 0.43 s once).
        first, warm = figures[0], figures[1:]
        assert 0 <= first["click_to_request_s"] <= FIRST_CLICK_TO_REQUEST_BOUND_S, figures
        assert first["app_delay_s"] <= FIRST_RACE_BOUND_S, figures
        assert all(race["click_to_request_s"] >= 0 for race in warm), figures
        assert min(race["click_to_request_s"] for race in warm) <= CLICK_TO_REQUEST_BOUND_S, \
            figures
        assert min(race["app_delay_s"] for race in warm) <= APP_DELAY_BOUND_S, figures
        # The page says which clock each figure comes from.
        expect(page.get_by_text("Server clock").first).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        context.close()


LATE = Script.regular(0.3, 0.03, 10)
"""Sent once the test lets the server answer (`answering`), after the held clock has loaded."""


@pytest.fixture(scope="module")
def late_app(tmp_path_factory):
    with app_playing(tmp_path_factory.mktemp("app-clock-late"), "late", LATE) as started:
        yield started


def test_a_click_before_the_clock_has_loaded_is_still_timed(browser, late_app):
    """A fresh page's clock (a component, loaded after the Run button) can arrive after a
    quick first click; it then takes that click from the browser's first-input record (its
    press). Pinned by holding the component's code until the click is made, and the model's
    answers until the clock has loaded (else a slow load finds the lanes drawn: unmeasured)."""
    app, server, database = late_app
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    held = []
    server.answering.clear()
    try:
        page = context.new_page()
        page.route("**/static/js/BidiComponent.*.js", lambda route: held.append(route))
        page.goto(app.url + "/")
        run = page.locator(".st-key-race_run button")
        expect(run).to_be_visible()
        run.click()
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        while not held and time.monotonic() < deadline:  # route handlers run while Playwright waits
            page.wait_for_timeout(50)
        assert len(held) == 1, "the page never asked for the component's code"
        assert page.evaluate("() => window.__streamraceClock === undefined")
        held[0].continue_()
        page.wait_for_function("() => !!window.__streamraceClock")
        clock = page.evaluate("""() => ({
            click: window.__streamraceClock.click,
            firstInput: performance.getEntriesByType('first-input').map(
                (e) => [e.name, e.startTime, e.target && e.target.outerHTML.slice(0, 120)]),
        })""")
        assert clock["click"] is not None, clock
        server.answering.set()
        page.wait_for_function(f"() => ({REPORTED})().length === 1", timeout=RACE_TIMEOUT_MS)
        [race_id] = page.evaluate(REPORTED)
        expect(page.get_by_text("after your click").first).to_be_visible()
        rows = rows_of(database, race_id)
        assert set(rows) == {"blocking", "streaming"}
        for row in rows.values():
            assert row["screen_first_s"] is not None, row
            assert row["screen_first_s"] <= row["screen_done_s"]
        assert rows["streaming"]["screen_first_s"] >= LATE.offsets[0]
        assert rows["blocking"]["screen_first_s"] >= LATE.offsets[-1]
    finally:
        server.answering.set()
        context.close()

"""The Replay page in a real browser: pick a logged race in the table, save it as a recording,
export it, refuse a bad file, then "Use in race" and race the recording on the race page.

The app runs as a subprocess (tests/support/browser_harness.py) on a run log seeded with one
live race
against a playback server; the race page then replays through the app's own replay server.
Direct-URL and no-internet checks of this page are in test_browser.py (PAGES).
"""

from __future__ import annotations

import json

import pytest
from conftest import endpoint_for

from lib.core.trace import Params
from lib.race import run_headless
from lib.replay import Recordings, loads
from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store
from tests.support.browser_harness import (
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    VIEWPORT,
    expect,
    save_screenshot,
    settled,
    start_app,
    stop_app,
)

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

LIVE = Script.regular(ttft_s=0.1, gap_s=0.02, n=40)
NAME = "browser-demo"



@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory, warmed):
    """The app on a run log holding one live race (both rows) of the LIVE script."""
    folder = tmp_path_factory.mktemp("app-replay")
    with PlaybackServer({"live": LIVE}) as server:
        store = Store(f"sqlite:///{folder / 'runs.db'}")
        blocking, streaming = run_headless(endpoint_for(server.base_url, "live"),
                                           "A race to replay in the meeting room", Params(), store)
        assert blocking.status == streaming.status == "ok"
        app = start_app(folder, STREAMRACE_ENDPOINT="compatible",
                        STREAMRACE_BASE_URL=server.base_url, STREAMRACE_MODEL="live")
        try:
            yield app, store
        finally:
            stop_app(app)
            store.engine.dispose()


def test_record_export_and_race_a_recording(browser, seeded_app, tmp_path):
    app, store = seeded_app
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/replay")
        expect(page.get_by_role("button", name="Use in race")).to_be_visible()

        # The runs table is a canvas: its header checkbox selects every row (the race's two).
        runs = page.locator('[data-testid="stDataFrame"]').first
        expect(runs).to_be_visible()
        runs.click(position={"x": 18, "y": 18})
        save = page.get_by_role("button", name="Save recording")
        expect(save).to_be_enabled()
        page.get_by_label("Recording name").fill(NAME)
        page.get_by_label("Recording name").press("Enter")
        save.click()
        expect(page.get_by_text(f"Saved '{NAME}': 40 chunks.")).to_be_visible()
        saved = Recordings(store)[NAME]
        assert len(saved.source_run_ids) == 2 and saved.blocking_at_s is not None
        expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
        save_screenshot(page, ARTIFACTS / "replay.png")
        settled(page)

        # Export: the downloaded file is the saved recording.
        with page.expect_download() as download:
            page.get_by_role("button", name="Export JSON").click()
        path = tmp_path / "export.json"
        download.value.save_as(path)
        assert loads(path.read_bytes()) == saved
        settled(page)

        # A file cut short is refused with words, and nothing is lost.
        cut = tmp_path / "cut.json"
        cut.write_text(path.read_text()[:200])
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(cut))
        expect(page.get_by_text("cut.json: Not a usable recording: the file is not valid JSON, "
                                "or it is cut short", exact=False)).to_be_visible()
        assert list(Recordings(store)) == [NAME]

        # Use in race: the race page, its sidebar on the replay endpoint, then a real race.
        settled(page)
        page.get_by_role("button", name="Use in race").click()
        expect(page.get_by_role("button", name="Run race")).to_be_visible()
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_role("combobox", name="Endpoint")).to_have_value(
            "🎞️ Replay a recording")
        expect(sidebar.get_by_role("combobox", name="Recording")).to_have_value(
            f"'{NAME}' as recorded")
        settled(page)
        # The kept prompt reaches the new page's box (app_pages/kept.py); under load it came a
        # moment after the script had settled, so wait for it rather than read it once.
        expect(page.get_by_label("Prompt")).not_to_have_value("")
        prompt = page.get_by_label("Prompt").input_value()
        assert prompt.strip()
        page.get_by_role("button", name="Run race").click()
        expect(page.get_by_text("What the user experienced")).to_be_visible()
        note = page.get_by_text(f"replayed from the recording '{NAME}'", exact=False)
        expect(note).to_be_visible()
        expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
        expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0)
        assert page.locator('[data-testid="stException"]').count() == 0
        save_screenshot(page, ARTIFACTS / "replay-race.png")

        rows = store.recent(10, sources=["replay"])
        assert len(rows) == 2 and set(rows["status"]) == {"ok"}, rows[["status", "error"]]
        assert {json.loads(t)["recording"] for t in rows["transform"]} == {NAME}
        assert set(rows["output_text"]) == {LIVE.text} and set(rows["prompt"]) == {prompt}
    except Exception:
        save_screenshot(page, ARTIFACTS / "replay-failure.png")
        raise
    finally:
        context.close()

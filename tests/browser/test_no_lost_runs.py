"""No run is lost: in real Chromium, on a freshly started app each time, every request that
reaches the server is finished or cancelled, and logged.

Each scenario gets a fresh app process (the first race of a process is the one that used to
be lost) on a real playback server, and its own model name, so the server's record of
requests is the scenario's own. Then, with values:

- every request the server received is a row (two a race), within the time the run log
  needs to settle; a race a re-click cancelled before its requests left (or before the
  server read them whole) is logged too, `cancelled`;
- every row is `ok` or `cancelled`, and a cancelled stream keeps what it had received;
- Stop, a page switch or a closed tab leaves exactly two `cancelled` rows; of six clicks,
  every race but the last is cancelled (both rows), the last ends `ok`;
- no request is still open on the server 5 s later;
- no exception on screen.

The last scenario races the embedded model while it is still starting: its requests are
counted from llama-server's own log (two warm-up requests excepted) and its slots must all be
idle afterwards.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store
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

STEADY = Script.regular(ttft_s=0.1, gap_s=0.05, n=60)  # 3.05 s: every action lands mid-race
SCENARIOS = ("reclicks", "stop", "page-switch", "close-tab")
SETTLE_S = 30.0


@pytest.fixture(scope="module")
def server():
    with PlaybackServer({name: STEADY for name in SCENARIOS}) as playback:
        yield playback


def requests_for(server: PlaybackServer, model: str) -> int:
    return sum(1 for r in list(server.received) if r.body.get("model") == model)


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)  # polling a database and a server: nothing else to wait on
    return True


def run_button(page):
    return page.get_by_role("button", name="Run race")


def act(scenario: str, page, sent) -> None:
    """What a hurried user does, in the browser. Stop, a page switch, a closed tab or the
    first re-click comes once the server has both requests (`sent()`), so it lands mid-race
    however loaded the machine is (a fixed 0.2 s could come before the app had sent anything;
    six clicks 150 ms apart once all came before any race had started: one race, nothing to
    check)."""
    if scenario == "reclicks":  # the first race is under way, then five hurried clicks
        run_button(page).click()
        assert wait_until(lambda: sent() >= 2, SETTLE_S), f"{sent()} requests after Run"
        for _ in range(5):
            run_button(page).click()
            page.wait_for_timeout(150)
        return
    run_button(page).click()
    assert wait_until(lambda: sent() >= 2, SETTLE_S), f"{sent()} requests after Run"
    if scenario == "stop":
        page.get_by_role("button", name="Stop").click()
    elif scenario == "page-switch":
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text="History").click()
    elif scenario == "close-tab":
        page.close()


def check_rows(store: Store, received: int):
    # Not always whole races: six quick clicks can cancel a race after one request left and
    # before the other did (seen: 11 requests); both of its rows are logged all the same.
    assert received >= 1, "nothing reached the server: the scenario tested nothing"
    settled = wait_until(lambda: len(sent_rows(store.recent(1000))) >= received, SETTLE_S)
    rows = store.recent(1000)
    # Every request the server read has its row. A re-click can cancel a request whose bytes
    # had started to leave (t0) before the server read it whole: logged, not received.
    assert settled and received <= len(sent_rows(rows)), (
        f"the server received {received} requests, the run log holds {len(sent_rows(rows))} "
        "rows of sent requests")
    assert rows.groupby("race_id").size().eq(2).all(), "a race without both of its rows"
    assert set(rows["status"]) <= {"ok", "cancelled"}, rows[["mode", "status", "error"]]
    unsent = rows[rows["client_s"].isna()]  # a re-click cancelled it before it left: logged
    assert (unsent["status"] == "cancelled").all(), unsent[["mode", "status", "error"]]
    started = rows[(rows["mode"] == "streaming") & rows["ttft_s"].notna()]
    assert (started["output_chars"] > 0).all(), "a cancelled stream keeps what it received"
    return rows


def sent_rows(rows):
    """Rows of requests that left (t0 taken, so client_s is set)."""
    return rows[rows["client_s"].notna()]


def check_cancelled(scenario: str, rows) -> None:
    """README: Stop, a second click on Run, switching page or closing the tab cancels both
    requests and logs them as `cancelled`. Every action lands 0.2 s into a 3 s race."""
    races = [group for _, group in rows.sort_values("created_at").groupby("race_id", sort=False)]
    assert all(sorted(race["mode"]) == ["blocking", "streaming"] for race in races)
    if scenario == "reclicks":  # each click cancels the race before it; the last one ends
        assert len(races) >= 2, f"{len(races)} race for six clicks"
        ends = [sorted(race["status"]) for race in races]
        assert ends[:-1] == [["cancelled", "cancelled"]] * (len(races) - 1), ends
        assert ends[-1] == ["ok", "ok"], ends
    else:  # one race, both requests received (act waited for them), both cancelled
        assert len(races) == 1 and sorted(rows["status"]) == ["cancelled", "cancelled"], (
            rows[["mode", "status", "error"]])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_run_is_lost(scenario, server, browser, tmp_path):
    app = start_app(tmp_path / "app", STREAMRACE_ENDPOINT="compatible",
                    STREAMRACE_BASE_URL=server.base_url, STREAMRACE_MODEL=scenario)
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/")
        expect(run_button(page)).to_be_visible()
        page.get_by_role("radio", name="One-line answer").click()
        act(scenario, page, lambda: requests_for(server, scenario))
        if not page.is_closed():
            expect(page.locator('[data-testid="stApp"]'), RACE_TIMEOUT_MS).to_have_attribute(
                "data-test-script-state", "notRunning")
            save_screenshot(page, ARTIFACTS / f"no-lost-runs-{scenario}.png")
            assert page.locator('[data-testid="stException"]').count() == 0, app.log()
        store = Store(f"sqlite:///{tmp_path / 'app' / 'runs.db'}")
        check_cancelled(scenario, check_rows(store, requests_for(server, scenario)))
        if scenario != "reclicks":
            assert requests_for(server, scenario) == 2
        assert wait_until(lambda: server.open_connections == 0, 5.0), \
            f"{server.open_connections} requests still open on the server 5 s later"
        assert "Traceback" not in app.log()
    finally:
        context.close()
        stop_app(app)


@pytest.mark.embedded
def test_no_run_is_lost_while_the_embedded_model_starts(browser, tmp_path):
    app = start_app(tmp_path / "app", STREAMRACE_ENDPOINT="local")
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(app.url + "/")
        run_button(page).click()  # as soon as it shows: the model is still starting
        page.wait_for_timeout(300)
        run_button(page).click()
        # The second race's outcome, then an idle page: "not running" alone can be seen
        # before the click's run has begun (on a loaded machine the log was read while the
        # model was still starting, and nothing had been sent yet).
        expect(page.get_by_text("What the user experienced"), RACE_TIMEOUT_MS).to_be_visible()
        expect(page.locator('[data-testid="stApp"]'), RACE_TIMEOUT_MS).to_have_attribute(
            "data-test-script-state", "notRunning")
        assert page.locator('[data-testid="stException"]').count() == 0, app.log()
        save_screenshot(page, ARTIFACTS / "no-lost-runs-embedded-start.png")
        (log,) = (tmp_path / "app" / "data").rglob("llama-server-*.log")
        received = len(re.findall(r"launch_slot_", log.read_text())) - 2  # the warm-ups
        # What the page said, should nothing have reached the server (seen once, two suites
        # at once on 2 cores: the model's start and both warm-ups missing from its log).
        said = page.locator('[data-testid="stAlert"]').all_inner_texts()
        assert received >= 1, (f"nothing reached the server; the page said {said}; "
                               f"llama-server's log ends: {log.read_text()[-600:]}")
        check_rows(Store(f"sqlite:///{tmp_path / 'app' / 'runs.db'}"), received)
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text()).group(1)

        def idle() -> bool:
            slots = httpx.get(f"http://127.0.0.1:{port}/slots", timeout=5).json()
            return not any(slot.get("is_processing") for slot in slots)

        assert wait_until(idle, 5.0), "a request still runs on llama-server 5 s later"
    finally:
        context.close()
        stop_app(app)


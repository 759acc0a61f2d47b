"""The benchmark page in a real browser: a run to its summary and charts, Stop mid-run, and a
bad prompt file, against a playback server on 127.0.0.1 (never the embedded model).

`streamlit run streamlit_app.py` runs as a subprocess (tests/support/browser_harness.py) with the
compatible endpoint pointed at the playback server; Debian's chromium is driven by
Playwright. Screenshots go to artifacts/.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lib.serving.playback import PlaybackServer, Script
from tests.support.browser_harness import (
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    VIEWPORT,
    expect,
    picker_field,
    save_screenshot,
    start_app,
    stop_app,
)

pytest.importorskip("playwright.sync_api")


pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def server():
    scripts = {"quick": Script.regular(ttft_s=0.03, gap_s=0.01, n=8),
               "slow": Script.regular(ttft_s=0.05, gap_s=1.0, n=20)}
    with PlaybackServer(scripts) as server:
        yield server


@pytest.fixture(scope="module")
def app(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-bench")
    app = start_app(folder, STREAMRACE_ENDPOINT="compatible", STREAMRACE_BASE_URL=server.base_url,
                    STREAMRACE_MODEL="quick")
    app.db = folder / "runs.db"
    yield app
    stop_app(app)


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(app.url + "/benchmark")
    expect(page.get_by_text("Compare with an earlier benchmark")).to_be_visible()
    yield page
    context.close()


def rows(app, where: str = "1=1") -> list[dict]:
    with sqlite3.connect(app.db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM runs WHERE {where}")]


def fill(page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Tab")


def no_errors_on(page, app) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, app.log()
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, app.log()


def test_a_benchmark_runs_to_its_summary_and_charts(page, app, server):
    before = len(server.received)
    fill(page, "Requests", "16")
    fill(page, "Warm-up requests", "2")
    page.get_by_role("button", name="Run benchmark").click()

    expect(page.get_by_text("Summary", exact=True), RUN_TIMEOUT_MS).to_be_visible()
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts).to_have_count(2)  # percentile bars; blank screen and TTFT over the run
    for chart in charts.all():
        expect(chart.locator(".main-svg").first).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    expect(page.get_by_role("button", name="Results CSV")).to_be_visible()
    no_errors_on(page, app)
    save_screenshot(page, ARTIFACTS / "benchmark.png")

    assert len(server.received) - before == 18
    logged = rows(app, "source = 'benchmark'")
    assert len(logged) == 18 and len({r["bench_id"] for r in logged}) == 1
    assert sorted(r["bench_phase"] for r in logged) == ["measured"] * 16 + ["warmup"] * 2


def test_stop_cancels_the_benchmark_and_logs_what_was_sent(page, app, server):
    model = picker_field(page)
    model.fill("slow")
    model.press("Enter")
    expect(model).to_have_value("slow")
    fill(page, "Requests", "12")
    fill(page, "Max in flight", "3")
    fill(page, "Warm-up requests", "0")
    page.get_by_role("button", name="Run benchmark").click()

    # Running: the progress line shows 3 in flight and the running p50 cards.
    expect(page.get_by_text("3 in flight").first, RUN_TIMEOUT_MS).to_be_visible()
    expect(page.get_by_text("p50 TTFT").first, RUN_TIMEOUT_MS).to_be_visible()
    save_screenshot(page, ARTIFACTS / "benchmark-running.png")
    page.get_by_role("button", name="Stop").click()

    expect(page.get_by_text("Stopped by you."), RUN_TIMEOUT_MS).to_be_visible()
    expect(page.get_by_text("Summary", exact=True)).to_be_visible()
    # Nothing had completed: counts only, and a word instead of empty charts.
    expect(page.get_by_text("No request completed")).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(1)
    expect(page.get_by_role("button", name="Results CSV")).to_be_visible()
    no_errors_on(page, app)
    save_screenshot(page, ARTIFACTS / "benchmark-stopped.png")

    sent = [r for r in server.received if r.body.get("model") == "slow"]
    logged = rows(app, "model = 'slow'")
    assert len(sent) == 3, "only the 3 in flight were sent"  # 20 s each: none had finished
    assert len(logged) == 3 and {r["status"] for r in logged} == {"cancelled"}
    with sqlite3.connect(app.db) as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM benchmarks")]
    assert "stopped" in statuses


def test_a_bad_prompt_file_gets_a_message_and_sends_nothing(page, app, server, tmp_path):
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n')
    page.get_by_label("Prompts").click()
    page.get_by_role("option", name="My file").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bad))
    expect(page.get_by_text("prompts.jsonl")).to_be_visible()
    before = len(server.received)
    page.get_by_role("button", name="Run benchmark").click()

    expect(page.get_by_text("Line 2 of prompts.jsonl is not valid JSON"), RUN_TIMEOUT_MS
           ).to_be_visible()
    no_errors_on(page, app)
    assert len(server.received) == before


def ray_processes_of(pid: int) -> list[int]:
    """Processes whose environment names `pid` as their owner (lib.serving.process)."""
    marker = f"STREAMRACE_OWNER_PID={pid}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_ray_workers_run_the_benchmark_and_stop_reaches_every_one(browser, server,
                                                                   tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-bench-ray")
    app = start_app(folder, STREAMRACE_ENDPOINT="compatible", STREAMRACE_BASE_URL=server.base_url,
                    STREAMRACE_MODEL="slow")
    app.db = folder / "runs.db"
    app_pid = app.server.pid
    before = len(server.received)  # the module's server also saw the Stop test's "slow" calls
    try:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        page.goto(app.url + "/benchmark")
        expect(page.get_by_text("Compare with an earlier benchmark")).to_be_visible()
        fill(page, "Requests", "20")
        fill(page, "Max in flight", "4")
        fill(page, "Warm-up requests", "0")
        fill(page, "Ray workers", "2")
        page.get_by_role("button", name="Run benchmark").click()

        expect(page.get_by_text("4 in flight").first, RUN_TIMEOUT_MS).to_be_visible()
        expect(page.get_by_text("workers ready").first).to_be_visible()
        save_screenshot(page, ARTIFACTS / "benchmark-ray-running.png")
        page.get_by_role("button", name="Stop").click()

        expect(page.get_by_text("Stopped by you."), RUN_TIMEOUT_MS).to_be_visible()
        expect(page.get_by_text("2 Ray workers").first).to_be_visible()  # the summary's title
        no_errors_on(page, app)
        save_screenshot(page, ARTIFACTS / "benchmark-ray-stopped.png")
        context.close()
        sent = [r for r in server.received[before:] if r.body.get("model") == "slow"]
        logged = rows(app)
        assert len(sent) == 4 and len(logged) == 4
        assert {r["status"] for r in logged} == {"cancelled"}
        assert len({r["bench_id"] for r in logged}) == 1
        assert ray_processes_of(app_pid), "the app's local Ray should be running"
    finally:
        stop_app(app)
    left = ray_processes_of(app_pid)
    assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left] + [app.log()]

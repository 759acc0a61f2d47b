"""Pages open fast in a real browser (issue 17, item 5): each page's first useful content after
its direct link is opened, against a one-chart Streamlit page on the same machine.

    .venv/bin/python bench/page_open.py [--runs 6] [--visits 5] [--pages /history,/replay]

Fills a throwaway run log with `--runs` synthetic runs (bench/history_scale.py's races), starts
the app (`streamlit run`, headless) and, beside it, a one-chart page (one plotly figure, the
baseline). Each page is opened `--visits` times, each in a new browser context (a new session,
nothing cached: as a person following a link), in Debian's headless chromium, in rounds (the
baseline, then every page, then again), so that a change of the machine's load falls on all of
them alike; the time is from `goto` to the page's first useful content being visible:

    baseline             its plotly chart drawn
    / (race)             the Run race button
    /history             its first chart drawn
    /history (cards)     its summary cards (runs, p50 blank screens, the speed-up), drawn
                         before that chart
    /benchmark, /replay, /guardrails   their main control (tests/support PAGES texts)
(History draws its slower parts once the browser has painted the first ones:
app_pages/first_paint.py.)
Goal: every page within 1 s of the baseline (median of the visits). The last line holds the
figures: the baseline and the worst page's excess over it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.history_scale import fill  # noqa: E402
from lib.serving.process import ManagedProcess, free_port  # noqa: E402
from lib.storage.store import Store  # noqa: E402
from tests.support.browser_harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    start_app,
    stop_app,
)

BASELINE = '''import plotly.graph_objects as go
import streamlit as st

st.title("One chart")
st.plotly_chart(go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2])))
'''
CHART = '[data-testid="stPlotlyChart"] .main-svg'
PAGES = {
    "/": ".st-key-race_run button",
    "/history": '[data-testid="stVegaLiteChart"] svg',  # its first chart: Vega-Lite
    "/history (cards)": '[data-testid="stMetricValue"]',
    "/benchmark": "text=Compare with an earlier benchmark",
    "/replay": "text=Use in race",
    "/guardrails": "text=Plant a violation",
}


def open_time(browser, url: str, selector: str) -> float:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        began = time.perf_counter()
        page.goto(url)
        page.locator(selector).first.wait_for(state="visible", timeout=120_000)
        return time.perf_counter() - began
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--visits", type=int, default=5)
    parser.add_argument("--pages", default=",".join(PAGES),
                        help="comma-separated names of the pages to open (default: all)")
    args = parser.parse_args()
    pages = {path: PAGES[path] for path in args.pages.split(",")}
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="page-open-"))
    fill(Store(f"sqlite:///{folder / 'runs.db'}"), args.runs)
    (folder / "baseline.py").write_text(BASELINE)
    port = free_port()
    baseline = ManagedProcess(
        "baseline", [sys.executable, "-m", "streamlit", "run", str(folder / "baseline.py"),
                     "--server.port", str(port), "--server.headless", "true",
                     "--browser.gatherUsageStats", "false"],
        health_url=f"http://127.0.0.1:{port}/_stcore/health", log_path=folder / "baseline.log",
        env={}, cwd=folder, start_timeout_s=60)
    baseline.start()
    app = start_app(folder, STREAMRACE_ENDPOINT="compatible",
                    STREAMRACE_BASE_URL="http://127.0.0.1:9/v1")
    times: dict[str, list[float]] = {}
    loads: list[float] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            targets = {"baseline": (f"http://127.0.0.1:{port}/", CHART)}
            targets |= {name: (app.url + name.split(" ")[0], selector)
                        for name, selector in pages.items()}
            for url, selector in targets.values():  # not counted: each server's first session
                open_time(browser, url, selector)
            for round_ in range(args.visits):
                for name, (url, selector) in targets.items():
                    times.setdefault(name, []).append(open_time(browser, url, selector))
                loads.append(os.getloadavg()[0])
                print(f"round {round_ + 1}: " + ", ".join(
                    f"{name} {spent[-1]:.2f}" for name, spent in times.items())
                    + f" s; load {loads[-1]:.1f}", flush=True)
            browser.close()
    finally:
        stop_app(app)
        baseline.stop()
    medians = {name: statistics.median(spent) for name, spent in times.items()}
    for name, spent in times.items():
        print(f"{name}: median {medians[name]:.2f} s (best {min(spent):.2f}), "
              f"{medians[name] - medians['baseline']:+.2f} s against the one-chart page")
    print(f"load average during the rounds: {min(loads):.1f}–{max(loads):.1f}")
    base = medians.pop("baseline")
    worst = max(medians, key=medians.__getitem__)
    excess = medians[worst] - base
    print(f"goal every page within 1 s of the one-chart page: worst {worst} {excess:+.2f} s "
          f"{'met' if excess <= 1.0 else 'MISSED'}")
    print(f"baseline_s={base:.2f} worst_page={worst} worst_excess_s={excess:.2f} "
          f"runs={args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pages open fast in a real browser (issue 17, item 5): each page's first useful content after
its direct link is opened, against a one-chart Streamlit page on the same machine.

    .venv/bin/python bench/page_open.py [--runs 6] [--visits 3]

Fills a throwaway run log with `--runs` synthetic runs (bench/history_scale.py's races), starts
the app (`streamlit run`, headless) and, beside it, a one-chart page (one plotly figure, the
baseline). Each page is opened `--visits` times, each in a new browser context (a new session,
nothing cached: as a person following a link), in Debian's headless chromium; the time is from
`goto` to the page's first useful content being visible:

    baseline     its plotly chart drawn          /history   its first chart drawn
    / (race)     the Run race button             /benchmark, /replay, /guardrails  their
                                                 main control (tests/support PAGES texts)
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
    "/history": CHART,
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
    parser.add_argument("--visits", type=int, default=3)
    args = parser.parse_args()
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
    medians: dict[str, float] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            targets = {"baseline": (f"http://127.0.0.1:{port}/", CHART)}
            targets |= {path: (app.url + path, selector) for path, selector in PAGES.items()}
            open_time(browser, *targets["baseline"])  # not counted: the browser's own start
            for name, (url, selector) in targets.items():
                times = [open_time(browser, url, selector) for _ in range(args.visits)]
                medians[name] = statistics.median(times)
                print(f"{name}: median {medians[name]:.2f} s "
                      f"({', '.join(f'{t:.2f}' for t in times)}; load "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
            browser.close()
    finally:
        stop_app(app)
        baseline.stop()
    base = medians.pop("baseline")
    worst = max(medians, key=medians.__getitem__)
    excess = medians[worst] - base
    print(f"goal every page within 1 s of the one-chart page: worst {worst} +{excess:.2f} s "
          f"{'met' if excess <= 1.0 else 'MISSED'}")
    print(f"baseline_s={base:.2f} worst_page={worst} worst_excess_s={excess:.2f} "
          f"runs={args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

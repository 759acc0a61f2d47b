"""History at scale: does the History page load and redraw in under 2 s with 100,000 runs?

Fills a temporary run log (SQLite; with `--database postgresql`, a database of a throwaway
PostgreSQL cluster, tests/support/postgres.py) with realistic rows (races of three models
over 30 days, every source, a few errors and cancellations, answers of 10 to 400 tokens with
their chunk timelines), then times the page's data path: the filtered queries, every chart's
data and figure, and finally the page itself through Streamlit's AppTest (a first load, then
a redraw after a widget change). Prints the figure last.

    python bench/history_scale.py [--runs 100000] [--keep runs.db] [--database postgresql]

On PostgreSQL the log is `VACUUM ANALYZE`d once filled (until its visibility map covers it),
as autovacuum does on its own after that many inserts: the figures are those of a log in
service, not of the first seconds after a bulk load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from lib.core.trace import Chunk, Params, Request, Trace  # noqa: E402
from lib.present import charts, stats  # noqa: E402
from lib.race import PRESETS  # noqa: E402
from lib.serving.playback import WORDS  # noqa: E402
from lib.storage import history  # noqa: E402
from lib.storage.store import RUN_COLUMNS, Store, trace_to_row  # noqa: E402

LIMIT_S = 2.0
TEMPLATE_RACES = 600
"""Distinct synthetic races; the 100k rows are copies of them with their own ids and dates."""
MODELS = (  # (endpoint, base URL, model, first-token s, seconds per token)
    ("local", "http://127.0.0.1:8081/v1", "gemma-3-270m", 0.12, 0.025),
    ("openai", "https://api.openai.com/v1", "gpt-4o-mini", 0.45, 0.012),
    ("compatible", "http://127.0.0.1:11434/v1", "llama3.2", 0.30, 0.035),
)
PROMPTS = [p.prompt for p in PRESETS] + [
    "Explain TCP slow start to a product manager.",
    "List five ways to make a dashboard feel faster.",
    "Summarise the benefits of server-sent events in 100% plain words.",
]
SOURCES = ["live"] * 16 + ["benchmark"] * 2 + ["replay", "simulated"]


def synthetic_race(rng: random.Random) -> list[Trace]:
    """A blocking and a streamed call of one prompt, timed like a real endpoint would be."""
    kind, url, model, first_s, per_token_s = rng.choice(MODELS)
    prompt = rng.choice(PROMPTS)
    tokens = rng.randint(10, 400)
    request = Request(prompt, Params(max_tokens=400), kind, url, model)
    race_id = uuid.uuid4().hex
    traces = []
    for mode in ("blocking", "streaming"):
        t_start = 1000.0
        t0 = t_start + rng.uniform(0.001, 0.004)
        at = t0 + first_s * rng.lognormvariate(0, 0.35)
        chunks = []
        for i in range(tokens):
            chunks.append(Chunk(at, WORDS[i % len(WORDS)] + " "))
            stall = rng.random() < 0.004
            at += per_token_s * rng.lognormvariate(0, 0.3) + (rng.uniform(0.3, 1.5) if stall else 0)
        status, error = "ok", None
        fate = rng.random()
        if fate < 0.02:
            status, error = "error", "The endpoint answered with a server error (500)."
            chunks = chunks[: rng.randint(0, len(chunks) // 2)] if mode == "streaming" else []
        elif fate < 0.03:
            status, chunks = "cancelled", chunks[: len(chunks) // 3] if mode == "streaming" else []
        if mode == "blocking" and chunks:
            chunks = [Chunk(chunks[-1].t, "".join(c.text for c in chunks))]
        usage = rng.random() < 0.8 and status == "ok"
        traces.append(Trace(
            request=request, mode=mode, race_id=race_id, t_start=t_start, t0=t0, chunks=chunks,
            t_shown=chunks[0].t + 0.01 if chunks else None, t_end=at, status=status,
            error=error, output_tokens=tokens if usage else None,
            input_tokens=len(prompt) // 4 if usage else None,
        ))
    return traces


def fill(store: Store, runs: int, seed: int = 7) -> None:
    """`runs` rows: copies of the template races, each with its own ids, date and source.
    PostgreSQL gets them through COPY (5x faster than INSERTs, the same rows)."""
    rng = random.Random(seed)
    templates = [[trace_to_row(t) for t in synthetic_race(rng)] for _ in range(TEMPLATE_RACES)]
    end = datetime.now(timezone.utc)

    def rows():
        for _ in range(runs // 2):
            created = end - timedelta(seconds=rng.uniform(0, 30 * 86400))
            race_id, source = uuid.uuid4().hex, rng.choice(SOURCES)
            for row in rng.choice(templates):
                yield {**row, "run_id": uuid.uuid4().hex, "race_id": race_id, "source": source,
                       "created_at": created.isoformat(timespec="milliseconds")}

    names = ", ".join(RUN_COLUMNS)
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY runs ({names}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row([row[c] for c in RUN_COLUMNS])
            return
        insert = sa.text(f"INSERT INTO runs ({names}) VALUES "
                         f"({', '.join(f':{c}' for c in RUN_COLUMNS)})")
        batch: list[dict] = []
        for row in rows():
            batch.append(row)
            if len(batch) >= 10_000:
                conn.execute(insert, batch)
                batch.clear()
        if batch:
            conn.execute(insert, batch)


def timed(label: str, action):
    start = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - start
    print(f"  {label:<44} {elapsed * 1000:8.0f} ms", flush=True)
    return result, elapsed


def data_path(engine: sa.Engine, filters: history.Filters) -> float:
    """The page's work for one set of filters, without Streamlit: queries, chart data, figures."""
    total = 0.0
    for label, action in (
        ("facets (filter values)", lambda: history.facets(engine)),
        ("facets of the filtered runs (groups)", lambda: history.facets(engine, filters)),
        ("count", lambda: history.count(engine, filters)),
        (f"table (newest {history.TABLE_LIMIT})", lambda: history.table(engine, filters)),
    ):
        total += timed(label, action)[1]
    frame, elapsed = timed("chart frame (every filtered run)",
                           lambda: history.chart_frame(engine, filters))
    total += elapsed
    print(f"  -> {len(frame):,} filtered runs")
    models = sorted(set(history.facets(engine)["model"]))[:2]
    groups = [history.narrowed(filters, "model", (model,)) for model in models]
    for name, build in (
        ("summary per mode", lambda: history.summary(frame)),
        ("blank screen per mode",
         lambda: charts.blank_screen_figure(stats.blank_screen_data(frame))),
        ("blank screen vs length", lambda: charts.length_figure(stats.length_data(frame))),
        ("patience", lambda: charts.patience_figure(stats.patience_data(frame))),
        (f"compare {models[0]} with {models[1]}", lambda: charts.group_comparison_figure(
            stats.group_comparison(*(history.chart_frame(engine, g) for g in groups)), *models)),
    ):
        total += timed(name, build)[1]
    return total


def page_times(url: str) -> dict[str, float]:
    """The History page in AppTest, in a process that has imported the app (as a running
    server has): the first load (every cache cold), a redraw after changing a patience
    threshold (AppTest reruns the whole script; the browser reruns only that fragment),
    and a new filter (its queries cold)."""
    from streamlit.testing.v1 import AppTest

    import app_pages.history_parts  # noqa: F401  (imported by a running server already)
    import lib.report  # noqa: F401

    os.environ.update(DATABASE_URL=url, STREAMRACE_ENDPOINT="compatible",
                      STREAMRACE_BASE_URL="http://127.0.0.1:9/v1")
    os.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/history.py")
    steps = {
        "first load": lambda: at.run(),
        "redraw (patience thresholds)": lambda: at.text_input(key="patience_thresholds")
        .input("0.5, 2").run(),
        "new filter (+ replayed runs)": lambda: at.multiselect(key="history_sources")
        .select("replay").run(),
    }
    times = {}
    for label, step in steps.items():
        _, times[label] = timed(f"page: {label}", step)
        if at.exception:
            raise SystemExit(f"the page failed: {[e.value for e in at.exception]}")
    if not at.get("plotly_chart"):
        raise SystemExit("the page drew no chart")
    return times


def browser_times(folder: Path, url: str) -> dict[str, float]:
    """The page in Debian's chromium, served by `streamlit run` on this run log: what a user
    waits for, until every chart is drawn. The first visit also fetches and compiles
    Streamlit's own scripts (any page pays that once per browser); the figures are the next
    visit (a new session), a redraw, and a new filter."""
    sys.path.insert(0, str(ROOT / "tests"))
    from browser_harness import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, start_app, stop_app
    from playwright.sync_api import expect, sync_playwright

    timeout = 180_000
    app = start_app(folder, DATABASE_URL=url, STREAMRACE_ENDPOINT="compatible",
                    STREAMRACE_BASE_URL="http://127.0.0.1:9/v1")
    times = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            charts_drawn = page.locator('[data-testid="stPlotlyChart"] .main-svg')

            def drawn() -> None:
                expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(
                    4, timeout=timeout)
                for index in range(4):
                    expect(page.locator('[data-testid="stPlotlyChart"]').nth(index)
                           .locator(".main-svg").first).to_be_visible(timeout=timeout)

            def note(text: str) -> None:
                expect(page.locator(".annotation-text").filter(has_text=text).first
                       ).to_be_visible(timeout=timeout)

            def retype(value: str) -> None:
                box = page.get_by_label("Patience thresholds (seconds, comma-separated)")
                box.fill(value)
                box.press("Enter")

            def streaming_only() -> None:
                page.get_by_label("Mode", exact=True).click()
                page.get_by_role("option", name="streaming").click()
                expect(page.get_by_text("Only streaming runs match")).to_be_visible(
                    timeout=timeout)

            steps = {
                "first visit (Streamlit's scripts too)": lambda: (
                    page.goto(app.url + "/history"), drawn()),
                "load (a new session)": lambda: (page.reload(), drawn()),
                "redraw (patience thresholds)": lambda: (retype("0.5, 2"), note("0.5 s")),
                "new filter (streaming only)": streaming_only,
            }
            for label, step in steps.items():
                _, times[label] = timed(f"browser: {label}", step)
            assert charts_drawn.count() >= 4
            browser.close()
    finally:
        stop_app(app)
    times.pop("first visit (Streamlit's scripts too)")
    return {f"browser {label}": value for label, value in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--keep", type=Path,
                        help="SQLite: write the run log here instead of a temp file")
    parser.add_argument("--no-page", action="store_true", help="skip the AppTest part")
    parser.add_argument("--browser", action="store_true",
                        help="also time the page in Debian's chromium (streamlit run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, run_log(args, Path(folder)) as (url, size):
        store = Store(url)
        if store.count() < args.runs:
            timed(f"fill {args.runs:,} rows", lambda: fill(store, args.runs))
            if args.database == "postgresql":
                timed("VACUUM ANALYZE (what autovacuum does next)", lambda: vacuum(store))
        print(f"run log ({args.database}): {size() / 1e6:.0f} MB, {store.count():,} runs")
        print("data path, default filters (source = live, all time):")
        default_s = data_path(store.engine, history.Filters())
        print(f"  = {default_s:.2f} s")
        print("data path, every source:")
        every_s = data_path(store.engine, history.Filters(sources=()))
        print(f"  = {every_s:.2f} s")
        page = {} if args.no_page else page_times(url)
        store.engine.dispose()
        if args.browser:
            served = Path(folder) / "served"
            served.mkdir()
            page.update(browser_times(served, url))
    worst = max([default_s, every_s, *page.values()])
    verdict = "OK" if worst < LIMIT_S else "TOO SLOW"
    load = os.getloadavg()[0]
    pages = ", ".join(f"{label} {s:.2f} s" for label, s in page.items())
    print(f"(load average {load:.1f} on {os.cpu_count()} cores while measuring)")
    print(f"history page with {args.runs:,} runs on {args.database}: data path {default_s:.2f} s "
          f"(live) / {every_s:.2f} s (all sources){', ' + pages if pages else ''} -> worst "
          f"{worst:.2f} s, limit {LIMIT_S:.1f} s: {verdict}")
    return 0 if worst < LIMIT_S else 1


@contextlib.contextmanager
def run_log(args: argparse.Namespace, folder: Path):
    """(URL, size in bytes) of the run log to fill: a SQLite file, or a new database of a
    throwaway PostgreSQL cluster, stopped afterwards."""
    if args.database == "sqlite":
        path = args.keep or folder / "runs.db"
        yield f"sqlite:///{path}", lambda: path.stat().st_size
        return
    from tests.support.postgres import Cluster

    with Cluster.start() as cluster:
        url = cluster.new_database()
        engine = sa.create_engine(url)

        def size() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT pg_database_size(current_database())")
                                    ).scalar_one()

        yield url, size
        engine.dispose()


def vacuum(store: Store, attempts: int = 30) -> None:
    """VACUUM ANALYZE until the visibility map covers the table, as autovacuum leaves a log
    in service. (A VACUUM in the first second after a bulk load may find the rows too new to
    mark all-visible; the planner then reads the wide rows instead of ix_runs_history.)"""
    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for _ in range(attempts):
            conn.execute(sa.text("VACUUM ANALYZE runs"))
            pages, visible = conn.execute(sa.text(
                "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'runs'")).one()
            if visible >= 0.95 * pages:
                return
            time.sleep(1)  # the horizon moves on its own: nothing to wait on but the clock
    raise RuntimeError(f"VACUUM left {visible} of {pages} pages all-visible")


if __name__ == "__main__":
    sys.exit(main())

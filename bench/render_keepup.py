"""Render keep-up: chunks per second that reach the page versus chunks per second produced.

The race page (app_pages/race.py) feeds the streamed answer to `st.write_stream` in ~40 ms
frames (`Race.frames`), cut into Markdown blocks of bounded size (`lib.display.MarkdownBlocks`).
This benchmark checks, with real parts only, that the page keeps pace with a fast stream:

1. A `lib.playback.PlaybackServer` runs in a child process (bench/_playback_proc.py, so its
   send loop does not share a GIL with the app) with one script per rate R in {200, 1000,
   2000} chunks/s: model "rateR", n = 3·R chunks (fewer when their text would pass the
   panel's 20,000-character cap: 3,300 at 2000/s, 1.65 s), the first at 0.2 s, then one every
   1/R s. Chunk i is the distinct, countable token "w<i> ".
2. For each rate the real app is started fresh (`streamlit run streamlit_app.py`, headless)
   with STREAMRACE_ENDPOINT=compatible, STREAMRACE_BASE_URL=<playback>, STREAMRACE_MODEL=rateR
   and a throwaway DATABASE_URL.
3. Debian's headless chromium (Playwright, `executable_path`) opens the page. Before "Run
   race" is clicked, a requestAnimationFrame loop is installed in the page: on every frame it
   counts the `w<i>` tokens in the streaming panel (the column under the "Streaming call"
   heading) and records (performance.now(), count) whenever the count changes. The page
   escapes Markdown, so the tokens render as plain text. Recording ends when all n tokens are
   visible, or at a deadline.

Figures per race:
    produced span  = the server's span from first to last chunk sent (its own records)
    visible span   = first token visible -> all n tokens visible (rAF timestamps)
    keep-up ratio  = produced span / visible span          (>= 0.95: the page keeps pace)
    frames         = distinct token counts the page showed
Each rate is raced several times, each race in a fresh page (a new Streamlit session) of the
same app process; the median ratio counts. One more race first, not counted, warms the
browser (its first stream renders ~0.5 s late).

Where the time goes, printed under each race:
  - app received: the run log's timeline, stamped on the app's worker thread after the SDK
    and Mirascope parsed each chunk; the last chunk's lag after the server sent it is an upper
    bound by the ~1 ms request leg. If the app already receives late, the client path, not
    rendering, is behind.
  - on screen: server send -> visible, for the first and the last token (performance.now()
    mapped onto perf_counter, CLOCK_MONOTONIC, by a round trip); and when the blocking answer
    (the same text, left panel) became visible relative to the last streamed token.
  - browser: requestAnimationFrame gaps, long tasks (main thread busy > 50 ms), and the
    WebSocket messages and bytes Streamlit pushed while the tokens came in.
  - CPU from /proc over the same window, in cores: the app, chromium, the playback child,
    this harness, and the rest of the machine (other people's work); and for the app's busiest
    threads and the page renderer's main thread, seconds on a CPU + seconds runnable but
    waiting for one (schedstat): a large wait means CPU starvation by other processes.

    .venv/bin/python bench/render_keepup.py [--rates 200 1000 2000] [--trials N]   # ~2 min
        --app-dir DIR   run the app from another checkout, to compare a change

The last line is the median ratio at 2000 chunks/s, `render_keepup_2000=…` (target >= 0.95;
`nan` if a race could not be measured). It depends on the CPU left over: on a 2-core machine
shared with other work it drops (the CPU lines show by how much). Exits 1 when a race could
not be measured (not every token became visible), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `make bench` runs us by path

from bench._playback_proc import RemotePlayback  # noqa: E402
from lib.present.display import SHOWN_CHARS  # noqa: E402
from lib.serving.playback import Script  # noqa: E402
from lib.serving.process import ManagedProcess, free_port  # noqa: E402

RATES = (200, 1000, 2000)
SECONDS = 3.0
MAX_CHARS = SHOWN_CHARS - 1_000
"""A panel shows the first SHOWN_CHARS characters of an answer: a longer script could never
become visible whole (at 2,000 chunks/s, 3 s of "w<i> " tokens is 34,000 characters). Scripts
are cut to fit, with room for the note and status lines: 1.65 s at 2,000 chunks/s."""
TTFT_S = 0.2
TARGET = 0.95
TRIALS = {200: 2, 1000: 2, 2000: 3}
"""Races per rate by default: most at 2000, the figure that matters (a fresh page costs
several seconds to load on a busy machine)."""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
APP_START_TIMEOUT_S = 40
VISIBLE_GRACE_S = 20.0
"""How long after the scripted last chunk the page may take to show everything."""
CLK_TCK = os.sysconf("SC_CLK_TCK")

RECORDER_JS = r"""
(n) => {
  const rec = window.__keepup = {samples: [], gaps: [], long: [], blocking: null, count: 0,
                                 len: -1, running: true};
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) rec.long.push([e.startTime, e.duration]);
  }).observe({type: 'longtask'});
  let previous = null;
  const TOKEN = /\bw\d+\b/g;
  const LAST = new RegExp('\\bw' + (n - 1) + '\\b');
  function column(title) {
    for (const h of document.querySelectorAll('[data-testid="stColumn"] h3')) {
      if (h.textContent.includes(title)) return h.closest('[data-testid="stColumn"]');
    }
    return null;
  }
  function tick(now) {
    if (previous !== null) rec.gaps.push([now, now - previous]);
    previous = now;
    if (rec.blocking === null && LAST.test((column('Blocking call') || {}).textContent || '')) {
      rec.blocking = performance.now();
    }
    const panel = column('Streaming call');
    if (panel) {
      let text = '';  // one element per Markdown block, and the status line
      for (const m of panel.querySelectorAll('[data-testid="stMarkdownContainer"]')) {
        text += m.textContent + '\n';
      }
      if (text.length !== rec.len) {
        rec.len = text.length;
        const found = text.match(TOKEN);
        const count = found ? found.length : 0;
        if (count !== rec.count) {
          rec.count = count;
          rec.samples.push([performance.now(), count]);
        }
      }
    }
    if (rec.running) requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
}
"""


def script_for(rate: int) -> Script:
    """SECONDS of chunks at `rate`, as many as fit whole in a panel (see MAX_CHARS)."""
    n = round(SECONDS * rate)
    while sum(len(f"w{i} ") for i in range(n)) > MAX_CHARS:
        n -= rate // 20  # 50 ms of chunks
    return Script(offsets=tuple(TTFT_S + i / rate for i in range(n)),
                  texts=tuple(f"w{i} " for i in range(n)))


# -- CPU accounting from /proc (no psutil here) ------------------------------------------

def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _schedstat(pid: int, tid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for a CPU) of one thread."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
            run_ns, wait_ns = handle.read().split()[:2]
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK  # minus idle and iowait


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])  # /proc stat: ppid
                parents.setdefault(parent, []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out += children
        todo += children
    return out


class CpuSampler(threading.Thread):
    """Samples CPU use every 50 ms while a race runs: the app (per thread, with schedstat, so
    threads that end mid-race still count), the playback child, chromium (the renderers' main
    threads apart), this harness (this process and Playwright's driver), the whole machine."""

    def __init__(self, app_pid: int, playback_pid: int | None):
        super().__init__(daemon=True, name="cpu-sampler")
        self.app_pid, self.playback_pid = app_pid, playback_pid
        self.samples: list[dict[str, float]] = []
        self._done = threading.Event()
        # Our processes, classified once (the page exists before the sampling starts).
        self.chromium, self.renderers, self.harness = [], [], [os.getpid()]
        for pid in _descendants(os.getpid()):
            if pid in (app_pid, playback_pid):
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    command = handle.read()  # chromium rewrites it: one string, or several
            except OSError:
                continue
            if b"chrom" in command.split(b"\0")[0].split(b" ")[0]:
                self.chromium.append(pid)
                if b"--type=renderer" in command:
                    self.renderers.append(pid)
            else:
                self.harness.append(pid)

    def _sample(self) -> dict[str, float]:
        values = {
            "t": time.perf_counter(),
            "machine": _machine_busy_s(),
            "app": _cpu_s(self.app_pid),
            "playback": _cpu_s(self.playback_pid) if self.playback_pid else 0.0,
            "chromium": sum(map(_cpu_s, self.chromium)),
            "harness": sum(map(_cpu_s, self.harness)),
            "renderer_run": 0.0,
            "renderer_wait": 0.0,
        }
        try:
            tids = os.listdir(f"/proc/{self.app_pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            values[f"run{tid}"], values[f"wait{tid}"] = _schedstat(self.app_pid, int(tid))
        for pid in self.renderers:  # the main thread is the one that runs JS and layout
            run, wait = _schedstat(pid, pid)
            values["renderer_run"] += run
            values["renderer_wait"] += wait
        return values

    def run(self) -> None:
        while True:
            self.samples.append(self._sample())
            if self._done.wait(0.05):
                return

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join()

    def usage(self, start: float | None = None, end: float | None = None) -> dict:
        """Use between two perf_counter moments (default: all of it): cores on average, and
        seconds per app thread. A thread born inside the window starts from zero; one that
        ended inside it keeps its last value."""
        if not self.samples:
            return {}
        start = self.samples[0]["t"] if start is None else start
        end = self.samples[-1]["t"] if end is None else end
        first = ([x for x in self.samples if x["t"] <= start] or self.samples[:1])[-1]
        last: dict[str, float] = {}
        for sample in [x for x in self.samples if x["t"] <= end] or self.samples[:1]:
            last.update(sample)
        delta = {k: last[k] - first.get(k, 0.0) for k in last}
        wall = max(delta.pop("t"), 1e-9)
        threads = sorted(
            (
                (delta[k], delta["wait" + k[3:]], k[3:])
                for k in delta
                if k.startswith("run") and k[3:].isdigit()
            ),
            reverse=True,
        )
        ours = delta["app"] + delta["playback"] + delta["chromium"] + delta["harness"]
        cores = {k: delta[k] / wall for k in ("app", "chromium", "playback", "harness", "machine")}
        return {
            "wall": wall,
            **cores,
            "others": max(0.0, delta["machine"] - ours) / wall,
            "threads": threads[:3],
            "main_tid": str(self.app_pid),
            "renderer_run": delta["renderer_run"],
            "renderer_wait": delta["renderer_wait"],
        }


# -- the app ------------------------------------------------------------------------------


class App:
    """The real Streamlit app in a subprocess (its own session), configured by environment."""

    def __init__(
        self, base_url: str, model: str, database_url: str, log_path: Path, app_dir: Path = ROOT
    ):
        self.port = free_port()
        self.log_path = log_path
        # Sealed: the endpoint and run log it is given, nothing else of ours (no key, no model).
        self.server = ManagedProcess(
            "streamlit",
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "streamlit_app.py",
                "--server.port",
                str(self.port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            health_url=f"{self.url}_stcore/health",
            log_path=log_path,
            cwd=app_dir,
            env={
                "STREAMRACE_ENDPOINT": "compatible",
                "STREAMRACE_BASE_URL": base_url,
                "STREAMRACE_MODEL": model,
                "DATABASE_URL": database_url,
            },
            start_timeout_s=APP_START_TIMEOUT_S,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def proc(self):
        return self.server.process

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])

    def wait_healthy(self) -> None:
        """Start it and wait until it answers (ServerStartFailed says why it did not)."""
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace_s=10)


# -- one measurement ----------------------------------------------------------------------


@dataclass
class Result:
    rate: int
    n: int
    scripted_span: float
    sent_span: float | None = None
    visible_span: float | None = None
    frames: int = 0
    visible_max: int = 0
    first_lag: float | None = None
    last_lag: float | None = None
    blocking_lag: float | None = None
    """Blocking answer visible − last streamed token visible (None: not before the latter)."""
    client_span: float | None = None
    client_last_lag: float | None = None
    stream_status: str | None = None
    ws_messages: int = 0
    ws_bytes: int = 0
    raf_gap_p95: float | None = None
    raf_gap_max: float | None = None
    long_tasks: list[float] = field(default_factory=list)
    cpu: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        return self.sent_span / self.visible_span if self.sent_span and self.visible_span else None

    @property
    def visible_rate(self) -> float | None:
        return (self.n - 1) / self.visible_span if self.visible_span else None


def browser_to_perf(page) -> float:
    """Offset to add to the page's performance.now()/1000 to get this process's perf_counter."""
    best = None
    for _ in range(7):
        before = time.perf_counter()
        now_ms = page.evaluate("performance.now()")
        after = time.perf_counter()
        if best is None or after - before < best[0]:
            best = (after - before, (before + after) / 2 - now_ms / 1000)
    return best[1]


def measure_rate(
    browser, server: RemotePlayback, rate: int, tmp: Path, trials: int, warm_up: bool, app_dir: Path
) -> list[Result]:
    """Start the app for this rate and run `trials` races, each in a fresh page (session);
    with `warm_up`, one more race first, not counted."""
    database = tmp / f"runs-{rate}.db"
    app = App(
        server.base_url, f"rate{rate}", f"sqlite:///{database}", tmp / f"app-{rate}.log", app_dir
    )
    results = []
    try:
        app.wait_healthy()
        for index in range(-1 if warm_up else 0, trials):
            result = trial(browser, server, app, script_for(rate), rate, database)
            if result.error and result.visible_span is None:
                result.error += f"; app log tail: {app.log_tail()}"
            if index < 0:
                print("warm-up race, not counted:")
            report(result)
            if index >= 0:
                results.append(result)
    finally:
        app.stop()
    return results


def trial(
    browser, server: RemotePlayback, app: App, script: Script, rate: int, database: Path
) -> Result:
    """One race in a fresh page: click Run race, record the page until every token shows."""
    n = len(script.texts)
    result = Result(rate, n, scripted_span=script.offsets[-1] - script.offsets[0])
    logged_before = _streaming_rows(database)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    sampler = None
    try:
        ws_frames: list[int] = []
        page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda payload: ws_frames.append(len(payload))),
        )
        page.goto(app.url, wait_until="domcontentloaded")
        run_button = page.get_by_role("button", name="Run race")
        run_button.wait_for(timeout=APP_START_TIMEOUT_S * 1000)
        page.get_by_role("heading", name="Streaming call").wait_for()
        # Let the first script run end (the "Running..." widget goes away), then settle.
        page.wait_for_selector(
            '[data-testid="stStatusWidget"]', state="detached", timeout=APP_START_TIMEOUT_S * 1000
        )
        page.wait_for_timeout(200)
        offset = browser_to_perf(page)
        page.evaluate(RECORDER_JS, n)
        server.records()  # forget anything earlier
        ws_before = len(ws_frames)
        sampler = CpuSampler(app.proc.pid, server.pid)
        sampler.start()
        run_button.click()
        deadline = time.monotonic() + TTFT_S + result.scripted_span + VISIBLE_GRACE_S
        while time.monotonic() < deadline and page.evaluate("window.__keepup.count") < n:
            page.wait_for_timeout(100)
        sampler.stop()
        recorded = page.evaluate(
            "(() => { const r = window.__keepup; r.running = false; "
            "return {samples: r.samples, gaps: r.gaps, long: r.long, "
            "blocking: r.blocking}; })()"
        )
        # Let the race end (the blocking answer, the run log) before the page goes away.
        records = _wait_records(server)
        stream = next((r for r in records if len(r["sent"]) == n), None)
        _client_receipt(result, database, logged_before, stream)
    finally:
        if sampler is not None:
            sampler.stop()
        page.close()

    samples = recorded["samples"]
    done_frames = ws_frames[ws_before:]
    result.ws_messages, result.ws_bytes = len(done_frames), sum(done_frames)
    result.frames = sum(1 for _, c in samples if c > 0)
    result.visible_max = max((c for _, c in samples), default=0)
    first = next((t for t, c in samples if c > 0), None)
    last = next((t for t, c in samples if c >= n), None)
    if stream is not None:
        result.sent_span = stream["sent"][-1] - stream["sent"][0]
        if first is not None:
            result.first_lag = first / 1000 + offset - stream["sent"][0]
        if last is not None:
            result.last_lag = last / 1000 + offset - stream["sent"][-1]
    if last is not None and recorded["blocking"] is not None:
        result.blocking_lag = (recorded["blocking"] - last) / 1000
    if first is not None and last is not None:
        result.visible_span = (last - first) / 1000
        gaps = sorted(g for t, g in recorded["gaps"] if first <= t <= last)
        result.raf_gap_p95 = gaps[int(0.95 * (len(gaps) - 1))] / 1000 if gaps else None
        result.raf_gap_max = gaps[-1] / 1000 if gaps else None
        result.long_tasks = [d / 1000 for t, d in recorded["long"] if first - d <= t <= last]
        result.cpu = sampler.usage(first / 1000 + offset, last / 1000 + offset)
    else:
        result.cpu = sampler.usage()
    if last is None:
        result.error = f"only {result.visible_max} of {n} tokens became visible"
        if result.stream_status:
            result.error += f"; the streaming call ended {result.stream_status}"
    elif stream is None:
        result.error = "the server has no record of the streamed request"
    return result


def _wait_records(server: RemotePlayback) -> list[dict]:
    """The server's records of both calls of the race, once both are sent."""
    records: list[dict] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records += server.records()
        if len(records) >= 2 and all(r["sent"] for r in records):
            break
        time.sleep(0.1)
    return records


def _streaming_rows(database: Path) -> int:
    try:
        with sqlite3.connect(database) as conn:
            return conn.execute("SELECT count(*) FROM runs WHERE mode = 'streaming'").fetchone()[0]
    except sqlite3.Error:
        return 0  # no run log yet


def _client_receipt(
    result: Result, database: Path, logged_before: int, stream: dict | None
) -> None:
    """The app's own receipt times, from the run log's timeline ([[s after t0, text], ...]).

    Mapped onto the server's clock through its t_received = t0 + the request leg (~1 ms), so
    the lag is an upper bound by that much.
    """
    deadline = time.monotonic() + 10
    while _streaming_rows(database) <= logged_before:
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)
    with sqlite3.connect(database) as conn:
        timeline, status, error = conn.execute(
            "SELECT timeline, status, error FROM runs WHERE mode = 'streaming' "
            "ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    result.stream_status = status + (f" ({error})" if error else "")
    timeline = json.loads(timeline)
    if len(timeline) < 2:
        return
    result.client_span = timeline[-1][0] - timeline[0][0]
    if stream is not None:
        result.client_last_lag = (stream["t_received"] + timeline[-1][0]) - stream["sent"][-1]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def report(r: Result) -> None:
    ratio = "-" if r.ratio is None else f"{r.ratio:.3f}"
    visible = "-" if r.visible_rate is None else f"{r.visible_rate:.0f}"
    produced = "-" if not r.sent_span else f"{(r.n - 1) / r.sent_span:.0f}"
    print(
        f"rate {r.rate:>4}/s  n={r.n:<5} produced {produced:>5} chunks/s "
        f"(span {r.sent_span or 0:.3f} s, scripted {r.scripted_span:.3f} s)  "
        f"visible {visible:>5} chunks/s (span {r.visible_span or 0:.3f} s)  "
        f"ratio {ratio}  frames {r.frames}"
    )
    client = "-" if not r.client_span else f"{(r.n - 1) / r.client_span:.0f} chunks/s"
    blocking = (
        "after the last token"
        if r.blocking_lag is None
        else f"{round(r.blocking_lag * 1000):+d} ms from the last token"
    )
    print(
        f"    app received {client} (span {r.client_span or 0:.3f} s, last chunk "
        f"<= {_ms(r.client_last_lag)} after sent) | on screen: first {_ms(r.first_lag)}, "
        f"last {_ms(r.last_lag)} after sent; blocking answer {blocking}"
    )
    print(
        f"    browser: rAF gap p95 {_ms(r.raf_gap_p95)}, max {_ms(r.raf_gap_max)}; "
        f"{len(r.long_tasks)} long tasks, {_ms(sum(r.long_tasks))} in all | websocket "
        f"{r.ws_messages} msgs, {r.ws_bytes / 1e6:.2f} MB"
    )
    cpu = r.cpu
    if cpu:
        threads = ", ".join(
            f"{'main' if tid == cpu['main_tid'] else 'tid ' + tid} {run:.2f}+{wait:.2f}"
            for run, wait, tid in cpu["threads"]
        )
        print(
            f"    cpu over {cpu['wall']:.1f} s, in cores: app {cpu['app']:.2f}, chromium "
            f"{cpu['chromium']:.2f}, playback {cpu['playback']:.2f}, this harness "
            f"{cpu['harness']:.2f}, others {cpu['others']:.2f}; machine {cpu['machine']:.2f} "
            f"of {os.cpu_count()}"
        )
        print(
            f"    seconds on a CPU + waiting for one: app's busiest threads [{threads}]; "
            f"page renderer main thread {cpu['renderer_run']:.2f}+{cpu['renderer_wait']:.2f}"
        )
    if r.error:
        print(f"    error: {r.error}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    parser.add_argument(
        "--trials", type=int, help="races per rate, the median counts (default: 3 at 2000, else 2)"
    )
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=ROOT,
        metavar="DIR",
        help="run the app from another checkout (default: this one)",
    )
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    results: dict[int, list[Result]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="render-keepup-") as tmp,
        RemotePlayback({f"rate{rate}": script_for(rate) for rate in args.rates}) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for index, rate in enumerate(args.rates):
                results[rate] = measure_rate(
                    browser,
                    server,
                    rate,
                    Path(tmp),
                    args.trials or TRIALS.get(rate, 2),
                    warm_up=index == 0,
                    app_dir=args.app_dir.resolve(),
                )
        finally:
            browser.close()
    print(f"\nload average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    medians = {}
    for rate, trials in results.items():
        ratios = [r.ratio for r in trials if r.ratio is not None]
        visible = [r.visible_rate for r in trials if r.visible_rate is not None]
        produced = [(r.n - 1) / r.sent_span for r in trials if r.sent_span]
        medians[rate] = statistics.median(ratios) if ratios and len(ratios) == len(trials) else None
        print(
            f"rate {rate:>4}/s: produced {_median(produced, '.0f')} chunks/s, visible "
            f"{_median(visible, '.0f')} chunks/s, keep-up ratio {_median(ratios, '.3f')} "
            f"(median of {len(trials)}: {', '.join(f'{x:.3f}' for x in ratios) or '-'}), "
            f"frames {', '.join(str(r.frames) for r in trials)}"
        )
    failed = any(r.error for trials in results.values() for r in trials)
    if 2000 in medians:
        print(f"target: render_keepup_2000 >= {TARGET}")
        print(f"render_keepup_2000={'nan' if medians[2000] is None else f'{medians[2000]:.2f}'}")
    return 1 if failed else 0


def _median(values: list[float], spec: str) -> str:
    return format(statistics.median(values), spec) if values else "-"


if __name__ == "__main__":
    sys.exit(main())

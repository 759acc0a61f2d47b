"""What every real-browser test needs: the app as a subprocess, Debian's chromium, screenshots.

Tests open pages with the session-scoped `browser` fixture (tests/conftest.py) and start the
app with `start_app(folder, **env)`; a new page's browser test is a new file using these.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lib.core.errors import ServerStartFailed
from lib.serving.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1800}

PAGES = [
    # (direct URL, text the page shows once its script has run to the end)
    ("/", "Recent runs"),  # the race page is the app's home (a default page lives at "/")
    ("/benchmark", "Compare with an earlier benchmark"),
    ("/history", "No runs logged yet"),  # a fresh app's run log is empty
    ("/replay", "Use in race"),
    ("/guardrails", "Plant a violation"),
]
"""Every page of the app: a new page is one more line here."""
NAV_TITLES = {"Race", "Benchmark", "History", "Replay", "Guardrails"}
"""The titles st.navigation gives the pages; the sidebar must list no other."""

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"data", "blob", "about"}

START_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 90_000
RACE_TIMEOUT_MS = 240_000
"""Starting the embedded model and the first race on a busy 2-core machine."""

class expect:  # noqa: N801 - reads as Playwright's own expect
    """Playwright's `expect` with this machine's patience on every check (its default is 5 s):
    `expect(locator).to_be_visible()`, or `expect(locator, RACE_TIMEOUT_MS)` for longer."""

    def __init__(self, locator, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
        from playwright.sync_api import expect as playwright_expect

        self._assertions = playwright_expect(locator)
        self._timeout_ms = timeout_ms

    def __getattr__(self, name: str):
        check = getattr(self._assertions, name)
        return lambda *args, **kwargs: check(*args, **{"timeout": self._timeout_ms, **kwargs})


# -- the app as a subprocess ------------------------------------------------------------------


@dataclass
class App:
    server: ManagedProcess
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_app(folder: Path, **env_vars: str) -> App:
    """`streamlit run streamlit_app.py` on a free port with its own run log; waits for health.

    Its environment is sealed (lib.serving.process): the run log and data folder below and
    `env_vars` (STREAMRACE_*, a key for a test), nothing of the shell that runs the tests.
    """
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        "DATABASE_URL": f"sqlite:///{folder / 'runs.db'}",
        "XDG_DATA_HOME": str(folder / "data"),  # the embedded servers' logs stay in tmp
        **env_vars,
    }
    port = free_port()
    log_path = folder / "streamlit.log"
    server = ManagedProcess(
        "streamlit", [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
                      "--server.port", str(port), "--server.headless", "true"],
        health_url=f"http://127.0.0.1:{port}/_stcore/health", log_path=log_path, env=env,
        cwd=ROOT, start_timeout_s=START_TIMEOUT_S)
    app = App(server, port, log_path)
    try:
        server.start()
    except ServerStartFailed as exc:
        raise RuntimeError(f"{exc.message}\n{app.log()}") from exc
    return app


def app_stacks(app: App, wait_s: float = 5.0) -> str:
    """Every thread's stack in the app process, as it writes them to its log on SIGUSR1
    (app_pages.shared.stacks_on_signal): what the server side of a page that stopped drawing
    is doing."""
    if app.server.process is None or app.server.process.poll() is not None:
        return "the app process is not running"
    before = app.log_path.stat().st_size
    os.kill(app.server.process.pid, signal.SIGUSR1)
    deadline, size = time.monotonic() + wait_s, before
    while time.monotonic() < deadline:  # written at once; wait until the log stops growing
        time.sleep(0.2)
        grown = app.log_path.stat().st_size
        if grown > before and grown == size:
            break
        size = grown
    with app.log_path.open("rb") as log:
        log.seek(before)
        return log.read().decode(errors="replace") or "no stacks were written"


def page_tail(page, elements: int = 4) -> str:
    """The last elements of the page's main area, as HTML (each cut at 800 characters), and
    what a lazily loaded element may still wait for: Streamlit draws a skeleton
    (`stSkeleton`) until an element's code has loaded, and Vite's loader waits for each of
    that code's style sheets to fire `load`."""
    try:
        return "\n".join(page.evaluate(f"""() => [
            ...[...document.querySelectorAll(
                '[data-testid="stMain"] [data-testid="stElementContainer"]')].slice(-{elements})
                .map(e => e.outerHTML.slice(0, 800)),
            'skeletons: ' + document.querySelectorAll('[data-testid="stSkeleton"]').length,
            'style sheets not loaded: ' + JSON.stringify([...document.querySelectorAll(
                'link[rel="stylesheet"]')].filter(l => !l.sheet).map(l => l.href))]"""))
    except Exception as exc:  # noqa: BLE001 - a report must not fail on a page that broke
        return f"the page could not be read: {exc}"


def stop_app(app: App) -> None:
    """Stop the app (its atexit stops the servers it started), then anything left in its group."""
    app.server.stop(grace_s=30)


class PageWatch:
    """What a page asked the network for and did not get, and what its console said: kept for
    a failure's message, where a page that stopped drawing tells why (a script still running,
    a lazily loaded part of Streamlit's frontend still fetching, a script error)."""

    def __init__(self, page) -> None:
        self.page = page
        self._clock = time.monotonic
        self.pending: dict[object, tuple[float, str]] = {}
        self.failed: list[str] = []
        self.console: list[str] = []
        page.on("request", lambda r: self.pending.__setitem__(r, (self._clock(), r.url)))
        page.on("requestfinished", lambda r: self.pending.pop(r, None))
        page.on("response", lambda r: self.answered.add(r.request))
        self.answered: set = set()
        page.on("requestfailed", self._failed)
        page.on("console", lambda m: m.type in ("error", "warning")
                and self.console.append(f"{m.type}: {m.text[:300]}"))
        page.on("pageerror", lambda e: self.console.append(f"page error: {str(e)[:300]}"))
        self.sockets: list[dict] = []
        page.on("websocket", self._socket)

    def _socket(self, socket) -> None:
        seen = {"url": socket.url, "opened": self._clock(), "frames": 0, "last": None,
                "closed": None}
        self.sockets.append(seen)

        def frame(_payload) -> None:
            seen["frames"] += 1
            seen["last"] = self._clock()
        socket.on("framereceived", frame)
        socket.on("close", lambda _socket: seen.__setitem__("closed", self._clock()))

    def _failed(self, request) -> None:
        self.pending.pop(request, None)
        self.failed.append(f"{request.url} ({request.failure})")

    def report(self) -> str:
        now = self._clock()
        lines = [f"still fetching for {now - t:.0f} s "
                 f"({'headers in, body not' if r in self.answered else 'no answer yet'}): {url}"
                 for r, (t, url) in list(self.pending.items())]
        if self.pending:
            lines += self._server_side(next(iter(self.pending.values()))[1])
        lines += [f"failed: {line}" for line in self.failed[-10:]]
        lines += self.console[-10:]
        for seen in self.sockets:
            last = "none" if seen["last"] is None else f"{now - seen['last']:.0f} s ago"
            state = "open" if seen["closed"] is None else f"closed {now - seen['closed']:.0f} s ago"
            lines.append(f"websocket opened {now - seen['opened']:.0f} s ago, {state}: "
                         f"{seen['frames']} frames received, the last {last}")
        return "\n".join(lines) or "every request answered, nothing in the console"

    def final_report(self, wait_s: float = 120) -> str:
        """`report()`, then whether what the page was fetching arrives within `wait_s`: slow
        or stuck."""
        report = self.report()
        waited = self._clock()
        while self.pending and self._clock() - waited < wait_s:
            self.page.wait_for_timeout(1000)
        later = (f"{self._clock() - waited:.0f} s later: "
                 + (f"{len(self.pending)} requests still pending" if self.pending
                    else "every request answered"))
        return f"{report}\n{later}"

    @staticmethod
    def _server_side(url: str) -> list[str]:
        """Whether the server answers the same URL on a new connection, and the TCP state of
        every connection to its port (a Recv-Q the server does not read, a Send-Q the browser
        does not take)."""
        import subprocess
        import urllib.request
        from urllib.parse import urlparse

        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                size = len(answer.read())
            fetched = f"{size} bytes in {time.monotonic() - started:.2f} s"
        except OSError as exc:
            fetched = f"failed after {time.monotonic() - started:.2f} s: {exc}"
        port = urlparse(url).port
        sockets = subprocess.run(
            ["ss", "-tn", "state", "established", f"( sport = :{port} or dport = :{port} )"],
            capture_output=True, text=True, timeout=10).stdout.splitlines()
        return [f"the same URL on a new connection: {fetched}",
                f"TCP connections to port {port} (Recv-Q Send-Q local peer):", *sockets]


def settled(page, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """The session's script has finished its run. Wait for it after each input that reruns
    the page, before the next: a widget replaced by a rerun swallows what is typed into it."""
    expect(page.locator('[data-testid="stApp"]'), timeout_ms).to_have_attribute(
        "data-test-script-state", "notRunning")


def picker_field(page, label: str = "Model"):
    """A field of the sidebar's endpoint picker ("Model", "API key"). The sidebar's "Add an
    endpoint" form (endpoints for lanes, drawn after the picker: streamlit_app.py) has fields
    of the same names."""
    return page.locator('[data-testid="stSidebar"]').get_by_label(label, exact=True).first


def save_screenshot(page, path: Path) -> None:
    """A full-page screenshot; the viewport grows if the app's own scroll area is taller."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stAppViewContainer"], body')]
        .map(e => e.scrollHeight))""")
    if height > VIEWPORT["height"]:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": int(height)})
    page.screenshot(path=str(path), full_page=True)

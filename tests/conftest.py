"""Shared fixtures: a real playback server on 127.0.0.1, endpoints that point at it, a run log.

Nothing here patches the SDK or mocks HTTP: every call in the tests goes through Mirascope,
the openai SDK and httpx to a real local server that plays a known timeline.

    def test_something(playback, make_endpoint, unique_prompt):
        call = Call(make_endpoint("scripted"), unique_prompt, Params(), "streaming")
        trace = call.run()
        [request] = received_for(playback, unique_prompt)   # what the server saw

Other test files (AppTest of pages, browser tests) reuse `playback` and `playback.base_url`.

Anything that needs a known timeline can also use `replay_endpoint`: a real `replay` endpoint
playing a Recording (hand-made, or saved from a logged run), transformed if asked:

    def test_something(replay_endpoint):
        recording = Recording("tick", (0.1, 0.2), ("a", "b"))
        endpoint = replay_endpoint(recording, Transform(time_scale=2))
        blocking, streaming = run_headless(endpoint, "prompt", Params(), store=None)
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.core.calls import Call, warm_up
from lib.core.trace import Params
from lib.endpoints import Endpoint, replayed
from lib.replay import Profile, Recording, ReplayServer, Spec, Transform
from lib.serving.playback import REASONING_FORMS, REPORT, PlaybackServer, Received, Script
from lib.storage.store import Store
from tests.support.postgres import Cluster, PostgresMissing
from tests.support.waiting import wait_until

SCRIPTS: dict[str, Script] = {
    # The reference timeline: first text at 300 ms, then one word every 20 ms (e2e 680 ms).
    "scripted": Script.regular(ttft_s=0.3, gap_s=0.02, n=20),
    # Short and quick, for anything that is not about timing.
    "fast": Script.regular(ttft_s=0.02, gap_s=0.005, n=5),
    # Model names may contain slashes; they must reach the server whole.
    "org/sub/model": Script.regular(ttft_s=0.01, gap_s=0.002, n=3),
    "no-usage": Script.regular(ttft_s=0.02, gap_s=0.005, n=6, usage=False),
    # One word a second: something to cancel mid-stream.
    "slow": Script.regular(ttft_s=0.05, gap_s=1.0, n=5),
    # 400 chunks 1 ms apart: faster than any renderer should be fed.
    "burst": Script.regular(ttft_s=0.02, gap_s=0.001, n=400),
    "e401": Script(status=401),
    "e429": Script(status=429, retry_after_s=7),
    "e500": Script(status=500),
    # Silent for 3 s before any header.
    "hang": Script.regular(ttft_s=0.0, gap_s=0.0, n=1, hang_s=3.0),
    # Connection closed after 5 of 10 chunks.
    "drop": Script.regular(ttft_s=0.02, gap_s=0.01, n=10, drop_after=5),
    # Reasoning models (issue 13): 50 thoughts, then 20 answer words, 20 ms apart, first at
    # 0.2 s, in each form servers send them (`reasoning`, `reasoning_content`, inline <think>).
    **{f"reason-{form}": Script.reasoning(0.2, 0.02, thoughts=50, words=20, form=form)
       for form in REASONING_FORMS},
    # Quick, and with no reasoning count in the usage: the split is estimated.
    "reason-quick": Script.reasoning(0.02, 0.005, thoughts=4, words=6, reasoning_usage=False),
    # Structured answers (issue 14): the known report, one token every 20 ms from 0.2 s; a server
    # without JSON mode; the stream cut mid-object; an object that never validates.
    "report": Script.tokens(json.dumps(REPORT), ttft_s=0.2, gap_s=0.02),
    "report-fast": Script.tokens(json.dumps(REPORT), ttft_s=0.02, gap_s=0.002),
    "report-refuse": Script.tokens(json.dumps(REPORT), 0.02, 0.002, refuse_formats=True),
    "report-cut": Script.tokens(json.dumps(REPORT), 0.02, 0.002, drop_after=40),
    "report-invalid": Script.tokens(json.dumps({**REPORT, "sections": []}), 0.02, 0.002),
}

SERVER_KEY = "pbk-test-right-key-7f3a9c21"
"""The key the `keyed_playback` server requires (deliberately not `sk-...`-shaped, so that
only explicit scrubbing, not the generic `sk-` mask, can keep it out of messages)."""


@pytest.fixture(scope="session")
def warmed() -> None:
    """Pay the first-call cost of Mirascope and the SDK once, before anything is timed."""
    warm_up()


@pytest.fixture(scope="session")
def playback(warmed) -> PlaybackServer:
    """A playback server with every script of SCRIPTS, no key required, for the whole session."""
    server = PlaybackServer(SCRIPTS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keyed_playback(warmed) -> PlaybackServer:
    """A playback server that answers 401 unless the request carries `Bearer SERVER_KEY`."""
    server = PlaybackServer(SCRIPTS, api_key=SERVER_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def replay_server(warmed) -> ReplayServer:
    """A replay server in this process, playing the recordings `replay_endpoint` gives it."""
    server = ReplayServer({}).start()
    yield server
    server.stop()


@pytest.fixture
def replay_endpoint(replay_server) -> Callable[..., Endpoint]:
    """`replay_endpoint(recording, transform=Transform())`, or `replay_endpoint(profile=...)`:
    a `replay` endpoint whose calls get exactly that timeline (logged as source `replay`, or
    `simulated` for a profile, with the transform)."""

    def make(
        recording: Recording | None = None,
        transform: Transform = Transform(),
        *,
        profile: Profile | None = None,
    ) -> Endpoint:
        if recording is not None:
            replay_server.recordings[recording.name] = recording
        spec = (
            Spec(recording=recording.name, transform=transform)
            if profile is None
            else Spec(profile=profile)
        )
        return replayed.endpoint_for(replay_server.base_url, spec.model)

    return make


def endpoint_for(base_url: str, model: str, api_key: str | None = None) -> Endpoint:
    """A `compatible` endpoint sending both lanes to `base_url`."""
    return Endpoint("compatible", model, {"blocking": base_url, "streaming": base_url}, api_key)


@pytest.fixture
def make_endpoint(playback) -> Callable[..., Endpoint]:
    """`make_endpoint(model, api_key=None, base_url=None)`: an endpoint on the playback server."""

    def make(model: str, api_key: str | None = None, base_url: str | None = None) -> Endpoint:
        return endpoint_for(base_url or playback.base_url, model, api_key)

    return make


@pytest.fixture
def unique_prompt() -> str:
    """A prompt no other test sends, to pick this test's requests out of `server.received`."""
    return f"Why stream? [{uuid.uuid4().hex}]"


def received_for(server: PlaybackServer, prompt: str) -> list[Received]:
    """The requests the server received whose user message is `prompt`, in arrival order."""
    return [
        record
        for record in list(server.received)
        if any(m.get("content") == prompt for m in record.body.get("messages", []))
    ]


def check_a_late_read_keeps_the_arrival(server: PlaybackServer, prompt: str) -> None:
    """On a busy client the reading thread can wake after its bytes arrived: the chunk's moment
    must still be their arrival (the kernel's receive stamp), not when the thread read them.

    A streamed call of the "slow" script (one word a second) on `server` has its reader held
    on the call's lock at its first chunk until the server has sent the second: read only
    after the release, the second chunk must still be stamped before it, between the server's
    stamps just before and just after its write (on loopback the bytes arrive inside the write).
    """
    call = Call(endpoint_for(server.base_url, "slow"), prompt, Params(), "streaming")
    thread = threading.Thread(target=call.run, daemon=True)
    with call.progress:
        thread.start()
        wait_until(lambda: (records := received_for(server, prompt)) and len(records[0].sent) >= 2,
                   what="the server to send a second chunk while the reader is held")
        released = time.perf_counter()
    with call.progress:
        assert call.progress.wait_for(lambda: len(call.trace.chunks) >= 2, 5.0)
    call.cancel()
    thread.join(5)
    [request] = received_for(server, prompt)
    second = call.trace.chunks[1]
    assert second.t < released, "stamped when read, not when its bytes arrived"
    assert request.sending[1] - 0.001 <= second.t <= request.sent[1] + 0.001, \
        (request.sending[1], second.t, request.sent[1])


@pytest.fixture
def received(playback) -> Callable[[str], list[Received]]:
    """`received(prompt)`: what the shared playback server received for that prompt."""
    return lambda prompt: received_for(playback, prompt)


DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `both_databases` that uses a run log runs once on each database."""
    if ("database" in metafunc.fixturenames
            and metafunc.definition.get_closest_marker("both_databases")):
        metafunc.parametrize("database", DATABASES, indirect=True)


@pytest.fixture
def database(request) -> str:
    """Which database the run log is on: SQLite unless the test is marked `both_databases`."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres() -> Cluster:
    """A throwaway PostgreSQL cluster for the whole session (tests/support/postgres.py).
    Missing PostgreSQL skips its tests, except in CI, where it fails them."""
    try:
        cluster = Cluster.start()
    except PostgresMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture
def store_url(database, tmp_path, request) -> str:
    """A fresh, empty run log's URL: a SQLite file, or a new PostgreSQL database."""
    if database == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    cluster = request.getfixturevalue("postgres")
    url = cluster.new_database()
    yield url
    cluster.drop_database(url)


@pytest.fixture
def store(store_url) -> Store:
    """A fresh run log: a temporary SQLite file (and a PostgreSQL database when marked
    `both_databases`)."""
    log = Store(store_url)
    yield log
    log.engine.dispose()


ROOT = Path(__file__).resolve().parents[1]
APP_TIMEOUT_S = 60
"""An AppTest script run's limit: generous, for a loaded 2-core machine."""


@pytest.fixture
def open_app(store_url, monkeypatch) -> Callable[..., AppTest]:
    """`open_app(base_url, model, page=None, **env)`: the whole app (`streamlit_app.py`, its
    navigation and sidebar) in AppTest, pointed at a server by the environment variables a user
    would set, with this test's run log (`store_url`), switched to `page` if given."""
    for name in (
        "STREAMRACE_API_KEY",
        "OPENAI_API_KEY",
        "STREAMRACE_MODEL_PATH",
        "STREAMRACE_MODERATION_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)  # .streamlit/ and the pages are found from the project root

    def open_(base_url: str, model: str, page: str | None = None, **env: str) -> AppTest:
        env = {
            "STREAMRACE_ENDPOINT": "compatible",
            "STREAMRACE_BASE_URL": base_url,
            "STREAMRACE_MODEL": model,
            "DATABASE_URL": store_url,
            **env,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=APP_TIMEOUT_S)
        at.run()
        if page is not None:
            at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright (never `playwright install`)."""
    from tests.support.browser_harness import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def ctrl_c_reaches_the_commands():
    """A terminal's Ctrl-C finds a command whose SIGINT is not ignored. A suite started in the
    background (`make test &`, nohup, a job runner) inherits SIGINT ignored and would hand that
    on to the commands it starts, which then rightly ignore the test's SIGINT (seen in a soak
    run: every SIGINT case ran to its end). A handler of ours, unlike "ignored", is not
    inherited across exec: the commands start with the default, as from a terminal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)

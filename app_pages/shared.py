"""What every page shares: the endpoint picker, the current settings, the run log.

Not a page itself (st.navigation lists the pages); the UI-free work is in lib/.
The folder is `app_pages/`, not `pages/`: with a `pages/` folder Streamlit runs its old
auto-navigation for a fresh server's first direct link (e.g. /race), bypassing st.navigation
and streamlit_app.py until someone opens "/".
"""

from __future__ import annotations

import faulthandler
import hashlib
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

import streamlit as st

from app_pages.access import configured_key_for, current_owner
from app_pages.kept import index_of
from lib import replay
from lib.core import calls, runs
from lib.core.config import ENDPOINT_KINDS, OPENAI_BASE_URL, Settings, key_for, load_settings
from lib.core.errors import StreamRaceError
from lib.core.runs import Run
from lib.serving import embedded
from lib.storage.store import Store

KIND_LABELS = {
    "local": "🖥️ Embedded model (llama.cpp)",
    "openai": "☁️ OpenAI",
    "compatible": "🔌 OpenAI-compatible URL",
    "replay": "🎞️ Replay a recording",
}
REPLAY_CHOICES = "replay_choices"  # session key: the models "Use in race" chose, newest first


@st.cache_resource(show_spinner=False)
def _run_log(url: str | None) -> Store:
    """One Store (one engine and pool) per database URL for the whole server."""
    return Store(url)


def run_log(url: str | None) -> Store:
    """The run log at `url`; what it writes is owned by the signed-in user (sign-in on)."""
    return _run_log(url).owned_by(current_owner())


@st.cache_resource(show_spinner=False)
def _prestart_embedded(model_path: str | None) -> threading.Thread:
    """Start the embedded servers in the background as soon as the app is opened."""
    def start() -> None:
        try:
            embedded.ensure_lanes(model_path)
        except StreamRaceError:
            pass  # the Run button reports it, with the message
    thread = threading.Thread(target=start, daemon=True, name="embedded-prestart")
    thread.start()
    return thread


def embedded_ready(model_path: str | None) -> bool:
    """Whether the background start of the embedded servers has ended (ready or failed)."""
    return not _prestart_embedded(model_path).is_alive()


@st.cache_resource(show_spinner=False)
def stacks_on_signal() -> None:
    """`kill -USR1 <app pid>` writes every thread's stack to the app's stderr (its log): what a
    page that stopped drawing is waiting for on the server, without stopping the app."""
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)


@st.cache_resource(show_spinner=False)
def warm_up_at_start(database_url: str | None) -> threading.Thread:
    """Pay the first call's cost (Mirascope's and the SDK's lazy imports, lib.core.calls.warm_up)
    when the app starts, in the background, not on the first click; open the run log too
    (a page reports an unusable one)."""
    try:
        run_log(database_url)
    except Exception:  # noqa: BLE001 - not cached: the page opening it shows the message
        pass

    def warm() -> None:
        try:
            calls.warm_up()
        except Exception:  # noqa: BLE001 - a race warms up again (and reports) if this failed
            pass
    thread = threading.Thread(target=warm, daemon=True, name="warm-up")
    thread.start()
    return thread


def settle_previous(results: dict) -> None:
    """A script run that was interrupted (a click, Stop, another page) has stopped, but the run
    it started (a race, a benchmark, a guardrails run) goes on in its own threads: cancel it
    and wait until its rows are logged. (With `runner.fastReruns` on, Streamlit's default, the
    interrupted script could even still be unwinding; .streamlit/config.toml turns it off.)

    `results` is the page's plain dict in the session; `running` is the lib.core.runs.Owned
    that `owned_run` put there.
    """
    running = results.get("running")
    if running is not None:
        running.cancel()
        running.wait(30)


@contextmanager
def owned_run(
    run: Run,
    results: dict,
    key: str,
    *,
    store: Store | None = None,
    rows: Callable[[], list] | None = None,
    grace_s: float = runs.GRACE_S,
) -> Iterator[runs.Owned]:
    """Start a page's run (a race, a benchmark, a guardrails run) and draw it in the block.

    The run is owned before its first request leaves (`start_owned`), and between the start and
    the `try` of `drawing` there is no Streamlit call, so nothing can interrupt the script there.
    """
    owned = start_owned(run, results, key, store=store, rows=rows)
    with drawing(owned, grace_s):
        yield owned


def start_owned(
    run: Run,
    results: dict,
    key: str,
    *,
    store: Store | None = None,
    rows: Callable[[], list] | None = None,
) -> runs.Owned:
    """Start `run` as a lib.core.runs.Owned: when it ends, however, a watcher thread logs its
    `rows()` to `store` (a run that logs itself, the benchmark, has none) and keeps them (or the
    run) in `results[key]`; `results["running"]` holds it until then, for `settle_previous`
    (the next script run cancels it and waits for its rows) and a closed tab cancels it.

    A page may start its run from a button's callback (before the page is rebuilt) and draw it
    later in the run under `drawing`: a script run interrupted in between leaves it to the next
    run's `settle_previous`, which cancels it; it is logged once either way.
    """

    def on_end() -> None:
        # On the watcher thread: no Streamlit call here (the script may be gone).
        if rows is not None:
            logged = rows()
            if store is not None:
                store.log(logged)
            results[key] = logged
        else:
            results[key] = run
        if results.get("running") is owned:
            results.pop("running", None)

    owned = runs.Owned(run, on_end)
    results["running"] = owned
    owned.start()
    cancel_if_session_closes(owned)
    return owned


@contextmanager
def drawing(owned: runs.Owned, grace_s: float = runs.GRACE_S) -> Iterator[runs.Owned]:
    """Draw an owned run in the block. However the block ends other than by finishing (Stop, a
    re-click, a page switch, a closed tab: Streamlit raises at the block's next call), the run
    is cancelled; a block that finished returns once its rows are logged."""
    completed = False
    try:
        yield owned
        completed = True
    finally:
        if not completed:
            owned.cancel()
    owned.wait(grace_s)


SESSION_GONE_S = 1.0
"""How long a browser session must stay disconnected before its run is cancelled (a network
blip reconnects within that)."""


def cancel_if_session_closes(owned: runs.Owned) -> None:
    """Cancel the run when its browser session goes away (a closed tab, a lost network).

    Streamlit keeps a disconnected session's script running for a possible reconnect, and the
    script only learns of it at its next call: a long answer would be generated, and paid
    for, for nobody. A thread watches the session (no Streamlit element call: only the
    runtime's bookkeeping) until the run has ended.
    """
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not runtime.exists():
        return  # no browser (AppTest, bare mode): nobody to leave
    session_id, instance = ctx.session_id, runtime.get_instance()

    def watch() -> None:
        gone_since = None
        while not owned.wait(0.25):
            if instance.is_active_session(session_id):
                gone_since = None
            elif gone_since is None:
                gone_since = time.monotonic()
            elif time.monotonic() - gone_since >= SESSION_GONE_S:
                owned.cancel()
                return

    threading.Thread(target=watch, daemon=True, name="session-watch").start()


class Changes:
    """Sends a placeholder's Markdown only when it changed: every element sent costs the
    browser a render, and a fast stream would otherwise send the same line many times."""

    def __init__(self) -> None:
        self._sent: dict[int, str] = {}

    def differs(self, slot, text: str) -> bool:
        return self._sent.get(id(slot)) != text

    def markdown(self, slot, text: str) -> None:
        self._send(slot, text, slot.markdown)

    def caption(self, slot, text: str) -> None:
        self._send(slot, text, slot.caption)

    def _send(self, slot, text: str, draw) -> None:
        if self.differs(slot, text):
            self._sent[id(slot)] = text
            draw(text) if text else slot.empty()


def current_settings() -> Settings:
    """The settings chosen in the sidebar, or the configured ones (pages run alone in tests)."""
    return st.session_state.get("settings") or load_settings()


def endpoint_sidebar() -> Settings:
    """The endpoint picker; starts from the configuration and keeps keys masked.

    A configuration that names no known endpoint kind stops the app with its one-line message:
    racing another endpoint than the one configured would measure the wrong thing.
    """
    try:
        base = load_settings()
    except StreamRaceError as error:
        st.error(error.message, icon="🚨")
        st.stop()
    # Set as state: other pages select an endpoint too ("Use in race"). Each widget's default
    # is also its value as the session holds it (a typed key excepted: a default travels to the
    # browser in every message): a browser that rebuilds a widget from its default then sends
    # back what it showed (app_pages/kept.py says when).
    chosen = st.session_state.setdefault("endpoint_kind", base.endpoint_kind)
    with st.sidebar:
        st.header("Endpoint")
        kind = st.selectbox(
            "Endpoint", ENDPOINT_KINDS, format_func=KIND_LABELS.get, key="endpoint_kind",
            index=index_of(ENDPOINT_KINDS, chosen),
        )
        settings = base.with_overrides(endpoint_kind=kind)
        if kind == "replay":
            settings = replace(
                settings, base_url="", model=replay_picker(base), api_key=None, key_origin=None
            )
        elif kind == "local":
            _prestart_embedded(base.model_path)
            st.caption(
                "Gemma 3 270M on 127.0.0.1, served by llama.cpp's llama-server. "
                "Set STREAMRACE_MODEL_PATH for another GGUF file."
            )
        else:
            url_key, model_key, key_key = picker_keys(kind)
            default_url = OPENAI_BASE_URL if kind == "openai" else base.base_url
            url = st.text_input(
                "Base URL",
                value=st.session_state.get(url_key, default_url),
                key=url_key,
                disabled=kind == "openai",
                placeholder="http://127.0.0.1:11434/v1",
            )
            default_model = base.model if base.endpoint_kind == kind else (
                "gpt-4o-mini" if kind == "openai" else "")
            model = st.text_input(
                "Model",
                value=st.session_state.get(model_key, default_model),
                key=model_key,
                placeholder="e.g. llama3.2 or org/model",
            )
            configured_key, origin = key_for(kind)
            typed = st.text_input(
                "API key",
                type="password",
                key=key_key,
                placeholder="(optional)" if kind == "compatible" else "sk-…",
                help="Never stored, logged or exported.",
            )
            if typed:
                api_key, origin = typed, "typed"
            else:
                configured_url = OPENAI_BASE_URL if kind == "openai" else base.base_url
                api_key = configured_key_for(url, configured_url, configured_key)
                if configured_key and api_key is None:
                    st.caption("🔒 The configured key goes only to its configured URL: type a "
                               "key for this one.")
            if api_key:
                st.caption(f"🔑 Key set ({origin}).")
            elif kind == "openai":
                st.caption("No key: set OPENAI_API_KEY or type one above.")
            # Built whole, not overridden: a key configured for one kind never follows
            # the user to another endpoint.
            settings = replace(
                settings, base_url=url, model=model, api_key=api_key, key_origin=origin
            )
    st.session_state["settings"] = settings
    st.session_state[_SETTINGS_FROM] = _picker_values()
    return settings


_SETTINGS_FROM = "settings_from"
REPLAY_MODEL = "replay_model"
"""The sidebar's Recording widget (the Replay page chooses it too)."""


def picker_keys(kind: str) -> tuple[str, str, str]:
    """The sidebar widgets' keys for an endpoint kind's Base URL, model and typed API key: the
    widgets, their defaults and the digest below read the same names."""
    return f"base_url_{kind}", f"model_{kind}", f"api_key_{kind}"


def _picker_values() -> str:
    """The picker's widget values, as a digest (a typed key among them)."""
    state = st.session_state
    kind = state.get("endpoint_kind")
    values = (kind, *(state.get(key) for key in picker_keys(kind)), state.get(REPLAY_MODEL))
    return hashlib.sha256(repr(values).encode()).hexdigest()


def settings_current() -> bool:
    """Whether `current_settings()` was built from the picker's values as they are now. In a
    callback they may be newer: a value typed in the sidebar and a click on Run can reach the
    app together (or the run the typing started was cut short by the click, on a loaded
    machine), and the race would go to the endpoint or model shown before."""
    return st.session_state.get(_SETTINGS_FROM) == _picker_values()


def replay_picker(base: Settings) -> str:
    """What the replay endpoint plays: a saved recording, or a what-if chosen on the Replay page."""
    try:
        names = list(replay.Recordings(run_log(base.database_url)))
    except StreamRaceError as error:
        st.caption(error.message)
        names = []
    configured = [base.model] if base.endpoint_kind == "replay" and base.model else []
    options = list(dict.fromkeys([*st.session_state.get(REPLAY_CHOICES, []), *configured, *names]))
    if not options:
        st.caption("No recordings yet: save one on the 🎞️ Replay page.")
        return ""
    if st.session_state.get(REPLAY_MODEL) not in options:
        st.session_state.pop(REPLAY_MODEL, None)  # deleted since: fall back to the first
    shown = st.session_state.get(REPLAY_MODEL)
    model = st.selectbox("Recording", options, key=REPLAY_MODEL, format_func=replay_label,
                         index=index_of(options, shown))
    st.caption(
        "Played on 127.0.0.1 at its recorded offsets. Runs are logged as `replay` or "
        "`simulated`, never as live measurements."
    )
    return model


def replay_label(model: str) -> str:
    try:
        return replay.label(replay.parse_model(model))
    except StreamRaceError:
        return model

"""The race: one prompt, blocking on the left, streamed on the right, at the same instant."""

import os
from dataclasses import replace

import streamlit as st

from app_pages import screen_clock
from app_pages.access import check_lane_keys, check_spend, current_owner
from app_pages.endpoints import lane_endpoints
from app_pages.kept import Kept
from app_pages.race_lanes import (
    draw_lanes,
    lane_columns,
    lane_setup,
    lane_specs,
    lanes_on,
    show_lanes_outcome,
)
from app_pages.race_panels import ThinkingBlock, folded_thinking, reasoning_cards
from app_pages.race_structured import (
    FREE_TEXT,
    chosen_structure,
    draw_structured_race,
    redraw_lanes,
    schema_controls,
    structured_outcome,
)
from app_pages.shared import (
    Changes,
    current_settings,
    drawing,
    embedded_ready,
    run_log,
    settings_current,
    settle_previous,
    start_owned,
)
from lib import replay
from lib.core import metrics
from lib.core.calls import check_request
from lib.core.config import load_settings
from lib.core.errors import StreamRaceError
from lib.core.thoughts import EFFORTS
from lib.core.trace import MODES, Params
from lib.endpoints.resolve import default_params, resolve
from lib.present import charts
from lib.present.display import (
    SHOWN_CHARS,
    MarkdownBlocks,
    clipped_note,
    plain_markdown,
    rate,
    seconds,
    shown,
    status_line,
    two_clocks,
)
from lib.race import PRESETS, Race, resolve_lanes, summary_line
from lib.race.lanes import spec_settings
from lib.storage.store import to_csv

RECENT_COLUMNS = ["created_at", "source", "lane_label", "mode", "status", "model", "perceived_s",
                  "screen_first_s", "ttft_s", "e2e_s", "output_tokens", "token_source",
                  "output_tps", "error", "prompt"]
# The prompt and its token limit survive a visit to another page (app_pages/kept.py). A string
# here would be drawn on the page: Streamlit's magic writes bare expressions of a page script.
KEPT = Kept("race", prompt=PRESETS[1].prompt, max_tokens=PRESETS[1].max_tokens)
STARTING = {"local": "Starting the embedded model (once per app process)…",
            "replay": "Starting the replay server (once per app process)…"}


def apply_preset() -> None:
    preset = next((p for p in PRESETS if p.label == st.session_state.get("race_preset")), None)
    if preset:
        KEPT.set(prompt=preset.prompt, max_tokens=preset.max_tokens)
        st.session_state["race_schema"] = preset.schema or FREE_TEXT


def new_block() -> None:
    """Handed to st.write_stream: it closes its Markdown element; the next text opens another."""


def results_dict() -> dict:
    """The page's plain dict in the session: the running race, the last one, their outcome."""
    return st.session_state.setdefault("race_results", {})


def begin_race(results: dict) -> None:
    """Start a race from the widgets' values, owned from its start (start_owned).

    Called from the Run button's callback, before the page is rebuilt: the requests leave at
    once, and the page draws the race in `results["starting"]` when it gets there. A refused
    request (or an endpoint that cannot start) leaves its message in `results["refused"]`.
    """
    settle_previous(results)  # a re-click: the previous race is cancelled and logged first
    state = st.session_state
    # The sidebar's choices as the last run drew them (a widget change reruns the page first);
    # the run log's URL comes from the configuration alone, read now.
    settings = replace(current_settings(), database_url=load_settings().database_url)
    effort = state.get("race_reasoning_effort", "default")
    params = Params(
        temperature=float(state.get("race_temperature", 0.7)),
        max_tokens=int(state.get(KEPT.key("max_tokens"), KEPT.get("max_tokens"))),
        seed=int(state.get("race_seed", 42)),
        timeout_s=float(state.get("race_timeout_s", 60.0)),
        reasoning_effort=None if effort == "default" else effort,
        show_thinking=bool(state.get("race_show_thinking", False)),
    )
    prompt = state.get(KEPT.key("prompt"), KEPT.get("prompt"))
    try:
        check_request(prompt, params)  # before anything starts: nothing is sent for bad input
        store = run_log(settings.database_url)
        if lanes_on():
            check_lane_keys(lane_specs())  # shared: no key from the app's environment
            named = lane_endpoints(settings)
            lanes = resolve_lanes(lane_specs(), named, settings, os.environ)
            race = Race(lanes, prompt, params, structure=chosen_structure("compatible"))
            note = next((lane.endpoint.note for lane in lanes if lane.endpoint.note), None)
            spending = [spec_settings(spec, named, settings, os.environ)[1]
                        for spec in lane_specs()]
        else:
            endpoint = resolve(settings)  # warm: the app prestarted it (streamlit_app.py)
            race = Race(endpoint, prompt, default_params(endpoint, **params.as_dict()),
                        structure=chosen_structure(endpoint.kind))
            note = endpoint.note
            spending = [settings]
        check_spend(*spending)  # shared: the presenter's key has a limit per person
    except StreamRaceError as error:
        results["refused"] = error.message
        return
    results["lanes_race"] = None if race.is_default else race.race_id
    owned = start_owned(race, results, "last_race", store=store, rows=lambda: list(race.traces))
    results["starting"] = (race, owned, note)


def run_clicked() -> None:
    """The Run button's callback: the race starts before anything of the page is rebuilt,
    unless the endpoint is still starting or the sidebar's choice has changed since it was
    drawn (then the page starts it under a spinner, once the sidebar is drawn again)."""
    if settings_current() and not endpoint_starting():
        begin_race(results_dict())


def endpoint_starting() -> bool:
    """Whether the race needs the embedded model and it is still starting."""
    settings = current_settings()
    kinds = ({lane_endpoints(settings)[spec.endpoint].endpoint_kind for spec in lane_specs()
              if spec.endpoint in lane_endpoints(settings)} if lanes_on()
             else {settings.endpoint_kind})
    return "local" in kinds and not embedded_ready(settings.model_path)


def on_screen_report(value: dict) -> None:
    """The browser's figures for a race that just ended: into its rows and its traces."""
    race_id, lanes = value.get("race_id"), value.get("lanes") or {}
    results = results_dict()
    # The default race's lanes are keyed by mode, a race of lanes' by lane index.
    figures: dict[int | str, tuple] = {
        (int(lane) if lane.isdigit() else lane): (pair[0], pair[1])
        for lane, pair in lanes.items() if lane in MODES or lane.isdigit()}
    for trace in results.get("last_race", ()):
        lane = trace.lane_index if trace.lane_index in figures else trace.mode
        if trace.race_id == race_id and lane in figures:
            trace.screen_first_s, trace.screen_done_s = figures[lane]
    if race_id and figures:
        try:
            run_log(current_settings().database_url).set_screen(race_id, figures)
        except StreamRaceError:
            pass  # the page shows them; the run log keeps its server-side figures
    if results.get("screen_pending") == race_id:
        results.pop("screen_pending", None)


def draw_race(race: Race, left, right) -> None:
    """The running race in the two panels, until both calls have ended."""
    blocking_status, blocking_thinking = left.empty(), left.empty()
    # Keyed per race: the browser's clock (screen_clock) finds each lane's text by its key.
    blocking_body = left.container(key=screen_clock.lane_key("blocking", race.race_id)).empty()
    stream_status = right.empty()
    show_thinking = race.streaming.params.show_thinking
    stream_lane = race.calls.index(race.streaming)
    stream_body = right.container(
        key=screen_clock.lane_key("streaming", race.race_id) if show_thinking else None)
    thinking = ThinkingBlock(stream_body.empty())  # above the answer, in the streamed panel
    answer = stream_body if show_thinking else stream_body.container(
        key=screen_clock.lane_key("streaming", race.race_id))
    changes = Changes()
    show = changes.markdown

    def draw_blocking() -> None:
        """The blocking answer, as soon as it has arrived: not after the stream has ended."""
        if race.blocking.trace.text:
            blocking_body.markdown(shown(race.blocking.trace.text))
            race.mark_blocking_shown()
            folded_thinking(blocking_thinking, race.blocking.trace)
        show(blocking_status, status_line(race.blocking.trace))

    def tick() -> None:
        elapsed = race.elapsed()
        if not race.blocking.trace.done:
            show(blocking_status, f"⬜ **Blank screen** · {elapsed:.1f} s")
        elif blocking_status_pending():
            draw_blocking()
        thinking.draw(race.streaming.trace, race.thinking_shown[stream_lane], expanded=True)
        first = metrics.perceived_s(race.streaming.trace)
        if not race.streaming.trace.done:
            show(stream_status, f"⚡ First words after **{seconds(first)}** · streaming…" if first
                 else f"⏳ Waiting for the first words · {elapsed:.1f} s")

    def blocking_status_pending() -> bool:
        return changes.differs(blocking_status, status_line(race.blocking.trace))

    def feed():
        blocks, room = MarkdownBlocks(), SHOWN_CHARS
        for frame in race.frames():
            tick()
            frame, room = frame[:room], room - len(frame[:room])
            for piece in blocks.split(plain_markdown(frame)) if frame else ():
                yield piece if piece is not None else new_block
        note = clipped_note(len(race.streaming.trace.text))
        if note:
            yield note

    with answer:
        st.write_stream(feed())
    show(stream_status, status_line(race.streaming.trace))
    while not race.blocking.wait(0.05):
        tick()
    if blocking_status_pending():
        draw_blocking()


def show_outcome(blocking, streaming, left, right, live: bool) -> None:
    """Both panels' outcome (their text too when redrawn), metric cards, the timeline."""
    structured = streaming.request.structure is not None
    if not live and structured:
        redraw_lanes(blocking, streaming, left, right)
    for trace, column in ((blocking, left), (streaming, right)):
        if not live and not structured:
            column.markdown(status_line(trace))
            folded_thinking(column, trace)
            column.markdown(shown(trace.text))
        if trace.status == "error":
            column.error(plain_markdown(trace.error), icon="🚨")  # the server's words: text
    b, s = metrics.compute(blocking), metrics.compute(streaming)
    factor = metrics.speedup(blocking, streaming)
    st.subheader("What the user experienced")
    not_live = replay.describe_run(streaming.source, streaming.request.transform)
    if not_live:
        st.info(not_live, icon="🎞️")
    cards = st.columns(4)
    server_clock = "Server clock: from the race's start to the text handed to the page."
    cards[0].metric("⏳ Blank screen, blocking", seconds(b.perceived_s), border=True,
                    help=server_clock)
    cards[1].metric("⚡ Blank screen, streaming", seconds(s.perceived_s),
                    delta=f"{factor:.1f}× sooner" if factor else None, border=True,
                    help=server_clock)
    # A rate over the few chunks before a failure is noise (two chunks 1 ms apart: 2,000 tok/s);
    # the run log keeps it, the cards show rates of completed calls only.
    cards[2].metric(
        "⚡ Streaming tokens/s",
        rate(s.output_tps if streaming.status == "ok" else None),
        border=True,
        help=f"Time to first token {seconds(s.ttft_s)}; worst stall {seconds(s.icl_max_s)}",
    )
    cards[3].metric(
        "⏳ Blocking tokens/s",
        rate(b.output_tps if blocking.status == "ok" else None),
        border=True,
        help=f"{b.output_tokens} tokens ({b.token_source})",
    )
    reasoning_cards(blocking, streaming)
    if structured:
        structured_outcome(blocking, streaming, results_dict().get("field_lags"))
    for label, trace in (("⏳ Blocking", blocking), ("⚡ Streaming", streaming)):
        st.markdown(f"{label} · {two_clocks(trace)}")
    if factor:
        on_screen = metrics.screen_speedup(blocking, streaming)
        st.success(summary_line(blocking, streaming) + (
            f" On your screen (the browser's clock, from your click): {on_screen:.1f}× sooner."
            if on_screen else ""), icon="🏁")
    st.plotly_chart(
        charts.race_timeline(blocking, streaming),
        key="race_timeline",
        config={"displaylogo": False},
    )


def recent_runs() -> None:
    try:
        frame = run_log(current_settings().database_url).recent(50, owner=current_owner())
    except StreamRaceError as error:
        st.error(error.message)
        return
    st.subheader("Recent runs")
    if frame.empty:
        st.caption("No runs logged yet.")
        return
    seconds_column = {
        name: st.column_config.NumberColumn(name, format="%.3f s")
        for name in ("perceived_s", "screen_first_s", "ttft_s", "e2e_s")
    }
    st.dataframe(
        frame[RECENT_COLUMNS],
        hide_index=True,
        key="recent_runs",
        column_config={
            **seconds_column,
            "output_tps": st.column_config.NumberColumn("output_tps", format="%.1f"),
        },
    )
    st.download_button(
        "⬇️ Download CSV", to_csv(frame, current_owner()), "streamrace-runs.csv", "text/csv",
        key="download_csv", on_click="ignore",
    )


st.title("🏁 StreamRace")
st.caption(
    "The same prompt to the same model at the same instant: a blocking call on the left, "
    "the same request streamed on the right. Every run is timed and logged."
)
st.pills("Preset", [p.label for p in PRESETS], key="race_preset", on_change=apply_preset)
KEPT.restore()
prompt = st.text_area("Prompt", key=KEPT.key("prompt"), height=90, **KEPT.watch("prompt"))
schema_controls()
with st.expander("Parameters"):
    cols = st.columns(4)
    temperature = cols[0].slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="race_temperature")
    max_tokens = cols[1].number_input(
        "Max tokens", 1, 4096, key=KEPT.key("max_tokens"), **KEPT.watch("max_tokens")
    )
    seed = cols[2].number_input("Seed", 0, 2**31 - 1, 42, key="race_seed")
    timeout_s = cols[3].number_input(
        "Timeout (s)",
        1.0,
        600.0,
        60.0,
        key="race_timeout_s",
        help="Longest wait for any byte: first byte or between chunks.",
    )
    reasoning = st.columns(4)
    effort = reasoning[0].selectbox(
        "Reasoning effort", EFFORTS, key="race_reasoning_effort",
        help="Sent as `reasoning_effort` to reasoning models (off sends `none`); "
             "default sends nothing.")
    show_thinking = reasoning[1].toggle(
        "Thinking counts as text", key="race_show_thinking",
        help="When on, the blank screen of the streamed lane ends at its first thought, not at "
             "its first answer word (the thinking block shows either way).")
with st.expander("🛣️ Lanes: endpoints and models side by side", expanded=lanes_on()):
    lane_setup(lane_endpoints(current_settings()))
buttons = st.columns([1, 1, 6])
with buttons[2]:  # above the race: the clock loads while a race started by a quick click runs
    screen_clock.listen()
run = buttons[0].button("▶️ Run race", type="primary", key=screen_clock.RUN_BUTTON_KEY,
                        on_click=run_clicked)
stop = buttons[1].button("⏹️ Stop", key="race_stop")

results = results_dict()
started = results.pop("starting", None)
if started is None:
    settle_previous(results)
if run and started is None and "refused" not in results:
    with st.spinner(STARTING.get(current_settings().endpoint_kind, "Checking the endpoint…"),
                    show_time=True):
        begin_race(results)  # the endpoint was still starting: not in the callback
    started = results.pop("starting", None)
last = results.get("last_race") if started is None else None
lanes_race = (started is not None and not started[0].is_default) or (
    last is not None and last[0].race_id == results.get("lanes_race"))
if lanes_race:  # one column per lane, labelled
    columns = lane_columns(started[0].traces if started is not None else last)
else:
    left, right = st.columns(2, gap="large")
    left.subheader("⏳ Blocking call")
    right.subheader("⚡ Streaming call")

if started is not None:
    live_race: Race = started[0]
    if started[2]:
        st.info(started[2], icon="🔄")
    with drawing(started[1]):
        if lanes_race:
            draw_lanes(live_race, columns)
        elif live_race.structure is not None:
            results["field_lags"] = draw_structured_race(live_race, left, right).lags()
        else:
            draw_race(live_race, left, right)
    results["screen_pending"] = live_race.race_id
    if lanes_race:
        show_lanes_outcome(list(live_race.traces), columns, live=True)
    else:
        blocking, streaming = live_race.traces
        show_outcome(blocking, streaming, left, right, live=True)
elif "refused" in results:
    st.warning(results.pop("refused"), icon="✋")
elif last is not None:
    if stop:
        st.info(
            "Stopped: the requests still running were cancelled; what they had received "
            "is kept and logged as cancelled.",
            icon="⏹️",
        )
    if lanes_race:
        show_lanes_outcome(list(last), columns, live=False)
    else:
        blocking, streaming = last
        show_outcome(blocking, streaming, left, right, live=False)

recent_runs()
# Last, so the browser answers when the page is whole (the click listener is mounted above
# the race: screen_clock.listen).
screen_clock.report(results.get("screen_pending"), on_screen_report)

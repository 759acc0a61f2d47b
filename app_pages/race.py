"""The race: one prompt, blocking on the left, streamed on the right, at the same instant."""

import threading

import streamlit as st

from lib import charts, endpoints, metrics, replay
from lib.display import plain_markdown, rate, seconds, status_line
from lib.errors import StreamRaceError
from lib.race import PRESETS, Race, default_params, summary_line
from lib.store import to_csv
from app_pages.shared import current_settings, run_log

RECENT_COLUMNS = ["created_at", "source", "mode", "status", "model", "perceived_s", "ttft_s",
                  "e2e_s", "output_tokens", "token_source", "output_tps", "error", "prompt"]
# Widget values kept across pages under keys of their own: Streamlit drops a widget's state on
# pages that do not draw it, and a value restored with setdefault can miss the browser after a
# page switch (st.switch_page from the Replay page left the prompt box empty while runs used it).
KEPT = {"prompt": PRESETS[1].prompt, "max_tokens": PRESETS[1].max_tokens}
STARTING = {"local": "Starting the embedded model (once per app process)…",
            "replay": "Starting the replay server (once per app process)…"}


def apply_preset() -> None:
    preset = next((p for p in PRESETS if p.label == st.session_state.get("preset")), None)
    if preset:
        st.session_state["kept_prompt"] = preset.prompt
        st.session_state["kept_max_tokens"] = preset.max_tokens


def keep(key: str) -> None:
    st.session_state[f"kept_{key}"] = st.session_state[key]


def settle_previous(results: dict) -> None:
    """Streamlit starts the next run while the interrupted one unwinds on its own thread:
    cancel the race that was running and wait until its runs are logged."""
    running = results.get("running")
    if running is not None:
        running.cancel()
        results["settled"].wait(15)


def run_race(race: Race, store, results: dict, left, right) -> None:
    """Run a started race into the two panels; Stop or a re-click cancels it (finally).

    The finished (or cancelled) traces go to the run log and into `results`, a plain dict
    kept in the session.
    """
    settled = threading.Event()
    results.update(running=race, settled=settled)
    blocking_status, blocking_body = left.empty(), left.empty()
    stream_status, stream_body = right.empty(), right.container()
    completed = False

    blocking_drawn = False

    def draw_blocking() -> None:
        """The blocking answer, as soon as it has arrived: not after the stream has ended."""
        nonlocal blocking_drawn
        if race.blocking.trace.text:
            blocking_body.markdown(plain_markdown(race.blocking.trace.text))
            race.mark_blocking_shown()
        blocking_status.markdown(status_line(race.blocking.trace))
        blocking_drawn = True

    def tick() -> None:
        elapsed = race.elapsed()
        if race.blocking.trace.done:
            if not blocking_drawn:
                draw_blocking()
        else:
            blocking_status.markdown(f"⬜ **Blank screen** · {elapsed:.1f} s")
        first = metrics.perceived_s(race.streaming.trace)
        if not race.streaming.trace.done:
            stream_status.markdown(f"⚡ First words after **{seconds(first)}** · streaming…" if first
                                   else f"⏳ Waiting for the first words · {elapsed:.2f} s")

    def feed():
        for frame in race.frames():
            tick()
            if frame:
                yield plain_markdown(frame)

    try:
        with stream_body:
            st.write_stream(feed())
        stream_status.markdown(status_line(race.streaming.trace))
        while not race.blocking.wait(0.05):
            tick()
        if not blocking_drawn:
            draw_blocking()
        completed = True
    finally:
        # During a Stop or re-click the script is being interrupted: any Streamlit call here,
        # even a session_state assignment, would raise again before the runs are logged.
        if not completed:
            race.cancel()
        race.join(10)
        store.log(race.traces)
        results["last_race"] = race.traces
        results.pop("running", None)
        settled.set()


def show_outcome(blocking, streaming, left, right, live: bool) -> None:
    """Both panels' outcome (their text too when redrawn), metric cards, the timeline."""
    for trace, column in ((blocking, left), (streaming, right)):
        if not live:
            column.markdown(status_line(trace))
            column.markdown(plain_markdown(trace.text))
        if trace.status == "error":
            column.error(trace.error, icon="🚨")
    b, s = metrics.compute(blocking), metrics.compute(streaming)
    factor = metrics.speedup(blocking, streaming)
    st.subheader("What the user experienced")
    not_live = replay.describe_run(streaming.source, streaming.request.transform)
    if not_live:
        st.info(not_live, icon="🎞️")
    cards = st.columns(4)
    cards[0].metric("⏳ Blank screen, blocking", seconds(b.perceived_s), border=True)
    cards[1].metric("⚡ Blank screen, streaming", seconds(s.perceived_s),
                    delta=f"{factor:.1f}× sooner" if factor else None, border=True)
    cards[2].metric("⚡ Streaming tokens/s", rate(s.output_tps), border=True,
                    help=f"Time to first token {seconds(s.ttft_s)}; worst stall {seconds(s.icl_max_s)}")
    cards[3].metric("⏳ Blocking tokens/s", rate(b.output_tps), border=True,
                    help=f"{b.output_tokens} tokens ({b.token_source})")
    if factor:
        st.success(summary_line(blocking, streaming), icon="🏁")
    st.plotly_chart(charts.race_timeline(blocking, streaming), key="race_timeline",
                    config={"displaylogo": False})


def recent_runs() -> None:
    try:
        frame = run_log(current_settings().database_url).recent(50)
    except StreamRaceError as error:
        st.error(error.message)
        return
    st.subheader("Recent runs")
    if frame.empty:
        st.caption("No runs logged yet.")
        return
    seconds_column = {name: st.column_config.NumberColumn(name, format="%.3f s")
                      for name in ("perceived_s", "ttft_s", "e2e_s")}
    st.dataframe(frame[RECENT_COLUMNS], hide_index=True, key="recent_runs", column_config={
        **seconds_column, "output_tps": st.column_config.NumberColumn("output_tps", format="%.1f"),
    })
    st.download_button("⬇️ Download CSV", to_csv(frame), "streamrace-runs.csv", "text/csv",
                       key="download_csv")


st.title("🏁 StreamRace")
st.caption("The same prompt to the same model at the same instant: a blocking call on the left, "
           "the same request streamed on the right. Every run is timed and logged.")
st.pills("Preset", [p.label for p in PRESETS], key="preset", on_change=apply_preset)
for name, default in KEPT.items():  # set on every run, so the browser always gets the value
    st.session_state[name] = st.session_state.setdefault(f"kept_{name}", default)
prompt = st.text_area("Prompt", key="prompt", height=90, on_change=keep, args=("prompt",))
with st.expander("Parameters"):
    cols = st.columns(4)
    temperature = cols[0].slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="temperature")
    max_tokens = cols[1].number_input("Max tokens", 1, 4096, key="max_tokens", on_change=keep,
                                      args=("max_tokens",))
    seed = cols[2].number_input("Seed", 0, 2**31 - 1, 42, key="seed")
    timeout_s = cols[3].number_input("Timeout (s)", 1.0, 600.0, 60.0, key="timeout_s",
                                     help="Longest wait for any byte: first byte or between chunks.")
buttons = st.columns([1, 1, 6])
run = buttons[0].button("▶️ Run race", type="primary", key="run")
stop = buttons[1].button("⏹️ Stop", key="stop")

left, right = st.columns(2, gap="large")
left.subheader("⏳ Blocking call")
right.subheader("⚡ Streaming call")

results = st.session_state.setdefault("race_results", {})
settle_previous(results)
if run:
    try:
        settings = current_settings()
        with st.spinner(STARTING.get(settings.endpoint_kind, "Checking the endpoint…"),
                        show_time=True):
            endpoint = endpoints.resolve(settings)
        if endpoint.note:
            st.info(endpoint.note, icon="🔄")
        params = default_params(endpoint, temperature=temperature, max_tokens=int(max_tokens),
                                seed=int(seed), timeout_s=float(timeout_s))
        race = Race(endpoint, prompt, params).start()
    except StreamRaceError as error:
        st.warning(error.message, icon="✋")
    else:
        run_race(race, run_log(current_settings().database_url), results, left, right)
        show_outcome(*race.traces, left, right, live=True)
elif "last_race" in results:
    if stop:
        st.info("Stopped: the requests still running were cancelled; what they had received "
                "is kept and logged as cancelled.",
                icon="⏹️")
    show_outcome(*results["last_race"], left, right, live=False)

recent_runs()

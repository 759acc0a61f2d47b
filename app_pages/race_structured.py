"""The race page's structured race: the schema picker, both panels drawing the object (the
streamed one as it grows), and the per-field figures and chart.

Not a page (st.navigation lists the pages): functions the race page calls.
"""

from __future__ import annotations

import streamlit as st

from app_pages import screen_clock
from app_pages.shared import Changes
from lib.core import metrics
from lib.core.errors import InvalidInput
from lib.core.structured import Structure, partial_of, read_fields
from lib.core.trace import Trace
from lib.present import charts
from lib.present.display import plain_markdown, seconds, status_line
from lib.present.structured import ObjectView, lag_line, object_markdown
from lib.race import FRAME_S, Race
from lib.structured import structure_for

FREE_TEXT = "free text"
CUSTOM = "custom"
SCHEMA_LABELS = {
    FREE_TEXT: "📝 Free text",
    "report": "📄 Report: title, summary, sections, risks",
    "contact": "🪪 Contact card",
    "ticket": "🎫 Support ticket",
    CUSTOM: "✍️ My JSON Schema",
}
MODE_HELP = (
    "How the schema is asked for. auto: strict on the embedded model (llama.cpp turns the "
    "JSON Schema into a grammar) and OpenAI, json elsewhere. strict: the JSON Schema as "
    "response_format. json: the schema in the prompt. tool: a forced tool call.")


def schema_controls() -> None:
    """The answer's form: free text, a shipped schema, or the user's JSON Schema."""
    cols = st.columns([3, 1])
    choice = cols[0].selectbox("Answer as", list(SCHEMA_LABELS), key="race_schema",
                               format_func=SCHEMA_LABELS.get)
    cols[1].selectbox("Output mode", ("auto", "strict", "json", "tool"), key="race_output_mode",
                      help=MODE_HELP, disabled=choice == FREE_TEXT)
    if choice == CUSTOM:
        st.text_area("JSON Schema", key="race_schema_json", height=140,
                     placeholder='{"type": "object", "properties": {"title": {"type": "string"}},'
                                 ' "required": ["title"]}')
        st.file_uploader("…or upload a JSON Schema file", type=["json"], key="race_schema_file")


def chosen_structure(endpoint_kind: str) -> Structure | None:
    """The structure the widgets ask for; InvalidInput (nothing sent) when the user's schema
    does not parse or cannot be read."""
    state = st.session_state
    choice = state.get("race_schema", FREE_TEXT)
    if choice == FREE_TEXT:
        return None
    schema = choice
    if choice == CUSTOM:
        uploaded = state.get("race_schema_file")
        schema = uploaded.getvalue().decode("utf-8", "replace") if uploaded is not None else (
            state.get("race_schema_json") or "")
        if not schema.strip():
            raise InvalidInput("Type or upload a JSON Schema first: nothing was sent.")
    return structure_for(schema, endpoint_kind, state.get("race_output_mode", "auto"))


def draw_structured_race(race: Race, left, right) -> ObjectView:
    """The running structured race: the streamed object redrawn each frame, the blocking one
    as soon as it arrived and validated. Returns the streamed lane's view (its drawing lags)."""
    blocking_status = left.empty()
    blocking_body = left.container(key=screen_clock.lane_key("blocking", race.race_id)).empty()
    stream_status = right.empty()
    stream_body = right.container(key=screen_clock.lane_key("streaming", race.race_id)).empty()
    view = ObjectView(race.streaming.trace)
    changes = Changes()
    blocking_drawn = False

    def draw_blocking() -> None:
        nonlocal blocking_drawn
        trace = race.blocking.trace
        if trace.text and not blocking_drawn:
            blocking_body.markdown(lane_object(trace))
            race.mark_blocking_shown()
            blocking_drawn = True
        changes.markdown(blocking_status, status_line(trace))

    for _ in race.frames(visible=view.visible):
        changes.markdown(stream_body, view.frame())
        elapsed = race.elapsed()
        first = metrics.perceived_s(race.streaming.trace) if race.streaming.trace.t_shown else None
        changes.markdown(stream_status, f"⚡ First field after **{seconds(first)}** · streaming…"
                         if first else f"⏳ Waiting for the first field · {elapsed:.1f} s")
        if race.blocking.trace.done:
            draw_blocking()
        else:
            changes.markdown(blocking_status, f"⬜ **Blank screen** · {elapsed:.1f} s")
    changes.markdown(stream_body, view.frame())
    changes.markdown(stream_status, status_line(race.streaming.trace))
    while not race.blocking.wait(0.05):
        changes.markdown(blocking_status, f"⬜ **Blank screen** · {race.elapsed():.1f} s")
    draw_blocking()
    return view


def lane_object(trace: Trace) -> str:
    """A finished lane's object as Markdown: validated, or the partial object that arrived
    (a stream cut mid-object, an object that never validated), or the text if none could be
    read."""
    structure = trace.request.structure
    if structure is None:
        return plain_markdown(trace.text)
    partial = partial_of(trace.text, structure.model)
    if partial is None:
        return plain_markdown(trace.text) if trace.text else ""
    return object_markdown(partial, read_fields(trace.text))


def redraw_lanes(blocking: Trace, streaming: Trace, left, right) -> None:
    """Both lanes' objects again, after the page was rebuilt."""
    for trace, column in ((blocking, left), (streaming, right)):
        column.markdown(status_line(trace))
        # Keyed as while it ran: the lane is the same element to the browser (and to tests).
        lane = column.container(key=screen_clock.lane_key(trace.mode, trace.race_id or ""))
        lane.markdown(lane_object(trace))


def structured_outcome(blocking: Trace, streaming: Trace, lags: dict[str, float] | None) -> None:
    """The per-field figures and the field timeline under the race."""
    b, s = metrics.compute(blocking), metrics.compute(streaming)
    st.subheader("Field by field")
    cards = st.columns(4)
    cards[0].metric("⚡ First field, streaming", seconds(s.first_field_s), border=True,
                    help="From the request to the first visible character of any field.")
    cards[1].metric("⏳ First field, blocking", seconds(b.first_field_s), border=True,
                    help="Blocking: every field arrives with the whole object.")
    cards[2].metric("✅ Schema-valid object, streaming", seconds(s.valid_object_s), border=True,
                    help="The chunk that completed an object valid against the schema.")
    cards[3].metric("🧩 Partial-parse failures", f"{s.partial_failures or 0}", border=True,
                    help="Chunks after which the streamed text could not be read as a partial "
                         "object.")
    for trace, figures in ((blocking, b), (streaming, s)):
        if figures.object_valid is False:
            st.warning(f"{trace.mode.capitalize()}: the object is not valid against the schema "
                       "(the partial object is shown and kept).", icon="🧩")
    line = lag_line(lags or {}, FRAME_S)
    if line:
        st.caption(line)
    st.plotly_chart(charts.field_timeline([blocking, streaming]), key="race_fields",
                    config={"displaylogo": False})


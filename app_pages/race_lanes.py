"""The race page's lanes: their set-up (2 to 4 lanes, each a named endpoint, a model, a mode, a
reasoning effort and a label), a race of lanes drawn one column per lane as it runs, and its
outcome: cards per lane, the ranking by blank-screen time, one timeline, and each lane's code.

Not a page (st.navigation lists the pages): functions the race page calls. The default race
(lanes off) is drawn by the race page itself, as it always was.
"""

from __future__ import annotations

import streamlit as st

from app_pages import screen_clock
from app_pages.kept import Kept
from app_pages.race_panels import ThinkingBlock, folded_thinking
from app_pages.shared import Changes
from lib.core import metrics
from lib.core.config import Settings
from lib.core.thoughts import EFFORTS
from lib.core.trace import Trace
from lib.present import charts
from lib.present.display import plain_markdown, rate, seconds, shown, status_line, two_clocks
from lib.race import MAX_LANES, MIN_LANES, LaneSpec, Race, ranking_lines, spread_line
from lib.race.code import lane_code

LANE_MODES = ("streaming", "blocking")
MODE_NAMES = {"streaming": "⚡ streamed", "blocking": "⏳ blocking"}
RACE_EFFORT = "race's"
"""A lane's reasoning effort when it takes the race's (Parameters)."""
DEFAULT_MODES = ("blocking", "streaming", "streaming", "blocking")
"""Lane i's mode before the user picks one: the default race's two, then the same again."""
# Widgets keyed `race_setup_…`, never `race_lane_…`: the screen clock finds a lane's text by
# that prefix (screen_clock.LANE_PREFIX).
PREFIX = "race_setup"


def kept(names: list[str]) -> Kept:
    """The lane set-up's widget values, kept across pages. Lanes 0 and 1 start as the default
    race (the sidebar's endpoint, blocking then streamed), lanes 2 and 3 on the next endpoint."""
    defaults: dict = {"on": False, "count": 3}
    for i in range(MAX_LANES):
        endpoint = names[min(i // 2, len(names) - 1)]
        defaults |= {f"{i}_endpoint": endpoint, f"{i}_model": "", f"{i}_mode": DEFAULT_MODES[i],
                     f"{i}_effort": RACE_EFFORT, f"{i}_label": ""}
    return Kept(PREFIX, **defaults)


def lanes_on() -> bool:
    return bool(st.session_state.get(f"kept_{PREFIX}_on"))


def lane_setup(endpoints: dict[str, Settings]) -> None:
    """The Lanes expander's widgets: off (the default race), or 2 to 4 lane rows."""
    names = list(endpoints)
    setup = kept(names)
    for i in range(MAX_LANES):  # an endpoint removed from the sidebar: back to the first
        if setup.get(f"{i}_endpoint") not in names:
            setup.set(**{f"{i}_endpoint": names[0]})
    setup.restore()
    on = st.toggle("Race lanes: endpoints, models and modes side by side",
                   key=setup.key("on"), **setup.watch("on"),
                   help="Off: the default race, blocking beside streamed on the sidebar's "
                        "endpoint. Add endpoints in the sidebar (Endpoints for lanes).")
    if not on:
        return
    count = st.segmented_control("Lanes", list(range(MIN_LANES, MAX_LANES + 1)),
                                 key=setup.key("count"), **setup.watch("count", default="default"))
    efforts = (RACE_EFFORT, *EFFORTS)
    for i in range(count or 3):
        cols = st.columns([2, 2, 1.4, 1.4, 2.4])
        name = cols[0].selectbox(f"Lane {i + 1}: endpoint", names, key=setup.key(f"{i}_endpoint"),
                                 **setup.watch(f"{i}_endpoint", "index", names))
        cols[1].text_input("Model", key=setup.key(f"{i}_model"),
                           placeholder=endpoints[name].model or "the endpoint's model",
                           **setup.watch(f"{i}_model"))
        cols[2].selectbox("Mode", LANE_MODES, format_func=MODE_NAMES.get,
                          key=setup.key(f"{i}_mode"),
                          **setup.watch(f"{i}_mode", "index", LANE_MODES))
        cols[3].selectbox("Reasoning effort", efforts, key=setup.key(f"{i}_effort"),
                          **setup.watch(f"{i}_effort", "index", efforts))
        cols[4].text_input("Label", key=setup.key(f"{i}_label"),
                           placeholder="endpoint · model · mode", **setup.watch(f"{i}_label"))


def lane_specs() -> list[LaneSpec]:
    """The lanes the set-up describes, as specs (resolved by lib.race.resolve_lanes)."""
    state = st.session_state

    def value(name: str):
        return state.get(f"kept_{PREFIX}_{name}")

    specs = []
    for i in range(int(value("count") or 3)):
        effort = value(f"{i}_effort")
        specs.append(LaneSpec(mode=value(f"{i}_mode"), endpoint=value(f"{i}_endpoint"),
                              model=(value(f"{i}_model") or "").strip(),
                              label=(value(f"{i}_label") or "").strip(),
                              reasoning_effort=None if effort == RACE_EFFORT else effort))
    return specs


# -- the race, one column per lane ----------------------------------------------------------


def lane_columns(traces: tuple[Trace, ...] | list[Trace]) -> list:
    """One labelled column per lane."""
    columns = st.columns(len(traces), gap="medium")
    for column, trace in zip(columns, traces):
        column.markdown(f"##### {MODE_NAMES[trace.mode][:1]} {plain_markdown(trace.lane_label)}")
    return columns


class LanePanel:
    """One lane's column while the race runs: its timer, thinking block and text."""

    def __init__(self, column, race: Race, index: int, changes: Changes) -> None:
        self.race, self.index, self.changes = race, index, changes
        self.trace = race.calls[index].trace
        self.status = column.empty()
        self.thinking_slot = column.empty()
        self.thinking = ThinkingBlock(self.thinking_slot)
        # Keyed per race and lane: the browser's clock (screen_clock) finds the text by its key.
        self.body = column.container(
            key=screen_clock.lane_key(str(index), race.race_id)).empty()
        self.text = ""
        self.answer_drawn = False

    def add(self, text: str) -> None:
        if text:
            self.text += text
            self.body.markdown(shown(self.text))

    def tick(self) -> None:
        trace, elapsed = self.trace, self.race.elapsed()
        if trace.mode == "blocking":
            if trace.done and not self.answer_drawn:
                self.answer_drawn = True
                if trace.text:
                    self.body.markdown(shown(trace.text))
                    self.race.mark_shown(self.index)
                    folded_thinking(self.thinking_slot.container(), trace)
            line = status_line(trace) if trace.done else f"⬜ **Blank screen** · {elapsed:.1f} s"
        else:
            self.thinking.draw(trace, self.race.thinking_shown[self.index], expanded=True)
            first = metrics.perceived_s(trace)
            line = (status_line(trace) if trace.done
                    else f"⚡ First words after **{seconds(first)}** · streaming…" if first
                    else f"⏳ Waiting for the first words · {elapsed:.1f} s")
        self.changes.markdown(self.status, line)


def draw_lanes(race: Race, columns: list) -> None:
    """The running race in its columns, each lane at its own pace, until every call has ended."""
    changes = Changes()
    panels = [LanePanel(column, race, i, changes) for i, column in enumerate(columns)]
    for update in race.updates():
        for index, text in update.items():
            panels[index].add(text)
        for panel in panels:
            panel.tick()
    while not race.join(0.05):
        for panel in panels:
            panel.tick()
    for panel in panels:
        panel.tick()


# -- after the race -------------------------------------------------------------------------


def show_lanes_outcome(traces: list[Trace], columns: list, live: bool) -> None:
    """Each lane's outcome in its column (its text too when redrawn), the cards, the ranking,
    the release spread, one timeline, and each lane's code."""
    for trace, column in zip(traces, columns):
        if not live:
            column.markdown(status_line(trace))
            folded_thinking(column, trace)
            column.markdown(shown(trace.text))
        if trace.status == "error":
            column.error(plain_markdown(trace.error or ""), icon="🚨")  # the server's words
    st.subheader("What each lane's user experienced")
    order = metrics.ranked(traces)
    shown_order = [t for t in order if metrics.perceived_s(t) is not None]
    slowest = shown_order[-1] if shown_order else None
    cards = st.columns(len(traces))
    for card, trace in zip(cards, traces):
        values = metrics.compute(trace)
        place = order.index(trace) + 1
        factor = (metrics.perceived_s(slowest) / values.perceived_s
                  if slowest is not None and trace is not slowest and values.perceived_s
                  and metrics.perceived_s(slowest) else None)
        card.metric(f"#{place} {MODE_NAMES[trace.mode][:1]} {trace.lane_label}",
                    seconds(values.perceived_s),
                    delta=f"{factor:.1f}× sooner" if factor else None, border=True,
                    help="Blank screen on the server's clock: from the race's start to the "
                         f"text handed to the page. TTFT {seconds(values.ttft_s)}; "
                         f"{rate(values.output_tps if trace.status == 'ok' else None)}.")
    if shown_order and len(shown_order) >= 2 and slowest is not None:
        first = shown_order[0]
        factor = metrics.perceived_s(slowest) / (metrics.perceived_s(first) or float("inf"))
        st.success(f"{first.lane_label} showed words {factor:.1f}× sooner than "
                   f"{slowest.lane_label}.", icon="🏁")
    st.markdown("  \n".join(plain_markdown(line) for line in ranking_lines(traces)))
    st.caption(f"⏱️ {spread_line(traces)} (goal: ≤ 1 ms between the first and the last "
               "lane's release)")
    for trace in traces:
        st.markdown(f"{MODE_NAMES[trace.mode][:1]} {plain_markdown(trace.lane_label or '')} · "
                    f"{two_clocks(trace)}")
    st.plotly_chart(charts.race_timeline(*traces, lanes=True), key="race_lanes_timeline",
                    config={"displaylogo": False})
    view_code(traces)


def view_code(traces: list[Trace]) -> None:
    """Each lane's Mirascope code: the call it made, runnable, never with its key."""
    with st.expander("🧩 View code: each lane in Mirascope 2"):
        tabs = st.tabs([trace.lane_label or f"lane {i + 1}" for i, trace in enumerate(traces)])
        for tab, trace in zip(tabs, traces):
            tab.code(lane_code(trace.request, trace.mode), language="python")

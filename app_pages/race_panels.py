"""The race page's drawing of a reasoning model's thoughts: the thinking block of a lane and
the cards with both moments (first thought, first answer word).

Not a page (st.navigation lists the pages): functions the race page calls while it draws.
"""

from __future__ import annotations

import time

import streamlit as st

from lib.core import metrics
from lib.core.trace import Trace
from lib.present.display import (
    SHOWN_CHARS,
    plain_markdown,
    reasoning_moments,
    seconds,
    thinking_label,
)


class ThinkingBlock:
    """A lane's collapsible "Thinking…" block, drawn into one placeholder, redrawn only when
    its title (the timer) or its text changed."""

    def __init__(self, slot) -> None:
        self.slot = slot
        self._drawn: tuple[str, int, bool] | None = None

    def draw(self, trace: Trace, thinking: str, expanded: bool) -> None:
        """`thinking`: the thoughts handed to this renderer so far (the stream's frames)."""
        label = thinking_label(trace, time.perf_counter())
        if label is None or not thinking:
            return
        state = (label, len(thinking), expanded)
        if state == self._drawn:
            return
        self._drawn = state
        # The newest thoughts matter most while they arrive: a long chain shows its tail.
        tail = thinking[-SHOWN_CHARS:]
        with self.slot.container():
            with st.expander(label, expanded=expanded, icon=None):
                st.markdown(plain_markdown(tail))


def folded_thinking(column, trace: Trace) -> None:
    """A finished lane's reasoning, folded away above its answer (nothing without thoughts)."""
    label = thinking_label(trace)
    if label:
        with column.expander(label, expanded=False):
            st.markdown(plain_markdown(trace.thinking[-SHOWN_CHARS:]))


def reasoning_cards(blocking: Trace, streaming: Trace) -> None:
    """When a lane reasoned: both moments per mode, thinking time and the token split."""
    if not (blocking.thinking or streaming.thinking):
        return
    s = metrics.compute(streaming)
    cards = st.columns(4)
    cards[0].metric("🧠 First thought, streaming", seconds(s.ttft_s), border=True,
                    help="Time to first token of any kind (TTFT), reasoning included.")
    cards[1].metric("💬 First answer word, streaming", seconds(s.ttfo_s), border=True,
                    help="Time to first output token (TTFO): the answer, not the thinking.")
    cards[2].metric("🧠 Thinking time", seconds(s.thinking_s), border=True,
                    help="TTFO − TTFT: how long the stream showed only thoughts.")
    split = (f"{s.reasoning_tokens:,} / {s.answer_tokens:,}"
             if s.reasoning_tokens is not None and s.answer_tokens is not None else "–")
    cards[3].metric("🧠 Reasoning / answer tokens", split, border=True,
                    help=f"Reasoning tokens: {s.reasoning_source or '–'} "
                         f"(server usage, or estimated)")
    st.caption("  \n".join(reasoning_moments(t) for t in (streaming, blocking)))

"""The race: the same prompt sent by 2 to 4 lanes at the same instant (by default blocking
and streamed to one endpoint; lib.race.lanes).

The calls run on worker threads released together by a barrier; they share one t_start,
the release, and each records when its thread began (t_run: the release spread).
The renderer (a page, or nothing when headless) reads the stream
through `frames()`, which batches chunks into frames so that a fast stream never waits on
rendering and rendering never alters the timestamps.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from lib.core import metrics, runs
from lib.core.calls import Call, check_request, warm_up
from lib.core.runs import Log
from lib.core.structured import Structure
from lib.core.trace import MODES, Params, Trace
from lib.endpoints import Endpoint
from lib.race.lanes import Lane, check_lanes, default_lanes
from lib.structured.schemas import PROMPTS

FRAME_S = 0.04
"""Shortest time between two frames handed to the renderer (25 frames a second)."""

Visible = Callable[[Trace], bool]
"""Whether a lane's text so far shows anything on screen (default: any text)."""


@dataclass(frozen=True)
class Preset:
    label: str
    prompt: str
    max_tokens: int
    schema: str | None = None
    """A shipped schema (lib.structured.SCHEMAS): the race asks for that object."""


PRESETS = (
    Preset("One-line answer", "In one sentence, what is the capital of France?", 48),
    Preset(
        "Long report (~300 tokens)",
        "Write a report of about 300 words on why streaming responses improve the user "
        "experience of chat applications.",
        300,
    ),
    Preset("Structured report", PROMPTS["report"], 400, "report"),
)


class _QuickSwitch:
    """The GIL handed over within 0.1 ms while a race's lanes are being released.

    A thread woken by the release must take the GIL; if another thread holds it (in the app,
    Streamlit's own), CPython lets that one run up to its switch interval (5 ms) first: one
    lane then starts 5 ms after the others (seen in the browser test). Shortened only from the
    release until every lane's thread is awake, and restored by the last race to finish that.
    """

    QUICK_S = 0.0001

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = sys.getswitchinterval()

    def enter(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(self.QUICK_S)
            self._users += 1

    def exit(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                sys.setswitchinterval(self._saved)


_quick_switch = _QuickSwitch()


class Race:
    """The calls of one request, one per lane, started together.

    `lanes` is an Endpoint (the default race: blocking beside streamed on it) or 2 to 4
    `Lane`s. Every call shares one `progress` condition, so a renderer waiting on it wakes on
    any lane's text.
    """

    def __init__(self, lanes: Endpoint | Sequence[Lane], prompt: str, params: Params,
                 source: str = "live", structure: Structure | None = None):
        check_request(prompt, params)
        self.lanes: tuple[Lane, ...] = (
            default_lanes(lanes) if isinstance(lanes, Endpoint) else tuple(lanes))
        check_lanes(self.lanes)
        warm_up()
        self.structure = structure
        """The object every lane asks for (lib.core.structured); None: free text."""
        self.race_id = uuid.uuid4().hex
        self.progress = threading.Condition()
        self.calls: tuple[Call, ...] = tuple(
            self._call(index, lane, prompt, params, source)
            for index, lane in enumerate(self.lanes))
        # The barrier's action runs once, before any worker is released: every call shares one
        # t_start; how long each thread then took to begin is its t_run (release_spread_s).
        self._released_at = 0.0
        self._barrier = threading.Barrier(len(self.calls), action=self._mark_release)
        self._awake = threading.Barrier(len(self.calls), action=_quick_switch.exit)
        self._threads: list[threading.Thread] = []
        self.thinking_shown: dict[int, str] = {i: "" for i in range(len(self.calls))}
        """Each lane's thoughts handed to the renderer so far (by `frames()`/`updates()`)."""

    def _call(self, index: int, lane: Lane, prompt: str, params: Params, source: str) -> Call:
        call = Call(lane.endpoint, prompt, lane.params(params), lane.mode, source=source,
                    race_id=self.race_id, structure=self.structure)
        call.trace.lane_index = index
        call.trace.lane_label = lane.title
        call.progress = self.progress  # one condition for every lane: set before any thread runs
        return call

    def _mark_release(self) -> None:
        _quick_switch.enter()
        self._released_at = time.perf_counter()

    def _first(self, mode: str) -> Call:
        call = next((c for c in self.calls if c.trace.mode == mode), None)
        if call is None:
            raise LookupError(f"this race has no {mode} lane")
        return call

    @property
    def blocking(self) -> Call:
        """The first blocking lane (the default race's left panel)."""
        return self._first("blocking")

    @property
    def streaming(self) -> Call:
        """The first streamed lane (the default race's right panel)."""
        return self._first("streaming")

    @property
    def traces(self) -> tuple[Trace, ...]:
        return tuple(call.trace for call in self.calls)

    @property
    def is_default(self) -> bool:
        """One endpoint, blocking then streamed, no lane settings: the race as it always was."""
        first, second = self.lanes[0], self.lanes[-1]
        return (len(self.lanes) == 2 and (first.mode, second.mode) == MODES
                and first.endpoint == second.endpoint and not (first.label or second.label)
                and first.endpoint_name == second.endpoint_name
                and all(lane.reasoning_effort is None and lane.show_thinking is None
                        for lane in self.lanes))

    def start(self) -> "Race":
        def release() -> tuple[float, float]:
            self._barrier.wait()
            woke = time.perf_counter()
            # Every lane waits here until every lane's thread is awake: the first one awake
            # would otherwise hold the GIL building its request while the others wait to wake
            # (2-3 ms apart at p50 for 3 lanes, measured). The requests are then built together.
            self._awake.wait()
            return self._released_at, woke

        for index, call in enumerate(self.calls):
            thread = threading.Thread(
                target=lambda c=call: c.run(*release()), daemon=True,
                name=f"race-{index}-{call.trace.mode}")
            thread.start()
            self._threads.append(thread)
        return self

    def cancel(self) -> None:
        """Cancel whatever is still running; finished calls keep their outcome."""
        for call in self.calls:
            if not call.trace.done:
                call.cancel()

    def join(self, timeout: float | None = None) -> bool:
        # On each call's own condition, not Thread.join: a Ctrl-C or SIGTERM interrupting
        # Thread.join can make the next join return before the thread has ended (CPython
        # 3.11), and the run would be logged `pending` while its call still runs.
        deadline = None if timeout is None else time.monotonic() + timeout
        for call in self.calls:
            call.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.done

    @property
    def done(self) -> bool:
        return all(call.trace.done for call in self.calls)

    def elapsed(self) -> float:
        """Seconds since the race started (0 before it did)."""
        starts = [t.t_start for t in self.traces if t.t_start is not None]
        return time.perf_counter() - min(starts) if starts else 0.0

    def frames(self, frame_s: float = FRAME_S, tick_s: float = 0.05,
               lane: int | None = None, visible: Visible | None = None) -> Iterator[str]:
        """One streamed lane's text as the renderer should receive it (default: the first
        streamed lane). `updates()` for that lane alone; ends when its call ends."""
        index = self.calls.index(self.streaming) if lane is None else lane
        for update in self.updates(frame_s, tick_s, lanes=(index,), visible=visible):
            yield update.get(index, "")

    def updates(self, frame_s: float = FRAME_S, tick_s: float = 0.05,
                lanes: Sequence[int] | None = None,
                visible: Visible | None = None) -> Iterator[dict[int, str]]:
        """The streamed lanes' new answer text, as the renderer should receive it.

        Yields {lane index: new text} as soon as any of `lanes` (default: every streamed lane)
        has new text, but never two frames within `frame_s`; yields {} every `tick_s` while
        nothing came, and when another lane ended (so a caller can update its timers and draw
        a blocking answer as soon as it is there). A reasoning model's thoughts wake it
        too: they are added to `thinking_shown[lane]` for the renderer's thinking block (the
        lane's entry is "" if no answer came). Marks the moment a lane's first text is handed
        over as its `t_shown` (the first thought, if the lane shows thinking; with `visible`,
        the first frame it says shows something: a structured answer's first field, not its
        `{`). Ends when those lanes' calls have ended.
        """
        indices = [i for i, c in enumerate(self.calls) if c.trace.mode == "streaming"] \
            if lanes is None else list(lanes)
        traces = [self.calls[i].trace for i in indices]
        seen = [0] * len(indices)
        last_frame = 0.0

        ended = 0

        def arrived() -> bool:
            return any(len(t.chunks) > n for t, n in zip(traces, seen))

        def ending() -> int:
            return sum(call.trace.done for call in self.calls)

        while True:
            with self.progress:
                # Any lane ending wakes it too: a blocking lane's answer is drawn at once.
                self.progress.wait_for(
                    lambda: arrived() or all(t.done for t in traces) or ending() != ended,  # noqa: B023
                    tick_s)
                finished = all(t.done for t in traces)
                fresh = arrived()
                ended = ending()
            if fresh:
                wait = last_frame + frame_s - time.perf_counter()
                if wait > 0 and not finished:
                    time.sleep(wait)  # let more chunks join this frame
                update: dict[int, str] = {}
                for k, (index, trace) in enumerate(zip(indices, traces)):
                    available = len(trace.chunks)
                    if available == seen[k]:
                        continue
                    new = trace.chunks[seen[k]:available]
                    seen[k] = available
                    text = "".join(chunk.text for chunk in new if not chunk.thought)
                    thought = "".join(chunk.text for chunk in new if chunk.thought)
                    self.thinking_shown[index] += thought
                    show_thinking = self.calls[index].params.show_thinking
                    shows = visible(trace) if visible is not None else bool(text)
                    if trace.t_shown is None and (shows or (thought and show_thinking)):
                        trace.t_shown = time.perf_counter()
                    update[index] = text
                last_frame = time.perf_counter()
                yield update
            elif finished:
                return
            else:
                yield {}

    def mark_shown(self, lane: int) -> None:
        """The renderer has a blocking lane's answer: its blank screen ends now."""
        trace = self.calls[lane].trace
        if trace.mode == "blocking" and trace.chunks and trace.t_shown is None:
            trace.t_shown = time.perf_counter()

    def mark_blocking_shown(self) -> None:
        """The renderer has the (first) blocking answer: its blank screen ends now."""
        self.mark_shown(self.calls.index(self.blocking))


def summary_line(blocking: Trace, streaming: Trace) -> str:
    """One sentence on the outcome, for the CLI and the page."""
    factor = metrics.speedup(blocking, streaming)
    if factor is None:
        return "No comparison: at least one call showed no text."
    return f"Streaming showed the first words {factor:.1f}× sooner."


def ranking_lines(traces: Sequence[Trace]) -> list[str]:
    """The lanes by blank-screen time, each against the slowest lane that showed words:
    "1. ours · qwen · streaming: words after 0.31 s, 3.1× sooner than provider · … · blocking".
    """
    order = metrics.ranked(traces)
    shown = [t for t in order if metrics.perceived_s(t) is not None]
    slowest = shown[-1] if shown else None
    lines = []
    for place, trace in enumerate(order, 1):
        blank = metrics.perceived_s(trace)
        if blank is None:
            lines.append(f"{place}. {trace.lane_label}: no words shown ({trace.status})")
            continue
        line = f"{place}. {trace.lane_label}: words after {blank:.2f} s"
        slow = metrics.perceived_s(slowest) if slowest is not None else None
        if slowest is not None and slowest is not trace and slow and blank > 0:
            line += f", {slow / blank:.1f}× sooner than {slowest.lane_label}"
        lines.append(line)
    return lines


def spread_line(traces: Sequence[Trace]) -> str:
    """How close together the lanes left: the release spread (goal ≤ 1 ms) and the requests'."""
    release, sent = metrics.release_spread_s(traces), metrics.sent_spread_s(traces)
    if release is None:
        return "The lanes were not released."
    text = f"Lanes released within {release * 1000:.2f} ms"
    if sent is not None:
        text += f"; their requests left within {sent * 1000:.2f} ms"
    return text + "."


def run_headless(
    lanes: Endpoint | Sequence[Lane],
    prompt: str,
    params: Params,
    store: Log | None,
    timeout_s: float | None = None,
    structure: Structure | None = None,
) -> list[Trace]:
    """Run one race without a renderer, log one row per lane, return the traces in lane order
    (the default race: blocking, streaming)."""
    race = Race(lanes, prompt, params, structure=structure)
    return runs.run_logged(race, lambda: list(race.traces), store, timeout_s, grace_s=5)

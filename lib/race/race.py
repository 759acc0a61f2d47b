"""The race: the same prompt sent blocking and streamed at the same instant.

Both calls run on worker threads released together by a barrier; each takes its own
t_start at the release. The renderer (a page, or nothing when headless) reads the stream
through `frames()`, which batches chunks into frames so that a fast stream never waits on
rendering and rendering never alters the timestamps.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

from lib.core import metrics, runs
from lib.core.calls import Call, check_request, warm_up
from lib.core.runs import Log
from lib.core.structured import Structure
from lib.core.trace import Params, Trace
from lib.endpoints import Endpoint
from lib.structured.schemas import PROMPTS

FRAME_S = 0.04
"""Shortest time between two frames handed to the renderer (25 frames a second)."""


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


class Race:
    """Two calls of the same request, one blocking and one streamed, started together."""

    def __init__(self, endpoint: Endpoint, prompt: str, params: Params, source: str = "live",
                 structure: Structure | None = None):
        check_request(prompt, params)
        warm_up()
        self.race_id = uuid.uuid4().hex
        self.blocking = Call(endpoint, prompt, params, "blocking", source=source,
                             race_id=self.race_id, structure=structure)
        self.streaming = Call(endpoint, prompt, params, "streaming", source=source,
                              race_id=self.race_id, structure=structure)
        # The barrier's action runs once, before either worker is released: both calls share
        # one t_start, and whichever thread gets the GIL second pays for it in client_s.
        self._released_at = 0.0
        self._barrier = threading.Barrier(2, action=self._mark_release)
        self._threads: list[threading.Thread] = []
        self.thinking_shown = ""
        """The streamed lane's thoughts handed to the renderer so far (by `frames()`)."""

    def _mark_release(self) -> None:
        self._released_at = time.perf_counter()

    @property
    def calls(self) -> tuple[Call, Call]:
        return self.blocking, self.streaming

    @property
    def traces(self) -> tuple[Trace, Trace]:
        return self.blocking.trace, self.streaming.trace

    def start(self) -> "Race":
        def release() -> float:
            self._barrier.wait()
            return self._released_at

        for call in self.calls:
            thread = threading.Thread(
                target=lambda c=call: c.run(release()), daemon=True, name=f"race-{call.trace.mode}"
            )
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
               visible: Callable[[], bool] | None = None) -> Iterator[str]:
        """The streamed text as the renderer should receive it.

        Yields each new batch of answer text as soon as it arrives, but never two batches
        within `frame_s`; yields "" every `tick_s` while nothing new came (so a caller can
        update a timer). A reasoning model's thoughts wake it too: they are added to
        `thinking_shown` for the renderer's thinking block, and the frame is "" if no answer
        came. Marks the moment the first text is handed over as the stream's `t_shown` (the
        first thought, if the lane shows thinking; with `visible`, the first frame it says shows
        something: a structured answer's first field, not its `{`). Ends when the streaming call
        ends.
        """
        show_thinking = self.streaming.params.show_thinking
        call = self.streaming
        trace = call.trace
        seen = 0
        last_frame = 0.0
        while True:
            with call.progress:
                call.progress.wait_for(  # the lambda runs in this iteration: B023 does not apply
                    lambda: len(trace.chunks) > seen or trace.done, tick_s)  # noqa: B023
                available = len(trace.chunks)
                finished = trace.done
            if available > seen:
                wait = last_frame + frame_s - time.perf_counter()
                if wait > 0 and not finished:
                    time.sleep(wait)  # let more chunks join this frame
                    available = len(trace.chunks)
                new = trace.chunks[seen:available]
                text = "".join(chunk.text for chunk in new if not chunk.thought)
                thought = "".join(chunk.text for chunk in new if chunk.thought)
                seen = available
                self.thinking_shown += thought
                shows = visible() if visible is not None else bool(text)
                if trace.t_shown is None and (shows or (thought and show_thinking)):
                    trace.t_shown = time.perf_counter()
                last_frame = time.perf_counter()
                yield text
            elif finished:
                return
            else:
                yield ""

    def mark_blocking_shown(self) -> None:
        """The renderer has the blocking answer: its blank screen ends now."""
        if self.blocking.trace.chunks and self.blocking.trace.t_shown is None:
            self.blocking.trace.t_shown = time.perf_counter()


def summary_line(blocking: Trace, streaming: Trace) -> str:
    """One sentence on the outcome, for the CLI and the page."""
    factor = metrics.speedup(blocking, streaming)
    if factor is None:
        return "No comparison: at least one call showed no text."
    return f"Streaming showed the first words {factor:.1f}× sooner."


def run_headless(
    endpoint: Endpoint,
    prompt: str,
    params: Params,
    store: Log | None,
    timeout_s: float | None = None,
    structure: Structure | None = None,
) -> tuple[Trace, Trace]:
    """Run one race without a renderer, log both rows, return the traces."""
    race = Race(endpoint, prompt, params, structure=structure)
    blocking, streaming = runs.run_logged(
        race, lambda: list(race.traces), store, timeout_s, grace_s=5
    )
    return blocking, streaming

"""The one record of a call: what was asked, and the raw moments at which things happened.

A `Trace` holds monotonic `time.perf_counter()` timestamps and the text chunks as they
arrived; every metric is derived from it in `lib.metrics`, nowhere else. The race, the
run log and the charts all take a `Trace`. A guardrails run adds, per strategy, what that
strategy showed of the answer and when (`Guarded`, in `Trace.guard`).
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lib.core.structured import Structure

Mode = Literal["blocking", "streaming"]
GuardEventKind = Literal["hold", "release", "redact", "done"]
Status = Literal["pending", "ok", "error", "cancelled"]
MODES: tuple[Mode, ...] = ("blocking", "streaming")


@dataclass(frozen=True)
class Params:
    """Sampling and transport parameters, the same for both calls of a race."""

    temperature: float = 0.7
    max_tokens: int = 300
    seed: int | None = 42
    timeout_s: float = 60.0
    """Longest wait for any byte (connect, first byte, or between two chunks)."""
    repeat_penalty: float | None = None
    """llama.cpp's extension, sent only when set: it keeps small base models from looping."""
    stop: tuple[str, ...] = ()
    """Stop sequences, sent only when set."""
    reasoning_effort: str | None = None
    """`off`, `low`, `medium`, `high` (lib.core.thoughts.EFFORTS), sent as `reasoning_effort`;
    None: not sent, the server decides."""
    show_thinking: bool = False
    """The streamed lane shows the thinking as it arrives, and it counts as visible text
    (perceived_s ends at the first thought). Never sent: it is how the run was watched."""

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not (v is None or v == () or v is False)}


@dataclass(frozen=True)
class Request:
    """What was sent, and where. Never holds a key."""

    prompt: str
    params: Params
    endpoint_kind: str
    base_url: str
    model: str
    transform: str | None = None
    """JSON of what a replay endpoint did to its recording (lib.replay); None for live calls."""
    structure: Structure | None = None
    """The object the answer must be (lib.core.structured); None for a free-text answer."""


@dataclass(frozen=True)
class Chunk:
    """A piece of non-empty text and the moment it was received: answer text, or reasoning
    (a thought) when `thought` is set."""

    t: float
    text: str
    thought: bool = False


@dataclass(frozen=True)
class GuardEvent:
    """One change to what a guardrail strategy shows, at `t` (perf_counter seconds).

    hold: text[start:end] arrived and is held back; release: it is shown (parts already
    redacted show as a mask); redact: text[start:end] is removed if shown, masked if not yet;
    done: the strategy has released and validated everything.
    """

    t: float
    kind: GuardEventKind
    start: int = 0
    end: int = 0
    note: str = ""


CharState = Literal["", "held", "shown", "removed", "masked"]
"""What one character is on a strategy's screen: "" not there (yet), held back, shown,
removed after it was shown (the user saw it vanish), masked before it was ever shown."""


@dataclass(frozen=True)
class Piece:
    """Characters text[start:end] that share one history behind a guardrail (Guarded.pieces)."""

    start: int
    end: int
    state: CharState
    shown_at: float | None  # when they were first shown
    removed_at: float | None  # when they were removed after being shown


@dataclass(frozen=True)
class Guarded:
    """What one guardrail strategy did with a streamed answer: its display timeline.

    `events` are in time order; `checks_s` are the measured durations of its validations;
    `violations` are the spans the chosen validators find in the whole answer (the reference
    the exposure is measured against, whatever the strategy itself caught).
    """

    strategy: str
    label: str
    validators: tuple[str, ...]
    params: dict
    events: tuple[GuardEvent, ...]
    checks_s: tuple[float, ...] = ()
    violations: tuple[tuple[int, int], ...] = ()
    planted: str | None = None

    def states(self, length: int, until: float | None = None) -> list[CharState]:
        """Each character's state once the events up to `until` (all by default) happened."""
        states: list[CharState] = []
        for piece in self.pieces(length, until):
            states.extend([piece.state] * (piece.end - piece.start))
        return states

    def pieces(self, length: int, until: float | None = None) -> list["Piece"]:
        """The text cut wherever an event starts or ends, each piece with its history: its
        characters went through the same events, so they share a state and its moments.
        Per piece rather than per character: a megabyte answer has a handful of pieces."""
        events = []
        for event in self.events:
            if until is not None and event.t > until:
                break
            events.append(event)
        clamp = lambda at: min(max(at, 0), length)  # noqa: E731
        cuts = sorted({0, length, *(clamp(at) for e in events for at in (e.start, e.end))})
        count = len(cuts) - 1
        held, released, masked = [False] * count, [False] * count, [False] * count
        shown_at: list[float | None] = [None] * count
        removed_at: list[float | None] = [None] * count
        for event in events:
            first, last = bisect_left(cuts, clamp(event.start)), bisect_left(cuts, clamp(event.end))
            for i in range(first, last):
                if event.kind == "hold":
                    held[i] = True
                elif event.kind == "release" and not released[i]:
                    released[i] = True
                    if not masked[i]:
                        shown_at[i] = event.t
                elif event.kind == "redact":
                    if shown_at[i] is not None:
                        if removed_at[i] is None:
                            removed_at[i] = event.t
                    else:
                        masked[i] = True
        pieces = []
        for i in range(count):
            state: CharState
            if released[i]:
                state = (
                    "masked" if masked[i] else "removed" if removed_at[i] is not None else "shown"
                )
            else:
                state = "held" if held[i] else ""
            pieces.append(Piece(cuts[i], cuts[i + 1], state, shown_at[i], removed_at[i]))
        return pieces

    def first(self, kind: GuardEventKind) -> GuardEvent | None:
        """The first event of a kind that covers some text (for `done`: the event itself)."""
        return next(
            (e for e in self.events if e.kind == kind and (kind == "done" or e.end > e.start)), None
        )


@dataclass
class Trace:
    """Raw events of one call. Timestamps are `time.perf_counter()` seconds, or None."""

    request: Request
    mode: Mode
    source: str = "live"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    race_id: str | None = None
    lane_index: int | None = None
    """The call's place in its race (0 = the leftmost lane); None outside a race."""
    lane_label: str | None = None
    """The race lane's label (endpoint · model · mode, or the user's); None outside a race."""
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    t_start: float | None = None
    """The user (or runner) started the call: a benchmark's scheduled or decided moment."""
    t_run: float | None = None
    """A worker thread began the call; t_run − t_start is time it waited inside our client."""
    t0: float | None = None
    """The request's bytes started to go out: the start of the one send carrying its head and
    body (ArrivalStream; off Linux, httpcore's send_request_headers.started). Connecting and
    building the request come before it, in client_s."""
    chunks: list[Chunk] = field(default_factory=list)
    """Non-empty text as it arrived, thoughts and answer in their order of arrival; a blocking
    call has one answer chunk, the whole answer (after one thought chunk if it reasoned)."""
    t_shown: float | None = None
    """First text handed to the renderer (streaming) or the full answer (blocking)."""
    t_end: float | None = None
    """The call ended: last byte, error, or cancellation."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    """From the server's usage, None when the server sent none."""
    reasoning_tokens: int | None = None
    """The usage's completion_tokens_details.reasoning_tokens; None when the server sent none."""

    bench_id: str | None = None
    """The benchmark this call belongs to; None outside a benchmark."""
    bench_phase: str | None = None
    """`warmup` (logged, not counted in the summary) or `measured`; None outside a benchmark."""
    t_bench: float | None = None
    """The benchmark began (the origin of its schedule); None outside a benchmark."""

    status: Status = "pending"
    error: str | None = None
    error_kind: str | None = None

    guard: Guarded | None = None
    """Set on a guardrails row: what one strategy showed of this (streamed) answer."""

    screen_first_s: float | None = None
    """Measured in the browser (performance.now), not on our clock: the click on Run → the
    first frame painted with this lane's text. None when no browser measured it (headless)."""
    screen_done_s: float | None = None
    """Measured in the browser: the click on Run → the frame that painted the whole answer."""

    @property
    def text(self) -> str:
        """The answer (thoughts excluded)."""
        return "".join(chunk.text for chunk in self.chunks if not chunk.thought)

    @property
    def thinking(self) -> str:
        """The reasoning text, "" when the model sent none."""
        return "".join(chunk.text for chunk in self.chunks if chunk.thought)

    @property
    def answer_chunks(self) -> list[Chunk]:
        return [chunk for chunk in self.chunks if not chunk.thought]

    @property
    def thought_chunks(self) -> list[Chunk]:
        return [chunk for chunk in self.chunks if chunk.thought]

    @property
    def done(self) -> bool:
        return self.status != "pending"

    def shown_or_received(self) -> float | None:
        """When the user first saw text: the renderer's moment if there was one, else receipt.

        Headless runs (CLI, benchmark) have no renderer; there the first text is shown
        the moment it is received. Behind a guardrail, it is the strategy's first release.
        """
        if self.guard is not None:
            release = self.guard.first("release")
            return release.t if release is not None else None
        if self.t_shown is not None:
            return self.t_shown
        if self.mode == "blocking":
            return self.chunks[-1].t if self.chunks else None
        # Thoughts are readable text only where the lane shows them.
        visible = self.chunks if self.request.params.show_thinking else self.answer_chunks
        return visible[0].t if visible else None

"""The one record of a call: what was asked, and the raw moments at which things happened.

A `Trace` holds monotonic `time.perf_counter()` timestamps and the text chunks as they
arrived; every metric is derived from it in `lib.metrics`, nowhere else. The race, the
run log and the charts all take a `Trace`.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Literal

Mode = Literal["blocking", "streaming"]
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

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, ())}


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


@dataclass(frozen=True)
class Chunk:
    """A piece of non-empty text and the moment it was received."""

    t: float
    text: str


@dataclass
class Trace:
    """Raw events of one call. Timestamps are `time.perf_counter()` seconds, or None."""

    request: Request
    mode: Mode
    source: str = "live"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    race_id: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    t_start: float | None = None
    """The user (or runner) started the call: a benchmark's scheduled or decided moment."""
    t_run: float | None = None
    """A worker thread began the call; t_run − t_start is time it waited inside our client."""
    t0: float | None = None
    """The request's bytes started to go out (httpcore's send_request_headers.started);
    connecting comes before it, in client_s."""
    chunks: list[Chunk] = field(default_factory=list)
    """Non-empty text as it arrived; a blocking call has one chunk, the whole answer."""
    t_shown: float | None = None
    """First text handed to the renderer (streaming) or the full answer (blocking)."""
    t_end: float | None = None
    """The call ended: last byte, error, or cancellation."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    """From the server's usage, None when the server sent none."""

    bench_id: str | None = None
    """The benchmark this call belongs to; None outside a benchmark."""
    bench_phase: str | None = None
    """`warmup` (logged, not counted in the summary) or `measured`; None outside a benchmark."""
    t_bench: float | None = None
    """The benchmark began (the origin of its schedule); None outside a benchmark."""

    status: Status = "pending"
    error: str | None = None
    error_kind: str | None = None

    @property
    def text(self) -> str:
        return "".join(chunk.text for chunk in self.chunks)

    @property
    def done(self) -> bool:
        return self.status != "pending"

    def shown_or_received(self) -> float | None:
        """When the user first saw text: the renderer's moment if there was one, else receipt.

        Headless runs (CLI, benchmark) have no renderer; there the first text is shown
        the moment it is received.
        """
        if self.t_shown is not None:
            return self.t_shown
        if not self.chunks:
            return None
        return self.chunks[0].t if self.mode == "streaming" else self.chunks[-1].t

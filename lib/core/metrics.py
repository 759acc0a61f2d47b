"""Every metric of a call, derived from its `Trace`, defined once; and the summary statistics
over many calls (a benchmark's percentiles, throughput and goodput), defined once too.

Times are seconds. A metric that does not apply (no text arrived, one chunk only, a
blocking call's per-token time) is None, never 0: "not measured" must not read "0 ms".
docs/metrics.md maps each name to vLLM, AIPerf and OpenTelemetry. The guardrail metrics
(`delivered_ttft_s` ... `validation_s`) apply to guardrails rows only (a `Trace` with `guard`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from lib.core import structured
from lib.core.trace import Trace

Values = Sequence[float] | np.ndarray
"""Numbers to take statistics of: a list, or a numpy array (the charts' run-log columns)."""

CHARS_PER_TOKEN = 4.0
"""Rough English average, used only when a server sends no usage and no chunks to count."""


def percentile(values: Values, q: float) -> float | None:
    """The q-th percentile (0–100) with linear interpolation between ranks (numpy's default).

    Formula: rank = q/100 × (n − 1); value = v[floor] + (v[ceil] − v[floor]) × frac(rank).
    None for no values.
    """
    return percentiles(values, (q,))[0]


def percentiles(values: Values, qs: Sequence[float]) -> list[float | None]:
    """Several percentiles of the same values, sorted once; each as `percentile()` defines it."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if not len(ordered):
        return [None for _ in qs]
    result = []
    for q in qs:
        rank = (len(ordered) - 1) * q / 100.0
        low, high = math.floor(rank), math.ceil(rank)
        result.append(float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low)))
    return result


def kept_shares(blank_s: Values, patience_s: Values) -> list[float] | None:
    """The patience model: the share of simulated users kept, for each patience.

    Each run is one user who opens the answer and looks at a blank screen for its
    `perceived_s`. A user whose patience is p leaves if perceived_s > p, and stays (sees
    words) if perceived_s ≤ p. Formula: kept(p) = |{runs with perceived_s ≤ p}| / n;
    the share still waiting (facing a blank screen) at moment t, which is also the share a
    patience of t loses, is 1 − kept(t). None for no runs.
    """
    ordered = np.sort(np.asarray(blank_s, dtype=float))
    if not len(ordered):
        return None
    kept = np.searchsorted(ordered, np.asarray(patience_s, dtype=float), side="right")
    return (kept / len(ordered)).tolist()


def kept_more_pp(blocking_blank_s: Values, streaming_blank_s: Values,
                 patience_s: float) -> float | None:
    """How many more users streaming keeps at one patience, in percentage points of all users.

    Formula: 100 × (kept_streaming(p) − kept_blocking(p)) with kept() of `kept_shares`;
    negative when blocking keeps more. None when either mode has no runs.
    """
    blocking = kept_shares(blocking_blank_s, (patience_s,))
    streaming = kept_shares(streaming_blank_s, (patience_s,))
    if blocking is None or streaming is None:
        return None
    return 100.0 * (streaming[0] - blocking[0])


def client_s(trace: Trace) -> float | None:
    """Our own request building, queueing and connecting. Formula: t0 − t_start."""
    if trace.t0 is None or trace.t_start is None:
        return None
    return trace.t0 - trace.t_start


def queue_s(trace: Trace) -> float | None:
    """Time the call waited inside our client before a worker thread began it (part of client_s).

    Formula: t_run − t_start. In a benchmark t_start is when the runner decided to send (or,
    at a request rate, when the request was due), so a runner that falls behind shows here.
    """
    if trace.t_run is None or trace.t_start is None:
        return None
    return trace.t_run - trace.t_start


def bench_offset_s(trace: Trace) -> float | None:
    """When the call was due in its benchmark. Formula: t_start − t_bench (None outside one)."""
    if trace.t_bench is None or trace.t_start is None:
        return None
    return trace.t_start - trace.t_bench


def e2e_s(trace: Trace) -> float | None:
    """Request to last text. Formula: t(last non-empty chunk, thought or answer) − t0; a usage
    chunk does not extend it."""
    if trace.t0 is None or not trace.chunks:
        return None
    return trace.chunks[-1].t - trace.t0


def ttft_s(trace: Trace) -> float | None:
    """Time to first token of any kind (AIPerf's and GuideLLM's TTFT, reasoning included).

    Formula: t(first non-empty chunk, thought or answer) − t0; blocking: = e2e_s.
    """
    if trace.t0 is None or not trace.chunks:
        return None
    if trace.mode == "blocking":
        return e2e_s(trace)
    return trace.chunks[0].t - trace.t0


def ttfo_s(trace: Trace) -> float | None:
    """Time to first output (answer) token: AIPerf's TTFO, GuideLLM's time to first output token.

    Formula: t(first answer chunk) − t0; = ttft_s without reasoning; blocking: = e2e_s.
    None when no answer text arrived (a call that only thought).
    """
    answer = trace.answer_chunks
    if trace.t0 is None or not answer:
        return None
    if trace.mode == "blocking":
        return e2e_s(trace)
    return answer[0].t - trace.t0


def thinking_s(trace: Trace) -> float | None:
    """How long the stream showed thinking before the answer. Formula: ttfo_s − ttft_s
    (0 without reasoning). Streaming only: a blocking call cannot tell when it stopped thinking.
    """
    first_answer, first_token = ttfo_s(trace), ttft_s(trace)
    if trace.mode != "streaming" or first_answer is None or first_token is None:
        return None
    return first_answer - first_token


def perceived_s(trace: Trace) -> float | None:
    """Blank-screen time. Formula: t(first text shown) − t_start (blocking: the full answer shown).

    "Shown" is the moment text was handed to the renderer; headless, the moment it arrived;
    behind a guardrail, the strategy's first release (its display timeline, validation included).
    """
    shown = trace.shown_or_received()
    figures = structured_figures(trace)
    if figures is not None and trace.t_shown is None and trace.guard is None and (
            trace.mode == "streaming"):
        # Headless, a structured stream's screen is blank until its first field shows.
        first = figures.first_field_s
        shown = None if first is None or trace.t0 is None else trace.t0 + first
    if shown is None or trace.t_start is None:
        return None
    return shown - trace.t_start


def screen_first_s(trace: Trace) -> float | None:
    """Blank screen on the user's side, browser clock. Formula: t(first frame painted with the
    lane's text) − t(click on Run), both performance.now() in the browser (lib/race has no part in
    it). None when no browser measured it (headless runs, the benchmark, the CLI)."""
    return trace.screen_first_s


def screen_done_s(trace: Trace) -> float | None:
    """Whole answer on screen, browser clock. Formula: t(frame painting the lane's last text)
    − t(click on Run). None when no browser measured it."""
    return trace.screen_done_s


def app_delay_s(trace: Trace) -> float | None:
    """What the server-side blank screen does not see. Formula: `screen_first_s` − `perceived_s`
    (the click to the race's start, the way to the browser and the paint). None unless both
    clocks measured the lane; not a run-log column (derived from two that are)."""
    screen, server = screen_first_s(trace), perceived_s(trace)
    if screen is None or server is None:
        return None
    return screen - server


def inter_chunk_gaps(trace: Trace) -> list[float]:
    """Gaps between consecutive non-empty chunks. Formula: t(i) − t(i−1), i ≥ 1."""
    times = [chunk.t for chunk in trace.chunks]
    return [later - earlier for earlier, later in zip(times, times[1:])]


def icl_p50_s(trace: Trace) -> float | None:
    """Median inter-chunk latency. Formula: percentile(gaps, 50); None with fewer than 2 chunks."""
    return percentile(inter_chunk_gaps(trace), 50)


def icl_p95_s(trace: Trace) -> float | None:
    """95th-percentile inter-chunk latency. Formula: percentile(gaps, 95)."""
    return percentile(inter_chunk_gaps(trace), 95)


def icl_p99_s(trace: Trace) -> float | None:
    """99th-percentile inter-chunk latency of one call, the value a per-request ICL objective
    ("ICL p99 ≤ 50 ms") is checked against. Formula: percentile(gaps, 99)."""
    return percentile(inter_chunk_gaps(trace), 99)


def icl_max_s(trace: Trace) -> float | None:
    """The worst stall. Formula: max(gaps)."""
    gaps = inter_chunk_gaps(trace)
    return max(gaps) if gaps else None


def output_tokens(trace: Trace) -> tuple[int | None, str | None]:
    """Output tokens and where the count came from: `server` usage, else `estimated`.

    Every generated token counts, reasoning included (servers count them so in
    completion_tokens). Estimate: streaming, the number of non-empty chunks, thoughts included
    (llama.cpp, vLLM and OpenAI send one token per chunk); blocking, ceil(characters / 4) of
    thoughts and answer. None when no text arrived.
    """
    if trace.output_tokens is not None:
        return trace.output_tokens, "server"
    return _estimated_tokens(trace.chunks, trace.mode), "estimated" if trace.chunks else None


def _estimated_tokens(chunks, mode: str) -> int | None:
    if not chunks:
        return None
    if mode == "streaming":
        return len(chunks)
    return sum(math.ceil(len(chunk.text) / CHARS_PER_TOKEN) for chunk in chunks)


def reasoning_tokens(trace: Trace) -> tuple[int | None, str | None]:
    """Reasoning tokens and where the count came from: the server's
    completion_tokens_details.reasoning_tokens (`server`), else `estimated` from the thought
    chunks as `output_tokens` estimates; 0 (from either) for a call that did not reason.
    None when no text arrived and the server said nothing.
    """
    if trace.reasoning_tokens is not None:
        return trace.reasoning_tokens, "server"
    if not trace.chunks:
        return None, None
    return _estimated_tokens(trace.thought_chunks, trace.mode) or 0, "estimated"


def answer_tokens(trace: Trace) -> int | None:
    """Answer tokens. Formula: output_tokens − reasoning_tokens (never below 0)."""
    total, _ = output_tokens(trace)
    reasoning, _ = reasoning_tokens(trace)
    if total is None or reasoning is None:
        return None
    return max(total - reasoning, 0)


def input_tokens(trace: Trace) -> int | None:
    """Prompt tokens: the server's usage, else ceil(prompt characters / 4) (marked by
    token_source)."""
    if trace.input_tokens is not None:
        return trace.input_tokens
    return math.ceil(len(trace.request.prompt) / CHARS_PER_TOKEN)


def tpot_s(trace: Trace) -> float | None:
    """Time per output token after the first. Formula: (e2e_s − ttft_s) / (output_tokens − 1).

    Over every generated token, reasoning included, from the first token of any kind: both
    ends of the span and the count agree. Streaming only, and only with at least 2 tokens.
    """
    tokens, _ = output_tokens(trace)
    e2e, ttft = e2e_s(trace), ttft_s(trace)
    if trace.mode != "streaming" or tokens is None or tokens < 2 or e2e is None or ttft is None:
        return None
    span = e2e - ttft
    return span / (tokens - 1) if span > 0 else None


def output_tps(trace: Trace) -> float | None:
    """Output tokens per second.

    Formula: streaming, (output_tokens − 1) / (e2e_s − ttft_s); blocking, output_tokens / e2e_s.
    None when the denominator is 0 or a count is missing.
    """
    tokens, _ = output_tokens(trace)
    e2e, ttft = e2e_s(trace), ttft_s(trace)
    if tokens is None or e2e is None or ttft is None:
        return None
    if trace.mode == "streaming":
        span = e2e - ttft
        return (tokens - 1) / span if tokens >= 2 and span > 0 else None
    return tokens / e2e if e2e > 0 else None


# -- structured answers: derived from the chunks and the answer's schema (request.structure) ---


def structured_figures(trace: Trace) -> structured.StructuredFigures | None:
    """Per-field moments, time to the first visible field and to a schema-valid object,
    partial-parse failures and final validity (formulas: lib.core.structured.figures); None for
    a free-text answer. Computed once per trace and state (the partial parse is per chunk)."""
    structure = trace.request.structure
    if structure is None:
        return None
    key = (len(trace.chunks), trace.t0)
    cached = _figures_cache.get(trace.run_id)
    if cached is not None and cached[0] == key:
        return cached[1]
    figures = structured.figures(trace.chunks, trace.t0, structure.model)
    if trace.done:
        _figures_cache[trace.run_id] = (key, figures)
        while len(_figures_cache) > 512:
            _figures_cache.pop(next(iter(_figures_cache)))
    return figures


_figures_cache: dict[str, tuple[tuple, structured.StructuredFigures]] = {}


def first_field_s(trace: Trace) -> float | None:
    """Time to the first visible field. Formula: t(chunk carrying the first visible character
    of any field) − t0; blocking: = e2e_s. None for a free-text answer or when none began."""
    figures = structured_figures(trace)
    return figures.first_field_s if figures else None


def valid_object_s(trace: Trace) -> float | None:
    """Time to a schema-valid object. Formula: t(chunk carrying the object's closing brace) − t0,
    when the answer validates against its schema; None otherwise."""
    figures = structured_figures(trace)
    return figures.valid_object_s if figures else None


# -- behind a guardrail: derived from the strategy's display timeline (trace.guard) ----------


def delivered_ttft_s(trace: Trace) -> float | None:
    """First character the user sees behind the guardrail. Formula: t(first release) − t0.

    (The blank-screen time behind it is `perceived_s`: t(first release) − t_start.)
    """
    release = trace.guard.first("release") if trace.guard else None
    if release is None or trace.t0 is None:
        return None
    return release.t - trace.t0


def guard_e2e_s(trace: Trace) -> float | None:
    """Until the answer is shown and validated in full. Formula: t(done) − t0, validation
    included."""
    done = trace.guard.first("done") if trace.guard else None
    if done is None or trace.t0 is None:
        return None
    return done.t - trace.t0


@dataclass(frozen=True)
class Exposure:
    chars: int
    """Violating characters that were ever on screen."""
    seconds: float
    """How long at least one violating character was on screen (the union of their times
    on screen); characters never removed count until the strategy's end."""
    leaked: int
    """Violating characters still on screen at the end."""


def exposure(trace: Trace) -> Exposure | None:
    """The exposure window: violating characters on screen, and for how long, before removal.

    Formula: over the characters c of the reference violations (the chosen validators on the
    whole answer), chars = #{c shown}; seconds = |⋃ [t_shown(c), t_removed(c) or t_end]|,
    t_end = t(done) or the last event; leaked = #{c shown, never removed}.
    """
    guard = trace.guard
    if guard is None:
        return None
    length = len(trace.text)
    pieces = guard.pieces(length)
    end = guard.first("done")
    t_end = end.t if end is not None else (guard.events[-1].t if guard.events else 0.0)
    # The violating characters, each counted once however many spans cover it.
    violating = _union_spans([(max(0, a), min(b, length)) for a, b in guard.violations])
    intervals, chars, leaked = [], 0, 0
    for piece in pieces:
        if piece.shown_at is None:
            continue
        overlap = sum(max(0, min(b, piece.end) - max(a, piece.start)) for a, b in violating)
        if not overlap:
            continue
        chars += overlap
        leaked += overlap if piece.removed_at is None else 0
        removed = piece.removed_at
        intervals.append(
            (piece.shown_at, removed if removed is not None else max(t_end, piece.shown_at))
        )
    return Exposure(chars, _union_length(intervals), leaked)


def _union_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > reach:
            total += stop - max(start, reach)
            reach = stop
    return total


def retractions(trace: Trace) -> int | None:
    """Times the user saw shown text vanish. Formula: #{distinct t(removal) of shown characters}."""
    if trace.guard is None:
        return None
    pieces = trace.guard.pieces(len(trace.text))
    return len({p.removed_at for p in pieces if p.removed_at is not None})


def validation_s(trace: Trace) -> float | None:
    """Validation time the strategy spent. Formula: Σ measured durations of its checks."""
    if trace.guard is None:
        return None
    return sum(trace.guard.checks_s)


@dataclass(frozen=True)
class Metrics:
    """Every metric of one call, as stored in the run log."""

    client_s: float | None
    ttft_s: float | None
    perceived_s: float | None
    e2e_s: float | None
    tpot_s: float | None
    icl_p50_s: float | None
    icl_p95_s: float | None
    icl_max_s: float | None
    output_tokens: int | None
    input_tokens: int | None
    token_source: str | None
    output_tps: float | None
    output_chars: int
    icl_p99_s: float | None
    queue_s: float | None
    bench_offset_s: float | None
    ttfo_s: float | None = None
    thinking_s: float | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    reasoning_source: str | None = None
    reasoning_chars: int = 0
    first_field_s: float | None = None
    valid_object_s: float | None = None
    partial_failures: int | None = None
    object_valid: bool | None = None
    field_moments: str | None = None
    """JSON {field: [first_s, last_s]} (lib.core.structured.moments_json)."""
    delivered_ttft_s: float | None = None
    guard_e2e_s: float | None = None
    exposure_chars: int | None = None
    exposure_s: float | None = None
    leaked_chars: int | None = None
    retractions: int | None = None
    validation_s: float | None = None
    screen_first_s: float | None = None
    screen_done_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def compute(trace: Trace) -> Metrics:
    """All metrics of a trace."""
    tokens, source = output_tokens(trace)
    if source is None:  # no text arrived: the row still carries the prompt's token count
        source = "server" if trace.input_tokens is not None else "estimated"
    exposed = exposure(trace)
    reasoning, reasoning_source = reasoning_tokens(trace)
    figures = structured_figures(trace)
    return Metrics(
        client_s=client_s(trace),
        ttft_s=ttft_s(trace),
        perceived_s=perceived_s(trace),
        e2e_s=e2e_s(trace),
        tpot_s=tpot_s(trace),
        icl_p50_s=icl_p50_s(trace),
        icl_p95_s=icl_p95_s(trace),
        icl_max_s=icl_max_s(trace),
        output_tokens=tokens,
        input_tokens=input_tokens(trace),
        token_source=source,
        output_tps=output_tps(trace),
        output_chars=len(trace.text),
        icl_p99_s=icl_p99_s(trace),
        queue_s=queue_s(trace),
        bench_offset_s=bench_offset_s(trace),
        ttfo_s=ttfo_s(trace),
        thinking_s=thinking_s(trace),
        reasoning_tokens=reasoning,
        answer_tokens=answer_tokens(trace),
        reasoning_source=reasoning_source,
        reasoning_chars=len(trace.thinking),
        delivered_ttft_s=delivered_ttft_s(trace),
        guard_e2e_s=guard_e2e_s(trace),
        exposure_chars=exposed.chars if exposed else None,
        exposure_s=exposed.seconds if exposed else None,
        leaked_chars=exposed.leaked if exposed else None,
        retractions=retractions(trace),
        validation_s=validation_s(trace),
        screen_first_s=screen_first_s(trace),
        screen_done_s=screen_done_s(trace),
        first_field_s=figures.first_field_s if figures else None,
        valid_object_s=figures.valid_object_s if figures else None,
        partial_failures=figures.partial_failures if figures else None,
        object_valid=figures.object_valid if figures else None,
        field_moments=structured.moments_json(figures.fields) if figures else None,
    )


def speedup(blocking: Trace, streaming: Trace) -> float | None:
    """How many times sooner streaming showed its first words.
    Formula: perceived(blocking) / perceived(streaming)."""
    slow, fast = perceived_s(blocking), perceived_s(streaming)
    if slow is None or fast is None or fast <= 0:
        return None
    return slow / fast


def screen_speedup(blocking: Trace, streaming: Trace) -> float | None:
    """How many times sooner streaming painted its first words, on the browser's clock (the
    app's own delay, which both lanes share, included). Formula: screen_first(blocking) /
    screen_first(streaming); None unless a browser measured both."""
    slow, fast = screen_first_s(blocking), screen_first_s(streaming)
    if slow is None or fast is None or fast <= 0:
        return None
    return slow / fast


def release_spread_s(traces: Sequence[Trace]) -> float | None:
    """How far apart a race's lanes were released. Formula: max(t_run) − min(t_run) over its
    lanes (each lane's worker thread beginning its call after the shared release); None unless
    two lanes began."""
    runs = [trace.t_run for trace in traces if trace.t_run is not None]
    return max(runs) - min(runs) if len(runs) >= 2 else None


def sent_spread_s(traces: Sequence[Trace]) -> float | None:
    """How far apart a race's requests left. Formula: max(t0) − min(t0) over its lanes (the
    release spread plus each lane's own request building); None unless two were sent."""
    sent = [trace.t0 for trace in traces if trace.t0 is not None]
    return max(sent) - min(sent) if len(sent) >= 2 else None


def ranked(traces: Sequence[Trace]) -> list[Trace]:
    """A race's lanes by blank-screen time, shortest first; lanes that showed nothing last (in
    their lane order)."""
    shown = [t for t in traces if perceived_s(t) is not None]
    blank = [t for t in traces if perceived_s(t) is None]
    return sorted(shown, key=lambda t: perceived_s(t) or 0.0) + blank


# -- over many calls: the benchmark summary ----------------------------------------------------

SUMMARY_PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Distribution:
    """Mean and percentiles of one metric over many calls; all None when there were no values."""

    n: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


def distribution(values: Iterable[float | None]) -> Distribution:
    """Formula: over the values that are not None, mean = Σ v / n and pQ = percentile(v, Q)."""
    present = [v for v in values if v is not None]
    mean = sum(present) / len(present) if present else None
    p50, p90, p95, p99 = (percentile(present, q) for q in SUMMARY_PERCENTILES)
    return Distribution(len(present), mean, p50, p90, p95, p99)


@dataclass(frozen=True)
class Slo:
    """Service-level objectives a request must meet to count as good (goodput)."""

    ttft_s: float = 0.2
    icl_p99_s: float = 0.05


def meets_slo(trace: Trace, slo: Slo) -> bool:
    """A good request: status ok, ttft_s ≤ slo.ttft_s and icl_p99_s ≤ slo.icl_p99_s.

    A call with fewer than two chunks (every blocking call) has no gaps: it meets the ICL
    objective, and is judged on TTFT alone (which for a blocking call is the whole answer).
    """
    ttft = ttft_s(trace)
    icl = icl_p99_s(trace)
    return (
        trace.status == "ok"
        and ttft is not None
        and ttft <= slo.ttft_s
        and (icl is None or icl <= slo.icl_p99_s)
    )


def _one(metric: Callable[[Trace], float | None]) -> Callable[[Trace], list[float | None]]:
    return lambda trace: [metric(trace)]


SUMMARY_METRICS: dict[str, Callable[[Trace], list[float | None]]] = {
    "ttft_s": _one(ttft_s),
    "ttfo_s": _one(ttfo_s),
    "thinking_s": _one(thinking_s),
    "perceived_s": _one(perceived_s),
    "e2e_s": _one(e2e_s),
    "tpot_s": _one(tpot_s),
    "icl_s": inter_chunk_gaps,
    "output_tps": _one(output_tps),
    "client_s": _one(client_s),
    "queue_s": _one(queue_s),
}
"""What a summary describes, each as the samples one call contributes: one value per call,
except `icl_s`, to which each call gives all its gaps."""

STRUCTURED_SUMMARY_METRICS: dict[str, Callable[[Trace], list[float | None]]] = {
    "first_field_s": _one(first_field_s),
    "valid_object_s": _one(valid_object_s),
}
"""Added to a summary of structured calls (a schema was asked for)."""


@dataclass(frozen=True)
class ModeSummary:
    """One mode's calls in a benchmark: counts, rates, and a distribution per metric."""

    mode: str
    requests: int
    """Calls sent (any status)."""
    ok: int
    errors: int
    cancelled: int
    good: int
    """Calls that met the SLOs."""
    error_rate: float | None
    goodput_ratio: float | None
    request_throughput_rps: float | None
    goodput_rps: float | None
    output_token_throughput_tps: float | None
    metrics: dict[str, Distribution]
    valid_objects: int | None = None
    """Structured calls: how many ended with a schema-valid object (None for free text)."""

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(
    traces: Sequence[Trace], mode: str, duration_s: float | None, slo: Slo
) -> ModeSummary:
    """The summary of one mode's calls over a run of `duration_s` seconds.

    Formulas (n = calls of the mode sent, any status; distributions over the `ok` calls only):
        error_rate                   = errors / n
        goodput_ratio                = good / n          (good: `meets_slo`)
        request_throughput_rps       = ok / duration_s
        goodput_rps                  = good / duration_s
        output_token_throughput_tps  = Σ output_tokens(ok calls) / duration_s
        icl_s                        = every gap between consecutive chunks of every ok call,
                                       pooled (vLLM's ITL, AIPerf's inter-chunk latency)
    A rate is None without a duration, a ratio None without calls.
    """
    calls = [t for t in traces if t.mode == mode]
    done = [t for t in calls if t.status == "ok"]
    n = len(calls)
    errors = sum(t.status == "error" for t in calls)
    good = sum(meets_slo(t, slo) for t in calls)
    timed = duration_s is not None and duration_s > 0

    def per_second(count: float) -> float | None:
        return count / duration_s if timed else None

    tokens = sum(output_tokens(t)[0] or 0 for t in done)
    structured_calls = any(t.request.structure is not None for t in calls)
    described = {**SUMMARY_METRICS, **(STRUCTURED_SUMMARY_METRICS if structured_calls else {})}
    distributions = {
        name: distribution(v for t in done for v in samples(t))
        for name, samples in described.items()
    }
    return ModeSummary(
        mode=mode,
        requests=n,
        ok=len(done),
        errors=errors,
        cancelled=sum(t.status == "cancelled" for t in calls),
        good=good,
        error_rate=errors / n if n else None,
        goodput_ratio=good / n if n else None,
        request_throughput_rps=per_second(len(done)),
        goodput_rps=per_second(good),
        output_token_throughput_tps=per_second(tokens),
        metrics=distributions,
        valid_objects=sum(bool(valid_object_s(t) is not None) for t in calls)
        if structured_calls else None,
    )

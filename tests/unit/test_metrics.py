"""Every metric of lib.metrics on hand-built timelines, against values computed by hand.

Timestamps are chosen relative to T_START and T0 so that each expected value can be read off
the test: the request leaves at T0 = T_START + 0.0625 (client_s = 62.5 ms), chunk offsets
are seconds after T0.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

from lib.core import metrics
from lib.core.trace import Chunk, Params, Request, Trace
from lib.present import display

T_START = 100.0
CLIENT_S = 0.0625
T0 = T_START + CLIENT_S
PROMPT = "abcdefghij"  # 10 characters: estimated input tokens = ceil(10 / 4) = 3


def approx(value):
    return pytest.approx(value, abs=1e-9)


def make_trace(
    mode: str,
    offsets: list[float],
    texts: list[str] | None = None,
    *,
    output_tokens: int | None = None,
    input_tokens: int | None = None,
    t_shown: float | None = None,
    status: str = "ok",
    t0: float | None = T0,
    prompt: str = PROMPT,
) -> Trace:
    """A trace whose chunks arrive at T0 + offset."""
    texts = texts if texts is not None else [f"w{i} " for i in range(len(offsets))]
    assert len(texts) == len(offsets)
    request = Request(prompt, Params(), "compatible", "http://127.0.0.1:9/v1", "test-model")
    base = t0 if t0 is not None else T_START
    return Trace(
        request=request,
        mode=mode,  # type: ignore[arg-type]
        t_start=T_START,
        t0=t0,
        chunks=[Chunk(base + offset, text) for offset, text in zip(offsets, texts)],
        t_shown=t_shown,
        t_end=base + (offsets[-1] if offsets else 0.0) + 0.01,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        status=status,  # type: ignore[arg-type]
    )


# Six chunks; the gaps in arrival order are 0.3, 0.1, 1.0, 0.2, 0.4.
# Sorted gaps: [0.1, 0.2, 0.3, 0.4, 1.0] (n = 5)
#   p50: rank 0.5 × 4 = 2    → 0.3
#   p95: rank 0.95 × 4 = 3.8 → 0.4 + (1.0 − 0.4) × 0.8 = 0.88
#   max: 1.0
SIX_OFFSETS = [0.25, 0.55, 0.65, 1.65, 1.85, 2.25]


# -- percentile() ------------------------------------------------------------------------


def test_percentile_of_nothing_is_none():
    assert metrics.percentile([], 50) is None


def test_percentile_of_one_value_is_that_value_at_every_rank():
    for q in (0, 5, 50, 95, 100):
        assert metrics.percentile([0.042], q) == approx(0.042)


def test_percentile_interpolates_linearly_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert metrics.percentile(values, 0) == approx(1.0)
    assert metrics.percentile(values, 25) == approx(1.75)  # rank 0.75
    assert metrics.percentile(values, 50) == approx(2.5)  # rank 1.5
    assert metrics.percentile(values, 95) == approx(3.85)  # rank 2.85
    assert metrics.percentile(values, 100) == approx(4.0)
    assert values == [4.0, 1.0, 3.0, 2.0], "percentile must not sort the caller's list"


def test_percentile_matches_numpy_default():
    rng = random.Random(7)
    for n in (2, 3, 10, 51):
        values = [rng.uniform(0.001, 0.5) for _ in range(n)]
        for q in (0, 1, 25, 50, 90, 95, 99, 100):
            assert metrics.percentile(values, q) == pytest.approx(
                float(np.percentile(values, q)), abs=1e-12
            )


# -- no text -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["streaming", "blocking"])
def test_zero_chunks_leaves_every_timing_metric_none(mode):
    trace = make_trace(mode, [], status="error")
    m = metrics.compute(trace)
    assert m.client_s == approx(CLIENT_S)
    for name in ("ttft_s", "perceived_s", "e2e_s", "tpot_s", "icl_p50_s", "icl_p95_s",
                 "icl_max_s", "output_tokens", "output_tps"):
        assert getattr(m, name) is None, name
    assert m.output_chars == 0
    assert metrics.inter_chunk_gaps(trace) == []


def test_cancelled_before_the_request_left_has_no_client_time():
    trace = make_trace("streaming", [], t0=None, status="cancelled")
    m = metrics.compute(trace)
    assert m.client_s is None
    assert m.ttft_s is None and m.e2e_s is None and m.perceived_s is None


def test_an_estimated_input_count_is_marked_estimated_even_without_output():
    """DESIGN: counts absent from the server are "estimated and marked `estimated`".

    A call that failed before any text still gets input_tokens = ceil(10 / 4) = 3 from the
    prompt; that estimate must be marked (or not be given at all).
    """
    m = metrics.compute(make_trace("streaming", [], status="error"))
    assert m.input_tokens is None or m.token_source == "estimated", (
        f"input_tokens={m.input_tokens} is an estimate but token_source={m.token_source!r}"
    )


# -- one chunk ---------------------------------------------------------------------------


def test_one_streamed_chunk():
    trace = make_trace("streaming", [0.5], ["Hello"])
    m = metrics.compute(trace)
    assert m.ttft_s == approx(0.5)
    assert m.e2e_s == approx(0.5)
    assert m.perceived_s == approx(CLIENT_S + 0.5)  # headless: shown when received
    assert m.icl_p50_s is None and m.icl_p95_s is None and m.icl_max_s is None
    assert (m.output_tokens, m.token_source) == (1, "estimated")  # one chunk = one token
    assert m.tpot_s is None  # needs 2 tokens
    assert m.output_tps is None
    assert m.output_chars == 5


def test_one_streamed_chunk_carrying_many_tokens_has_no_per_token_time():
    """A server (or buffering gateway) that sends the whole answer as one SSE chunk, with
    usage saying 7 tokens: there is no interval to divide, so tpot_s does not apply.
    The module's rule: "one chunk only ... is None, never 0"."""
    trace = make_trace("streaming", [0.5], ["a whole answer"], output_tokens=7, input_tokens=4)
    assert metrics.output_tps(trace) is None
    assert metrics.tpot_s(trace) is None, "0.0 s per token would read as infinitely fast"


# -- several chunks ----------------------------------------------------------------------


def test_inter_chunk_gaps_in_arrival_order():
    gaps = metrics.inter_chunk_gaps(make_trace("streaming", SIX_OFFSETS))
    assert gaps == [approx(g) for g in (0.3, 0.1, 1.0, 0.2, 0.4)]


def test_several_streamed_chunks_with_known_gaps():
    trace = make_trace("streaming", SIX_OFFSETS)
    m = metrics.compute(trace)
    assert m.client_s == approx(CLIENT_S)
    assert m.ttft_s == approx(0.25)
    assert m.e2e_s == approx(2.25)
    assert m.perceived_s == approx(CLIENT_S + 0.25)
    assert m.icl_p50_s == approx(0.3)
    assert m.icl_p95_s == approx(0.88)
    assert m.icl_max_s == approx(1.0)
    # No usage: one token per chunk.
    assert (m.output_tokens, m.token_source) == (6, "estimated")
    assert m.tpot_s == approx((2.25 - 0.25) / 5)  # 0.4
    assert m.output_tps == approx(5 / (2.25 - 0.25))  # 2.5
    assert m.output_chars == sum(len(f"w{i} ") for i in range(6))


def test_p50_interpolates_with_an_even_number_of_gaps():
    # gaps in order 0.5, 0.1, 0.3, 0.2 → sorted [0.1, 0.2, 0.3, 0.5]
    trace = make_trace("streaming", [0.1, 0.6, 0.7, 1.0, 1.2])
    assert metrics.icl_p50_s(trace) == approx(0.25)  # rank 1.5
    assert metrics.icl_p95_s(trace) == approx(0.47)  # rank 2.85: 0.3 + 0.2 × 0.85
    assert metrics.icl_max_s(trace) == approx(0.5)


def test_server_usage_is_used_and_marked_server():
    trace = make_trace("streaming", SIX_OFFSETS, output_tokens=11, input_tokens=17)
    m = metrics.compute(trace)
    assert (m.output_tokens, m.input_tokens, m.token_source) == (11, 17, "server")
    assert m.tpot_s == approx(2.0 / 10)
    assert m.output_tps == approx(10 / 2.0)


def test_no_usage_estimates_input_from_the_prompt():
    trace = make_trace("streaming", SIX_OFFSETS, prompt="x" * 41)
    m = metrics.compute(trace)
    assert m.input_tokens == 11  # ceil(41 / 4)
    assert m.token_source == "estimated"


def test_an_error_midway_keeps_the_metrics_of_what_arrived():
    trace = make_trace("streaming", [0.1, 0.2, 0.35], ["It ", "was ", "cut"], status="error")
    trace.error, trace.error_kind = "The stream broke", "stream_broken"
    m = metrics.compute(trace)
    assert m.ttft_s == approx(0.1)
    assert m.e2e_s == approx(0.35)
    assert m.icl_p50_s == approx(0.125)  # gaps [0.1, 0.15]
    assert m.icl_max_s == approx(0.15)
    assert (m.output_tokens, m.token_source) == (3, "estimated")
    assert m.tpot_s == approx(0.25 / 2)
    assert m.output_chars == len("It was cut")


# -- blocking ----------------------------------------------------------------------------


def test_blocking_ttft_equals_e2e_and_has_no_per_token_metrics():
    trace = make_trace("blocking", [0.8], ["0123456789"])
    m = metrics.compute(trace)
    assert m.ttft_s == approx(0.8)
    assert m.e2e_s == approx(0.8)
    assert m.perceived_s == approx(CLIENT_S + 0.8)
    assert m.icl_p50_s is None and m.icl_p95_s is None and m.icl_max_s is None
    assert m.tpot_s is None
    # No usage, blocking: ceil(characters / 4).
    assert (m.output_tokens, m.token_source) == (3, "estimated")
    assert m.output_tps == approx(3 / 0.8)  # output_tokens / e2e_s


def test_blocking_output_tps_with_server_usage():
    trace = make_trace("blocking", [0.8], ["0123456789"], output_tokens=40, input_tokens=5)
    m = metrics.compute(trace)
    assert (m.output_tokens, m.input_tokens, m.token_source) == (40, 5, "server")
    assert m.output_tps == approx(50.0)
    assert m.tpot_s is None  # streaming only


def test_streaming_and_blocking_rules_differ_on_the_same_timeline():
    # Both end at 0.8 s with usage of 40 tokens: only the rules differ.
    blocking = metrics.compute(make_trace("blocking", [0.8], ["x"], output_tokens=40))
    streaming = metrics.compute(make_trace("streaming", [0.4, 0.8], ["x", "y"], output_tokens=40))
    assert blocking.ttft_s == approx(0.8) and streaming.ttft_s == approx(0.4)
    assert blocking.output_tps == approx(40 / 0.8)
    assert streaming.output_tps == approx(39 / 0.4)
    assert streaming.tpot_s == approx(0.4 / 39)


# -- perceived ---------------------------------------------------------------------------


def test_perceived_uses_the_renderer_moment_when_there_is_one():
    streaming = make_trace("streaming", SIX_OFFSETS, t_shown=T_START + 0.5)
    blocking = make_trace("blocking", [0.8], ["answer"], t_shown=T_START + 1.0)
    assert metrics.perceived_s(streaming) == approx(0.5)
    assert metrics.perceived_s(blocking) == approx(1.0)


def test_perceived_headless_falls_back_to_receipt():
    # Streaming: the first chunk; blocking: the (last and only) chunk, the full answer.
    assert metrics.perceived_s(make_trace("streaming", SIX_OFFSETS)) == approx(CLIENT_S + 0.25)
    assert metrics.perceived_s(make_trace("blocking", [0.8], ["a"])) == approx(CLIENT_S + 0.8)


def test_perceived_needs_a_start():
    trace = make_trace("streaming", SIX_OFFSETS)
    trace.t_start = None
    assert metrics.perceived_s(trace) is None


# -- speedup -----------------------------------------------------------------------------


def test_speedup_is_the_ratio_of_blank_screen_times():
    blocking = make_trace("blocking", [1.9], ["a"], t_shown=T_START + 2.0)
    streaming = make_trace("streaming", [0.2, 0.4], t_shown=T_START + 0.25)
    assert metrics.speedup(blocking, streaming) == approx(8.0)


def test_speedup_is_none_when_a_side_showed_nothing():
    blocking = make_trace("blocking", [1.9], ["a"])
    assert metrics.speedup(blocking, make_trace("streaming", [], status="error")) is None
    assert metrics.speedup(make_trace("blocking", [], status="error"),
                           make_trace("streaming", [0.2])) is None


def test_speedup_is_none_for_a_zero_blank_screen():
    blocking = make_trace("blocking", [1.9], ["a"])
    streaming = make_trace("streaming", [0.2], t_shown=T_START)
    assert metrics.speedup(blocking, streaming) is None


# -- the record --------------------------------------------------------------------------


DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented_metrics() -> list[str]:
    """The names in the first column of docs/metrics.md's per-call tables (headed `| name |`)
    in its sections Definitions and Behind a guardrail (the guard's added metrics); rows
    marked "(derived, not a column)" are computed elsewhere, not part of the record."""
    names: list[str] = []
    for section in DOCS.read_text().split("\n## ")[1:]:
        if not section.startswith(("Definitions", "Behind a guardrail")):
            continue
        in_table = False
        for line in section.splitlines():
            in_table = line.startswith("| name |") or (in_table and line.startswith("|"))
            if in_table and line.startswith("| `") and "(derived" not in line.split("|")[1]:
                names += [n for n in re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])
                          if n not in names]
    return names


def test_compute_yields_exactly_the_documented_metrics():
    names = [f.name for f in dataclasses.fields(metrics.Metrics)]
    documented = documented_metrics()
    assert len(documented) >= 25, documented  # both tables were found
    assert sorted(names) == sorted(documented), (
        set(names) ^ set(documented), "docs/metrics.md and Metrics differ")
    guard = ["delivered_ttft_s", "guard_e2e_s", "exposure_chars", "exposure_s", "leaked_chars",
             "retractions", "validation_s"]
    # the guard's metrics, then the browser's clock (m008_screen), close the record
    assert names[-len(guard) - 2:] == guard + ["screen_first_s", "screen_done_s"]
    as_dict = metrics.compute(make_trace("streaming", SIX_OFFSETS)).as_dict()
    assert list(as_dict) == names
    guard_only = names[names.index("delivered_ttft_s"):]
    assert all(as_dict[name] is None for name in guard_only), "not applicable without a guard"
    assert not any(isinstance(v, float) and math.isnan(v) for v in as_dict.values())


# -- the browser's clock ----------------------------------------------------------------------


def test_the_browser_clock_is_none_unless_a_browser_measured_it():
    blocking = make_trace("blocking", [1.0], t_shown=T0 + 1.0)
    streaming = make_trace("streaming", [0.25, 0.5], t_shown=T0 + 0.3)
    for trace in (blocking, streaming):
        m = metrics.compute(trace)
        assert (m.screen_first_s, m.screen_done_s) == (None, None)
        assert metrics.app_delay_s(trace) is None
    assert metrics.screen_speedup(blocking, streaming) is None
    assert "your screen: not measured" in display.two_clocks(streaming)

    blocking.screen_first_s = blocking.screen_done_s = 1.2
    streaming.screen_first_s, streaming.screen_done_s = 0.4, 0.9
    m = metrics.compute(streaming)
    assert (m.screen_first_s, m.screen_done_s) == (0.4, 0.9)
    # The server's blank screen runs from t_start: 0.3 + CLIENT_S; the rest is the app's.
    assert metrics.app_delay_s(streaming) == pytest.approx(0.4 - (0.3 + CLIENT_S))
    assert metrics.screen_speedup(blocking, streaming) == pytest.approx(3.0)
    line = display.two_clocks(streaming)
    assert "Server clock" in line and "**400 ms** after your click" in line
    assert "the whole answer at 900 ms" in line

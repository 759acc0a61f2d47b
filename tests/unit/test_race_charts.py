"""The race timeline and the benchmark charts draw the numbers of hand-made traces.

The browser tests only see that a plot exists; here each figure's data is checked against
timestamps chosen by hand, so a chart that drew the wrong moment (t0 instead of t_start,
receipt instead of display, a mode's bars under the other's name) would fail.
"""

from __future__ import annotations

import pytest

from lib.core import metrics
from lib.core.trace import Chunk, Params, Request, Trace
from lib.present import charts
from lib.present.stats import chars_on_screen

T = 100.0  # t_start of every hand-made call


def made(mode: str, offsets: list[float], texts: list[str], *, t0: float = 0.002,
         shown: float | None = None, thoughts: int = 0, **fields) -> Trace:
    """A finished call: chunks at T + offset; the first `thoughts` chunks are reasoning."""
    fields.setdefault("status", "ok")
    request = Request("p", Params(), "compatible", "http://x/v1", "m")
    trace = Trace(request, mode, t_start=T, t0=T + t0, **fields)  # type: ignore[arg-type]
    trace.chunks = [Chunk(T + o, s, i < thoughts) for i, (o, s) in enumerate(zip(offsets, texts))]
    trace.t_end = T + offsets[-1] if offsets else T + t0
    trace.t_shown = None if shown is None else T + shown
    return trace


BLOCKING = made("blocking", [1.5], ["Paris is the capital."], shown=1.6)
STREAMING = made("streaming", [0.2, 0.3, 0.45], ["Paris ", "is the ", "capital."], shown=0.21)


def test_chars_on_screen_streaming_counts_characters_at_each_arrival():
    assert chars_on_screen(STREAMING) == ([0.0, pytest.approx(0.2), pytest.approx(0.3),
                                           pytest.approx(0.45)], [0, 6, 13, 21])


def test_chars_on_screen_blocking_is_nothing_then_everything_when_shown():
    # Shown at 1.6 s (the renderer's moment), not received at 1.5 s.
    assert chars_on_screen(BLOCKING) == ([0.0, pytest.approx(1.6)], [0, 21])


def test_chars_on_screen_without_text_or_start():
    assert chars_on_screen(made("streaming", [], [])) == ([0.0], [0])


def bars(figure, name_part: str) -> list:
    return [t for t in figure.data if t.type == "bar" and name_part in (t.name or "")]


def test_race_timeline_bars_are_blank_then_visible_per_mode():
    figure = charts.race_timeline(BLOCKING, STREAMING)
    blank = {b.y[0]: b.x[0] for b in bars(figure, "blank screen")}
    assert blank == {charts.LABELS["blocking"]: pytest.approx(1.6),
                     charts.LABELS["streaming"]: pytest.approx(0.21)}
    visible = {b.name: (b.base[0], b.x[0]) for b in bars(figure, "text visible")}
    # Blocking: the whole answer appears at once (0 s of growing text); streaming: from the
    # first text shown to the last chunk received.
    assert visible["blocking: text visible"] == (pytest.approx(1.6), pytest.approx(0.0))
    assert visible["streaming: text visible"] == (pytest.approx(0.21), pytest.approx(0.24))
    lines = {s.name: (list(s.x), list(s.y)) for s in figure.data if s.type == "scatter"}
    assert lines[charts.LABELS["streaming"]] == chars_on_screen(STREAMING)
    assert lines[charts.LABELS["blocking"]] == chars_on_screen(BLOCKING)
    assert not bars(figure, "thinking")


def test_race_timeline_marks_thinking_from_first_thought_to_first_answer_word():
    thinking = made("streaming", [0.1, 0.2, 0.8, 0.9], ["hmm ", "so ", "Paris", "."],
                    thoughts=2, shown=0.81)
    [bar] = bars(charts.race_timeline(BLOCKING, thinking), "thinking")
    assert (bar.base[0], bar.x[0]) == (pytest.approx(0.1), pytest.approx(0.7))


def test_race_timeline_of_a_failed_lane_draws_no_bars_for_it():
    failed = made("blocking", [], [], status="error")
    figure = charts.race_timeline(failed, STREAMING)
    assert [b.y[0] for b in bars(figure, "blank screen")] == [charts.LABELS["streaming"]]


def bench_traces() -> list[Trace]:
    """Four measured calls per mode due at 0, 1, 2, 3 s, and one warm-up that must not count."""
    traces = []
    for i in range(4):
        streaming = made("streaming", [0.1 + i / 100, 0.2 + i / 100], ["a", "b"], t0=0.01,
                         t_bench=T - i, bench_phase="measured")
        blocking = made("blocking", [1.0 + i / 10], ["ab"], t0=0.01, t_bench=T - i,
                        bench_phase="measured")
        traces += [streaming, blocking]
    traces.append(made("streaming", [5.0], ["late"], t_bench=T - 9, bench_phase="warmup"))
    return traces


def summaries(traces: list[Trace]) -> dict[str, metrics.ModeSummary]:
    measured = [t for t in traces if t.bench_phase == "measured"]
    return {mode: metrics.summarize(measured, mode, 4.0, metrics.Slo())
            for mode in ("blocking", "streaming")}


def test_bench_percentiles_draws_each_mode_percentiles_in_ms():
    modes = summaries(bench_traces())
    figure = charts.bench_percentiles(modes)
    drawn = {(b.name, b.xaxis): list(b.y) for b in figure.data}
    # Panels in BENCH_PANELS order: ttft (x), perceived (x2), e2e (x3), icl (x4).
    for axis, name in zip(("x", "x2", "x3", "x4"), charts.BENCH_PANELS):
        for mode, summary in modes.items():
            d = summary.metrics[name]
            expected = [getattr(d, q) for q in charts.PERCENTILES]
            key = (charts.LABELS[mode], axis)
            if all(v is None for v in expected):  # blocking calls have no gaps
                assert key not in drawn, key
                continue
            assert drawn[key] == pytest.approx([v * 1000 for v in expected]), key
    # The streaming TTFT p50 of 0.1..0.13 s after a t0 of 10 ms: 105 ms.
    assert drawn[(charts.LABELS["streaming"], "x")][0] == pytest.approx(105.0)


def test_bench_over_time_puts_each_measured_call_where_it_was_due():
    figure = charts.bench_over_time(bench_traces())
    points = {(s.name, s.yaxis): (list(s.x), list(s.y)) for s in figure.data}
    xs, ys = points[(charts.LABELS["streaming"], "y2")]  # TTFT panel; the warm-up left out
    assert xs == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert ys == pytest.approx([90.0, 100.0, 110.0, 120.0])
    xs, ys = points[(charts.LABELS["blocking"], "y")]  # blank screen: receipt, headless
    assert xs == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert ys == pytest.approx([1000.0, 1100.0, 1200.0, 1300.0])


def test_bench_comparison_draws_p50_and_p99_of_each_benchmark_and_mode():
    first = summaries(bench_traces())
    figure = charts.bench_comparison([("A", first), ("B", first)])
    drawn = {(b.name, b.xaxis): list(b.y) for b in figure.data}
    assert len(drawn) == 8  # 2 benchmarks × 2 modes × 2 panels
    for axis, name in (("x", "perceived_s"), ("x2", "ttft_s")):
        for mode, summary in first.items():
            d = summary.metrics[name]
            assert drawn[(f"B · {mode}", axis)] == pytest.approx([d.p50 * 1000, d.p99 * 1000])

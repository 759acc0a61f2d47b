"""Plotly figures, built from Traces (or run-log rows) and nothing else. No Streamlit here."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib import metrics
from lib.trace import Trace

COLORS = {"blocking": "#d62728", "streaming": "#2ca02c", "blank": "#c7c7c7"}
LABELS = {"blocking": "⏳ Blocking", "streaming": "⚡ Streaming"}


def chars_on_screen(trace: Trace) -> tuple[list[float], list[int]]:
    """Step points (seconds after the race start, characters visible) for one call.

    Streaming: characters received by each chunk's arrival; blocking: nothing, then the whole
    answer at the moment it was shown. Time 0 is the call's t_start.
    """
    if trace.t_start is None or not trace.chunks:
        return [0.0], [0]
    if trace.mode == "blocking":
        shown = trace.shown_or_received()
        return [0.0, shown - trace.t_start], [0, len(trace.text)]
    xs, ys, total = [0.0], [0], 0
    for chunk in trace.chunks:
        total += len(chunk.text)
        xs.append(chunk.t - trace.t_start)
        ys.append(total)
    return xs, ys


def race_timeline(blocking: Trace, streaming: Trace) -> go.Figure:
    """Two panels: blank vs visible time per mode, and characters on screen over time."""
    figure = make_subplots(
        rows=2, cols=1, row_heights=[0.35, 0.65], vertical_spacing=0.16,
        subplot_titles=("Blank screen, then text", "Characters on screen"),
    )
    for trace in (blocking, streaming):
        mode = trace.mode
        blank = metrics.perceived_s(trace)
        end = _end_s(trace)
        label = LABELS[mode]
        if blank is not None:
            figure.add_trace(go.Bar(
                y=[label], x=[blank], orientation="h", marker_color=COLORS["blank"],
                name="blank screen", legendgroup="blank", showlegend=mode == "blocking",
                hovertemplate=f"{label}: blank for %{{x:.3f}} s<extra></extra>",
                text=[f"{blank:.2f} s blank"], textposition="inside",
            ), row=1, col=1)
            visible = max(0.0, (end or blank) - blank)
            figure.add_trace(go.Bar(
                y=[label], x=[visible], base=[blank], orientation="h", marker_color=COLORS[mode],
                name=f"{mode}: text visible", hovertemplate=(
                    f"{label}: text visible from {blank:.3f} s<extra></extra>"),
                showlegend=False,
            ), row=1, col=1)
        xs, ys = chars_on_screen(trace)
        figure.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line_shape="hv", line_color=COLORS[mode], name=label,
            hovertemplate="%{y} characters at %{x:.3f} s<extra></extra>",
        ), row=2, col=1)
    figure.update_layout(
        barmode="overlay", height=420, margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.12),
    )
    figure.update_xaxes(title_text="seconds after Run", row=2, col=1)
    figure.update_yaxes(title_text="characters", row=2, col=1)
    return figure


def _end_s(trace: Trace) -> float | None:
    if trace.t_start is None or not trace.chunks:
        return None
    if trace.mode == "blocking":
        return metrics.perceived_s(trace)
    return trace.chunks[-1].t - trace.t_start


# -- benchmarks --------------------------------------------------------------------------------

BENCH_PANELS = {"ttft_s": "TTFT", "perceived_s": "Blank screen (perceived)", "e2e_s": "End to end",
                "icl_s": "Inter-chunk latency (all gaps)"}
PERCENTILES = ("p50", "p90", "p95", "p99")


def bench_percentiles(modes: dict[str, metrics.ModeSummary]) -> go.Figure:
    """Percentile bars per mode, one panel per metric (milliseconds)."""
    names = list(BENCH_PANELS)
    figure = make_subplots(rows=2, cols=2, subplot_titles=[BENCH_PANELS[n] for n in names],
                           vertical_spacing=0.18, horizontal_spacing=0.08)
    for index, name in enumerate(names):
        row, col = divmod(index, 2)
        for mode, summary in modes.items():
            d = summary.metrics[name]
            values = [getattr(d, q) for q in PERCENTILES]
            if all(v is None for v in values):
                continue
            ms = [None if v is None else v * 1000 for v in values]
            figure.add_trace(go.Bar(
                x=list(PERCENTILES), y=ms, name=LABELS[mode], marker_color=COLORS[mode],
                legendgroup=mode, showlegend=index == 0,
                text=[_short_ms(v) for v in ms], textposition="outside", cliponaxis=False,
                hovertemplate=f"{LABELS[mode]} %{{x}}: %{{y:.1f}} ms<extra></extra>",
            ), row=row + 1, col=col + 1)
        figure.update_yaxes(title_text="ms", rangemode="tozero", row=row + 1, col=col + 1)
    figure.update_layout(barmode="group", height=560, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.08))
    return figure


def bench_over_time(traces: list[Trace]) -> go.Figure:
    """Blank screen and TTFT of each measured call against when it was due in the run: a
    rising cloud is a queue building up under load."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                           subplot_titles=("Blank screen (perceived)", "TTFT"))
    for row, metric in ((1, metrics.perceived_s), (2, metrics.ttft_s)):
        for mode in (m for m in LABELS if any(t.mode == m for t in traces)):
            points = [(metrics.bench_offset_s(t), metric(t)) for t in traces
                      if t.mode == mode and t.bench_phase == "measured"]
            points = [(x, y * 1000) for x, y in points if x is not None and y is not None]
            figure.add_trace(go.Scatter(
                x=[x for x, _ in points], y=[y for _, y in points], mode="markers",
                marker=dict(color=COLORS[mode], size=6, opacity=0.7), name=LABELS[mode],
                legendgroup=mode, showlegend=row == 1,
                hovertemplate="due at %{x:.2f} s: %{y:.1f} ms<extra></extra>",
            ), row=row, col=1)
        figure.update_yaxes(title_text="ms", rangemode="tozero", row=row, col=1)
    figure.update_xaxes(title_text="seconds into the benchmark (when the request was due)",
                        row=2, col=1)
    figure.update_layout(height=520, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.14))
    return figure


def bench_comparison(summaries: list[tuple[str, dict[str, metrics.ModeSummary]]]) -> go.Figure:
    """p50 and p99 of blank screen and TTFT, per benchmark and mode, side by side (ms)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Blank screen (perceived)", "TTFT"))
    for col, name in ((1, "perceived_s"), (2, "ttft_s")):
        for label, modes in summaries:
            for mode, summary in modes.items():
                d = summary.metrics[name]
                values = [None if v is None else v * 1000 for v in (d.p50, d.p99)]
                figure.add_trace(go.Bar(
                    x=["p50", "p99"], y=values, name=f"{label} · {mode}",
                    legendgroup=f"{label}{mode}", showlegend=col == 1,
                    hovertemplate=f"{label} {mode} %{{x}}: %{{y:.1f}} ms<extra></extra>",
                ), row=1, col=col)
        figure.update_yaxes(title_text="ms", rangemode="tozero", row=1, col=col)
    figure.update_layout(barmode="group", height=380, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.15))
    return figure


def _short_ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"

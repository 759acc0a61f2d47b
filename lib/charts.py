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


def replay_preview(recorded: tuple[Trace, Trace] | None, what_if: tuple[Trace, Trace]) -> go.Figure:
    """Characters on screen over time, as recorded (dashed) and under the what-if (solid).

    Each argument is a (blocking, streaming) pair of preview traces (lib.replay.preview):
    the streaming ramp and the blocking step, so the gap a transform opens or closes shows.
    """
    figure = go.Figure()
    for pair, dash, suffix in ((recorded, "dot", "as recorded"), (what_if, "solid", "what-if")):
        for trace in pair or ():
            xs, ys = chars_on_screen(trace)
            figure.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", line_shape="hv", name=f"{LABELS[trace.mode]}, {suffix}",
                line=dict(color=COLORS[trace.mode], dash=dash, width=2 if dash == "solid" else 1.5),
                hovertemplate="%{y} characters at %{x:.3f} s<extra></extra>",
            ))
    figure.update_layout(
        height=340, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25),
        title=dict(text="Characters on screen", font=dict(size=14)),
    )
    figure.update_xaxes(title_text="seconds after the request")
    figure.update_yaxes(title_text="characters")
    return figure

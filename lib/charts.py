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


# -- guardrails ---------------------------------------------------------------------------------

GUARD_COLORS = {"none": "#d62728", "after": "#ff7f0e", "sentence": "#2ca02c", "window": "#1f77b4",
                "blocking": "#7f7f7f"}


LABEL_POSITIONS = {"none": "middle left", "after": "middle right", "sentence": "top center",
                   "window": "bottom center", "blocking": "top center"}
"""none and after share their blank screen and nearly their exposure: labels to either side."""


def guard_tradeoff(traces: list[Trace]) -> go.Figure:
    """Blank-screen time against exposure, one point per strategy of one guardrails run.

    A strategy that never removed a violation is drawn as ▲: its exposure is a lower bound.
    """
    figure = go.Figure()
    points = []
    for trace in traces:
        m = metrics.compute(trace)
        if trace.guard is not None and m.perceived_s is not None and m.exposure_s is not None:
            points.append((trace.guard, m))
    top = max([m.exposure_s * 1000 for _, m in points] + [1.0])
    right = max([m.perceived_s for _, m in points] + [0.1])
    # Leaks last: their ▲ is drawn over any circle at the same place.
    for guard, m in sorted(points, key=lambda point: bool(point[1].leaked_chars)):
        leaked = bool(m.leaked_chars)
        note = (f"{m.leaked_chars} violating characters never removed" if leaked else
                f"{m.exposure_chars} violating characters shown" if m.exposure_chars else
                "no violating character shown")
        figure.add_trace(go.Scatter(
            x=[m.perceived_s], y=[m.exposure_s * 1000], mode="markers+text",
            name=guard.label, text=[f" {guard.label} "],
            textposition=LABEL_POSITIONS.get(guard.strategy, "top center"), cliponaxis=False,
            marker=dict(size=18 if leaked else 14, symbol="triangle-up" if leaked else "circle",
                        color=GUARD_COLORS.get(guard.strategy, "#9467bd"),
                        line=dict(width=1, color="white")),
            hovertemplate=(f"{guard.label}<br>blank screen %{{x:.3f}} s<br>"
                           f"exposure %{{y:.1f}} ms{' or more' if leaked else ''}<br>{note}<extra></extra>"),
        ))
    figure.update_layout(
        height=380, margin=dict(l=10, r=30, t=40, b=10), showlegend=False,
        title=dict(text="Blank screen against exposure (▲ never removed)", x=0.0, font_size=15),
    )
    figure.update_xaxes(title_text="blank screen before the first text (s)",
                        range=[-0.06 * right, 1.15 * right])
    figure.update_yaxes(title_text="violating text on screen (ms)", range=[-0.1 * top, 1.15 * top])
    return figure


def visible_chars(trace: Trace) -> tuple[list[float], list[int]]:
    """Step points (seconds after t_start, characters the user can read) behind a guardrail."""
    if trace.guard is None or trace.t_start is None:
        return [0.0], [0]
    steps: list[tuple[float, int]] = []
    for _, shown, removed in trace.guard.history(len(trace.text)):
        if shown is not None:
            steps.append((shown, 1))
            if removed is not None:
                steps.append((removed, -1))
    xs, ys, total = [0.0], [0], 0
    for t, change in sorted(steps):
        total += change
        x = t - trace.t_start
        if xs[-1] == x:
            ys[-1] = total
        else:
            xs.append(x)
            ys.append(total)
    return xs, ys


def guard_timelines(traces: list[Trace]) -> go.Figure:
    """Characters the user can read over time, one line per strategy: a drop is a retraction."""
    figure = go.Figure()
    lines = [(trace, *visible_chars(trace)) for trace in traces if trace.guard is not None]
    # Held to a little past the last event, so that a last-moment release or removal shows.
    end = 1.06 * max([xs[-1] for _, xs, _ in lines] + [0.1])
    for trace, xs, ys in lines:
        xs, ys = [*xs, end], [*ys, ys[-1]]
        figure.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line_shape="hv", name=trace.guard.label,
            line=dict(color=GUARD_COLORS.get(trace.guard.strategy, "#9467bd"),
                      dash="dot" if trace.guard.strategy == "none" else "solid", width=2),
            hovertemplate="%{y} characters readable at %{x:.3f} s<extra></extra>",
        ))
    figure.update_layout(
        height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.28),
        title=dict(text="What each strategy let the user read", x=0.0, font_size=15),
    )
    figure.update_xaxes(title_text="seconds after Run", range=[0, end])
    figure.update_yaxes(title_text="characters on screen", rangemode="tozero")
    return figure

"""Plotly figures (and History's first chart as a Vega-Lite spec) and their one-line captions,
drawn from lib.present.stats. No Streamlit here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib.core import metrics
from lib.core.trace import Trace
from lib.present.display import seconds
from lib.present.stats import (
    BlankScreen,
    LengthFit,
    Patience,
    ThinkingSplit,
    Timelines,
    chars_on_screen,
    visible_chars,
)

COLORS = {"blocking": "#d62728", "streaming": "#2ca02c", "blank": "#c7c7c7",
          "thinking": "#9467bd"}


LABELS = {"blocking": "⏳ Blocking", "streaming": "⚡ Streaming"}

LANE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
"""One colour per lane of a race of lanes (a lane's mode is in its label)."""


def lane_name(trace: Trace, lanes: bool) -> str:
    """What a race's chart calls a trace: its mode (the default race) or its lane's label."""
    if lanes and trace.lane_label:
        return f"{'⏳' if trace.mode == 'blocking' else '⚡'} {trace.lane_label}"
    return LABELS[trace.mode]


def lane_color(trace: Trace, lanes: bool) -> str:
    if lanes and trace.lane_index is not None:
        return LANE_COLORS[trace.lane_index % len(LANE_COLORS)]
    return COLORS[trace.mode]


def race_timeline(*traces: Trace, lanes: bool = False) -> go.Figure:
    """Two panels: blank vs visible time per lane, and characters on screen over time.

    The default race's two lanes are named by their mode; with `lanes`, by their labels,
    each in its own colour, in lane order from the top.
    """
    figure = make_subplots(
        rows=2, cols=1, row_heights=[0.35, 0.65], vertical_spacing=0.16,
        subplot_titles=("Blank screen, then text", "Characters on screen"),
    )
    for index, trace in enumerate(traces):
        mode = trace.mode
        blank = metrics.perceived_s(trace)
        end = _end_s(trace)
        label = lane_name(trace, lanes)
        color = lane_color(trace, lanes)
        if blank is not None:
            figure.add_trace(go.Bar(
                y=[label], x=[blank], orientation="h", marker_color=COLORS["blank"],
                name="blank screen", legendgroup="blank", showlegend=index == 0,
                hovertemplate=f"{label}: blank for %{{x:.3f}} s<extra></extra>",
                text=[f"{blank:.2f} s blank"], textposition="inside",
            ), row=1, col=1)
            visible = max(0.0, (end or blank) - blank)
            figure.add_trace(go.Bar(
                y=[label], x=[visible], base=[blank], orientation="h", marker_color=color,
                name=f"{mode}: text visible", hovertemplate=(
                    f"{label}: text visible from {blank:.3f} s<extra></extra>"),
                showlegend=False,
            ), row=1, col=1)
        thinking = _thinking_span(trace)
        if thinking is not None:  # first thought → first answer word, over the bars
            first, answer = thinking
            figure.add_trace(go.Bar(
                y=[label], x=[answer - first], base=[first], orientation="h", width=0.35,
                marker_color=COLORS["thinking"], name="thinking (first thought → first word)",
                hovertemplate=(f"{label}: first thought {first:.3f} s, first answer word "
                               f"{answer:.3f} s<extra></extra>"),
            ), row=1, col=1)
        xs, ys = chars_on_screen(trace)
        figure.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line_shape="hv", line_color=color, name=label,
            hovertemplate="%{y} characters at %{x:.3f} s<extra></extra>",
        ), row=2, col=1)
    figure.update_layout(
        barmode="overlay", height=420 + 40 * max(0, len(traces) - 2),
        margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.12),
    )
    if lanes:
        figure.update_yaxes(autorange="reversed", row=1, col=1)  # the first lane on top
    figure.update_xaxes(title_text="seconds after Run", row=2, col=1)
    figure.update_yaxes(title_text="characters", row=2, col=1)
    return figure


def _thinking_span(trace: Trace) -> tuple[float, float] | None:
    """A streamed lane's first thought and first answer word, in seconds after Run."""
    thoughts, answer = trace.thought_chunks, trace.answer_chunks
    if trace.mode != "streaming" or trace.t_start is None or not thoughts:
        return None
    end = answer[0].t if answer else thoughts[-1].t
    return thoughts[0].t - trace.t_start, end - trace.t_start


def _end_s(trace: Trace) -> float | None:
    if trace.t_start is None or not trace.chunks:
        return None
    if trace.mode == "blocking":
        return metrics.perceived_s(trace)
    return trace.chunks[-1].t - trace.t_start


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


NIELSEN_S = (0.1, 1.0, 10.0)
"""Nielsen's response-time limits: feels instant, keeps the flow of thought, keeps attention."""


COMPARED_LABELS = {"ttft_s": "time to first token (s)", "perceived_s": "blank screen (s)",
                   "e2e_s": "end to end (s)", "tpot_s": "time per output token (s)",
                   "output_tps": "output tokens/s"}


_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.18))


def _label(mode: str) -> str:
    return LABELS.get(mode, mode)


def _figure(traces: list[dict], height: int, **layout) -> go.Figure:
    """One figure from plain trace and layout dicts, validated once: building it step by step
    (make_subplots, add_trace, update_*) costs ten times more, per redraw of the page."""
    return go.Figure(data=traces, layout={**_LAYOUT, "height": height, **layout})


def _panels(titles: tuple[str, ...], widths: tuple[float, ...] | None = None,
            gap: float = 0.08) -> dict:
    """Layout entries for side-by-side panels: axes x/y, x2/y2, ... and their titles."""
    widths = widths or tuple(1.0 / len(titles) for _ in titles)
    scale = (1.0 - gap * (len(titles) - 1)) / sum(widths)
    layout: dict = {"annotations": []}
    start = 0.0
    for index, (title, width) in enumerate(zip(titles, widths), start=1):
        suffix = "" if index == 1 else str(index)
        end = start + width * scale
        layout[f"xaxis{suffix}"] = dict(domain=[start, min(end, 1.0)], anchor=f"y{suffix}")
        layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}")
        layout["annotations"].append(dict(
            text=title, x=(start + end) / 2, y=1.0, xref="paper", yref="paper",
            xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=14)))
        start = end + gap
    return layout


def _marker_size(n: int) -> int:
    """Bigger points when there are few of them, small ones for a cloud."""
    return 8 if n <= 50 else 6 if n <= 300 else 4


def blank_screen_figure(data: dict[str, BlankScreen]) -> go.Figure:
    traces = []
    for position, (mode, dist) in enumerate(data.items()):
        color, label = COLORS.get(mode), _label(mode)
        traces.append(dict(
            type="box", x=[position - 0.18], q1=[dist.q1], median=[dist.median], q3=[dist.q3],
            lowerfence=[dist.lower_fence], upperfence=[dist.upper_fence], mean=[dist.mean],
            name=label, legendgroup=mode, marker_color=color, width=0.3, boxpoints=False,
            hoverinfo="y"))
        jitter = np.random.default_rng(position).uniform(-0.1, 0.1, len(dist.points))
        traces.append(dict(
            type="scatter", x=position + 0.2 + jitter, y=dist.points, mode="markers", name=label,
            legendgroup=mode, showlegend=False,
            marker=dict(color=color, size=_marker_size(len(dist.points)), opacity=0.5),
            hovertemplate=f"{label}: %{{y:.3f}} s<extra></extra>"))
        traces.append(dict(  # from (0, 0): no run shows text before the click
            type="scatter", x=np.concatenate([[0.0], dist.ecdf_x]),
            y=np.concatenate([[0.0], dist.ecdf_y]), mode="lines", line_shape="hv",
            name=label, legendgroup=mode, showlegend=False, line_color=color, xaxis="x2",
            yaxis="y2", hovertemplate=f"{label}: %{{y:.0%}} of runs showed text within "
                                      "%{x:.3f} s<extra></extra>"))
    layout = _panels(("Distribution (box, and the runs beside it)",
                      "Share of runs with text on screen by then (ECDF)"), (0.45, 0.55))
    layout["xaxis"].update(tickvals=list(range(len(data))), ticktext=[_label(m) for m in data],
                           range=[-0.6, len(data) - 0.4])
    layout["yaxis"].update(title_text="blank screen (s)", rangemode="tozero")
    layout["xaxis2"].update(title_text="blank screen (s)", rangemode="tozero")
    layout["yaxis2"].update(tickformat=".0%", range=[0, 1.02])
    return _figure(traces, 380, **layout)


CLOCKS = {
    "perceived_s": "on the server's clock (from the race's start to the first words handed to "
                   "the page; the whole answer, when blocking)",
    "screen_first_s": "on the browser's clock (from the click on Run to the first words painted "
                      "on the user's screen; only runs a browser watched)",
}
"""Which clock a blank-screen figure comes from, said wherever one is charted."""


def blank_screen_caption(data: dict[str, BlankScreen], column: str = "perceived_s") -> str:
    medians = ", ".join(f"{_label(m)} median {seconds(d.median)} (n = {d.n:,})"
                        for m, d in data.items())
    return f"Blank-screen time {CLOCKS[column]}, per mode: {medians}."


def length_figure(data: dict[str, LengthFit]) -> go.Figure:
    traces = []
    for mode, fit in data.items():
        color, label = COLORS.get(mode), _label(mode)
        traces.append(dict(
            type="scatter", x=fit.tokens, y=fit.blank_s, mode="markers", name=label,
            legendgroup=mode, marker=dict(color=color, size=_marker_size(len(fit.tokens)),
                                          opacity=0.45),
            hovertemplate=f"{label}: %{{x:.0f}} tokens, %{{y:.3f}} s blank<extra></extra>"))
        if fit.slope_s_per_token is not None:
            xs = np.array([fit.shortest, fit.longest], dtype=float)
            traces.append(dict(
                type="scatter", x=xs, y=fit.intercept_s + fit.slope_s_per_token * xs,
                mode="lines", legendgroup=mode, line=dict(color=color, width=3),
                name=f"{label} fit: {fit.slope_s_per_token * 1000:.1f} ms per token"))
    return _figure(traces, 380,
                   xaxis=dict(title_text="answer length (output tokens)", rangemode="tozero"),
                   yaxis=dict(title_text="blank screen (s)", rangemode="tozero"))


def length_caption(data: dict[str, LengthFit]) -> str:
    slopes = ", ".join(
        f"{_label(m)} {fit.slope_s_per_token * 1000:+.1f} ms per token"
        for m, fit in data.items() if fit.slope_s_per_token is not None)
    return ("Blank-screen time against answer length, with a least-squares line per mode: "
            "blocking waits for the whole answer, so it grows with length; streaming stays flat"
            + (f" ({slopes})." if slopes else "."))


def _threshold_notes(data: Patience) -> list[tuple[float, str]]:
    """Each threshold and what each mode lost at it: '1 s', 'blocking lost 40%, …'."""
    return [(threshold, ", ".join(f"{mode} lost {1 - kept[threshold]:.0%}"
                                  for mode, kept in data.kept.items()))
            for threshold in data.thresholds_s]


def _waiting_tip(mode: str, share: str, moment: str) -> str:
    return (f"{_label(mode)}: {share} still facing a blank screen at {moment} s "
            "(= would have left, with that patience)")


def patience_figure(data: Patience) -> go.Figure:
    """The patience chart in plotly, for the offline report (plotly.js inline there); the
    History page draws `patience_spec`, the same chart in Vega-Lite."""
    traces: list[dict] = [dict(
        type="scatter", x=data.moments_s, y=waiting, mode="lines", line_shape="hv",
        name=_label(mode), line=dict(color=COLORS.get(mode), width=3),
        hovertemplate=_waiting_tip(mode, "%{y:.0%}", "%{x:.2f}") + "<extra></extra>",
    ) for mode, waiting in data.waiting.items()]
    shapes: list[dict] = []
    notes: list[dict] = []
    for index, (threshold, lost) in enumerate(_threshold_notes(data)):
        shapes.append(dict(type="line", x0=threshold, x1=threshold, y0=0, y1=1, xref="x",
                           yref="paper", line=dict(dash="dash", color="#555", width=1.5)))
        notes.append(dict(x=threshold, y=0.98 - 0.09 * index, xref="x", yref="paper",
                          showarrow=False, text=f"<b>{threshold:g} s</b>: {lost}",
                          xanchor="left", yanchor="top", xshift=4, font=dict(size=12),
                          bgcolor="rgba(255,255,255,0.85)"))
    for mode, kept in data.kept.items():  # where each curve crosses each threshold
        traces.append(dict(
            type="scatter", x=list(kept), y=[1 - share for share in kept.values()],
            mode="markers", showlegend=False, hoverinfo="skip",
            marker=dict(color=COLORS.get(mode), size=9, line=dict(color="white", width=1.5))))
    return _figure(traces, 400, shapes=shapes, annotations=notes,
                   xaxis=dict(title_text="seconds after the click", rangemode="tozero"),
                   yaxis=dict(title_text="users still waiting (would have left)",
                              tickformat=".0%", range=[0, 1.02]))


def patience_spec(data: Patience) -> dict:
    """The patience chart as a Vega-Lite spec: History's first chart. Vega-Lite's code is a
    sixth of plotly's, and a page's first chart waits for its chart library to load and run:
    a one-chart page drew its chart 0.67 s sooner in Vega-Lite (bench/page_open.py's one-chart
    page against the same in Vega-Lite, 8 visits each, 2026-12-02)."""
    modes = list(data.waiting)
    curves = [{"moment_s": float(moment), "mode": _label(mode), "waiting": float(share),
               "tip": _waiting_tip(mode, f"{share:.0%}", f"{moment:.2f}")}
              for mode, waiting in data.waiting.items()
              for moment, share in zip(data.moments_s, waiting)]
    crossings = [{"moment_s": threshold, "mode": _label(mode), "waiting": 1 - share}
                 for mode, kept in data.kept.items() for threshold, share in kept.items()]
    notes = [{"moment_s": threshold, "waiting": 0.98 - 0.09 * index,
              "note": f"{threshold:g} s: {lost}"}
             for index, (threshold, lost) in enumerate(_threshold_notes(data))]
    x = {"field": "moment_s", "type": "quantitative", "title": "seconds after the click",
         "scale": {"zero": True}}
    y = {"field": "waiting", "type": "quantitative",
         "title": "users still waiting (would have left)", "axis": {"format": ".0%"},
         "scale": {"domain": [0, 1.02]}}
    color = {"field": "mode", "type": "nominal", "title": None,
             "scale": {"domain": [_label(m) for m in modes],
                       "range": [COLORS.get(m, "#1f77b4") for m in modes]},
             "legend": {"orient": "top"}}
    return {
        "height": 400,
        "layer": [
            {"data": {"values": curves}, "mark": {"type": "line", "interpolate": "step-after",
                                                  "strokeWidth": 3},
             "encoding": {"x": x, "y": y, "color": color, "tooltip": {"field": "tip"}}},
            {"data": {"values": notes}, "mark": {"type": "rule", "strokeDash": [6, 4],
                                                 "color": "#555", "strokeWidth": 1.5},
             "encoding": {"x": {"field": "moment_s", "type": "quantitative"}}},
            {"data": {"values": crossings}, "mark": {"type": "point", "filled": True, "size": 80,
                                                     "stroke": "white", "strokeWidth": 1.5,
                                                     "opacity": 1},
             "encoding": {"x": {"field": "moment_s", "type": "quantitative"},
                          "y": {"field": "waiting", "type": "quantitative"},
                          "color": {**color, "legend": None}}},
            {"data": {"values": notes}, "mark": {"type": "text", "align": "left",
                                                 "baseline": "top", "dx": 4, "fontSize": 12},
             "encoding": {"x": {"field": "moment_s", "type": "quantitative"},
                          "y": {"field": "waiting", "type": "quantitative"},
                          "text": {"field": "note"}}},
        ],
    }


def patience_headline(data: Patience) -> str | None:
    """'Streaming would have kept N% more users' at the headline threshold, or None."""
    if data.kept_more_pp is None or data.headline_s is None:
        return None
    p = data.headline_s
    kept_s, kept_b = data.kept["streaming"][p], data.kept["blocking"][p]
    more = data.kept_more_pp
    winner = "Streaming" if more >= 0 else "Blocking"
    return (f"{winner} would have kept {abs(more):.0f}% more users: with {p:g} s of patience, "
            f"{kept_s:.0%} of users see words with streaming and {kept_b:.0%} with blocking "
            f"(the difference in percentage points of all users).")


def one_mode_note(data: Patience) -> str:
    """What stands in for the headline when the runs are of one mode only."""
    present = " and ".join(data.n) or "no"
    return (f"Only {present} runs match: comparing the two modes needs both "
            "(check the Mode filter).")


def patience_caption(data: Patience) -> str:
    return ("Each run is a simulated user who leaves if the screen stays blank longer than "
            "their patience: the curve is the share still facing a blank screen at each moment "
            "(also the share that a patience of that many seconds loses); dashed lines mark "
            f"the thresholds ({', '.join(f'{t:g} s' for t in data.thresholds_s)}).")


def timelines_figure(data: Timelines) -> go.Figure:
    waits = data.gaps[data.gaps["kind"] == "wait"]
    between = data.gaps[data.gaps["kind"] == "gap"]
    traces: list[dict] = [dict(
        type="bar", y=waits["run"], x=waits["gap_s"], base=waits["start_s"], orientation="h",
        marker_color=COLORS["blank"], name="waiting for the first chunk", width=0.5,
        hovertemplate="first chunk after %{x:.3f} s<extra></extra>")]
    if not between.empty:
        top = max(float(between["gap_s"].max()), data.stall_s)
        traces.append(dict(
            type="bar", y=between["run"], x=between["gap_s"], base=between["start_s"],
            orientation="h", width=0.5, name="gap between chunks (colour: length)",
            marker=dict(color=between["gap_s"], colorscale="YlOrRd", cmin=0, cmax=top,
                        colorbar=dict(title=dict(text="gap (s)"), thickness=12, len=0.8)),
            customdata=between["gap_s"] * 1000,
            hovertemplate="gap of %{customdata:.0f} ms<extra></extra>"))
    traces.append(dict(
        type="scatter", y=data.marks["run"], x=data.marks["offset_s"], mode="markers",
        name="chunk", marker=dict(symbol="line-ns-open", size=14, color="#1f3b73"),
        customdata=data.marks["chars"],
        hovertemplate="chunk at %{x:.3f} s (%{customdata} characters)<extra></extra>"))
    stalls = between[between["stall"]]
    if not stalls.empty:
        traces.append(dict(
            type="scatter", y=stalls["run"], x=(stalls["start_s"] + stalls["end_s"]) / 2,
            mode="markers+text", name=f"stall (gap > {data.stall_s:g} s)",
            text=[f"⚠ {g:.2f} s" for g in stalls["gap_s"]], textposition="top center",
            marker=dict(symbol="x", size=11, color="#b00020"),
            hovertemplate="stall of %{text}<extra></extra>"))
    return _figure(traces, 160 + 60 * len(data.runs), barmode="overlay",
                   legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                   yaxis=dict(categoryorder="array", categoryarray=list(reversed(data.runs)),
                              automargin=True),
                   xaxis=dict(title_text="seconds after the request left (t0)",
                              rangemode="tozero"))


def timelines_caption(data: Timelines) -> str:
    stalls = int(data.gaps["stall"].sum()) if not data.gaps.empty else 0
    flagged = (f"{stalls} stall{'s' if stalls != 1 else ''} longer than {data.stall_s:g} s "
               "flagged ⚠" if stalls else f"no gap longer than {data.stall_s:g} s")
    return ("Each chunk as a tick after the request left, the wait for the first one in grey, "
            f"the gaps between chunks coloured by length; {flagged}.")


def group_comparison_figure(table: pd.DataFrame, a_label: str, b_label: str) -> go.Figure:
    """The ratio B ÷ A of each metric's p50, p90 and p99: bars from the 1× line, log axis."""
    colors = {"p50": "#9ecae1", "p90": "#4292c6", "p99": "#08519c"}
    ratios = table["ratio"].to_numpy(dtype=float)
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    low, high = (ratios.min(), ratios.max()) if len(ratios) else (1.0, 1.0)
    ticks = [v * 10.0 ** e for e in range(-3, 4) for v in (1, 2, 5)]
    ticks = [t for t in ticks if min(low, 1) / 2 <= t <= max(high, 1) * 2]
    traces = []
    for percentile, rows in table.groupby("percentile", sort=False):
        ratio = rows["ratio"].to_numpy(dtype=float)
        traces.append(dict(
            type="bar", x=[COMPARED_LABELS[m] for m in rows["metric"]], y=ratio - 1.0, base=1.0,
            name=percentile, marker_color=colors.get(percentile),
            customdata=np.stack([rows["A"].to_numpy(dtype=float),
                                 rows["B"].to_numpy(dtype=float), ratio], axis=-1),
            text=["" if not np.isfinite(r) else f"{r:.2f}×" for r in ratio],
            textposition="outside",
            hovertemplate=(f"%{{x}} {percentile}: {b_label} %{{customdata[1]:.3f}} ÷ "
                           f"{a_label} %{{customdata[0]:.3f}} = %{{customdata[2]:.2f}}×"
                           "<extra></extra>")))
    return _figure(traces, 360, barmode="group",
                   shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=1, y1=1,
                                line=dict(color="#555", dash="dash", width=1.5))],
                   yaxis=dict(type="log", title_text=f"B ÷ A ({b_label} ÷ {a_label})",
                              tickvals=ticks, ticktext=[f"{t:g}×" for t in ticks]))


def group_comparison_caption(table: pd.DataFrame, a_label: str, b_label: str) -> str:
    return (f"p50, p90 and p99 of each metric, {a_label} (A) against {b_label} (B), over their "
            "ok runs: the bars are the ratio B ÷ A (below the 1× line B is quicker, except "
            "tokens/s, where above it B is faster); the table has both values.")


def lane_comparison_figure(table: pd.DataFrame) -> go.Figure:
    """Race lanes over many races (lib.storage.history.lane_comparison): p50 and p90 blank
    screen per lane, fastest on top, in milliseconds."""
    lanes = list(table["lane"])
    traces = [dict(type="bar", orientation="h", y=lanes, x=table[f"perceived_s {p}"] * 1000,
                   name=f"blank screen {p}", marker_color=color,
                   text=[seconds(v) for v in table[f"perceived_s {p}"]], textposition="outside",
                   hovertemplate=f"%{{y}}: {p} %{{x:.0f}} ms<extra></extra>")
              for p, color in (("p50", "#4292c6"), ("p90", "#9ecae1"))]
    return _figure(traces, 120 + 60 * len(lanes), barmode="group",
                   xaxis=dict(title_text="blank screen (ms)"),
                   yaxis=dict(autorange="reversed"))


def lane_comparison_caption(table: pd.DataFrame) -> str:
    """'…: fastest «a» (p50 0.31 s), 3.1× sooner than «b» (0.96 s), over N ok runs'."""
    first, last = table.iloc[0], table.iloc[-1]
    return (f"Blank screen per race lane over its ok runs (p50 and p90), by label: "
            f"“{first['lane']}” showed words first (p50 {seconds(first['perceived_s p50'])}), "
            f"{first['sooner']:.1f}× sooner than “{last['lane']}” "
            f"({seconds(last['perceived_s p50'])}); {int(table['ok'].sum()):,} ok runs.")


REPLAY_PREVIEW_HEIGHT = 340
"""Pixels; the Replay page keeps this much room for the preview while it is drawn."""


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
        height=REPLAY_PREVIEW_HEIGHT, margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", y=-0.25),
        title=dict(text="Characters on screen", font=dict(size=14)),
    )
    figure.update_xaxes(title_text="seconds after the request")
    figure.update_yaxes(title_text="characters")
    return figure


GUARD_COLORS = {"none": "#d62728", "after": "#ff7f0e", "sentence": "#2ca02c", "window": "#1f77b4",
                "field": "#17becf", "blocking": "#7f7f7f"}


LABEL_POSITIONS = {"none": "middle left", "after": "middle right", "sentence": "top center",
                   "window": "bottom center", "field": "bottom right", "blocking": "top center"}
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
        figure.add_trace(
            go.Scatter(
                x=[m.perceived_s],
                y=[m.exposure_s * 1000],
                mode="markers+text",
                name=guard.label,
                text=[f" {guard.label} "],
                textposition=LABEL_POSITIONS.get(guard.strategy, "top center"),
                cliponaxis=False,
                marker=dict(
                    size=18 if leaked else 14,
                    symbol="triangle-up" if leaked else "circle",
                    color=GUARD_COLORS.get(guard.strategy, "#9467bd"),
                    line=dict(width=1, color="white"),
                ),
                hovertemplate=(
                    f"{guard.label}<br>blank screen %{{x:.3f}} s<br>"
                    f"exposure %{{y:.1f}} ms{' or more' if leaked else ''}<br>{note}<extra></extra>"
                ),
            )
        )
    figure.update_layout(
        height=380,
        margin=dict(l=10, r=30, t=40, b=10),
        showlegend=False,
        title=dict(text="Blank screen against exposure (▲ never removed)", x=0.0, font_size=15),
    )
    figure.update_xaxes(
        title_text="blank screen before the first text (s)", range=[-0.06 * right, 1.15 * right]
    )
    figure.update_yaxes(title_text="violating text on screen (ms)", range=[-0.1 * top, 1.15 * top])
    return figure


def guard_timelines(traces: list[Trace]) -> go.Figure:
    """Characters the user can read over time, one line per strategy: a drop is a retraction."""
    figure = go.Figure()
    lines = [(trace, *visible_chars(trace)) for trace in traces if trace.guard is not None]
    # Held to a little past the last event, so that a last-moment release or removal shows.
    end = 1.06 * max([xs[-1] for _, xs, _ in lines] + [0.1])
    for trace, xs, ys in lines:
        xs, ys = [*xs, end], [*ys, ys[-1]]
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line_shape="hv",
                name=trace.guard.label,
                line=dict(
                    color=GUARD_COLORS.get(trace.guard.strategy, "#9467bd"),
                    dash="dot" if trace.guard.strategy == "none" else "solid",
                    width=2,
                ),
                hovertemplate="%{y} characters readable at %{x:.3f} s<extra></extra>",
            )
        )
    figure.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.28),
        title=dict(text="What each strategy let the user read", x=0.0, font_size=15),
    )
    figure.update_xaxes(title_text="seconds after Run", range=[0, end])
    figure.update_yaxes(title_text="characters on screen", rangemode="tozero")
    return figure


def thinking_figure(split: ThinkingSplit) -> go.Figure:
    """Each reasoning run as a point: thinking time (before the first answer word) against
    answering time (first answer word to the last), coloured by model."""
    figure = go.Figure()
    for model, runs in split.runs.groupby("model", sort=True):
        figure.add_trace(go.Scatter(
            x=runs["thinking_s"], y=runs["answering_s"], mode="markers", name=str(model),
            marker=dict(size=8, opacity=0.75),
            hovertemplate="thinking %{x:.2f} s, answering %{y:.2f} s<extra></extra>",
        ))
    top = float(max(split.runs["thinking_s"].max(), split.runs["answering_s"].max(), 0.1))
    figure.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="as long as",
                                line=dict(color=COLORS["blank"], dash="dot"), hoverinfo="skip"))
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=20, b=10),
                         legend=dict(orientation="h", y=-0.2))
    figure.update_xaxes(title_text="thinking (s): first thought → first answer word",
                        rangemode="tozero")
    figure.update_yaxes(title_text="answering (s): first answer word → last", rangemode="tozero")
    return figure


def thinking_caption(split: ThinkingSplit) -> str:
    return (f"{split.n:,} streamed runs that reasoned: median first thought (TTFT) "
            f"{seconds(split.ttft_p50_s)}, first answer word (TTFO) {seconds(split.ttfo_p50_s)}; "
            f"median thinking {seconds(split.thinking_p50_s)}, answering "
            f"{seconds(split.answering_p50_s)}. "
            "Above the dotted line a run spent longer answering than thinking; while it "
            "thinks, a lane that hides its thoughts shows a blank screen.")


def field_timeline(traces: Sequence[Trace]) -> go.Figure:
    """A structured answer, field by field: one bar per field and lane, from its first visible
    character to the character that closed it (seconds after Run); a field that never closed
    runs to the lane's end, hatched. Blocking shows every field at once."""
    figure = go.Figure()
    rows: list[str] = []
    for trace in traces:
        figures = metrics.structured_figures(trace)
        if figures is None:
            continue
        shift = metrics.client_s(trace) or 0.0
        end = _end_s(trace)
        for moment in figures.fields:
            if moment.path not in rows:
                rows.append(moment.path)
        opened = [m for m in figures.fields if m.first_s is not None]
        closed = [m.last_s is not None for m in opened]
        firsts = [m.first_s + shift for m in opened]  # type: ignore[operator]
        lasts = [(m.last_s + shift) if m.last_s is not None else (end or f + 0.0)
                 for m, f in zip(opened, firsts)]
        # A bar at least 1% of the axis wide: a blocking field arrives in one instant.
        figure.add_trace(go.Bar(
            y=[m.path for m in opened], base=firsts,
            x=[max(last - first, 0.0) for first, last in zip(firsts, lasts)],
            orientation="h", marker_color=COLORS[trace.mode], name=LABELS[trace.mode],
            marker_pattern_shape=["" if c else "/" for c in closed],
            customdata=[[f, la, "closed" if c else "never closed"]
                        for f, la, c in zip(firsts, lasts, closed)],
            hovertemplate=(f"{LABELS[trace.mode]} · %{{y}}: first %{{customdata[0]:.3f}} s, "
                           "last %{customdata[1]:.3f} s (%{customdata[2]})<extra></extra>"),
        ))
    longest = max((b + x for bar in figure.data for b, x in zip(bar.base, bar.x)), default=1.0)
    for bar in figure.data:
        bar.x = [max(x, longest * 0.01) for x in bar.x]
    figure.update_layout(
        barmode="group", height=140 + 34 * max(len(rows), 1), **_LAYOUT,
        title=dict(text="Each field: first character → closed", x=0, font=dict(size=14)),
    )
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(rows)))
    figure.update_xaxes(title_text="seconds after Run")
    return figure


def field_timeline_caption(traces: Sequence[Trace]) -> str:
    """What the field chart shows, with each lane's first field and valid object."""
    parts = []
    for trace in traces:
        figures = metrics.structured_figures(trace)
        if figures is not None:
            parts.append(f"{trace.mode}: first field {seconds(figures.first_field_s)}, "
                         f"schema-valid object {seconds(figures.valid_object_s)}")
    return ("One bar per field, from its first visible character to the character that closed "
            "it (seconds after Run). " + "; ".join(parts) + ".")

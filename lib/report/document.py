"""The stakeholder report: one self-contained HTML file from the run log.

Interactive charts (plotly.js is embedded, nothing is loaded from anywhere: the file opens
offline), the patience headline, a summary table per mode, the endpoints and models, the
prompt set, the filters and the date. No key: the run log holds none, and base URLs lose any
user, password or query string.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from sqlalchemy import Engine

from lib.present import charts, stats
from lib.present.display import rate, seconds
from lib.storage import history

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1180px; padding: 0 1rem; color: #1d1d1f; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .caption { color: #555; font-size: .92rem; margin: .2rem 0 1rem; }
.headline { background: #e8f5e9; border-left: 6px solid #2ca02c; padding: .8rem 1rem;
            font-size: 1.25rem; margin: 1.2rem 0; }
.note { background: #fff8e1; border-left: 6px solid #f0ad00; padding: .6rem 1rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: right; vertical-align: top; }
th { background: #f5f5f5; } td.text, th.text { text-align: left; }
td.prompt { text-align: left; white-space: pre-wrap; max-width: 900px; }
"""


def build(engine: Engine, filters: history.Filters,
          thresholds_s: tuple[float, ...] = stats.DEFAULT_THRESHOLDS_S,
          headline_s: float | None = None, generated_at: datetime | None = None,
          exported_by: str | None = None) -> str:
    """The report as one HTML document (a str), drawn from the runs the filters select;
    `exported_by`: who made it (sign-in on)."""
    generated_at = generated_at or datetime.now(timezone.utc)
    frame = history.chart_frame(engine, filters)
    by = f" by {_e(exported_by)}" if exported_by else ""
    parts = [
        "<h1>🏁 StreamRace: blocking against streaming</h1>",
        f'<p class="meta">Generated{by} '
        f'{_e(history.iso_utc(generated_at)[:16].replace("T", " "))} '
        f"UTC · {len(frame):,} runs · {_e(filters.describe())}</p>",
    ]
    if frame.empty:
        parts.append('<p class="note">No runs match these filters: nothing to report.</p>')
        return _document(parts, with_plotly=False)

    patience = stats.patience_data(frame, thresholds_s, headline_s)
    headline = charts.patience_headline(patience)
    if headline:
        parts.append(f'<p class="headline">{_e(headline)}</p>')
    elif patience.n:
        parts.append(f'<p class="note">{_e(charts.one_mode_note(patience))}</p>')
    parts += ["<h2>Summary per mode</h2>", _summary_table(history.summary(frame)),
              '<p class="caption">Percentiles over the runs that ended ok; blank screen = '
              "the server's clock, from the race's start to the first words handed to the page "
              "(the whole answer, when blocking).</p>"]

    lanes = history.lane_comparison(frame)
    if not lanes.empty:
        parts += ["<h2>Race lanes compared</h2>", _lanes_table(lanes),
                  charts.lane_comparison_figure(lanes).to_html(
                      full_html=False, include_plotlyjs=False,
                      config={"displaylogo": False, "responsive": True}),
                  f'<p class="caption">{_e(charts.lane_comparison_caption(lanes))}</p>']

    figures: list[tuple[str, go.Figure, str]] = []
    blank = stats.blank_screen_data(frame)
    if blank:
        figures.append(("Blank screen per mode", charts.blank_screen_figure(blank),
                        charts.blank_screen_caption(blank)))
        figures.append(("Simulated users' patience", charts.patience_figure(patience),
                        charts.patience_caption(patience)))
    screen = stats.blank_screen_data(frame, column="screen_first_s")
    if screen:
        figures.append(("Blank screen on the user's screen (browser clock)",
                        charts.blank_screen_figure(screen),
                        charts.blank_screen_caption(screen, "screen_first_s")))
    lengths = stats.length_data(frame)
    if lengths:
        figures.append(("Blank screen against answer length", charts.length_figure(lengths),
                        charts.length_caption(lengths)))
    split = stats.thinking_data(history.reasoning_frame(engine, filters))
    if split:
        figures.append(("Reasoning: thinking against answering", charts.thinking_figure(split),
                        charts.thinking_caption(split)))
    structured = history.latest_structured_race(engine, filters)
    if structured:
        figures.append(("Structured answer, field by field (the latest structured race)",
                        charts.field_timeline(structured),
                        charts.field_timeline_caption(structured)))
    if not figures:
        parts.append('<p class="note">None of these runs ended ok: there is no timing to '
                     "chart (see the summary for how many failed).</p>")
    for title, figure, caption in figures:
        parts += [f"<h2>{_e(title)}</h2>",
                  figure.to_html(full_html=False, include_plotlyjs=False,
                                 config={"displaylogo": False, "responsive": True}),
                  f'<p class="caption">{_e(caption)}</p>']

    parts += ["<h2>Endpoints and models</h2>",
              _table(history.endpoint_set(engine, filters), text=("endpoint_kind", "base_url",
                                                                  "model"))]
    prompts = history.prompt_set(engine, filters)
    parts += [f"<h2>Prompt set ({len(prompts)} distinct prompt{'s' if len(prompts) != 1 else ''}"
              f"{', the 50 most used' if len(prompts) == 50 else ''})</h2>",
              _table(prompts, text=("prompt",), prompt="prompt")]
    return _document(parts, with_plotly=bool(figures) or not lanes.empty)


def _e(text: str) -> str:
    return html.escape(str(text))


def _document(parts: list[str], with_plotly: bool) -> str:
    # plotly.js inline, once, before any chart: the file must open with no network at all.
    script = (f'<script type="text/javascript">window.PlotlyConfig = {{MathJaxConfig: "local"}};'
              f"</script>\n<script type=\"text/javascript\">{get_plotlyjs()}</script>"
              if with_plotly else "")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>StreamRace report</title><style>{CSS}</style>{script}</head>"
            f"<body>\n{body}\n</body></html>\n")


def _table(frame: pd.DataFrame, text: tuple[str, ...] = (), prompt: str | None = None) -> str:
    """A small HTML table, every cell escaped (prompts are shown as text, never as HTML)."""
    head = "".join(f'<th class="{"text" if c in text else ""}">{_e(c)}</th>' for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record):
            css = "prompt" if column == prompt else ("text" if column in text else "")
            cells.append(f'<td class="{css}">{_e("–" if _missing(value) else value)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _summary_table(summary: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "mode": summary["mode"].map(lambda m: charts.LABELS.get(m, m)),
        "runs": summary["runs"], "ok": summary["ok"], "failed": summary["failed"],
        **{f"{label} {q}": summary[f"{column} {q}"].map(seconds if column != "output_tps" else rate)
           for column, label in (("perceived_s", "blank screen"), ("ttft_s", "TTFT"),
                                 ("e2e_s", "E2E"), ("output_tps", "tokens/s"))
           for q in ("p50", "p90")},
    })
    return _table(shown, text=("mode",))


def _lanes_table(lanes: pd.DataFrame) -> str:
    """Race lanes by label, fastest p50 blank screen first (lib.storage.history.lane_comparison)."""
    shown = pd.DataFrame({
        "lane": lanes["lane"], "mode": lanes["mode"], "runs": lanes["runs"], "ok": lanes["ok"],
        **{f"{label} {q}": lanes[f"{column} {q}"].map(seconds if column != "output_tps" else rate)
           for column, label in (("perceived_s", "blank screen"), ("ttft_s", "TTFT"),
                                 ("output_tps", "tokens/s")) for q in ("p50", "p90")},
        "× sooner than the slowest": lanes["sooner"].map(lambda f: f"{f:.1f}×"),
    })
    return _table(shown, text=("lane", "mode"))

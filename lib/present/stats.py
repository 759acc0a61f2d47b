"""The numbers behind each chart, from Traces or run-log rows: no plotly here.

`<chart>_data(frame)` computes what a chart shows (tests check it against the frame);
lib.present.charts draws it. Only runs that ended ok are counted: a failed run's timings
describe the failure, not the experience.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.core import metrics
from lib.core.trace import MODES, Trace
from lib.storage import history


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


MAX_POINTS = 1000
"""Points drawn per mode in a scatter or strip; statistics always use every run."""


ECDF_POINTS = 400


PATIENCE_POINTS = 400


DEFAULT_THRESHOLDS_S = (1.0, 3.0)


DEFAULT_STALL_S = 0.5


COMPARED = ("ttft_s", "perceived_s", "e2e_s", "tpot_s", "output_tps")


QUANTILES = (50, 90, 99)


def ok_runs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def _values(frame: pd.DataFrame, mode: str, column: str) -> np.ndarray:
    """A metric of a mode's ok runs, missing values left out."""
    runs = frame[(frame["status"] == "ok") & (frame["mode"] == mode)]
    return runs[column].dropna().to_numpy(dtype=float)


def _sample(n: int, max_points: int) -> np.ndarray:
    """Positions of at most max_points rows, the same ones every time (a seeded draw)."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=max_points, replace=False))


def _modes(frame: pd.DataFrame) -> list[str]:
    present = set(ok_runs(frame)["mode"].unique())
    return [mode for mode in MODES if mode in present]


@dataclass(frozen=True)
class BlankScreen:
    """One mode's blank-screen times (ok runs): box statistics, drawn points, ECDF steps."""

    n: int
    q1: float
    median: float
    q3: float
    lower_fence: float
    """The smallest value within 1.5 IQR below q1 (Tukey's whisker)."""
    upper_fence: float
    mean: float
    points: np.ndarray
    """At most MAX_POINTS of the values, drawn beside the box."""
    ecdf_x: np.ndarray
    ecdf_y: np.ndarray
    """Share of runs with perceived_s ≤ ecdf_x (exact at each x)."""


def blank_screen_data(frame: pd.DataFrame, max_points: int = MAX_POINTS,
                      ecdf_points: int = ECDF_POINTS, column: str = "perceived_s"
                      ) -> dict[str, BlankScreen]:
    """Per mode, the distribution of a blank-screen column over the ok runs that measured it:
    `perceived_s` (the server's clock) or `screen_first_s` (the browser's; runs no browser
    watched have none and are left out)."""
    if column not in frame.columns:
        return {}
    result = {}
    for mode in _modes(frame):
        values = _values(frame, mode, column)
        if not len(values):
            continue
        q1, median, q3 = metrics.percentiles(values, (25, 50, 75))
        iqr = q3 - q1
        lower = values[values >= q1 - 1.5 * iqr].min()
        upper = values[values <= q3 + 1.5 * iqr].max()
        ordered = np.sort(values)
        ranks = np.unique(np.linspace(0, len(ordered) - 1, ecdf_points).round().astype(int))
        ecdf_x = ordered[ranks]
        result[mode] = BlankScreen(
            n=len(values), q1=q1, median=median, q3=q3, lower_fence=float(lower),
            upper_fence=float(upper), mean=float(values.mean()),
            points=values[_sample(len(values), max_points)],
            ecdf_x=ecdf_x, ecdf_y=np.asarray(metrics.kept_shares(ordered, ecdf_x), dtype=float),
        )
    return result


@dataclass(frozen=True)
class LengthFit:
    """One mode's perceived_s against output_tokens (ok runs with both)."""

    n: int
    tokens: np.ndarray
    """The drawn points (at most MAX_POINTS of the runs)."""
    blank_s: np.ndarray
    slope_s_per_token: float | None
    """Least squares (numpy.polyfit, degree 1) over every run; None with < 2 distinct lengths."""
    intercept_s: float | None
    shortest: float
    longest: float
    """The range of output_tokens over every run (where the fitted line is drawn)."""


def length_data(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> dict[str, LengthFit]:
    result = {}
    ok = ok_runs(frame)
    for mode in _modes(frame):
        runs = ok[ok["mode"] == mode][["output_tokens", "perceived_s"]].dropna()
        if runs.empty:
            continue
        tokens = runs["output_tokens"].to_numpy(dtype=float)
        blank = runs["perceived_s"].to_numpy(dtype=float)
        slope = intercept = None
        if len(np.unique(tokens)) >= 2:
            slope, intercept = (float(v) for v in np.polyfit(tokens, blank, 1))
        shown = _sample(len(runs), max_points)
        result[mode] = LengthFit(len(runs), tokens[shown], blank[shown], slope, intercept,
                                 float(tokens.min()), float(tokens.max()))
    return result


@dataclass(frozen=True)
class Patience:
    """Simulated users per mode (the model: lib.metrics.kept_shares; docs/metrics.md).

    Each ok run is one user; a user with patience p leaves if perceived_s > p.
    """

    moments_s: np.ndarray
    waiting: dict[str, np.ndarray]
    """Per mode, the share of users still facing a blank screen at each moment (0–1)."""
    n: dict[str, int]
    thresholds_s: tuple[float, ...]
    kept: dict[str, dict[float, float]]
    """Per mode and threshold p: the share of users kept, |perceived_s ≤ p| / n."""
    headline_s: float | None
    kept_more_pp: float | None
    """Streaming's kept share minus blocking's at headline_s, in percentage points."""


def patience_data(frame: pd.DataFrame, thresholds_s=DEFAULT_THRESHOLDS_S,
                  headline_s: float | None = None, points: int = PATIENCE_POINTS) -> Patience:
    """The patience model over the ok runs; headline_s defaults to the first threshold (and
    is one of the thresholds marked)."""
    chosen = {float(t) for t in thresholds_s if t > 0}
    if headline_s is None and chosen:
        headline_s = min(chosen)
    thresholds = tuple(sorted(chosen | ({headline_s} if headline_s else set())))
    values = {mode: _values(frame, mode, "perceived_s") for mode in _modes(frame)}
    values = {mode: v for mode, v in values.items() if len(v)}
    tails = [metrics.percentile(v, 99) for v in values.values()]  # the x axis ends after them
    end = max(tails + list(thresholds) + [0.1]) * 1.15
    moments = np.unique(np.concatenate([np.linspace(0.0, end, points), thresholds]))
    waiting = {mode: 1.0 - np.asarray(metrics.kept_shares(v, moments), dtype=float)
               for mode, v in values.items()}
    kept = {mode: dict(zip(thresholds, metrics.kept_shares(v, thresholds) or []))
            for mode, v in values.items()}
    more = None
    if headline_s is not None and {"blocking", "streaming"} <= values.keys():
        more = metrics.kept_more_pp(values["blocking"], values["streaming"], headline_s)
    return Patience(moments, waiting, {m: len(v) for m, v in values.items()}, thresholds,
                    kept, headline_s, more)


@dataclass(frozen=True)
class Timelines:
    """Chunks and the gaps between them, for a few runs, in seconds after each run's t0."""

    runs: list[str]
    """One label per run, top to bottom."""
    marks: pd.DataFrame
    """run, offset_s, chars, text: one row per chunk."""
    gaps: pd.DataFrame
    """run, start_s, end_s, gap_s, kind ('wait' before the first chunk, else 'gap'), stall."""
    stall_s: float


def run_label(row) -> str:
    created = str(row["created_at"])[:19].replace("T", " ")
    return f"{created} · {row['mode']} · {row['model']} · {str(row['run_id'])[:6]}"


def timelines_data(runs: pd.DataFrame, stall_s: float = DEFAULT_STALL_S) -> Timelines:
    """From run-log rows with their `timeline` JSON ([[seconds after t0, text], ...])."""
    labels, marks, gaps = [], [], []
    for _, row in runs.iterrows():
        label = run_label(row)
        labels.append(label)
        chunks = history.timeline(row)
        previous = 0.0
        for index, (offset, text) in enumerate(chunks):
            marks.append({"run": label, "offset_s": offset, "chars": len(text), "text": text})
            gap = offset - previous
            gaps.append({"run": label, "start_s": previous, "end_s": offset, "gap_s": gap,
                         "kind": "wait" if index == 0 else "gap",
                         "stall": index > 0 and gap > stall_s})
            previous = offset
    return Timelines(labels, pd.DataFrame(marks, columns=["run", "offset_s", "chars", "text"]),
                     pd.DataFrame(gaps, columns=["run", "start_s", "end_s", "gap_s", "kind",
                                                 "stall"]), stall_s)


def group_comparison(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """p50/p90/p99 of COMPARED over each group's ok runs, side by side, with B ÷ A.

    Columns: metric, percentile, A, B, ratio (None when a side has no value or A is 0).
    """
    rows = []
    a, b = ok_runs(a), ok_runs(b)
    for column in COMPARED:
        a_ps = metrics.percentiles(a[column].dropna().to_numpy(dtype=float), QUANTILES)
        b_ps = metrics.percentiles(b[column].dropna().to_numpy(dtype=float), QUANTILES)
        for q, a_value, b_value in zip(QUANTILES, a_ps, b_ps):
            ratio = (b_value / a_value if a_value is not None and b_value is not None
                     and a_value != 0 else None)
            rows.append({"metric": column, "percentile": f"p{q}", "A": a_value, "B": b_value,
                         "ratio": ratio})
    return pd.DataFrame(rows, columns=["metric", "percentile", "A", "B", "ratio"])


def visible_chars(trace: Trace) -> tuple[list[float], list[int]]:
    """Step points (seconds after t_start, characters the user can read) behind a guardrail."""
    if trace.guard is None or trace.t_start is None:
        return [0.0], [0]
    steps: list[tuple[float, int]] = []
    for piece in trace.guard.pieces(len(trace.text)):
        if piece.shown_at is not None:
            steps.append((piece.shown_at, piece.end - piece.start))
            if piece.removed_at is not None:
                steps.append((piece.removed_at, piece.start - piece.end))
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


@dataclass(frozen=True)
class ThinkingSplit:
    """Per streamed run that reasoned (and ended ok): how long it thought, how long it answered.

    thinking_s = ttfo_s − ttft_s (first thought → first answer word);
    answering_s = e2e_s − ttfo_s (first answer word → last text).
    """

    runs: pd.DataFrame
    """Columns: model, thinking_s, answering_s, reasoning_tokens, answer_tokens."""
    thinking_p50_s: float | None
    answering_p50_s: float | None
    ttft_p50_s: float | None = None
    """First thought (TTFT, reasoning included)."""
    ttfo_p50_s: float | None = None
    """First answer word (TTFO)."""

    @property
    def n(self) -> int:
        return len(self.runs)


def thinking_data(frame: pd.DataFrame) -> ThinkingSplit | None:
    """From run-log rows with ttfo_s, thinking_s and e2e_s (history.reasoning_frame); None when
    no ok streamed run reasoned."""
    if frame.empty:
        return None
    ok = frame[(frame["status"] == "ok") & (frame["mode"] == "streaming")
               & frame["thinking_s"].notna() & frame["ttfo_s"].notna() & frame["e2e_s"].notna()]
    if ok.empty:
        return None
    runs = pd.DataFrame({
        "model": ok["model"], "thinking_s": ok["thinking_s"].astype(float),
        "answering_s": (ok["e2e_s"] - ok["ttfo_s"]).astype(float),
        "reasoning_tokens": ok["reasoning_tokens"], "answer_tokens": ok["answer_tokens"],
    }).reset_index(drop=True)
    thinking_p50, answering_p50 = (metrics.percentile(runs[c].to_numpy(), 50)
                                   for c in ("thinking_s", "answering_s"))
    ttft_p50, ttfo_p50 = (metrics.percentile(ok[c].astype(float).to_numpy(), 50)
                          for c in ("ttft_s", "ttfo_s"))
    return ThinkingSplit(runs, thinking_p50, answering_p50, ttft_p50, ttfo_p50)

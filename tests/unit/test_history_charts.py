"""The History charts: each chart's data checked against the runs it was drawn from, the patience
model on a hand-made set with known answers, and the figures drawing exactly that data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.core import metrics
from lib.present import charts, stats
from lib.storage import history
from lib.storage.history import Filters
from tests.support.history_runs import (
    BLOCKING_BLANKS,
    KNOWN_HEADLINE_PP,
    STREAMING_BLANKS,
    insert_rows,
    known_runs,
    make_run,
    without_tokens,
)

pytestmark = pytest.mark.both_databases  # every run log here: SQLite, then PostgreSQL


@pytest.fixture
def known(store) -> pd.DataFrame:
    store.log(known_runs())
    return history.chart_frame(store.engine, Filters())


def random_frame(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    """A large frame (more runs than any chart draws points for), with failures and gaps."""
    rng = np.random.default_rng(seed)
    mode = rng.choice(["blocking", "streaming"], n)
    tokens = rng.integers(5, 400, n).astype(float)
    blank = np.where(mode == "blocking", 0.2 + 0.02 * tokens, 0.3) + rng.exponential(0.1, n)
    status = rng.choice(["ok", "ok", "ok", "ok", "error"], n)
    blank[rng.random(n) < 0.02] = np.nan
    tokens[rng.random(n) < 0.05] = np.nan
    frame = pd.DataFrame({
        "mode": pd.Categorical(mode), "status": pd.Categorical(status), "perceived_s": blank,
        "ttft_s": blank * 0.9, "e2e_s": blank + 1, "tpot_s": rng.uniform(0.01, 0.05, n),
        "output_tps": rng.uniform(10, 90, n), "output_tokens": pd.array(tokens).astype("Int64"),
    })
    return frame


def ok_values(frame: pd.DataFrame, mode: str, column: str = "perceived_s") -> np.ndarray:
    rows = frame[(frame["status"] == "ok") & (frame["mode"] == mode)]
    return rows[column].dropna().to_numpy(dtype=float)


# -- blank-screen distribution ---------------------------------------------------------------


def test_blank_screen_data_matches_the_frame():
    frame = random_frame()
    data = stats.blank_screen_data(frame, max_points=200, ecdf_points=50)
    assert list(data) == ["blocking", "streaming"]
    for mode, dist in data.items():
        values = ok_values(frame, mode)
        assert dist.n == len(values)
        assert (dist.q1, dist.median, dist.q3) == pytest.approx(
            tuple(np.percentile(values, [25, 50, 75])), abs=1e-12)
        assert dist.mean == pytest.approx(values.mean())
        iqr = dist.q3 - dist.q1
        assert dist.lower_fence == values[values >= dist.q1 - 1.5 * iqr].min()
        assert dist.upper_fence == values[values <= dist.q3 + 1.5 * iqr].max()
        # The drawn points are runs of the frame (a sample, since there are more than 200).
        assert len(dist.points) == 200 and np.isin(dist.points, values).all()
        # Each ECDF step is exact: the share of runs with perceived_s <= x.
        assert dist.ecdf_x[0] == values.min() and dist.ecdf_x[-1] == values.max()
        for x, y in zip(dist.ecdf_x, dist.ecdf_y):
            assert y == pytest.approx((values <= x).mean(), abs=1e-12)


def test_blank_screen_figure_draws_that_data(known):
    data = stats.blank_screen_data(known)
    figure = charts.blank_screen_figure(data)
    boxes = [t for t in figure.data if t.type == "box"]
    assert [b.median[0] for b in boxes] == pytest.approx([1.75, 0.35])
    assert [b.q1[0] for b in boxes] == pytest.approx([data["blocking"].q1, data["streaming"].q1])
    points = [t for t in figure.data if t.type == "scatter" and t.mode == "markers"]
    assert sorted(points[0].y) == pytest.approx(sorted(BLOCKING_BLANKS))
    assert sorted(points[1].y) == pytest.approx(sorted(STREAMING_BLANKS))
    ecdf = [t for t in figure.data if t.type == "scatter" and t.mode == "lines"]
    assert list(ecdf[1].x) == pytest.approx([0.0, *STREAMING_BLANKS])
    assert list(ecdf[1].y) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    caption = charts.blank_screen_caption(data)
    assert "Blocking median 1.75 s (n = 4)" in caption and "Streaming median 350 ms" in caption


# -- blank screen against length -----------------------------------------------------------


def test_length_fit_is_least_squares_over_every_run():
    frame = random_frame()
    data = stats.length_data(frame, max_points=100)
    for mode, fit in data.items():
        rows = frame[(frame["status"] == "ok") & (frame["mode"] == mode)]
        rows = rows[["output_tokens", "perceived_s"]].dropna()
        slope, intercept = np.polyfit(rows["output_tokens"].to_numpy(float),
                                      rows["perceived_s"].to_numpy(float), 1)
        assert fit.n == len(rows)
        assert fit.slope_s_per_token == pytest.approx(slope)
        assert fit.intercept_s == pytest.approx(intercept)
        assert len(fit.tokens) == 100
        pairs = set(zip(rows["output_tokens"].astype(float), rows["perceived_s"]))
        assert all((t, b) in pairs for t, b in zip(fit.tokens, fit.blank_s))
    # The synthetic blocking runs grow 20 ms per token; streaming ones stay flat.
    assert data["blocking"].slope_s_per_token == pytest.approx(0.02, abs=0.002)
    assert abs(data["streaming"].slope_s_per_token) < 0.001
    figure = charts.length_figure(data)
    line = next(t for t in figure.data if t.mode == "lines")  # blocking's, over its lengths
    blocking = frame[(frame["status"] == "ok") & (frame["mode"] == "blocking")]
    blocking = blocking[["output_tokens", "perceived_s"]].dropna()["output_tokens"]
    assert list(line.x) == [blocking.min(), blocking.max()]
    assert list(line.y) == pytest.approx([data["blocking"].intercept_s
                                          + data["blocking"].slope_s_per_token * x
                                          for x in line.x])


def test_length_data_with_one_answer_length_has_no_line():
    frame = pd.DataFrame({"mode": ["streaming"] * 3, "status": ["ok"] * 3,
                          "perceived_s": [0.1, 0.2, 0.3], "output_tokens": [7, 7, 7]})
    fit = stats.length_data(frame)["streaming"]
    assert fit.n == 3 and fit.slope_s_per_token is None
    assert [t.mode for t in charts.length_figure({"streaming": fit}).data] == ["markers"]


def test_missing_token_counts_leave_the_length_chart_empty(store):
    insert_rows(store, [without_tokens(t) for t in known_runs()])
    frame = history.chart_frame(store.engine, Filters())
    assert frame["output_tokens"].isna().all()
    assert stats.length_data(frame) == {}
    assert set(stats.blank_screen_data(frame)) == {"blocking", "streaming"}  # still drawn


# -- patience --------------------------------------------------------------------------------


def test_patience_on_the_hand_made_set(known):
    data = stats.patience_data(known, thresholds_s=(1.0, 3.0))
    assert data.n == {"blocking": 4, "streaming": 4}  # the failed run is not a user
    assert data.kept == {"blocking": {1.0: 0.5, 3.0: 0.75},
                         "streaming": {1.0: 0.75, 3.0: 1.0}}
    assert data.headline_s == 1.0
    assert data.kept_more_pp == pytest.approx(KNOWN_HEADLINE_PP)
    assert charts.patience_headline(data) == (
        "Streaming would have kept 25% more users: with 1 s of patience, 75% of users see words "
        "with streaming and 50% with blocking (the difference in percentage points of all users).")
    # The curves: the share still facing a blank screen (perceived_s > t) at each moment.
    for mode, blanks in (("blocking", BLOCKING_BLANKS), ("streaming", STREAMING_BLANKS)):
        expected = [(np.array(blanks) > t).mean() for t in data.moments_s]
        assert data.waiting[mode] == pytest.approx(expected, abs=1e-12)
    at = {float(t): i for i, t in enumerate(data.moments_s)}
    assert data.waiting["blocking"][at[1.0]] == 0.5  # a run of exactly 1.0 s keeps its user
    assert data.waiting["streaming"][at[3.0]] == 0.0


def test_patience_at_other_thresholds(known):
    at_3 = stats.patience_data(known, (1.0, 3.0), headline_s=3.0)
    assert at_3.kept_more_pp == pytest.approx(25.0)
    nielsen = stats.patience_data(known, charts.NIELSEN_S, headline_s=0.1)
    assert nielsen.kept == {"blocking": {0.1: 0.0, 1.0: 0.5, 10.0: 1.0},
                            "streaming": {0.1: 0.0, 1.0: 0.75, 10.0: 1.0}}
    assert nielsen.kept_more_pp == 0.0
    assert metrics.kept_more_pp(BLOCKING_BLANKS, STREAMING_BLANKS, 10.0) == 0.0


def test_a_headline_threshold_is_always_marked(known):
    data = stats.patience_data(known, (3.0,), headline_s=1.0)
    assert data.thresholds_s == (1.0, 3.0) and data.kept_more_pp == pytest.approx(25.0)


def test_patience_when_blocking_keeps_more():
    frame = pd.DataFrame({"mode": ["blocking", "streaming"], "status": ["ok", "ok"],
                          "perceived_s": [0.5, 2.0]})
    headline = charts.patience_headline(stats.patience_data(frame, (1.0,)))
    assert headline.startswith("Blocking would have kept 100% more users")


def test_patience_with_one_mode_has_a_curve_and_no_headline():
    frame = pd.DataFrame({"mode": ["streaming"] * 2, "status": ["ok"] * 2,
                          "perceived_s": [0.2, 0.4]})
    data = stats.patience_data(frame)
    assert list(data.waiting) == ["streaming"] and data.kept_more_pp is None
    assert charts.patience_headline(data) is None
    assert [t.mode for t in charts.patience_figure(data).data] == ["lines", "markers"]


def test_patience_figure_draws_the_curves_and_thresholds(known):
    data = stats.patience_data(known, (1.0, 3.0))
    figure = charts.patience_figure(data)
    curves = [t for t in figure.data if t.mode == "lines"]
    assert [t.name for t in curves] == ["⏳ Blocking", "⚡ Streaming"]
    assert list(curves[0].y) == pytest.approx(list(data.waiting["blocking"]))
    assert list(curves[0].x) == pytest.approx(list(data.moments_s))
    # The crossings marked at each threshold: the share still waiting there.
    crossings = [(list(t.x), list(t.y)) for t in figure.data if t.mode == "markers"]
    assert crossings == [([1.0, 3.0], [0.5, 0.25]), ([1.0, 3.0], [0.25, 0.0])]
    assert [shape.x0 for shape in figure.layout.shapes] == [1.0, 3.0]
    notes = [a.text for a in figure.layout.annotations]
    assert notes == ["<b>1 s</b>: blocking lost 50%, streaming lost 25%",
                     "<b>3 s</b>: blocking lost 25%, streaming lost 0%"]


def test_patience_spec_draws_what_the_figure_draws(known):
    """History's patience chart (Vega-Lite) holds the same curves, crossings and notes as the
    report's (plotly)."""
    data = stats.patience_data(known, (1.0, 3.0))
    curves, rules, crossings, notes = charts.patience_spec(data)["layer"]
    values = curves["data"]["values"]
    blocking = [row for row in values if row["mode"] == "⏳ Blocking"]
    assert [row["waiting"] for row in blocking] == pytest.approx(list(data.waiting["blocking"]))
    assert [row["moment_s"] for row in blocking] == pytest.approx(list(data.moments_s))
    assert {row["mode"] for row in values} == {"⏳ Blocking", "⚡ Streaming"}
    assert curves["mark"]["interpolate"] == "step-after"  # a share changes at a run's moment
    assert curves["encoding"]["color"]["scale"]["range"] == ["#d62728", "#2ca02c"]
    assert [(row["moment_s"], row["waiting"]) for row in crossings["data"]["values"]] == [
        (1.0, 0.5), (3.0, 0.25), (1.0, 0.25), (3.0, 0.0)]
    assert [row["moment_s"] for row in rules["data"]["values"]] == [1.0, 3.0]
    assert [row["note"] for row in notes["data"]["values"]] == [
        "1 s: blocking lost 50%, streaming lost 25%", "3 s: blocking lost 25%, streaming lost 0%"]


def test_kept_shares_formula():
    assert metrics.kept_shares([], [1.0]) is None
    assert metrics.kept_shares([0.5, 1.0, 1.5, 2.0], [0.0, 1.0, 1.9, 5.0]) == [0, 0.5, 0.75, 1]


# -- per-run timelines ---------------------------------------------------------------------


def test_timelines_data_matches_the_logged_timeline(store):
    stalled = make_run("streaming", 0.25, gaps=(0.05, 0.9, 0.05))
    blocking = make_run("blocking", 1.5)
    store.log([stalled, blocking])
    runs = history.runs_by_id(store.engine, [stalled.run_id, blocking.run_id])
    data = stats.timelines_data(runs, stall_s=0.5)
    first, second = data.runs
    marks = data.marks[data.marks["run"] == first]
    logged = history.timeline(runs.iloc[0])
    assert list(marks["offset_s"]) == [offset for offset, _ in logged]
    assert list(marks["text"]) == [text for _, text in logged]
    gaps = data.gaps[data.gaps["run"] == first]
    assert list(gaps["kind"]) == ["wait", "gap", "gap", "gap"]
    assert list(gaps["gap_s"]) == pytest.approx([0.249, 0.05, 0.9, 0.05], abs=1e-9)
    assert list(gaps["stall"]) == [False, False, True, False]
    # The longest gap is the run's logged worst stall.
    assert gaps[gaps["kind"] == "gap"]["gap_s"].max() == pytest.approx(runs.iloc[0]["icl_max_s"])
    blocking_gaps = data.gaps[data.gaps["run"] == second]
    assert blocking_gaps[["kind", "gap_s"]].values.tolist() == [["wait", pytest.approx(1.499)]]
    figure = charts.timelines_figure(data)
    stall_trace = next(t for t in figure.data if t.name.startswith("stall"))
    assert list(stall_trace.text) == ["⚠ 0.90 s"]
    assert "1 stall longer than 0.5 s" in charts.timelines_caption(data)


def test_timelines_of_runs_without_text(store):
    failed = make_run("streaming", None, status="error")
    store.log([failed])
    data = stats.timelines_data(history.runs_by_id(store.engine, [failed.run_id]))
    assert data.marks.empty and data.gaps.empty and len(data.runs) == 1
    charts.timelines_figure(data)  # draws (empty) without failing


# -- group comparison ------------------------------------------------------------------------


def test_group_comparison_matches_each_group():
    frame = random_frame()
    a, b = frame[frame["mode"] == "blocking"], frame[frame["mode"] == "streaming"]
    table = stats.group_comparison(a, b)
    assert len(table) == len(stats.COMPARED) * 3
    for _, row in table.iterrows():
        q = float(row["percentile"][1:])
        a_values = a[a["status"] == "ok"][row["metric"]].dropna().to_numpy(float)
        b_values = b[b["status"] == "ok"][row["metric"]].dropna().to_numpy(float)
        assert row["A"] == pytest.approx(np.percentile(a_values, q))
        assert row["B"] == pytest.approx(np.percentile(b_values, q))
        assert row["ratio"] == pytest.approx(row["B"] / row["A"])
    figure = charts.group_comparison_figure(table, "blocking", "streaming")
    assert [t.name for t in figure.data] == ["p50", "p90", "p99"]
    p90 = figure.data[1]
    rows = table[table["percentile"] == "p90"]
    assert list(p90.x) == [charts.COMPARED_LABELS[m] for m in stats.COMPARED]
    # Each bar spans from the 1× line to the ratio.
    assert p90.base == 1.0 and list(p90.y + 1.0) == pytest.approx(rows["ratio"].tolist())
    assert np.asarray(p90.customdata) == pytest.approx(
        rows[["A", "B", "ratio"]].to_numpy(dtype=float))


def test_group_comparison_with_an_empty_side():
    frame = random_frame(50)
    table = stats.group_comparison(frame, frame.iloc[0:0])
    assert table["B"].isna().all() and table["ratio"].isna().all()
    assert table["A"].notna().all()


# -- odd data --------------------------------------------------------------------------------


def test_empty_and_error_only_frames_chart_nothing(store):
    empty = history.chart_frame(store.engine, Filters())
    assert empty.empty
    assert stats.blank_screen_data(empty) == {} and stats.length_data(empty) == {}
    assert stats.patience_data(empty).n == {}
    store.log([make_run("streaming", None, status="error"),
               make_run("blocking", 0.5, status="cancelled")])
    errors = history.chart_frame(store.engine, Filters())
    assert len(errors) == 2
    assert stats.blank_screen_data(errors) == {} and stats.length_data(errors) == {}
    assert charts.patience_headline(stats.patience_data(errors)) is None


def test_the_browser_clock_is_charted_only_where_a_browser_measured_it():
    frame = pd.DataFrame({
        "mode": ["blocking", "streaming", "streaming", "streaming"],
        "status": ["ok"] * 4,
        "perceived_s": [1.0, 0.3, 0.31, 0.32],
        "screen_first_s": [1.1, 0.36, None, None],  # two streamed runs were headless
    })
    screen = stats.blank_screen_data(frame, column="screen_first_s")
    assert {m: d.n for m, d in screen.items()} == {"blocking": 1, "streaming": 1}
    assert screen["streaming"].median == pytest.approx(0.36)
    assert "browser's clock" in charts.blank_screen_caption(screen, "screen_first_s")
    assert "server's clock" in charts.blank_screen_caption(stats.blank_screen_data(frame))
    headless = frame.assign(screen_first_s=None)
    assert stats.blank_screen_data(headless, column="screen_first_s") == {}
    assert stats.blank_screen_data(frame.drop(columns="screen_first_s"),
                                   column="screen_first_s") == {}

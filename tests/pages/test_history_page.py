"""The History page through Streamlit's AppTest: the whole app, switched to app_pages/history.py,
on a run log filled with hand-made runs whose answers are known (tests/support/history_runs.py)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.storage.store import Store
from tests.support.history_runs import DAY, insert_rows, known_runs, make_run, without_tokens

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


@pytest.fixture
def log(tmp_path, monkeypatch) -> Store:
    """An empty run log the app is pointed at (through DATABASE_URL, as a user would)."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    for name in ("STREAMRACE_API_KEY", "OPENAI_API_KEY", "STREAMRACE_MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMRACE_ENDPOINT", "compatible")
    monkeypatch.setenv("STREAMRACE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("STREAMRACE_MODEL", "model-a")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(ROOT)
    store = Store(url)
    yield store
    store.engine.dispose()


def open_history() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/history.py")
    return rerun(at)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list:
    """The page's charts: plotly's, and the patience chart, first on the page, in Vega-Lite
    (its code loads sooner in the browser)."""
    return [*at.get("vega_lite_chart"), *at.get("plotly_chart")]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def runs_table(at: AppTest):
    [grid] = [d for d in at.dataframe if (d.key or "").startswith("history_table_")]
    return grid


def table(at: AppTest):
    return runs_table(at).value


def frame_with(at: AppTest, column: str):
    """The one st.dataframe (without selection, so without a key in AppTest) having `column`."""
    [frame] = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def test_empty_log_says_so(log):
    at = open_history()
    assert [t.value for t in at.title] == ["📊 StreamRace history"]
    assert "No runs logged yet" in texts(at.info)
    assert not charts(at) and not at.dataframe


def test_known_runs_give_the_known_headline_and_every_chart(log):
    log.log(known_runs())
    at = open_history()
    assert texts(at.success).startswith("Streaming would have kept 25% more users")
    assert "with 1 s of patience, 75% of users see words with streaming and 50% with blocking" \
        in texts(at.success)
    assert len(charts(at)) == 4  # patience, distribution, length, comparison
    assert len(at.get("vega_lite_chart")) == 1  # the patience chart: plotly waits until it is drawn
    cards = {m.label: m.value for m in at.metric}
    assert cards == {"Runs": "9", "⏳ Blocking, p50 blank": "1.75 s",
                     "⚡ Streaming, p50 blank": "350 ms", "⚡ Words sooner by": "5.0×"}
    captions = texts(at.caption)
    assert "Blocking median 1.75 s (n = 4)" in captions
    assert "Charts use the 8 runs that ended ok; the 1 failed" in captions
    # Live runs only by default: the replayed and simulated runs are left out.
    shown = table(at)
    assert len(shown) == 9 and set(shown["source"]) == {"live"}
    assert "Showing all 9 filtered runs" in captions
    assert not at.error and not at.warning


def test_the_browser_clock_is_charted_when_runs_have_it(log):
    runs = known_runs()
    log.log(runs)
    at = open_history()
    assert "Blank screen on the user's screen (browser clock)" not in texts(at.subheader)
    assert "server's clock" in texts(at.caption)
    watched = [make_run("blocking", 1.0), make_run("streaming", 0.3)]
    for trace in watched:
        trace.screen_first_s = trace.screen_done_s = 0.5
    log.log(watched)
    at = rerun(at)
    assert "Blank screen on the user's screen (browser clock)" in texts(at.subheader)
    assert len(charts(at)) == 5
    assert "browser's clock (from the click on Run" in texts(at.caption)


def test_selecting_sources_brings_replayed_runs_in(log):
    log.log(known_runs())
    at = open_history()
    at.multiselect(key="history_sources").select("replay")
    rerun(at)
    assert set(table(at)["source"]) == {"live", "replay"}
    # The replayed run (9 s of blank screen) now counts: streaming keeps 3 of 5 at 1 s.
    assert "60% of users see words with streaming" in texts(at.success)


def test_thresholds_are_editable_and_checked(log):
    log.log(known_runs())
    at = open_history()
    at.text_input(key="patience_thresholds").input("3, 0.2")
    rerun(at)
    at.selectbox(key="patience_headline_t").select(3.0)
    rerun(at)
    assert "with 3 s of patience, 100% of users see words with streaming and 75% with blocking" \
        in texts(at.success)
    at.text_input(key="patience_thresholds").input("soon, -1")
    rerun(at)
    assert "not a list of positive numbers" in texts(at.warning)
    assert "using 1 s and 3 s" in texts(at.warning)
    assert "with 3 s of patience" in texts(at.success)  # still a threshold: still the headline
    at.toggle(key="patience_nielsen").set_value(True)
    rerun(at)
    assert at.selectbox(key="patience_headline_n").options == ["0.1 s of patience",
                                                               "1 s of patience",
                                                               "10 s of patience"]


def test_filters_that_match_nothing_say_so(log):
    log.log(known_runs())
    at = open_history()
    at.text_input(key="history_prompt").input("no prompt says this")
    rerun(at)
    assert "No runs match these filters" in texts(at.warning)
    assert "the log holds 11 runs in all" in texts(at.warning)
    assert not charts(at)


def test_errors_only(log):
    log.log([make_run("streaming", None, status="error"), make_run("blocking", None,
                                                                   status="error")])
    at = open_history()
    assert "None of the 2 filtered runs ended ok" in texts(at.info)
    assert len(table(at)) == 2
    assert not at.success


def test_one_mode_only(log):
    log.log([make_run("streaming", 0.3, tokens=5), make_run("streaming", 0.5, tokens=9)])
    at = open_history()
    assert "Only streaming runs match" in texts(at.info)
    assert not at.success
    assert len(charts(at)) >= 3  # patience, distribution, length still drawn


def test_missing_token_counts(log):
    insert_rows(log, [without_tokens(t) for t in known_runs()])
    at = open_history()
    assert "No token counts in these runs" in texts(at.info)
    assert texts(at.success).startswith("Streaming would have kept 25% more users")


def test_selected_runs_show_prompt_answer_and_timeline(log):
    html_prompt = "<b>bold?</b> [link](http://example.com)"
    run = make_run("streaming", 0.25, gaps=(0.05, 0.8), prompt=html_prompt, tokens=3)
    log.log([run, make_run("blocking", 1.0, tokens=3)])
    at = open_history()
    row = list(table(at)["run_id"]).index(run.run_id)
    at.session_state[runs_table(at).key] = {"selection": {"rows": [row], "columns": [],
                                                          "cells": []}}
    rerun(at)
    assert "chart_timelines" in {c.key for c in charts(at)}
    assert "1 stall longer than 0.5 s" in texts(at.caption)
    [expander] = at.main.expander  # (the sidebar has its own: adding an endpoint)
    body = texts(expander.markdown)
    assert r"\<b\>bold?\</b\>" in body and r"\[link\]\(http" in body  # shown as text
    assert "w0 w1 w2" in body.replace("\\", "")
    chunks = frame_with(at, "chars")
    assert list(chunks["text"]) == ["w0 ", "w1 ", "w2 "]


def test_compare_two_models(log):
    log.log(known_runs())
    log.log([make_run("streaming", 0.1, model="model-b", tokens=4),
             make_run("streaming", 0.2, model="model-b", tokens=4)])
    at = open_history()
    at.selectbox(key="compare_by").select("model")
    rerun(at)
    compared = frame_with(at, "ratio")
    blank = compared[(compared["metric"] == "perceived_s") & (compared["percentile"] == "p50")]
    # model-a: the 8 ok known runs (median of 0.2 … 3.5); model-b: 0.1 and 0.2.
    assert blank["A"].iloc[0] == pytest.approx(0.75)
    assert blank["B"].iloc[0] == pytest.approx(0.15)
    assert blank["ratio"].iloc[0] == pytest.approx(0.2)


def test_compare_by_mode_is_the_default(log):
    log.log(known_runs())
    at = open_history()
    compared = frame_with(at, "ratio")
    row = compared[(compared["metric"] == "perceived_s") & (compared["percentile"] == "p50")]
    assert (row["A"].iloc[0], row["B"].iloc[0]) == pytest.approx((1.75, 0.35))


def test_time_ranges(log):
    log.log(known_runs())  # all on 2025-03-10
    at = open_history()
    at.selectbox(key="history_range").select("Last 24 hours")
    rerun(at)
    assert "No runs match these filters" in texts(at.warning)
    at.selectbox(key="history_range").select("Custom dates")
    rerun(at)
    at.date_input(key="history_dates").set_value((date(2025, 3, 10), date(2025, 3, 10)))
    rerun(at)
    assert len(table(at)) == 9 and not at.warning
    at.date_input(key="history_dates").set_value((date(2025, 3, 11), date(2025, 3, 12)))
    rerun(at)
    assert "No runs match these filters (2025-03-11 00:00 UTC – 2025-03-13 00:00 UTC" \
        in texts(at.warning)


def test_compare_two_date_ranges(log):
    log.log(known_runs())  # 2025-03-10
    later = DAY + timedelta(days=2)
    log.log([make_run("blocking", 4.0, created=later), make_run("streaming", 0.5, created=later)])
    at = open_history()
    at.selectbox(key="compare_by").select("created_at")
    rerun(at)
    at.date_input(key="compare_A_dates").set_value((date(2025, 3, 10), date(2025, 3, 10)))
    at.date_input(key="compare_B_dates").set_value((date(2025, 3, 12), date(2025, 3, 12)))
    rerun(at)
    compared = frame_with(at, "ratio")
    blank = compared[(compared["metric"] == "perceived_s") & (compared["percentile"] == "p50")]
    assert blank["A"].iloc[0] == pytest.approx(0.75)  # the 8 ok known runs
    assert blank["B"].iloc[0] == pytest.approx(2.25)  # 0.5 and 4.0
    assert "2025-03-10 – 2025-03-10 (A) against 2025-03-12 – 2025-03-12 (B)" in texts(at.caption)


def test_new_runs_show_on_the_next_rerun(log):
    log.log(known_runs())
    at = open_history()
    assert len(table(at)) == 9
    log.log([make_run("streaming", 0.2)])
    rerun(at)
    assert len(table(at)) == 10  # the cached queries follow the run log


def test_a_mode_whose_runs_all_failed(log):
    log.log([make_run("blocking", None, status="error"), make_run("streaming", 0.3, tokens=4)])
    at = open_history()
    cards = {m.label: m.value for m in at.metric}
    assert cards["⏳ Blocking, p50 blank"] == "–"
    assert "⚡ Words sooner by" not in cards
    assert "Only streaming runs match" in texts(at.info)


def test_an_unusable_database_url_is_a_message(log, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'dir' / 'runs.db'}")
    at = open_history()
    assert "Cannot open the run log" in texts(at.error)
    assert not at.dataframe


def test_a_file_that_is_not_a_run_log_is_a_message(log, monkeypatch, tmp_path):
    garbage = tmp_path / "notes.db"
    garbage.write_text("these are my notes, not a database " * 100)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{garbage}")
    at = open_history()
    assert "could not be read" in texts(at.error) or "Cannot open" in texts(at.error)


def test_race_lanes_are_compared_and_grouped(log):
    from tests.unit.test_history import lane_runs

    log.log(lane_runs())
    at = open_history()
    assert "Race lanes compared" in [h.value for h in at.subheader]
    lanes = frame_with(at, "sooner")
    assert list(lanes["lane"]) == ["ours · streaming", "theirs · streaming", "theirs · blocking"]
    assert "“ours · streaming” showed words first (p50 200 ms), 9.0× sooner than “theirs · " \
        "blocking” (1.80 s)" in texts(at.caption)
    # The existing comparison of two groups, by lane label.
    at.selectbox(key="compare_by").select("lane_label")
    rerun(at)
    at.multiselect(key="compare_A_lane_label").set_value(["theirs · blocking"])
    at.multiselect(key="compare_B_lane_label").set_value(["ours · streaming"])
    rerun(at)
    compared = frame_with(at, "ratio")
    blank = compared[(compared["metric"] == "perceived_s") & (compared["percentile"] == "p50")]
    assert (blank["A"].iloc[0], blank["B"].iloc[0]) == pytest.approx((1.8, 0.2))
    # And the filter.
    at.multiselect(key="history_lanes").set_value(["theirs · streaming"])
    rerun(at)
    assert set(table(at)["lane_label"]) == {"theirs · streaming"}

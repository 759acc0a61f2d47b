"""History: every logged run, filtered in the database, as charts a stakeholder believes.

Sections with their own widgets are fragments: changing a threshold, ticking a row or picking
a comparison group redraws that section only, from the runs already loaded.
"""

import hashlib
from dataclasses import replace
from datetime import datetime, timezone

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from app_pages.access import current_owner, whose_runs
from app_pages.first_paint import painted
from app_pages.history_parts import (
    TABLE_CONFIG,
    TABLE_ORDER,
    comparison_groups,
    display_table,
    filters_from_widgets,
    patience_settings,
)
from app_pages.shared import current_settings, run_log
from lib import report
from lib.core.errors import StreamRaceError, redact
from lib.present import charts, stats
from lib.present.display import SHOWN_CHARS, plain_markdown, seconds
from lib.storage import history
from lib.storage.store import to_csv, to_parquet, trace_from_row

MAX_SELECTED = 12


def table_key(filters: history.Filters, version: tuple) -> str:
    return hashlib.sha1(repr((filters, version)).encode()).hexdigest()[:10]


# Each query is cached until the run log changes: `version` is (runs, newest created_at).
@st.cache_data(show_spinner=False, max_entries=16)
def load_facets(url: str | None, filters: history.Filters | None, version: tuple):
    return history.facets(run_log(url).engine, filters)


@st.cache_data(show_spinner=False, max_entries=16)
def load_table(url: str | None, filters: history.Filters, version: tuple):
    return history.table(run_log(url).engine, filters)


@st.cache_data(show_spinner=False, max_entries=16)
def load_runs(url: str | None, filters: history.Filters, version: tuple):
    return history.chart_frame(run_log(url).engine, filters)


@st.fragment
def patience_section(frame, report_settings: dict) -> None:
    """The headline and the patience chart; the chosen thresholds also go to the report."""
    box = st.container()
    thresholds, headline_s = patience_settings()
    report_settings.update(thresholds_s=thresholds, headline_s=headline_s)
    patience = stats.patience_data(frame, thresholds, headline_s)
    headline = charts.patience_headline(patience)
    if headline:
        box.success(headline, icon="🏁")
    else:
        box.info(charts.one_mode_note(patience), icon="⚖️")
    # Vega-Lite, not plotly: the page's first chart need not wait for plotly's 4.7 MB.
    st.vega_lite_chart(charts.patience_spec(patience), key="chart_patience", width="stretch")
    st.caption(charts.patience_caption(patience))


def summary_cards(frame) -> None:
    summary = history.summary(frame).set_index("mode")
    cards = st.columns(4)
    cards[0].metric("Runs", f"{len(frame):,}", border=True,
                    help=f"{int(summary['failed'].sum()):,} of them failed or were cancelled")
    for card, mode in zip(cards[1:3], ("blocking", "streaming")):
        if mode in summary.index:
            row = summary.loc[mode]
            card.metric(f"{charts.LABELS[mode]}, p50 blank", seconds(row["perceived_s p50"]),
                        border=True, help=f"Blank screen: p50 over {row['ok']:,} ok runs; p90 "
                                          f"{seconds(row['perceived_s p90'])}")
    if {"blocking", "streaming"} <= set(summary.index):
        slow, fast = (summary.loc[mode, "perceived_s p50"] for mode in ("blocking", "streaming"))
        if slow > 0 and fast > 0:  # (False for a missing value, NaN)
            cards[3].metric("⚡ Words sooner by", f"{slow / fast:.1f}×", border=True,
                            help="p50 blank screen, blocking ÷ streaming")


def charts_section(frame, report_settings: dict) -> bool:
    """The summary cards and the patience chart, the page's first content; False when no run
    ended ok (nothing to chart)."""
    ok = stats.ok_runs(frame)
    failed = len(frame) - len(ok)
    if ok["perceived_s"].notna().sum() == 0:
        st.info(f"None of the {len(frame):,} filtered runs ended ok ({failed:,} failed or were "
                "cancelled), so there is no blank-screen time to chart. The table below lists "
                "them.", icon="🫥")
        return False
    summary_cards(frame)
    st.subheader("Simulated users' patience")
    patience_section(frame, report_settings)
    if failed:
        st.caption(f"Charts use the {len(ok):,} runs that ended ok; the {failed:,} failed or "
                   "cancelled runs are in the table.")
    return True


def more_charts(frame) -> None:
    """Blank screen per mode (on both clocks) and against answer length."""
    st.subheader("Blank screen per mode")
    blank = stats.blank_screen_data(frame)
    st.plotly_chart(charts.blank_screen_figure(blank), key="chart_blank")
    st.caption(charts.blank_screen_caption(blank))
    screen = stats.blank_screen_data(frame, column="screen_first_s")
    if screen:
        st.subheader("Blank screen on the user's screen (browser clock)")
        st.plotly_chart(charts.blank_screen_figure(screen), key="chart_screen")
        st.caption(charts.blank_screen_caption(screen, "screen_first_s"))
    st.subheader("Blank screen against answer length")
    lengths = stats.length_data(frame)
    if lengths:
        st.plotly_chart(charts.length_figure(lengths), key="chart_length")
        st.caption(charts.length_caption(lengths))
    else:
        st.info("No token counts in these runs: this chart needs output_tokens.", icon="🔢")


def thinking_section(url, filters, version) -> None:
    """Reasoning models: thinking against answering time (only when some run reasoned)."""
    split = stats.thinking_data(load_reasoning(url, filters, version))
    if split is None:
        return
    st.subheader("🧠 Thinking against answering")
    st.plotly_chart(charts.thinking_figure(split), key="chart_thinking")
    st.caption(charts.thinking_caption(split))


@st.cache_data(show_spinner=False, max_entries=16)
def load_reasoning(url: str | None, filters: history.Filters, version: tuple):
    return history.reasoning_frame(run_log(url).engine, filters)


@st.fragment
def runs_section(url, filters, version, total) -> None:
    """The newest filtered runs, exports of all of them, and the ticked runs' detail."""
    st.subheader("Runs")
    table = load_table(url, filters, version)
    shown = f"the newest {len(table):,} of {total:,}" if total > len(table) else f"all {total:,}"
    st.caption(f"Showing {shown} filtered runs (tick rows to see their detail); the charts and "
               "the exports cover every filtered run. Times are UTC.")
    # The key names the rows shown: new filters or new runs start a new selection, rather than
    # keeping row positions that now point at other runs.
    selection = st.dataframe(display_table(table), hide_index=True,
                             key=f"history_table_{table_key(filters, version)}",
                             on_select="rerun", selection_mode="multi-row",
                             column_order=TABLE_ORDER, column_config=TABLE_CONFIG)
    engine = run_log(url).engine
    every_run = lambda: history.table(engine, filters, limit=None)  # noqa: E731
    by = current_owner()  # read now: the files are built on click, outside this run
    cols = st.columns([1, 1, 5])
    cols[0].download_button("⬇️ CSV", lambda: to_csv(every_run(), by), "streamrace-history.csv",
                            "text/csv", key="export_csv", on_click="ignore")
    cols[1].download_button("⬇️ Parquet", lambda: to_parquet(every_run(), by),
                            "streamrace-history.parquet", "application/vnd.apache.parquet",
                            key="export_parquet", on_click="ignore")
    rows = selection.selection.rows if selection else []
    detail([table["run_id"].iloc[i] for i in rows if i < len(table)][:MAX_SELECTED], engine)


def detail(run_ids: list[str], engine) -> None:
    st.subheader("Selected runs")
    if not run_ids:
        st.caption("Tick runs in the table to see their prompt, answer and chunk timeline.")
        return
    runs = history.runs_by_id(engine, run_ids)
    stall_s = st.columns([1, 3])[0].number_input("Stall: a gap longer than (s)", 0.01, 60.0,
                                                 stats.DEFAULT_STALL_S, 0.05, key="history_stall_s")
    timelines = stats.timelines_data(runs, stall_s)
    if timelines.marks.empty:
        st.info("The selected runs received no text: no chunk to draw.", icon="🫥")
    else:
        st.plotly_chart(charts.timelines_figure(timelines), key="chart_timelines")
        st.caption(charts.timelines_caption(timelines))
    structured = [trace_from_row(row) for _, row in runs.iterrows() if row["schema_name"]]
    if structured:
        st.plotly_chart(charts.field_timeline(structured), key="chart_fields")
        st.caption(charts.field_timeline_caption(structured))
    for index, (_, run) in enumerate(runs.iterrows()):
        label = stats.run_label(run)
        with st.expander(label, expanded=index == 0):
            if run["error"]:
                st.error(plain_markdown(run["error"]), icon="🚨")
            st.markdown(f"**Prompt**  \n{plain_markdown(run['prompt'])}")
            thoughts = "".join(text for _, text in history.timeline(run, thoughts=True))
            if thoughts:
                st.markdown(f"**Thinking** (first answer word after "
                            f"{seconds(run['ttfo_s'])}, thinking {seconds(run['thinking_s'])})"
                            f"  \n{plain_markdown(thoughts[-SHOWN_CHARS:])}")
            answer = plain_markdown(run["output_text"] or "") or "*(no text)*"
            st.markdown(f"**Answer** ({run['status']}, blank screen "
                        f"{seconds(run['perceived_s'])})  \n{answer}")
            chunks = timelines.marks[timelines.marks["run"] == label]
            st.dataframe(chunks[["offset_s", "chars", "text"]], hide_index=True, height=220,
                         key=f"chunks_{run['run_id']}", column_config={
                             "offset_s": st.column_config.NumberColumn("after t0",
                                                                       format="%.3f s")})


@st.fragment
def compare_section(url, filters, version, frame) -> None:
    st.subheader("Compare two groups")
    groups = comparison_groups(filters, load_facets(url, filters, version))
    if groups is None:
        return

    def runs_of(group: history.Filters):
        # A group that only narrows the mode is a slice of the runs already loaded.
        if group.modes and replace(group, modes=filters.modes) == filters:
            return frame[frame["mode"].isin(group.modes)]
        return load_runs(url, group, version)

    (a_label, a), (b_label, b) = ((label, runs_of(group)) for label, group in groups)
    for label, runs in ((a_label, a), (b_label, b)):
        if stats.ok_runs(runs).empty:
            st.info(f"No ok runs in group “{label}” under the current filters.", icon="🫥")
            return
    table = stats.group_comparison(a, b)
    st.plotly_chart(charts.group_comparison_figure(table, a_label, b_label), key="chart_compare")
    st.caption(charts.group_comparison_caption(table, a_label, b_label) +
               f" Runs: A {len(stats.ok_runs(a)):,}, B {len(stats.ok_runs(b)):,}.")
    st.dataframe(table, hide_index=True, key="compare_table", height=35 * (len(table) + 1) + 3,
                 column_config={
        "A": st.column_config.NumberColumn(f"A: {a_label}", format="%.3f"),
        "B": st.column_config.NumberColumn(f"B: {b_label}", format="%.3f"),
        "ratio": st.column_config.NumberColumn("B ÷ A", format="%.2f×")})


def lanes_section(frame) -> None:
    """Race lanes over many races, by label: shown when two lanes have ok runs."""
    table = history.lane_comparison(frame)
    if table.empty:
        return
    st.subheader("Race lanes compared")
    st.caption(charts.lane_comparison_caption(table))
    st.plotly_chart(charts.lane_comparison_figure(table), key="chart_lanes")
    st.dataframe(table, hide_index=True, key="lanes_table", column_config={
        **{f"{name} {p}": st.column_config.NumberColumn(f"{name} {p}", format="%.3f s")
           for name in history.LANE_METRICS if name != "output_tps" for p in ("p50", "p90")},
        "sooner": st.column_config.NumberColumn("× sooner than the slowest", format="%.1f×")})


def report_section(url, filters, report_settings: dict) -> None:
    st.subheader("Stakeholder report")
    engine = run_log(url).engine
    by = current_owner()
    # Built on click, from the settings the patience section holds at that moment.
    st.download_button(
        "⬇️ Report (HTML, opens offline)",
        lambda: report.build(engine, filters, **report_settings, exported_by=by),
        "streamrace-report.html", "text/html", key="export_report", on_click="ignore")
    st.caption("One file for the meeting's follow-up: the charts (interactive), the summary, "
               "the endpoints, models and prompts of these runs. From a shell: "
               "`python -m lib.report --out report.html`.")


st.title("📊 StreamRace history")
st.caption("Every logged run, filtered in the database: how long users stare at a blank "
           "screen, blocking against streaming. Replayed and simulated runs only count when "
           "their source is selected.")
def history_page(url: str | None) -> None:
    version = history.version(run_log(url).engine)
    filters = filters_from_widgets(load_facets(url, None, version), datetime.now(timezone.utc))
    filters = replace(filters, owners=whose_runs())  # sign-in on: "Mine" or "Everyone"
    total = history.count(run_log(url).engine, filters) if version[0] else 0
    if not version[0]:
        st.info("No runs logged yet: run a race on the 🏁 Race page, then come back.", icon="📭")
    elif not total:
        st.warning(f"No runs match these filters ({filters.describe()}); the log holds "
                   f"{version[0]:,} runs in all.", icon="🔎")
    else:
        frame = load_runs(url, filters, version)
        report_settings = st.session_state.setdefault("history_report_settings", {})
        charted = charts_section(frame, report_settings)
        # The rest (more charts, the runs table, the comparison) once the browser has painted
        # the headline and the first chart: drawn at once, they delayed it by seconds.
        if not painted("history"):
            st.caption("⏳ Drawing the other charts and the runs…")
            return
        if charted:
            more_charts(frame)
        thinking_section(url, filters, version)
        runs_section(url, filters, version, total)
        lanes_section(frame)
        compare_section(url, filters, version, frame)
        report_section(url, filters, report_settings)


try:
    history_page(current_settings().database_url)
except StreamRaceError as error:
    st.error(error.message, icon="🚨")
except SQLAlchemyError as error:
    st.error(f"The run log could not be read: {redact(str(getattr(error, 'orig', error)))}",
             icon="🚨")

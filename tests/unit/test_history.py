"""lib.history: filters applied in the database, the table, the chart frame, exports, indexes."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from lib.storage import history
from lib.storage.history import Filters
from lib.storage.store import RUN_COLUMNS, to_csv, to_parquet, trace_to_row
from tests.support.history_runs import DAY, known_runs, make_run

pytestmark = pytest.mark.both_databases  # every run log here: SQLite, then PostgreSQL


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["run_id"])


@pytest.fixture
def mixed(store):
    """Runs that differ in one column each from a plain live run, by name."""
    runs = {
        "plain": make_run("streaming", 0.3),
        "blocking": make_run("blocking", 2.0),
        "replay": make_run("streaming", 0.3, source="replay"),
        "simulated": make_run("streaming", 0.3, source="simulated"),
        "benchmark": make_run("streaming", 0.3, source="benchmark"),
        "model-b": make_run("streaming", 0.3, model="org/model-b"),
        "openai": make_run("streaming", 0.3, endpoint_kind="openai"),
        "error": make_run("streaming", None, status="error"),
        "cancelled": make_run("streaming", 0.3, status="cancelled"),
        "older": make_run("streaming", 0.3, created=DAY - timedelta(days=3)),
        "newer": make_run("streaming", 0.3, created=DAY + timedelta(days=3)),
        "percent": make_run("streaming", 0.3, prompt="Is 100% of it LIKE_this?"),
        "lookalike": make_run("streaming", 0.3, prompt="Is 1000 of it LIKEXthis?"),
    }
    store.log(runs.values())
    return {name: trace.run_id for name, trace in runs.items()}


def selected(store, mixed, **changes) -> set[str]:
    frame = history.table(store.engine, Filters(**changes), limit=None)
    names = {run_id: name for name, run_id in mixed.items()}
    return {names[run_id] for run_id in frame["run_id"]}


LIVE = {"plain", "blocking", "model-b", "openai", "error", "cancelled", "older", "newer",
        "percent", "lookalike"}


def test_default_filter_is_live_runs_only(store, mixed):
    assert selected(store, mixed) == LIVE


def test_each_filter_selects_in_the_database(store, mixed):
    assert selected(store, mixed, sources=("replay", "simulated")) == {"replay", "simulated"}
    assert selected(store, mixed, sources=()) == set(mixed)  # empty = any source
    assert selected(store, mixed, models=("org/model-b",)) == {"model-b"}
    assert selected(store, mixed, endpoint_kinds=("openai",)) == {"openai"}
    assert selected(store, mixed, modes=("blocking",)) == {"blocking"}
    assert selected(store, mixed, statuses=("error", "cancelled")) == {"error", "cancelled"}
    assert selected(store, mixed, since=DAY + timedelta(days=1)) == {"newer"}
    assert selected(store, mixed, until=DAY - timedelta(days=1)) == {"older"}
    assert selected(store, mixed, since=DAY - timedelta(hours=1),
                    until=DAY + timedelta(hours=1)) == LIVE - {"older", "newer"}
    # Combined filters are ANDed.
    assert selected(store, mixed, modes=("streaming",), statuses=("ok",),
                    since=DAY - timedelta(hours=1), until=DAY + timedelta(hours=1)) == {
        "plain", "model-b", "openai", "percent", "lookalike"}


def test_naive_times_are_utc(store, mixed):
    naive = (DAY + timedelta(days=1)).replace(tzinfo=None)
    assert selected(store, mixed, since=naive) == {"newer"}


def test_prompt_filter_is_literal_and_case_insensitive(store, mixed):
    # % and _ are matched as characters, not as LIKE wildcards.
    assert selected(store, mixed, prompt_contains="100%") == {"percent"}
    assert selected(store, mixed, prompt_contains="like_THIS") == {"percent"}
    assert selected(store, mixed, prompt_contains="why STREAM") == LIVE - {"percent", "lookalike"}
    assert selected(store, mixed, prompt_contains="'; DROP TABLE runs; --") == set()
    assert history.count(store.engine, Filters(sources=())) == len(mixed)


def test_filter_values_are_bound_parameters():
    query = sa.select(history.RUNS.c.run_id).where(*history.where(Filters(
        models=("m'odel",), prompt_contains="100%_x", since=DAY)))
    sql = str(query.compile(dialect=sa.create_engine("sqlite://").dialect))
    assert "m'odel" not in sql and "100%" not in sql and "2025" not in sql
    assert "LIKE" in sql.upper() and "ESCAPE" in sql.upper()


def test_table_is_newest_first_limited_and_has_no_wide_columns(store):
    runs = [make_run("streaming", 0.3, created=DAY + timedelta(seconds=i)) for i in range(7)]
    store.log(runs)
    frame = history.table(store.engine, Filters(), limit=3)
    assert list(frame["run_id"]) == [r.run_id for r in reversed(runs)][:3]
    assert list(frame.columns) == list(history.TABLE_COLUMNS)
    assert "output_text" not in frame.columns and "timeline" not in frame.columns
    assert len(history.table(store.engine, Filters(), limit=None)) == 7


def test_table_values_are_the_logged_values(store):
    trace = make_run("streaming", 0.25, gaps=(0.1, 0.3), tokens=3)
    store.log([trace])
    row = history.table(store.engine, Filters()).iloc[0]
    logged = trace_to_row(trace)
    for column in history.TABLE_COLUMNS:
        if logged[column] is None:
            assert pd.isna(row[column]), column
        elif isinstance(logged[column], float):
            assert row[column] == pytest.approx(logged[column], abs=1e-12), column
        else:
            assert row[column] == logged[column], column


def test_chart_frame_has_the_metrics_of_every_filtered_run(store):
    runs = known_runs()
    store.log(runs)
    frame = history.chart_frame(store.engine, Filters())
    assert list(frame.columns) == list(history.CHART_COLUMNS)
    live = [r for r in runs if r.source == "live"]
    assert len(frame) == len(live)
    expected = sorted((r.mode, r.status, trace_to_row(r)["perceived_s"]) for r in live
                      if r.status == "ok")
    got = sorted((m, s, p) for m, s, p in zip(frame["mode"], frame["status"], frame["perceived_s"])
                 if s == "ok")
    assert [(m, s) for m, s, _ in got] == [(m, s) for m, s, _ in expected]
    assert [p for *_, p in got] == pytest.approx([p for *_, p in expected], abs=1e-12)
    failed = frame[frame["status"] == "error"]
    assert len(failed) == 1 and failed["perceived_s"].isna().all()


def test_extra_columns_from_other_migrations_do_no_harm(store):
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN some_future_column VARCHAR(32)"))
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN another_future_s FLOAT"))
    store.log([make_run("streaming", 0.3)])  # Store.log names its columns
    assert len(history.table(store.engine, Filters())) == 1
    assert len(history.chart_frame(store.engine, Filters())) == 1
    assert len(history.facets(store.engine)) == 1


def test_runs_by_id_keeps_the_order_asked_and_reads_the_timeline(store):
    first = make_run("streaming", 0.25, gaps=(0.125,))
    second = make_run("blocking", 1.5)
    store.log([first, second])
    runs = history.runs_by_id(store.engine, [second.run_id, first.run_id])
    assert list(runs["run_id"]) == [second.run_id, first.run_id]
    assert history.timeline(runs.iloc[1]) == [(pytest.approx(0.249), "w0 "),
                                               (pytest.approx(0.374), "w1 ")]
    assert history.timeline(runs.iloc[0]) == [(pytest.approx(1.499), "w0 w1 w2 ")]
    assert history.runs_by_id(store.engine, []).empty


@pytest.mark.parametrize("raw", [None, "", "not json", json.dumps([[None, "x"]]), "[[1]]", "{}",
                                 '"text"', "[1, 2]"])
def test_an_unreadable_timeline_is_empty(raw):
    assert history.timeline({"timeline": raw}) == []


def test_facets_and_version(store, mixed):
    facets = history.facets(store.engine)
    assert facets["runs"].sum() == len(mixed)
    assert set(facets["source"]) == {"live", "replay", "simulated", "benchmark"}
    assert set(facets["model"]) == {"model-a", "org/model-b"}
    filtered = history.facets(store.engine, Filters(modes=("blocking",)))
    assert filtered.drop(columns="runs").values.tolist() == [
        ["live", "compatible", "model-a", "blocking", "ok", None]]  # no race lane: no label
    total, newest = history.version(store.engine)
    assert total == len(mixed) and newest.startswith((DAY + timedelta(days=3)).date().isoformat())


def test_narrowed_groups():
    base = Filters(since=DAY, until=DAY + timedelta(days=10), models=("a", "b"))
    assert history.narrowed(base, "model", ("a",)).models == ("a",)
    assert history.narrowed(base, "mode", ("streaming",)) == replace(base, modes=("streaming",))
    dates = history.narrowed(base, "created_at", since=DAY - timedelta(days=5),
                             until=DAY + timedelta(days=2))
    assert (dates.since, dates.until) == (DAY, DAY + timedelta(days=2))  # intersected
    with pytest.raises(ValueError):
        history.narrowed(base, "prompt", ("x",))


def test_summary_per_mode(store):
    store.log(known_runs())
    summary = history.summary(history.chart_frame(store.engine, Filters())).set_index("mode")
    assert summary.loc["blocking", ["runs", "ok", "failed"]].tolist() == [5, 4, 1]
    assert summary.loc["streaming", ["runs", "ok", "failed"]].tolist() == [4, 4, 0]
    assert summary.loc["blocking", "perceived_s p50"] == pytest.approx(1.75)  # of 0.5 1 2.5 3.5
    assert summary.loc["streaming", "perceived_s p90"] == pytest.approx(0.96)  # 0.4 + 0.7 × 0.8


# -- exports ---------------------------------------------------------------------------------


def test_csv_and_parquet_read_back_equal_to_the_filtered_table(store):
    store.log(known_runs())
    store.log([make_run("streaming", 0.3, prompt='Quotes " , and\nnew lines', tokens=None)])
    filters = Filters(modes=("streaming",))
    table = history.table(store.engine, filters, limit=None)
    assert len(table) == 5

    parquet = pd.read_parquet(io.BytesIO(to_parquet(table)))
    pd.testing.assert_frame_equal(parquet, table)

    csv = pd.read_csv(io.BytesIO(to_csv(table)), keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(table.columns)
    for column in table.columns:
        expected, got = table[column], csv[column]
        if pd.api.types.is_numeric_dtype(expected):
            assert got.to_numpy(dtype=float) == pytest.approx(
                expected.to_numpy(dtype=float), nan_ok=True, rel=1e-12), column
        else:
            assert [None if pd.isna(v) else v for v in got] == [
                None if pd.isna(v) else v for v in expected], column


def test_exports_hold_no_wide_columns_and_no_key(store):
    store.log(known_runs())
    table = history.table(store.engine, Filters(sources=()), limit=None)
    text = to_csv(table).decode()
    header = text.splitlines()[0].split(",")
    assert not set(header) & {"output_text", "timeline", "guard_timeline"}
    assert set(RUN_COLUMNS) - set(table.columns) == set(history.HEAVY_COLUMNS)


def test_safe_url_drops_credentials():
    assert history.safe_url("https://user:pa55@host.example:8443/v1?api-key=abc") == (
        "https://host.example:8443/v1")
    assert history.safe_url("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1"
    assert history.safe_url(None) == ""


def test_endpoint_and_prompt_sets(store):
    store.log([make_run("streaming", 0.3, prompt="A"), make_run("blocking", 1.0, prompt="A"),
               make_run("streaming", 0.3, prompt="B", base_url="http://u:p@h:1/v1?k=s")])
    prompts = history.prompt_set(store.engine, Filters())
    assert prompts.values.tolist() == [["A", 2], ["B", 1]]
    endpoints = history.endpoint_set(store.engine, Filters())
    assert set(endpoints["base_url"]) == {"http://127.0.0.1:9/v1", "http://h:1/v1"}


# -- indexes ---------------------------------------------------------------------------------


def covered(store, query: sa.Select, index: str) -> bool:
    """Whether `index` alone can answer `query`, never reading the wide rows.

    SQLite says so in its plan (a COVERING INDEX). PostgreSQL's planner picks by statistics
    (on a near-empty table, any index and a heap read is cheapest): the index must hold every
    column the query reads, and with table and bitmap scans off, the unfiltered query must be an
    index-only scan."""
    sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        if store.engine.dialect.name != "postgresql":
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            return f"COVERING INDEX {index}" in plan
        [held] = [ix["column_names"] for ix in sa.inspect(conn).get_indexes("runs")
                  if ix["name"] == index]
        read = {element.name for element in sa.sql.visitors.iterate(query)
                if isinstance(element, sa.ColumnClause) and element.table is history.RUNS}
        if query.whereclause is not None:
            return read <= set(held)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plan = " | ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
        return read <= set(held) and "Index Only Scan" in plan and "Heap" not in plan


def test_the_chart_query_reads_only_the_history_index(store):
    """The charts' query over every filtered run must not touch the wide rows."""
    runs = history.RUNS.c
    for filters in (Filters(), Filters(sources=("live", "replay"), modes=("streaming",),
                                       models=("m",), since=DAY, statuses=("ok",)),
                    Filters(sources=())):
        query = sa.select(*(runs[c] for c in history.CHART_COLUMNS)).where(*history.where(filters))
        assert covered(store, query, "ix_runs_history"), filters
    facets = sa.select(runs.source, runs.model, sa.func.count()).group_by(runs.source, runs.model)
    assert covered(store, facets, "ix_runs_facets")


# -- race lanes ------------------------------------------------------------------------------


def lane_runs() -> list:
    """Three lanes over three races each: ours streamed (0.2 s), theirs streamed (0.6 s), theirs
    blocking (1.8 s); one failed run of ours, which statistics leave out."""
    runs = []
    for blank_ours, blank_theirs, blank_block in ((0.1, 0.5, 1.6), (0.2, 0.6, 1.8),
                                                  (0.3, 0.7, 2.0)):
        runs += [make_run("streaming", blank_ours, lane="ours · streaming"),
                 make_run("streaming", blank_theirs, lane="theirs · streaming"),
                 make_run("blocking", blank_block, lane="theirs · blocking")]
    return runs + [make_run("streaming", None, status="error", lane="ours · streaming"),
                   make_run("streaming", 0.05)]  # no race lane: not in the comparison


def test_lanes_are_compared_by_label_fastest_first(store):
    store.log(lane_runs())
    table = history.lane_comparison(history.chart_frame(store.engine, Filters()))
    assert list(table["lane"]) == ["ours · streaming", "theirs · streaming", "theirs · blocking"]
    assert list(table["runs"]) == [4, 3, 3] and list(table["ok"]) == [3, 3, 3]
    assert table["perceived_s p50"].tolist() == pytest.approx([0.2, 0.6, 1.8])
    assert table["sooner"].tolist() == pytest.approx([9.0, 3.0, 1.0])
    assert list(table["mode"]) == ["streaming", "streaming", "blocking"]


def test_lanes_filter_and_group(store):
    store.log(lane_runs())
    ours = Filters(lane_labels=("ours · streaming",))
    assert history.count(store.engine, ours) == 4
    assert "lane: ours · streaming" in ours.describe() and "lane" not in Filters().describe()
    group = history.narrowed(Filters(), "lane_label", ("theirs · blocking",))
    assert group.lane_labels == ("theirs · blocking",)
    # One label alone: nothing to compare.
    assert history.lane_comparison(history.chart_frame(store.engine, ours)).empty
    facets = history.facets(store.engine)
    assert set(facets["lane_label"].dropna()) == {"ours · streaming", "theirs · streaming",
                                                  "theirs · blocking"}

"""The run log: its columns (a public interface), migrations, round trips, and no keys in it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import SCRIPTS, SERVER_KEY, endpoint_for, received_for

from lib.core.calls import Call
from lib.core.errors import InvalidInput
from lib.core.trace import Chunk, Params, Request, Trace
from lib.race import Race
from lib.storage import migrations
from lib.storage.store import RUN_COLUMNS, Store, trace_from_row, trace_to_row

# The run-log columns DESIGN.md promises to users and exports, in its order.
DESIGN_COLUMNS = [
    "run_id", "race_id", "created_at", "source", "endpoint_kind", "base_url", "model", "mode",
    "status", "error", "prompt", "params", "client_s", "ttft_s", "perceived_s", "e2e_s",
    "tpot_s", "icl_p50_s", "icl_p95_s", "icl_max_s", "output_tokens", "input_tokens",
    "token_source", "output_tps", "output_chars",
]
# ... plus "the chunk timeline (offsets and texts)" and the text itself.
# m003_guardrails: what one guardrail strategy did with a streamed answer (NULL elsewhere).
GUARD_COLUMNS = [
    "strategy", "validators", "planted", "guard_params", "delivered_ttft_s", "guard_e2e_s",
    "exposure_chars", "exposure_s", "leaked_chars", "retractions", "validation_s",
    "guard_timeline",
]
ALL_COLUMNS = [*DESIGN_COLUMNS, "output_text", "timeline",
               # m002_benchmark
               "bench_id", "bench_phase", "bench_offset_s", "queue_s", "icl_p99_s",
               *GUARD_COLUMNS,
               # m004_replay: what a replay endpoint did to its recording
               "transform",
               # m006_error_kind: the failure's class (lib.core.errors)
               "error_kind",
               # m007_reasoning: reasoning models' first answer token, thinking, token split
               "ttfo_s", "thinking_s", "reasoning_tokens", "answer_tokens", "reasoning_source",
               "reasoning_chars",
               # m008_screen: the browser's clock, click → first / whole answer painted
               "screen_first_s", "screen_done_s",
               # m011_owner: who ran it (sign-in on), never a token
               "owner"]


def all_rows(store: Store) -> list[dict]:
    """Every row of `runs`, every column the table really has (not only RUN_COLUMNS)."""
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM runs"))]


def hand_trace(**changes) -> Trace:
    """A finished streamed call with a known timeline: t0 = 50.0, chunks at +0.25, +0.5, +0.75."""
    request = Request("Why stream?", Params(temperature=0.2, max_tokens=64, seed=7),
                      "compatible", "http://127.0.0.1:9/v1", "org/sub/model")
    trace = Trace(
        request=request, mode="streaming",
        created_at=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        t_start=49.875, t0=50.0,
        chunks=[Chunk(50.25, "Stream"), Chunk(50.5, "ing "), Chunk(50.75, "wins.")],
        t_end=50.8, output_tokens=3, input_tokens=4, status="ok",
    )
    for name, value in changes.items():
        setattr(trace, name, value)
    return trace


# -- the schema --------------------------------------------------------------------------


def test_run_columns_are_pinned():
    assert list(RUN_COLUMNS) == ALL_COLUMNS


def test_run_columns_contain_every_design_column():
    missing = [c for c in DESIGN_COLUMNS if c not in RUN_COLUMNS]
    assert missing == []


def test_the_table_has_exactly_the_run_columns(store):
    assert store.columns() == list(RUN_COLUMNS)
    with store.engine.connect() as conn:
        names = list(conn.execute(sa.text("SELECT * FROM runs")).keys())
    assert names == list(RUN_COLUMNS)


def test_a_row_has_exactly_the_run_columns():
    assert list(trace_to_row(hand_trace())) == list(RUN_COLUMNS)


def test_a_log_from_m001_keeps_its_rows_and_gains_every_later_column(tmp_path):
    """A run log created by the first migration keeps its rows and gains the later columns
    (benchmark, guardrails, replay), NULL on them."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    old = Store.__new__(Store)
    old.url, old.engine = url, engine
    first, *later = migrations.MIGRATIONS
    migrations.MIGRATIONS[:] = [first]
    try:
        assert old.migrate() == ["m001_runs"]
        m001_columns = RUN_COLUMNS[:RUN_COLUMNS.index("timeline") + 1]
        row = {k: v for k, v in trace_to_row(hand_trace()).items() if k in m001_columns}
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO runs ({', '.join(row)}) VALUES "
                                 f"({', '.join(':' + k for k in row)})"), row)
    finally:
        migrations.MIGRATIONS[:] = [first, *later]
    engine.dispose()
    upgraded = Store(url)
    assert upgraded.columns() == list(RUN_COLUMNS)
    [kept] = all_rows(upgraded)
    assert kept["run_id"] == row["run_id"] and kept["output_text"] == "Streaming wins."
    assert all(kept[column] is None for column in RUN_COLUMNS if column not in row)
    upgraded.engine.dispose()


def test_migrations_apply_once(store_url):
    first = Store(store_url)
    first.log([hand_trace()])
    second = Store(store_url)
    assert second.migrate() == []
    assert first.migrate() == []
    with second.engine.connect() as conn:
        names = [r[0] for r in conn.execute(sa.text("SELECT name FROM _migrations"))]
    assert names == [name for name, _ in migrations.MIGRATIONS]
    assert second.count() == 1, "opening the log again must not recreate the table"
    first.engine.dispose()
    second.engine.dispose()


def test_a_fresh_database_gets_every_migration(tmp_path):
    """migrate() reports what it applied, so the empty lists above are not vacuous."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = sa.create_engine(url)
    log = Store.__new__(Store)  # migrate() alone, on an engine with nothing in it
    log.url, log.engine = url, engine
    assert log.migrate() == [name for name, _ in migrations.MIGRATIONS]
    assert log.migrate() == []
    engine.dispose()


# -- round trips -------------------------------------------------------------------------


def test_a_finished_trace_reads_back(store):
    trace = hand_trace(race_id="r" * 32)
    store.log([trace])
    frame = store.recent()
    assert list(frame.columns) == list(RUN_COLUMNS)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["run_id"] == trace.run_id
    assert row["race_id"] == "r" * 32
    assert row["created_at"] == "2025-01-02T03:04:05.678+00:00"
    assert (row["source"], row["endpoint_kind"], row["mode"], row["status"]) == (
        "live", "compatible", "streaming", "ok")
    assert row["base_url"] == "http://127.0.0.1:9/v1"
    assert row["model"] == "org/sub/model"
    assert row["prompt"] == "Why stream?"
    assert pd.isna(row["error"])
    assert json.loads(row["params"]) == {
        "temperature": 0.2, "max_tokens": 64, "seed": 7, "timeout_s": 60.0}
    assert row["client_s"] == pytest.approx(0.125, abs=1e-9)
    assert row["ttft_s"] == pytest.approx(0.25, abs=1e-9)
    assert row["perceived_s"] == pytest.approx(0.375, abs=1e-9)
    assert row["e2e_s"] == pytest.approx(0.75, abs=1e-9)
    assert row["tpot_s"] == pytest.approx(0.25, abs=1e-9)
    assert row["icl_p50_s"] == pytest.approx(0.25, abs=1e-9)
    assert row["icl_max_s"] == pytest.approx(0.25, abs=1e-9)
    assert (row["output_tokens"], row["input_tokens"], row["token_source"]) == (3, 4, "server")
    assert row["output_tps"] == pytest.approx(4.0, abs=1e-9)
    assert row["output_chars"] == len("Streaming wins.")
    assert row["output_text"] == "Streaming wins."
    # Offsets are seconds after t0, not raw perf_counter values.
    assert json.loads(row["timeline"]) == [[0.25, "Stream"], [0.5, "ing "], [0.75, "wins."]]
    # Not a guardrails row: every guardrails column is empty.
    assert all(pd.isna(row[column]) for column in GUARD_COLUMNS)
    # No browser watched it: the browser's clock is empty, never 0.
    assert pd.isna(row["screen_first_s"]) and pd.isna(row["screen_done_s"])


def test_the_browser_figures_join_the_rows_of_their_race(store):
    race = "b" * 32
    blocking, streaming = hand_trace(race_id=race), hand_trace(race_id=race)
    blocking.mode = "blocking"
    other = hand_trace(race_id="c" * 32)
    store.log([blocking, streaming, other])
    assert store.set_screen(race, {"blocking": (1.5, 1.5), "streaming": (0.4, 1.25)}) == 2
    rows = {row["run_id"]: row for row in all_rows(store)}
    assert (rows[blocking.run_id]["screen_first_s"], rows[blocking.run_id]["screen_done_s"]) == (
        1.5, 1.5)
    assert (rows[streaming.run_id]["screen_first_s"],
            rows[streaming.run_id]["screen_done_s"]) == (0.4, 1.25)
    assert rows[other.run_id]["screen_first_s"] is None
    read = trace_from_row(store.recent().set_index("run_id").loc[streaming.run_id]
                          .to_dict() | {"run_id": streaming.run_id})
    assert (read.screen_first_s, read.screen_done_s) == (0.4, 1.25)


def test_a_live_call_reads_back(store, playback, unique_prompt):
    params = Params(temperature=0.0, max_tokens=32, seed=3, repeat_penalty=1.1)
    trace = Call(endpoint_for(playback.base_url, "fast"), unique_prompt, params, "streaming").run()
    assert trace.status == "ok", trace.error
    store.log([trace])
    row = store.recent().iloc[0]
    assert row["run_id"] == trace.run_id
    assert row["ttft_s"] == pytest.approx(trace.chunks[0].t - trace.t0, abs=1e-9)
    timeline = json.loads(row["timeline"])
    assert [text for _, text in timeline] == list(SCRIPTS["fast"].texts)
    assert [offset for offset, _ in timeline] == pytest.approx(
        [c.t - trace.t0 for c in trace.chunks], abs=2e-6)
    assert row["output_text"] == SCRIPTS["fast"].text
    assert json.loads(row["params"]) == {"temperature": 0.0, "max_tokens": 32, "seed": 3,
                                         "timeout_s": 60.0, "repeat_penalty": 1.1}
    assert row["base_url"] == playback.base_url


def test_logging_the_same_run_twice_keeps_one_row(store):
    trace = hand_trace()
    store.log([trace])
    trace.status, trace.error = "error", "changed"
    store.log([trace])
    rows = all_rows(store)
    assert len(rows) == 1
    assert (rows[0]["status"], rows[0]["error"]) == ("error", "changed")


def test_logging_nothing_is_fine(store):
    store.log([])
    assert store.count() == 0


def test_error_and_cancelled_runs_are_logged_with_what_they_measured(store, playback,
                                                                     unique_prompt):
    endpoint = endpoint_for(playback.base_url, "e500")
    failed = Call(endpoint, unique_prompt, Params(), "blocking").run()
    cancelled_call = Call(
        endpoint_for(playback.base_url, "fast"), unique_prompt, Params(), "streaming"
    )
    cancelled_call.cancel()
    cancelled = cancelled_call.run()
    partial = hand_trace(status="cancelled")  # cancelled after two chunks had arrived
    partial.chunks = partial.chunks[:2]
    store.log([failed, cancelled, partial])

    rows = {row["run_id"]: row for row in all_rows(store)}
    assert len(rows) == 3
    row = rows[failed.run_id]
    assert row["status"] == "error"
    assert "500" in row["error"]
    assert row["ttft_s"] is None and row["e2e_s"] is None
    assert row["client_s"] == pytest.approx(failed.t0 - failed.t_start, abs=1e-9)
    assert json.loads(row["timeline"]) == []

    row = rows[cancelled.run_id]
    assert row["status"] == "cancelled"
    assert row["error"] is None
    assert row["client_s"] is None  # nothing was sent
    assert json.loads(row["timeline"]) == []

    row = rows[partial.run_id]
    assert row["status"] == "cancelled"
    assert row["ttft_s"] == pytest.approx(0.25, abs=1e-9)
    assert row["output_text"] == "Streaming "
    assert json.loads(row["timeline"]) == [[0.25, "Stream"], [0.5, "ing "]]


def test_recent_is_newest_first_and_limited(store):
    traces = []
    for second in range(5):
        trace = hand_trace()
        trace.run_id = uuid.uuid4().hex
        trace.created_at = datetime(2025, 1, 2, 3, 4, second, tzinfo=UTC)
        traces.append(trace)
    store.log(traces)
    frame = store.recent(limit=3)
    assert list(frame["run_id"]) == [t.run_id for t in reversed(traces)][:3]


# -- bad URLs ----------------------------------------------------------------------------


def test_not_a_url_is_invalid_input():
    with pytest.raises(InvalidInput) as info:
        Store("notaurl://x")
    assert "DATABASE_URL" in info.value.message
    assert "notaurl" in info.value.message


def test_sqlite_in_a_missing_directory_is_invalid_input(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "runs.db"
    with pytest.raises(InvalidInput) as info:
        Store(f"sqlite:///{path}")
    message = info.value.message
    assert "Cannot open the run log" in message
    assert str(path) in message
    assert not path.parent.exists()


def test_a_database_password_is_not_echoed():
    with pytest.raises(InvalidInput) as info:
        Store("postgresql://streamrace:hunter2-db-pass@127.0.0.1:1/runs")
    assert "hunter2-db-pass" not in info.value.message


# -- keys --------------------------------------------------------------------------------


def test_no_api_key_is_ever_written(store, keyed_playback, unique_prompt):
    wrong_key = "wrong-key-fedcba9876543210"
    # A race with the right key (two ok rows) and one with a wrong key (two 401 rows).
    for key in (SERVER_KEY, wrong_key):
        race = Race(
            endpoint_for(keyed_playback.base_url, "fast", api_key=key), unique_prompt, Params()
        ).start()
        assert race.join(10)
        store.log(race.traces)
    sent = {r.authorization for r in received_for(keyed_playback, unique_prompt)}
    assert sent == {f"Bearer {SERVER_KEY}", f"Bearer {wrong_key}"}  # the keys were in play

    rows = all_rows(store)
    assert sorted(r["status"] for r in rows) == ["error", "error", "ok", "ok"]
    assert all("refused the API key" in r["error"] for r in rows if r["status"] == "error")
    for row in rows:
        for column, value in row.items():
            text = "" if value is None else str(value)
            for key in (SERVER_KEY, wrong_key):
                assert key not in text, f"the key is in column {column}"
                assert key[-12:] not in text, f"part of the key is in column {column}"

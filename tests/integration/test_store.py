"""The run log: its columns (a public interface), migrations, round trips, and no keys in it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from conftest import SCRIPTS, SERVER_KEY, endpoint_for, received_for

from lib.core.calls import Call
from lib.core.errors import InvalidInput
from lib.core.trace import Chunk, Params, Request, Trace
from lib.race import Race
from lib.serving.process import sealed_env
from lib.storage import migrations
from lib.storage.store import RUN_COLUMNS, Store, trace_from_row, trace_to_row
from tests.support.legacy_runlog import legacy_migrate

pytestmark = pytest.mark.both_databases  # every run log here: SQLite, then PostgreSQL

ROOT = Path(__file__).resolve().parents[2]

LEGACY_NAMES = ["m001_runs", "m002_benchmark", "m003_guardrails", "m004_replay",
                "m005_history_indexes", "m006_error_kind", "m007_reasoning", "m008_screen"]
"""The hand-written runner's migrations, which the first revisions keep the names of."""

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
               # m010_lanes: the row's place in its race and the lane's label
               "lane_index", "lane_label",
               # m009_structured (merged after m010): a structured answer's schema, mode and
               # per-field figures
               "schema_name", "output_schema", "format_mode", "first_field_s", "valid_object_s",
               "partial_failures", "object_valid", "field_moments",
               # m011_owner (merged after m009): who ran it (sign-in on), never a token
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


def legacy_log(url: str, upto: str | None = None, traces: tuple[Trace, ...] = ()) -> None:
    """A run log as the hand-written runner left it (every migration up to `upto`), holding
    `traces` with the columns it had then."""
    engine = sa.create_engine(url)
    ran = legacy_migrate(engine, upto)
    with engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns("runs")]
    with engine.begin() as conn:
        for trace in traces:
            row = {k: v for k, v in trace_to_row(trace).items() if k in columns}
            conn.execute(sa.text(f"INSERT INTO runs ({', '.join(row)}) VALUES "
                                 f"({', '.join(':' + k for k in row)})"), row)
    engine.dispose()
    assert ran and ran[-1] == (upto or "m008_screen")


def test_the_revisions_are_one_chain_named_like_their_files():
    """m001 … m008 in order, then the later ones as merged, each file named as its revision,
    each on the one before: a second revision on the same parent (two branches merged) would
    fork the chain."""
    chain = migrations.names()
    assert chain[:8] == LEGACY_NAMES
    numbers = [int(name[1:4]) for name in chain]
    # Each number once. Reserved numbers land in the order their branches merge (m010 before
    # m009): a revision always goes on the newest, never in between, or a log already past
    # it would never run it.
    assert numbers[:8] == list(range(1, 9)) and len(set(numbers)) == len(numbers)
    files = sorted(p.stem for p in (migrations.FOLDER / "versions").glob("m*.py"))
    assert files == sorted(chain)  # every file is in the chain, in merge order (m010, m009)
    assert migrations.head() == chain[-1]


def test_a_log_from_todays_version_upgrades_without_losing_a_row(store_url):
    """A log written by the hand-written runner (main before Alembic): every row, the
    benchmarks and recordings kept as they were; Alembic takes over where it stood."""
    traces = (hand_trace(race_id="r" * 32), hand_trace(race_id="r" * 32, mode="blocking"),
              hand_trace(status="error", error="The endpoint answered 500."))
    legacy_log(store_url, traces=traces)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO recordings VALUES ('kept', '2025-01-01', '{}')"))
        conn.execute(sa.text("INSERT INTO benchmarks VALUES ('b1', '2025-01-01', 'compatible', "
                             "'http://x/v1', 'm', '{}', 'completed', 1.5)"))
    before = {table: read_table(engine, table) for table in ("runs", "recordings", "benchmarks")}
    engine.dispose()

    log = Store(store_url)
    assert log.migrate() == []
    after = {table: read_table(log.engine, table) for table in before}
    # Later revisions add columns (m011_owner also to recordings and benchmarks), NULL on the
    # rows kept; the rest is as it was.
    added = {table: set(after[table][0]) - set(before[table][0]) for table in before}
    assert all(row[c] is None for table in after for row in after[table] for c in added[table])
    kept = {table: [{c: row[c] for c in before[table][0]} for row in after[table]]
            for table in before}
    assert kept == before and len(after["runs"]) == 3
    assert migrations.current(log.engine) == (migrations.head(),)
    with log.engine.connect() as conn:  # left as it was, for an older app sharing the log
        legacy = {row[0] for row in conn.execute(sa.text("SELECT name FROM _migrations"))}
    assert legacy == set(LEGACY_NAMES)
    log.log([hand_trace()])
    assert log.count() == 4
    log.engine.dispose()


def test_a_log_from_m001_keeps_its_rows_and_gains_every_later_column(store_url):
    """A run log created by the first migration keeps its rows and gains the later columns
    (benchmark, guardrails, replay, reasoning, screen), NULL on them."""
    trace = hand_trace()
    legacy_log(store_url, upto="m001_runs", traces=(trace,))
    upgraded = Store(store_url)
    assert upgraded.columns() == list(RUN_COLUMNS)
    [kept] = all_rows(upgraded)
    m001_columns = RUN_COLUMNS[:RUN_COLUMNS.index("timeline") + 1]
    assert kept["run_id"] == trace.run_id and kept["output_text"] == "Streaming wins."
    assert all(kept[column] is None for column in RUN_COLUMNS if column not in m001_columns)
    assert migrations.current(upgraded.engine) == (migrations.head(),)
    upgraded.engine.dispose()


def test_migrations_apply_once(store_url):
    first = Store(store_url)
    first.log([hand_trace()])
    second = Store(store_url)
    assert second.migrate() == []
    assert first.migrate() == []
    assert migrations.current(second.engine) == (migrations.head(),)
    assert second.count() == 1, "opening the log again must not recreate the table"
    first.engine.dispose()
    second.engine.dispose()


def test_a_fresh_database_gets_every_revision(store_url):
    """migrate() reports what it applied, so the empty lists above are not vacuous."""
    engine = sa.create_engine(store_url)
    assert migrations.upgrade(engine) == migrations.names()
    assert migrations.upgrade(engine) == []
    assert not sa.inspect(engine).has_table("_migrations")
    engine.dispose()


@pytest.mark.parametrize("bookkeeping", ["alembic", "legacy"])
def test_a_log_from_a_newer_version_is_refused_untouched(store_url, bookkeeping):
    """A schema this version does not know (a newer app wrote it): one line, nothing written."""
    if bookkeeping == "alembic":
        Store(store_url).engine.dispose()
        statement = "UPDATE alembic_version SET version_num = 'm999_future'"
    else:
        legacy_log(store_url)
        statement = "INSERT INTO _migrations VALUES ('m999_future', 'later')"
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    before = schema_and_rows(engine)
    with pytest.raises(InvalidInput) as info:
        Store(store_url)
    message = info.value.message
    assert "newer version of StreamRace" in message and "m999_future" in message
    assert "\n" not in message
    assert schema_and_rows(engine) == before
    engine.dispose()


def read_table(engine: sa.Engine, table: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()
    return sorted((dict(row) for row in rows), key=lambda row: json.dumps(row, default=str))


def schema_and_rows(engine: sa.Engine) -> dict:
    """Every table's columns and rows: what "nothing written" compares."""
    inspector = sa.inspect(engine)
    return {table: ([c["name"] for c in inspector.get_columns(table)],
                    read_table(engine, table))
            for table in sorted(inspector.get_table_names())}


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
    assert message == f"Cannot open the run log at sqlite:///{path}: unable to open database file."
    assert not path.parent.exists()


def test_a_database_password_is_not_echoed():
    with pytest.raises(InvalidInput) as info:
        Store("postgresql://streamrace:hunter2-db-pass@127.0.0.1:1/runs")
    assert "hunter2-db-pass" not in info.value.message
    assert info.value.message.startswith("Cannot open the run log at postgresql+psycopg://"
                                         "streamrace:***@127.0.0.1:1/runs: ")


def test_a_url_that_does_not_parse_hides_its_password():
    with pytest.raises(InvalidInput) as info:
        Store("postgresql://streamrace:hunter2-db-pass@127.0.0.1:port/runs")
    assert "DATABASE_URL" in info.value.message
    assert "hunter2-db-pass" not in info.value.message


def test_postgresql_refuses_a_wrong_password_in_one_line_never_shown_or_logged(postgres,
                                                                              caplog):
    """The server really checks it (scram-sha-256 over TCP): the message says what a user can
    act on, on one line, with neither password; nothing logged holds them either."""
    url = postgres.new_database()
    wrong = "wrong-pass-5d1e0c7a"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidInput) as info:
        Store(url.replace(postgres.password, wrong))
    message = info.value.message
    assert "password authentication failed" in message and "\n" not in message
    assert message.startswith("Cannot open the run log at postgresql+psycopg://streamrace:***@")
    for secret in (wrong, postgres.password):
        assert secret not in message and secret not in caplog.text
        assert secret not in repr(info.value.__cause__)  # what a traceback would print
    with psycopg.connect(postgres.admin_conninfo(url.rsplit("/", 1)[1])) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchall() == [], "nothing written"
    postgres.drop_database(url)


def test_a_command_with_a_wrong_password_says_one_line_and_writes_nothing(postgres, tmp_path):
    """The same refusal from a command line, through DATABASE_URL: one line on stderr, exit 2,
    neither password anywhere in what it printed, no report written."""
    url = postgres.new_database()
    wrong = "wrong-pass-cli-41f0"
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "lib.report", "--out", str(out)], cwd=ROOT, text=True,
        capture_output=True, timeout=120,
        env=sealed_env({"PYTHONPATH": str(ROOT), "DATABASE_URL": url.replace(postgres.password,
                                                                              wrong)}))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Cannot open the run log at "), lines
    assert "password authentication failed" in lines[0]
    for secret in (wrong, postgres.password):
        assert secret not in done.stderr + done.stdout
    assert not out.exists()
    postgres.drop_database(url)


def test_a_postgresql_database_that_does_not_exist_is_one_line(postgres):
    with pytest.raises(InvalidInput) as info:
        Store(postgres.url("no_such_database"))
    assert 'database "no_such_database" does not exist' in info.value.message
    assert postgres.password not in info.value.message


def test_the_postgresql_scheme_means_psycopg(postgres):
    """`postgresql://` and `postgres://` (as hosting services write it) use psycopg 3, the
    driver StreamRace ships, not SQLAlchemy's default psycopg2."""
    url = postgres.new_database()
    for scheme in ("postgresql://", "postgres://"):
        log = Store(url.replace("postgresql+psycopg://", scheme))
        assert log.engine.driver == "psycopg" and log.count() == 0
        log.engine.dispose()
    postgres.drop_database(url)


def test_a_failed_revision_leaves_the_log_as_it_was(store_url):
    """A revision that fails halfway (here m008, on a log someone altered by hand) rolls back
    every revision of that opening: the earlier ones (m007) too, and the bookkeeping."""
    legacy_log(store_url, upto="m006_error_kind", traces=(hand_trace(),))
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN screen_done_s FLOAT"))
    before = schema_and_rows(engine)
    with pytest.raises(InvalidInput) as info:
        Store(store_url)
    assert info.value.message.startswith("Cannot upgrade the run log at ")
    assert "(nothing was changed)" in info.value.message and "\n" not in info.value.message
    assert schema_and_rows(engine) == before
    assert "ttfo_s" not in [c["name"] for c in sa.inspect(engine).get_columns("runs")]
    engine.dispose()


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

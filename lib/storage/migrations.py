"""The run log's schema changes, as ordered, named migrations (applied by Store.migrate).

Each runs once per database, in this order, in one transaction with the others pending; a
name is never reused or reordered, because databases in the field record which ran.
"""

from __future__ import annotations

from typing import Callable

import sqlalchemy as sa


def m001_runs(conn: sa.Connection) -> None:
    conn.execute(sa.text("""
        CREATE TABLE runs (
            run_id VARCHAR(32) PRIMARY KEY,
            race_id VARCHAR(32),
            created_at VARCHAR(32) NOT NULL,
            source VARCHAR(16) NOT NULL,
            endpoint_kind VARCHAR(16) NOT NULL,
            base_url TEXT NOT NULL,
            model TEXT NOT NULL,
            mode VARCHAR(16) NOT NULL,
            status VARCHAR(16) NOT NULL,
            error TEXT,
            prompt TEXT NOT NULL,
            params TEXT NOT NULL,
            client_s FLOAT, ttft_s FLOAT, perceived_s FLOAT, e2e_s FLOAT, tpot_s FLOAT,
            icl_p50_s FLOAT, icl_p95_s FLOAT, icl_max_s FLOAT,
            output_tokens INTEGER, input_tokens INTEGER, token_source VARCHAR(16),
            output_tps FLOAT, output_chars INTEGER,
            output_text TEXT,
            timeline TEXT
        )"""))
    conn.execute(sa.text("CREATE INDEX ix_runs_created_at ON runs (created_at)"))
    conn.execute(sa.text("CREATE INDEX ix_runs_race_id ON runs (race_id)"))


def m002_benchmark(conn: sa.Connection) -> None:
    """Benchmark runs: which benchmark and phase a row belongs to, when it was due, how long it
    waited in our client, its ICL p99 (goodput); and a table of the benchmarks themselves."""
    for column, kind in (("bench_id", "VARCHAR(32)"), ("bench_phase", "VARCHAR(16)"),
                         ("bench_offset_s", "FLOAT"), ("queue_s", "FLOAT"), ("icl_p99_s", "FLOAT")):
        conn.execute(sa.text(f"ALTER TABLE runs ADD COLUMN {column} {kind}"))
    conn.execute(sa.text("CREATE INDEX ix_runs_bench_id ON runs (bench_id)"))
    conn.execute(sa.text("""
        CREATE TABLE benchmarks (
            bench_id VARCHAR(32) PRIMARY KEY,
            created_at VARCHAR(32) NOT NULL,
            endpoint_kind VARCHAR(16) NOT NULL,
            base_url TEXT NOT NULL,
            model TEXT NOT NULL,
            settings TEXT NOT NULL,
            status VARCHAR(16) NOT NULL,
            duration_s FLOAT
        )"""))


GUARD_COLUMNS = {
    "strategy": "VARCHAR(32)", "validators": "TEXT", "planted": "TEXT", "guard_params": "TEXT",
    "delivered_ttft_s": "FLOAT", "guard_e2e_s": "FLOAT", "exposure_chars": "INTEGER",
    "exposure_s": "FLOAT", "leaked_chars": "INTEGER", "retractions": "INTEGER",
    "validation_s": "FLOAT", "guard_timeline": "TEXT",
}


def m003_guardrails(conn: sa.Connection) -> None:
    for name, kind in GUARD_COLUMNS.items():  # one per statement: SQLite adds one at a time
        conn.execute(sa.text(f"ALTER TABLE runs ADD COLUMN {name} {kind}"))


def m004_replay(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN transform TEXT"))
    conn.execute(sa.text("CREATE INDEX ix_runs_source ON runs (source)"))
    # Named recordings (lib.storage.recording): the body is the recording's export JSON, one format.
    conn.execute(sa.text("""
        CREATE TABLE recordings (
            name VARCHAR(64) PRIMARY KEY,
            created_at VARCHAR(32) NOT NULL,
            body TEXT NOT NULL
        )"""))


def m005_history_indexes(conn: sa.Connection) -> None:
    """Indexes for the History page's filters, which read every filtered run.

    ix_runs_history leads with the default filter (source, then time) and also holds every
    column the charts read (lib.storage.history.CHART_COLUMNS), the other filters compare, and the
    run_id: the charts' query and the choice of the table's newest rows are answered from the
    index, never from the wide rows (answers, timelines). ix_runs_facets answers the listing
    of filter values the same way.
    """
    conn.execute(sa.text(
        "CREATE INDEX IF NOT EXISTS ix_runs_history ON runs (source, created_at, mode, status, "
        "endpoint_kind, model, perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, "
        "run_id)"))
    conn.execute(
        sa.text(
            "CREATE INDEX IF NOT EXISTS ix_runs_facets "
            "ON runs (source, endpoint_kind, model, mode, status)"
        )
    )


def m006_error_kind(conn: sa.Connection) -> None:
    # The failure's class next to its message: groups errors in summaries and filters.
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN error_kind VARCHAR(32)"))


REASONING_COLUMNS = {
    "ttfo_s": "FLOAT", "thinking_s": "FLOAT", "reasoning_tokens": "INTEGER",
    "answer_tokens": "INTEGER", "reasoning_source": "VARCHAR(16)", "reasoning_chars": "INTEGER",
}


def m007_reasoning(conn: sa.Connection) -> None:
    """Reasoning models: time to the first answer token, thinking time, the token split.

    NULL on older rows, which read as before (they had no reasoning to tell apart)."""
    for column, kind in REASONING_COLUMNS.items():
        conn.execute(sa.text(f"ALTER TABLE runs ADD COLUMN {column} {kind}"))


def m008_screen(conn: sa.Connection) -> None:
    """The browser's clock: the click on Run to the first and the last text painted (seconds).

    NULL on older rows and on every run no browser watched (headless, benchmark, guardrails).
    The History charts read screen_first_s: ix_runs_history (m005) is rebuilt to hold it too, so
    their query is still answered from the index alone."""
    for column in ("screen_first_s", "screen_done_s"):
        conn.execute(sa.text(f"ALTER TABLE runs ADD COLUMN {column} FLOAT"))
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_runs_history"))
    conn.execute(sa.text(
        "CREATE INDEX ix_runs_history ON runs (source, created_at, mode, status, "
        "endpoint_kind, model, perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, "
        "screen_first_s, run_id)"))


OWNER = "VARCHAR(320)"
"""An e-mail address at its longest (RFC 5321), or an OIDC subject."""


def m011_owner(conn: sa.Connection) -> None:
    """Who ran each run, saved each recording and started each benchmark (issue 18): the
    signed-in user's stable id (lib.access.User.id), never a token; NULL when sign-in was off.

    History's "mine" filters on it: ix_runs_history is rebuilt to hold it, so the charts' query
    is still answered from the index alone."""
    for table in ("runs", "recordings", "benchmarks"):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN owner {OWNER}"))
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_runs_history"))
    conn.execute(sa.text(
        "CREATE INDEX ix_runs_history ON runs (source, created_at, mode, status, "
        "endpoint_kind, model, perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, "
        "screen_first_s, owner, run_id)"))


MIGRATIONS: list[tuple[str, Callable[[sa.Connection], None]]] = [
    ("m001_runs", m001_runs),
    ("m002_benchmark", m002_benchmark),
    ("m003_guardrails", m003_guardrails),
    ("m004_replay", m004_replay),
    ("m005_history_indexes", m005_history_indexes),
    ("m006_error_kind", m006_error_kind),
    ("m007_reasoning", m007_reasoning),
    ("m008_screen", m008_screen),
    ("m011_owner", m011_owner),
]

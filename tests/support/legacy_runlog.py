"""The run log as StreamRace wrote it before Alembic (main at 04b106c): the hand-written
runner and the statements of its migrations m001 … m008, frozen, so that the tests build
the logs today's users have and prove Alembic takes them over without losing a row. History:
never edit it to follow a new revision.

    legacy_migrate(engine)                      # every hand-written migration
    legacy_migrate(engine, upto="m001_runs")    # a log from the first version
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

_M001_TABLE = (
    "CREATE TABLE runs (run_id VARCHAR(32) PRIMARY KEY, race_id VARCHAR(32), "
    "created_at VARCHAR(32) NOT NULL, source VARCHAR(16) NOT NULL, "
    "endpoint_kind VARCHAR(16) NOT NULL, base_url TEXT NOT NULL, model TEXT NOT NULL, "
    "mode VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, error TEXT, "
    "prompt TEXT NOT NULL, params TEXT NOT NULL, client_s FLOAT, ttft_s FLOAT, "
    "perceived_s FLOAT, e2e_s FLOAT, tpot_s FLOAT, icl_p50_s FLOAT, icl_p95_s FLOAT, "
    "icl_max_s FLOAT, output_tokens INTEGER, input_tokens INTEGER, token_source VARCHAR(16), "
    "output_tps FLOAT, output_chars INTEGER, output_text TEXT, timeline TEXT)")
_M002_TABLE = (
    "CREATE TABLE benchmarks (bench_id VARCHAR(32) PRIMARY KEY, "
    "created_at VARCHAR(32) NOT NULL, endpoint_kind VARCHAR(16) NOT NULL, "
    "base_url TEXT NOT NULL, model TEXT NOT NULL, settings TEXT NOT NULL, "
    "status VARCHAR(16) NOT NULL, duration_s FLOAT)")
_HISTORY_INDEX = (
    "ix_runs_history ON runs (source, created_at, mode, status, endpoint_kind, model, "
    "perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, {}run_id)")


def _columns(spec: str) -> list[str]:
    """'a INT, b TEXT' → one ALTER TABLE a column (SQLite adds one at a time)."""
    return [f"ALTER TABLE runs ADD COLUMN {column.strip()}" for column in spec.split(",")]


LEGACY: list[tuple[str, list[str]]] = [
    ("m001_runs", [_M001_TABLE, "CREATE INDEX ix_runs_created_at ON runs (created_at)",
                   "CREATE INDEX ix_runs_race_id ON runs (race_id)"]),
    ("m002_benchmark", [
        *_columns("bench_id VARCHAR(32), bench_phase VARCHAR(16), bench_offset_s FLOAT, "
                  "queue_s FLOAT, icl_p99_s FLOAT"),
        "CREATE INDEX ix_runs_bench_id ON runs (bench_id)", _M002_TABLE]),
    ("m003_guardrails", _columns(
        "strategy VARCHAR(32), validators TEXT, planted TEXT, guard_params TEXT, "
        "delivered_ttft_s FLOAT, guard_e2e_s FLOAT, exposure_chars INTEGER, exposure_s FLOAT, "
        "leaked_chars INTEGER, retractions INTEGER, validation_s FLOAT, guard_timeline TEXT")),
    ("m004_replay", [
        "ALTER TABLE runs ADD COLUMN transform TEXT",
        "CREATE INDEX ix_runs_source ON runs (source)",
        "CREATE TABLE recordings (name VARCHAR(64) PRIMARY KEY, "
        "created_at VARCHAR(32) NOT NULL, body TEXT NOT NULL)"]),
    ("m005_history_indexes", [
        "CREATE INDEX IF NOT EXISTS " + _HISTORY_INDEX.format(""),
        "CREATE INDEX IF NOT EXISTS ix_runs_facets "
        "ON runs (source, endpoint_kind, model, mode, status)"]),
    ("m006_error_kind", _columns("error_kind VARCHAR(32)")),
    ("m007_reasoning", _columns(
        "ttfo_s FLOAT, thinking_s FLOAT, reasoning_tokens INTEGER, answer_tokens INTEGER, "
        "reasoning_source VARCHAR(16), reasoning_chars INTEGER")),
    ("m008_screen", [*_columns("screen_first_s FLOAT, screen_done_s FLOAT"),
                     "DROP INDEX IF EXISTS ix_runs_history",
                     "CREATE INDEX " + _HISTORY_INDEX.format("screen_first_s, ")]),
]
"""(name, statements) of every hand-written migration, in the order the runner applied them."""


def legacy_migrate(engine: sa.Engine, upto: str | None = None) -> list[str]:
    """What Store.migrate did before Alembic, stopping after `upto`; the names it applied."""
    applied: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS _migrations "
                             "(name VARCHAR(64) PRIMARY KEY, applied_at VARCHAR(32))"))
        done = {row[0] for row in conn.execute(sa.text("SELECT name FROM _migrations"))}
        for name, statements in LEGACY:
            if name not in done:
                for statement in statements:
                    conn.execute(sa.text(statement))
                conn.execute(sa.text("INSERT INTO _migrations (name, applied_at) VALUES (:n, :t)"),
                             {"n": name, "t": datetime.now().isoformat(timespec="seconds")})
                applied.append(name)
            if name == upto:
                break
    return applied

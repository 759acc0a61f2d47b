"""Benchmark runs: which benchmark and phase a row belongs to, when it was due, how long it
waited in our client, its ICL p99 (goodput); and a table of the benchmarks themselves."""

from alembic import op

revision = "m002_benchmark"
down_revision = "m001_runs"


def upgrade() -> None:
    for column, kind in (("bench_id", "VARCHAR(32)"), ("bench_phase", "VARCHAR(16)"),
                         ("bench_offset_s", "FLOAT"), ("queue_s", "FLOAT"), ("icl_p99_s", "FLOAT")):
        op.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    op.execute("CREATE INDEX ix_runs_bench_id ON runs (bench_id)")
    op.execute("""
        CREATE TABLE benchmarks (
            bench_id VARCHAR(32) PRIMARY KEY,
            created_at VARCHAR(32) NOT NULL,
            endpoint_kind VARCHAR(16) NOT NULL,
            base_url TEXT NOT NULL,
            model TEXT NOT NULL,
            settings TEXT NOT NULL,
            status VARCHAR(16) NOT NULL,
            duration_s FLOAT
        )""")

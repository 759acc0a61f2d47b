"""Replayed runs: what a replay endpoint did to its recording; the named recordings."""

from alembic import op

revision = "m004_replay"
down_revision = "m003_guardrails"


def upgrade() -> None:
    op.execute("ALTER TABLE runs ADD COLUMN transform TEXT")
    op.execute("CREATE INDEX ix_runs_source ON runs (source)")
    # Named recordings (lib.storage.recording): the body is the recording's export JSON, one format.
    op.execute("""
        CREATE TABLE recordings (
            name VARCHAR(64) PRIMARY KEY,
            created_at VARCHAR(32) NOT NULL,
            body TEXT NOT NULL
        )""")

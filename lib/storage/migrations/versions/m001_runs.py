"""The run log's first table, `runs` (one row per call), and its two first indexes."""

from alembic import op

revision = "m001_runs"
down_revision = None


def upgrade() -> None:
    op.execute("""
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
        )""")
    op.execute("CREATE INDEX ix_runs_created_at ON runs (created_at)")
    op.execute("CREATE INDEX ix_runs_race_id ON runs (race_id)")

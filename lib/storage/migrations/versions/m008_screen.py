"""The browser's clock: the click on Run to the first and the last text painted (seconds).

NULL on older rows and on every run no browser watched (headless, benchmark, guardrails).
The History charts read screen_first_s: ix_runs_history (m005) is rebuilt to hold it too, so
their query is still answered from the index alone."""

from alembic import op

revision = "m008_screen"
down_revision = "m007_reasoning"


def upgrade() -> None:
    for column in ("screen_first_s", "screen_done_s"):
        op.execute(f"ALTER TABLE runs ADD COLUMN {column} FLOAT")
    op.execute("DROP INDEX IF EXISTS ix_runs_history")
    op.execute(
        "CREATE INDEX ix_runs_history ON runs (source, created_at, mode, status, "
        "endpoint_kind, model, perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, "
        "screen_first_s, run_id)")

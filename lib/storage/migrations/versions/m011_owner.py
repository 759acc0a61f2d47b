"""Who ran each run, saved each recording and started each benchmark (issue 18): the
signed-in user's stable id (lib.access.User.id), never a token; NULL when sign-in was off.

History's "mine" filters on it: ix_runs_history is rebuilt to hold it, so the charts' query is
still answered from the index alone."""

from alembic import op

revision = "m011_owner"
down_revision = "m009_structured"

OWNER = "VARCHAR(320)"
"""An e-mail address at its longest (RFC 5321), or an OIDC subject."""


def upgrade() -> None:
    for table in ("runs", "recordings", "benchmarks"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN owner {OWNER}")
    op.execute("DROP INDEX IF EXISTS ix_runs_history")
    op.execute(
        "CREATE INDEX ix_runs_history ON runs (source, created_at, mode, status, "
        "endpoint_kind, model, perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, "
        "screen_first_s, lane_label, owner, run_id)")  # lane_label: m010_lanes

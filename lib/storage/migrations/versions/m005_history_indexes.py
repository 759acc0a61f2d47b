"""Indexes for the History page's filters, which read every filtered run.

ix_runs_history leads with the default filter (source, then time) and also holds every
column the charts read (lib.storage.history.CHART_COLUMNS), the other filters compare, and the
run_id: the charts' query and the choice of the table's newest rows are answered from the
index, never from the wide rows (answers, timelines). ix_runs_facets answers the listing
of filter values the same way.
"""

from alembic import op

revision = "m005_history_indexes"
down_revision = "m004_replay"


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_runs_history ON runs (source, created_at, mode, status, "
        "endpoint_kind, model, perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, "
        "run_id)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_runs_facets "
               "ON runs (source, endpoint_kind, model, mode, status)")

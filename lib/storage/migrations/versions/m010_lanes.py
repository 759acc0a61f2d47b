"""Races of 2 to 4 lanes: each row's place in its race (0 = the leftmost column) and the lane's
label (endpoint · model · mode, or the user's). NULL on older rows and on rows of no race.

History groups and filters runs by lane label: ix_runs_history (m005, m008) and ix_runs_facets
(m005) are rebuilt to hold it, so the charts' query and the facets are still answered from the
indexes alone."""

from alembic import op

revision = "m010_lanes"
down_revision = "m008_screen"


def upgrade() -> None:
    op.execute("ALTER TABLE runs ADD COLUMN lane_index INTEGER")
    op.execute("ALTER TABLE runs ADD COLUMN lane_label TEXT")
    op.execute("DROP INDEX IF EXISTS ix_runs_history")
    op.execute(
        "CREATE INDEX ix_runs_history ON runs (source, created_at, mode, status, "
        "endpoint_kind, model, perceived_s, ttft_s, e2e_s, tpot_s, output_tps, output_tokens, "
        "screen_first_s, lane_label, run_id)")
    op.execute("DROP INDEX IF EXISTS ix_runs_facets")
    op.execute("CREATE INDEX ix_runs_facets ON runs (source, endpoint_kind, model, mode, status, "
               "lane_label)")

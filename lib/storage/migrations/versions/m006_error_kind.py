"""The failure's class next to its message: groups errors in summaries and filters."""

from alembic import op

revision = "m006_error_kind"
down_revision = "m005_history_indexes"


def upgrade() -> None:
    op.execute("ALTER TABLE runs ADD COLUMN error_kind VARCHAR(32)")

"""Races of 2 to 4 lanes: each row's place in its race (0 = the leftmost column) and the lane's
label (endpoint · model · mode, or the user's). NULL on older rows and on rows of no race."""

from alembic import op

revision = "m010_lanes"
down_revision = "m008_screen"


def upgrade() -> None:
    op.execute("ALTER TABLE runs ADD COLUMN lane_index INTEGER")
    op.execute("ALTER TABLE runs ADD COLUMN lane_label TEXT")

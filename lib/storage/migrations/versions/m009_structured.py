"""Structured answers (issue 14): the schema a structured answer was asked to fill, the
formatting mode it was asked in, and its per-field figures (docs/metrics.md). NULL on free-text
runs and older rows.

On m010_lanes: reserved numbers land in merge order, and m010 merged first. For ten minutes
main had it the other way round (m008 → m009 → m010); a log created then already has these
columns, so each is added only when it is missing."""

import sqlalchemy as sa
from alembic import op

revision = "m009_structured"
down_revision = "m010_lanes"

STRUCTURED_COLUMNS = {
    "schema_name": "VARCHAR(64)", "output_schema": "TEXT", "format_mode": "VARCHAR(16)",
    "first_field_s": "FLOAT", "valid_object_s": "FLOAT", "partial_failures": "INTEGER",
    "object_valid": "BOOLEAN", "field_moments": "TEXT",
}


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("runs")}
    for column, kind in STRUCTURED_COLUMNS.items():  # one per statement: SQLite adds one at a time
        if column not in present:
            op.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

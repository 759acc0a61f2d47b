"""Structured answers (issue 14): the schema a structured answer was asked to fill, the
formatting mode it was asked in, and its per-field figures (docs/metrics.md). NULL on free-text
runs and older rows."""

from alembic import op

revision = "m009_structured"
down_revision = "m008_screen"

STRUCTURED_COLUMNS = {
    "schema_name": "VARCHAR(64)", "output_schema": "TEXT", "format_mode": "VARCHAR(16)",
    "first_field_s": "FLOAT", "valid_object_s": "FLOAT", "partial_failures": "INTEGER",
    "object_valid": "BOOLEAN", "field_moments": "TEXT",
}


def upgrade() -> None:
    for column, kind in STRUCTURED_COLUMNS.items():  # one per statement: SQLite adds one at a time
        op.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

"""Reasoning models: time to the first answer token, thinking time, the token split.

NULL on older rows, which read as before (they had no reasoning to tell apart)."""

from alembic import op

revision = "m007_reasoning"
down_revision = "m006_error_kind"

REASONING_COLUMNS = {
    "ttfo_s": "FLOAT", "thinking_s": "FLOAT", "reasoning_tokens": "INTEGER",
    "answer_tokens": "INTEGER", "reasoning_source": "VARCHAR(16)", "reasoning_chars": "INTEGER",
}


def upgrade() -> None:
    for column, kind in REASONING_COLUMNS.items():
        op.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

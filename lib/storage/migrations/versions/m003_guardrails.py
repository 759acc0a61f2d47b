"""Guardrails runs: one row per strategy of a guardrails run (NULL on other rows)."""

from alembic import op

revision = "m003_guardrails"
down_revision = "m002_benchmark"

GUARD_COLUMNS = {
    "strategy": "VARCHAR(32)", "validators": "TEXT", "planted": "TEXT", "guard_params": "TEXT",
    "delivered_ttft_s": "FLOAT", "guard_e2e_s": "FLOAT", "exposure_chars": "INTEGER",
    "exposure_s": "FLOAT", "leaked_chars": "INTEGER", "retractions": "INTEGER",
    "validation_s": "FLOAT", "guard_timeline": "TEXT",
}


def upgrade() -> None:
    for name, kind in GUARD_COLUMNS.items():  # one per statement: SQLite adds one at a time
        op.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")

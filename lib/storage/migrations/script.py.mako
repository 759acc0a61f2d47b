"""${message}"""

from alembic import op

revision = "${up_revision}"
down_revision = ${'"%s"' % down_revision if down_revision else None}


def upgrade() -> None:
    ${upgrades if upgrades else 'op.execute("ALTER TABLE runs ADD COLUMN ...")'}

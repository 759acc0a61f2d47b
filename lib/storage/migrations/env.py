"""Alembic's entry into the run log (run by `lib.storage.migrations.upgrade`, or by the
`alembic` command with the project's alembic.ini): lock, take over or refuse, migrate.

Given a connection (the app's path), it migrates inside that connection's transaction, which
the caller commits; from the command line it opens `DATABASE_URL` (or the default log) itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from lib.storage import migrations


def run(connection: sa.Connection) -> None:
    migrations.prepare(connection)
    applied = context.config.attributes.setdefault("applied", [])
    context.configure(
        connection=connection,
        on_version_apply=lambda step, **_: applied.append(step.up_revision_id),
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    from lib.core.config import load_settings
    from lib.storage.store import engine_for

    engine = engine_for(load_settings().database_url)
    with engine.connect() as connection, connection.begin():
        run(connection)
    engine.dispose()

"""The run log's schema changes: Alembic revisions, one file each in `versions/`, in order.

Every revision is named like the hand-written migrations it replaced (`m001_runs` … and on):
its file name, its `revision` and its place in the chain are that name, never reused or
reordered, because databases in the field record where they are. The same revisions run on
SQLite and on PostgreSQL, each database's changes in one transaction with a lock held, so
that several app instances or benchmark workers opening one shared log at once migrate it
once:

- PostgreSQL: a transaction-scoped advisory lock (`pg_advisory_xact_lock`);
- SQLite: `BEGIN IMMEDIATE` (the write lock, before anything is read).

A log written by the hand-written runner (table `_migrations`, up to today's version) is
taken over where it stands: Alembic's `alembic_version` is stamped with the last migration it
ran, in the same transaction as the revisions that follow. `_migrations` is left as it was, so
an older app sharing the database still opens it. A log whose schema is newer than this
version of the app is refused with a one-line message before anything is written.

    applied = upgrade(engine)       # the revisions applied now, oldest first ([] when current)

Adding a migration: docs/architecture.md ("A run-log column").
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from lib.core.errors import InvalidInput

FOLDER = Path(__file__).resolve().parent
LEGACY_TABLE = "_migrations"
"""The hand-written runner's bookkeeping (before Alembic): one row per migration applied."""
VERSION_TABLE = "alembic_version"
ADVISORY_LOCK = 0x5374_5261_6365
"""PostgreSQL's advisory lock key for migrating the run log (any constant of our own)."""

_in_process = threading.Lock()
"""Alembic's `op` and `context` are module-wide: one migration at a time in a process."""


@functools.cache
def script() -> ScriptDirectory:
    return ScriptDirectory(str(FOLDER))


def names() -> list[str]:
    """Every revision, oldest first."""
    return [rev.revision for rev in reversed(list(script().walk_revisions()))]


def head() -> str:
    """The newest revision (one chain, one head: two revisions on one parent are a bug)."""
    heads = script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the run log's revisions fork: heads {sorted(heads)}; give each "
                           "new revision the previous newest as its down_revision")
    return heads[0]


def config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for our revisions; `connection` is the one env.py migrates."""
    settings = Config()
    settings.set_main_option("script_location", str(FOLDER))
    settings.attributes["connection"] = connection
    settings.attributes["applied"] = []
    return settings


def current(engine: sa.Engine) -> tuple[str, ...] | None:
    """The revision(s) the database is at; None when it has no Alembic bookkeeping yet."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        return MigrationContext.configure(conn).get_current_heads()


def upgrade(engine: sa.Engine) -> list[str]:
    """Bring the database to the newest revision; return the names applied, oldest first."""
    newest = head()
    if current(engine) == (newest,):
        return []
    with _in_process, engine.connect() as conn:
        settings = config(conn)
        with conn.begin():
            command.upgrade(settings, "head")
    return list(settings.attributes["applied"])


def prepare(conn: sa.Connection) -> None:
    """Called by env.py first, inside the migration's transaction: take the lock, refuse a
    newer schema, take over a log of the hand-written runner."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK)))
    known = names()
    inspector = sa.inspect(conn)
    if inspector.has_table(VERSION_TABLE):
        at = MigrationContext.configure(conn).get_current_heads()
        unknown = [rev for rev in at if rev not in known]
        if unknown:
            raise newer(unknown[0])
        return
    if not inspector.has_table(LEGACY_TABLE):
        return  # a new database
    ran = {row[0] for row in conn.execute(sa.text(f"SELECT name FROM {LEGACY_TABLE}"))}
    unknown = sorted(ran - set(known))
    if unknown:
        raise newer(unknown[-1])
    if not ran:
        return
    if ran != set(known[:len(ran)]):
        missing = [name for name in known[:len(ran)] if name not in ran]
        raise InvalidInput(f"The run log's schema has gaps ({', '.join(missing)} never ran "
                           "but later ones did): it cannot be upgraded safely.")
    MigrationContext.configure(conn).stamp(script(), known[len(ran) - 1])


def newer(revision: str) -> InvalidInput:
    return InvalidInput(
        f"The run log was written by a newer version of StreamRace (its schema is at "
        f"{revision}; this version knows up to {head()}): upgrade StreamRace to open it.")

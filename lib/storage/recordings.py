"""The named recordings saved in the run log's database (table `recordings`, m004_replay).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Iterator

import sqlalchemy as sa

from lib.core.errors import InvalidInput
from lib.storage.recording import Recording, check_name, dumps, loads, now_iso
from lib.storage.store import Store


class Recordings(Mapping):
    """The named recordings saved in the run log's database (table `recordings`, m004_replay).

    A mapping name → Recording read on every access: any process sharing the database (the
    app, a `serve` command) sees a recording the moment it is saved.
    """

    def __init__(self, store: Store):
        self.store = store

    def __getitem__(self, name: str) -> Recording:
        with self.store.engine.connect() as conn:
            body = conn.execute(sa.text("SELECT body FROM recordings WHERE name = :n"),
                                {"n": name}).scalar()
        if body is None:
            raise KeyError(name)
        return _stored(name, body)

    def __iter__(self) -> Iterator[str]:
        with self.store.engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM recordings ORDER BY name"))
            return iter([row[0] for row in names])

    def __len__(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT COUNT(*) FROM recordings")).scalar_one()

    def __contains__(self, name) -> bool:
        with self.store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1 FROM recordings WHERE name = :n"),
                                {"n": name}).first() is not None

    def all(self) -> list[Recording]:
        """Every recording, newest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT name, body FROM recordings ORDER BY created_at DESC, name")).all()
        return [_stored(name, body) for name, body in rows]

    def owners(self) -> dict[str, str | None]:
        """Who saved each recording (lib.access.User.id; None: saved with sign-in off)."""
        with self.store.engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT name, owner FROM recordings")).all())

    def save(self, recording: Recording, replace: bool = False) -> None:
        """Save under its name, owned by the store's owner; an existing one is replaced only
        when asked."""
        check_name(recording.name)
        with self.store.engine.begin() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM recordings WHERE name = :n"),
                                  {"n": recording.name}).first() is not None
            if exists and not replace:
                raise InvalidInput(f"A recording named '{recording.name}' already exists: pick "
                                   "another name, or choose to replace it.")
            conn.execute(sa.text("DELETE FROM recordings WHERE name = :n"), {"n": recording.name})
            conn.execute(sa.text("INSERT INTO recordings (name, created_at, body, owner) "
                                 "VALUES (:n, :c, :b, :o)"),
                         {"n": recording.name, "c": recording.created_at or now_iso(),
                          "b": dumps(recording), "o": self.store.owner})

    def delete(self, name: str) -> bool:
        with self.store.engine.begin() as conn:
            return conn.execute(sa.text("DELETE FROM recordings WHERE name = :n"),
                                {"n": name}).rowcount > 0


def _stored(name: str, body: str) -> Recording:
    try:
        return loads(body)
    except InvalidInput as exc:
        raise InvalidInput(f"The saved recording '{name}' is damaged: {exc.message}") from None

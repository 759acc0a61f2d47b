"""The run log: one row per call, in SQLite by default or any SQLAlchemy URL (`DATABASE_URL`).

Its columns are a public interface (exports, reports, other tools read them); they change
only through the ordered, named migrations below, and tests pin them.
A failed or cancelled call is logged with whatever it measured: nothing is dropped.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Collection, Iterable

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from lib import metrics
from lib.config import default_data_dir
from lib.errors import InvalidInput, redact
from lib.trace import Trace

if TYPE_CHECKING:
    import pandas as pd

RUN_COLUMNS = (
    "run_id", "race_id", "created_at", "source", "endpoint_kind", "base_url", "model", "mode",
    "status", "error", "prompt", "params", "client_s", "ttft_s", "perceived_s", "e2e_s",
    "tpot_s", "icl_p50_s", "icl_p95_s", "icl_max_s", "output_tokens", "input_tokens",
    "token_source", "output_tps", "output_chars", "output_text", "timeline", "transform",
)
"""Every column of `runs`, in order. `timeline` is JSON: [[seconds after t0, text], ...];
`transform` is JSON of what a replay endpoint played (lib.replay), empty for other runs."""

SOURCES = ("live", "benchmark", "guardrails", "replay", "simulated")
STATISTICS_SOURCES = ("live",)
"""What statistics include unless the user asks for more: replayed and simulated timings
are not measurements of an endpoint, and must never be mixed into live figures silently."""


def _m001_runs(conn: sa.Connection) -> None:
    conn.execute(sa.text("""
        CREATE TABLE runs (
            run_id VARCHAR(32) PRIMARY KEY,
            race_id VARCHAR(32),
            created_at VARCHAR(32) NOT NULL,
            source VARCHAR(16) NOT NULL,
            endpoint_kind VARCHAR(16) NOT NULL,
            base_url TEXT NOT NULL,
            model TEXT NOT NULL,
            mode VARCHAR(16) NOT NULL,
            status VARCHAR(16) NOT NULL,
            error TEXT,
            prompt TEXT NOT NULL,
            params TEXT NOT NULL,
            client_s FLOAT, ttft_s FLOAT, perceived_s FLOAT, e2e_s FLOAT, tpot_s FLOAT,
            icl_p50_s FLOAT, icl_p95_s FLOAT, icl_max_s FLOAT,
            output_tokens INTEGER, input_tokens INTEGER, token_source VARCHAR(16),
            output_tps FLOAT, output_chars INTEGER,
            output_text TEXT,
            timeline TEXT
        )"""))
    conn.execute(sa.text("CREATE INDEX ix_runs_created_at ON runs (created_at)"))
    conn.execute(sa.text("CREATE INDEX ix_runs_race_id ON runs (race_id)"))


def _m004_replay(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN transform TEXT"))
    conn.execute(sa.text("CREATE INDEX ix_runs_source ON runs (source)"))
    # Named recordings (lib.replay): the body is the recording's export JSON, one format.
    conn.execute(sa.text("""
        CREATE TABLE recordings (
            name VARCHAR(64) PRIMARY KEY,
            created_at VARCHAR(32) NOT NULL,
            body TEXT NOT NULL
        )"""))


MIGRATIONS: list[tuple[str, Callable[[sa.Connection], None]]] = [
    ("m001_runs", _m001_runs),
    ("m004_replay", _m004_replay),
]


def default_url() -> str:
    folder = default_data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'runs.db'}"


class Store:
    """The run log behind one SQLAlchemy engine. Safe to share between threads and sessions."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        try:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
            raise InvalidInput(
                f"DATABASE_URL is not a usable SQLAlchemy URL ({redact(str(exc))})."
            ) from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self.migrate()
        except OperationalError as exc:
            raise InvalidInput(
                f"Cannot open the run log at {self.engine.url.render_as_string(hide_password=True)}: "
                f"{redact(str(exc.orig))}"
            ) from exc

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; return their names."""
        applied: list[str] = []
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR(64) PRIMARY KEY, applied_at VARCHAR(32))"
            ))
            done = {row[0] for row in conn.execute(sa.text("SELECT name FROM _migrations"))}
            for name, migration in MIGRATIONS:
                if name in done:
                    continue
                migration(conn)
                conn.execute(
                    sa.text("INSERT INTO _migrations (name, applied_at) VALUES (:n, :t)"),
                    {"n": name, "t": datetime.now().isoformat(timespec="seconds")},
                )
                applied.append(name)
        return applied

    def columns(self) -> list[str]:
        return [column["name"] for column in sa.inspect(self.engine).get_columns("runs")]

    def log(self, traces: Iterable[Trace]) -> None:
        """Write finished traces, each once (a second write of the same run_id replaces it)."""
        rows = [trace_to_row(trace) for trace in traces]
        if not rows:
            return
        names = ", ".join(RUN_COLUMNS)
        values = ", ".join(f":{c}" for c in RUN_COLUMNS)
        ids = [row["run_id"] for row in rows]
        delete = sa.text("DELETE FROM runs WHERE run_id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True))
        insert = sa.text(f"INSERT INTO runs ({names}) VALUES ({values})")
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    conn.execute(delete, {"ids": ids})
                    conn.execute(insert, rows)
                return
            except OperationalError as exc:
                # SQLite under many writers: the busy timeout usually suffices; retry if not.
                if "locked" not in str(exc).lower() or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def recent(self, limit: int = 50, sources: Collection[str] | None = None) -> pd.DataFrame:
        """The newest runs first, every column; only those of `sources` when given.

        Statistics pass `sources=STATISTICS_SOURCES` unless the user asked for more.
        """
        return self._select(limit=limit, column="source", values=sources)

    def runs(self, run_ids: Collection[str]) -> pd.DataFrame:
        """The runs with these ids, newest first."""
        return self._select(limit=None, column="run_id", values=run_ids)

    def _select(self, limit: int | None, column: str,
                values: Collection[str] | None) -> pd.DataFrame:
        where = f"WHERE {column} IN :values " if values is not None else ""
        query = sa.text(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs {where}"
                        "ORDER BY created_at DESC, mode" + (" LIMIT :limit" if limit else ""))
        params: dict = {}
        if values is not None:
            query = query.bindparams(sa.bindparam("values", expanding=True))
            params["values"] = list(values)
        if limit:
            params["limit"] = limit
        import pandas as pd  # imported here: the replay server reads no frame, and starts faster

        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, params=params)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar_one()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def trace_to_row(trace: Trace) -> dict:
    """A trace as a run-log row: request, outcome, every metric, and the chunk timeline."""
    request = trace.request
    values = metrics.compute(trace).as_dict()
    t0 = trace.t0
    timeline = [[round(chunk.t - t0, 6) if t0 is not None else None, chunk.text]
                for chunk in trace.chunks]
    return {
        "run_id": trace.run_id,
        "race_id": trace.race_id,
        "created_at": trace.created_at.isoformat(timespec="milliseconds"),
        "source": trace.source,
        "endpoint_kind": request.endpoint_kind,
        "base_url": request.base_url,
        "model": request.model,
        "mode": trace.mode,
        "status": trace.status,
        "error": trace.error,
        "prompt": request.prompt,
        "params": json.dumps(request.params.as_dict(), sort_keys=True),
        **values,
        "output_text": trace.text,
        "timeline": json.dumps(timeline, ensure_ascii=False),
        "transform": request.transform,
    }


def to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")

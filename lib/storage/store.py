"""The run log: one row per call, in SQLite by default or any SQLAlchemy URL (`DATABASE_URL`).

Its columns are a public interface (exports, reports, other tools read them); they change
only through the ordered, named Alembic revisions of lib.storage.migrations, and tests pin them.
A failed or cancelled call is logged with whatever it measured: nothing is dropped.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Collection, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from lib.core import metrics
from lib.core.config import default_data_dir
from lib.core.errors import InvalidInput, redact
from lib.core.trace import Chunk, Guarded, Params, Request, Trace
from lib.storage import migrations

if TYPE_CHECKING:
    import pandas as pd


RUN_COLUMNS = (
    "run_id", "race_id", "created_at", "source", "endpoint_kind", "base_url", "model", "mode",
    "status", "error", "prompt", "params", "client_s", "ttft_s", "perceived_s", "e2e_s",
    "tpot_s", "icl_p50_s", "icl_p95_s", "icl_max_s", "output_tokens", "input_tokens",
    "token_source", "output_tps", "output_chars", "output_text", "timeline",
    # m002_benchmark
    "bench_id", "bench_phase", "bench_offset_s", "queue_s", "icl_p99_s",
    # m003_guardrails: one row per strategy of a guardrails run (NULL on other rows)
    "strategy", "validators", "planted", "guard_params", "delivered_ttft_s", "guard_e2e_s",
    "exposure_chars", "exposure_s", "leaked_chars", "retractions", "validation_s",
    "guard_timeline",
    # m004_replay
    "transform",
    # m006_error_kind
    "error_kind",
    # m007_reasoning
    "ttfo_s", "thinking_s", "reasoning_tokens", "answer_tokens", "reasoning_source",
    "reasoning_chars",
    # m008_screen
    "screen_first_s", "screen_done_s",
    # m010_lanes
    "lane_index", "lane_label",
    # m009_structured (merged after m010): a structured answer's schema and per-field figures
    "schema_name", "output_schema", "format_mode", "first_field_s", "valid_object_s",
    "partial_failures", "object_valid", "field_moments",
    # m011_owner (merged after m009)
    "owner",
)
"""Every column of `runs`, in order. `timeline` is JSON: [[seconds after t0, text], ...], a
thought (reasoning) chunk as [seconds after t0, text, "thought"]; `output_text` is the answer;
`error_kind` is the failure's class (lib.core.errors: auth, timeout, stream_broken...), empty when
ok; `transform` is JSON of what a replay endpoint played (lib.replay), empty for other runs;
`guard_timeline` is JSON: {"events": [[seconds after t0, kind, start, end, note], ...],
"checks_s": [...], "violations": [[start, end], ...]} (character offsets in output_text);
`output_schema` is the JSON Schema a structured answer was asked for (`schema_name`, in
`format_mode`), `field_moments` JSON: {field: [first seconds after t0, last]}; `owner` is who
ran it when sign-in is on (lib.access.User.id), NULL when it is off."""


SOURCES = ("live", "benchmark", "guardrails", "replay", "simulated")
"""Every value of the `source` column; replayed and simulated runs are never live statistics."""


STATISTICS_SOURCES = ("live",)
"""What statistics include unless the user asks for more: replayed and simulated timings
are not measurements of an endpoint, and must never be mixed into live figures silently."""


BENCH_COLUMNS = (
    "bench_id", "created_at", "endpoint_kind", "base_url", "model", "settings", "status",
    "duration_s", "owner",
)
"""Every column of `benchmarks`: one row per benchmark, its settings as JSON, how it ended
(`running`, `completed`, `stopped`, `deadline`), the measured phase's duration and who started
it (`owner`)."""


def default_url() -> str:
    folder = default_data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'runs.db'}"


CONNECT_TIMEOUT_S = 10
"""How long a PostgreSQL server that does not answer is waited for (psycopg waits forever)."""


def engine_for(url: str | None) -> sa.Engine:
    """The engine of a run log URL (default: the user's SQLite file).

    `postgresql://` (and `postgres://`) mean psycopg 3, the driver StreamRace ships
    (SQLAlchemy's own default for that scheme is psycopg2). A URL that is not usable is
    InvalidInput, its password hidden.
    """
    try:
        parsed = sa.make_url(url or default_url())
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        options: dict = {}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        engine = sa.create_engine(parsed, pool_pre_ping=True, **options)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise InvalidInput(
            f"DATABASE_URL is not a usable SQLAlchemy URL ({hide_password(str(exc))})."
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def hide_password(text: str, password: str | None = None) -> str:
    """A driver's or SQLAlchemy's message on one line (psycopg's span several), with the
    password masked: the known one, and any `scheme://user:password@` the text quotes."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1•••@", " ".join(text.split()))
    return redact(text, [password] if password else [])


class Store:
    """The run log behind one SQLAlchemy engine. Safe to share between threads and sessions."""

    owner: str | None = None
    """Who the rows this Store writes belong to (runs, benchmarks, recordings): the signed-in
    user's id (lib.access.User.id); None when sign-in is off. See `owned_by`."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        self.engine = engine_for(self.url)
        try:
            with self.engine.connect():
                pass
        except sa.exc.DBAPIError as exc:
            raise self._refused("Cannot open the run log at {where}: {detail}", exc) from exc
        try:
            self.migrate()
        except InvalidInput:
            self.engine.dispose()
            raise
        except sa.exc.DBAPIError as exc:
            # Nothing is half-written: every revision runs in one transaction, rolled back.
            raise self._refused("Cannot upgrade the run log at {where} (nothing was changed): "
                                "{detail}", exc) from exc

    def _refused(self, message: str, exc: sa.exc.DBAPIError) -> InvalidInput:
        """The one-line message of a database's refusal, its password hidden, ending with its
        full stop (a page adds its own sentence after it)."""
        self.engine.dispose()
        detail = hide_password(str(exc.orig), self.engine.url.password).rstrip(".")
        return InvalidInput(message.format(
            where=self.engine.url.render_as_string(hide_password=True), detail=detail) + ".")

    def owned_by(self, owner: str | None) -> "Store":
        """This run log (the same engine), writing rows owned by `owner`."""
        if owner == self.owner:
            return self
        view = copy.copy(self)
        view.owner = owner
        return view

    def migrate(self) -> list[str]:
        """Apply the revisions not yet applied; return their names, oldest first."""
        return migrations.upgrade(self.engine)

    def columns(self) -> list[str]:
        return [column["name"] for column in sa.inspect(self.engine).get_columns("runs")]

    def log(self, traces: Iterable[Trace]) -> None:
        """Write finished traces, each once (a second write of the same run_id replaces it)."""
        rows = [trace_to_row(trace, self.owner) for trace in traces]
        self._replace("runs", "run_id", RUN_COLUMNS, rows)

    def set_screen(self, race_id: str,
                   figures: Mapping[int | str, tuple[float | None, float | None]]) -> int:
        """Add the browser's figures to a race's logged rows: lane index (or, for rows logged
        before lanes, mode) → (screen_first_s, screen_done_s). The rows were logged when the
        race ended; the browser reports after it painted them. Returns how many rows were
        updated."""
        updated = 0
        with self.engine.begin() as conn:
            for lane, (first, done) in figures.items():
                column = "lane_index" if isinstance(lane, int) else "mode"
                updated += conn.execute(
                    sa.text("UPDATE runs SET screen_first_s = :first, screen_done_s = :done "
                            f"WHERE race_id = :race AND {column} = :lane"),
                    {"first": first, "done": done, "race": race_id, "lane": lane},
                ).rowcount
        return updated

    def save_benchmark(self, record: Mapping) -> None:
        """Write (or rewrite) one benchmark's row: BENCH_COLUMNS, settings as a dict."""
        row = {name: record.get(name) for name in BENCH_COLUMNS}
        row["owner"] = self.owner
        row["settings"] = json.dumps(record["settings"], sort_keys=True)
        self._replace("benchmarks", "bench_id", BENCH_COLUMNS, [row])

    def benchmarks(self, limit: int = 50) -> pd.DataFrame:
        """The newest benchmarks first, with the number of runs each logged."""
        query = sa.text(
            f"SELECT {', '.join('b.' + c for c in BENCH_COLUMNS)}, "
            "(SELECT COUNT(*) FROM runs r WHERE r.bench_id = b.bench_id) AS runs "
            "FROM benchmarks b ORDER BY b.created_at DESC LIMIT :limit"
        )
        return self._frame(query, {"limit": limit})

    def benchmark(self, bench_id: str) -> dict | None:
        """One benchmark's row (settings as a dict), or None if it is not in the log."""
        query = sa.text(f"SELECT {', '.join(BENCH_COLUMNS)} FROM benchmarks WHERE bench_id = :id")
        with self.engine.connect() as conn:
            row = conn.execute(query, {"id": bench_id}).mappings().first()
        if row is None:
            return None
        return {**row, "settings": json.loads(row["settings"])}

    def bench_traces(self, bench_id: str) -> list[Trace]:
        """Every logged call of one benchmark, as Traces, in the order they were due."""
        query = sa.text(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE bench_id = :id "
            "ORDER BY bench_offset_s, mode"
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"id": bench_id}).mappings().all()
        return [trace_from_row(row) for row in rows]

    def _replace(self, table: str, key: str, columns: tuple[str, ...], rows: list[dict]) -> None:
        """Insert rows, replacing any with the same key, in one transaction."""
        if not rows:
            return
        names = ", ".join(columns)
        values = ", ".join(f":{c}" for c in columns)
        ids = [row[key] for row in rows]
        delete = sa.text(f"DELETE FROM {table} WHERE {key} IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)
        )
        insert = sa.text(f"INSERT INTO {table} ({names}) VALUES ({values})")
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

    def recent(self, limit: int = 50, sources: Collection[str] | None = None,
               owner: str | None = None) -> pd.DataFrame:
        """The newest runs first, every column; only those of `sources`, of `owner`, when given.

        Statistics pass `sources=STATISTICS_SOURCES` unless the user asked for more.
        """
        return self._select(limit, source=sources, owner=None if owner is None else [owner])

    def runs(self, run_ids: Collection[str]) -> pd.DataFrame:
        """The runs with these ids, newest first."""
        return self._select(None, run_id=run_ids)

    def _select(self, limit: int | None, **values: Collection[str] | None) -> pd.DataFrame:
        """Rows whose columns (the keywords) hold one of the given values, newest first."""
        chosen = {column: list(v) for column, v in values.items() if v is not None}
        where = " AND ".join(f"{column} IN :{column}" for column in chosen)
        query = sa.text(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs {'WHERE ' + where if where else ''} "
            "ORDER BY created_at DESC, mode" + (" LIMIT :limit" if limit else "")
        )
        query = query.bindparams(*(sa.bindparam(column, expanding=True) for column in chosen))
        params: dict = dict(chosen)
        if limit:
            params["limit"] = limit
        return self._frame(query, params)

    def _frame(self, query, params: dict) -> pd.DataFrame:
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


def trace_to_row(trace: Trace, owner: str | None = None) -> dict:
    """A trace as a run-log row: request, outcome, every metric, the chunk timeline, and who
    ran it (`owner`, when sign-in is on)."""
    request = trace.request
    values = metrics.compute(trace).as_dict()
    t0 = trace.t0

    def offset(t: float) -> float | None:
        return round(t - t0, 6) if t0 is not None else None

    timeline = [
        [offset(chunk.t), chunk.text, "thought"] if chunk.thought else [offset(chunk.t), chunk.text]
        for chunk in trace.chunks
    ]
    row = {
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
        "error_kind": trace.error_kind,
        "prompt": request.prompt,
        "params": json.dumps(request.params.as_dict(), sort_keys=True),
        **values,
        "output_text": trace.text,
        "timeline": json.dumps(timeline, ensure_ascii=False),
        "bench_id": trace.bench_id,
        "bench_phase": trace.bench_phase,
        "transform": request.transform,
        "lane_index": trace.lane_index,
        "lane_label": trace.lane_label,
        **_guard_columns(trace.guard, offset),
        "schema_name": request.structure.name if request.structure else None,
        "output_schema": request.structure.schema_json() if request.structure else None,
        "format_mode": request.structure.mode if request.structure else None,
        "owner": owner,
    }
    return {column: row[column] for column in RUN_COLUMNS}


def _guard_columns(guard: Guarded | None, offset: Callable[[float], float | None]) -> dict:
    """The descriptive guardrails columns (the figures come with the metrics)."""
    if guard is None:
        return {
            "strategy": None,
            "validators": None,
            "planted": None,
            "guard_params": None,
            "guard_timeline": None,
        }
    timeline = {
        "events": [[offset(e.t), e.kind, e.start, e.end, e.note] for e in guard.events],
        "checks_s": [round(d, 9) for d in guard.checks_s],
        "violations": [list(span) for span in guard.violations],
    }
    return {
        "strategy": guard.strategy,
        "validators": ",".join(guard.validators),
        "planted": guard.planted,
        "guard_params": json.dumps(guard.params, sort_keys=True),
        "guard_timeline": json.dumps(timeline, ensure_ascii=False),
    }


def trace_from_row(row: Mapping) -> Trace:
    """A logged run as a Trace again, so that every metric and summary of it is computed by the
    same code as for a live call. Its moments are relative to t0 = 0 (to t_start = 0 when
    nothing was sent); what the log does not keep (t_end) is None.
    """
    value = {name: _present(row.get(name)) for name in RUN_COLUMNS}
    timeline = json.loads(value["timeline"] or "[]")
    sent = value["client_s"] is not None or any(entry[0] is not None for entry in timeline)
    t0 = 0.0 if sent else None
    if t0 is None:
        t_start = 0.0
    elif value["client_s"] is not None:
        t_start = t0 - value["client_s"]
    else:
        t_start = None

    def after_start(name: str) -> float | None:
        return None if t_start is None or value[name] is None else t_start + value[name]

    known = {f.name for f in dataclasses.fields(Params)}
    params: dict = {
        k: tuple(v) if k == "stop" else v
        for k, v in json.loads(value["params"] or "{}").items()
        if k in known
    }
    from_server = value["token_source"] == "server"
    return Trace(
        request=Request(
            value["prompt"],
            Params(**params),
            value["endpoint_kind"],
            value["base_url"],
            value["model"],
            value.get("transform"),
            _structure(value),
        ),
        mode=value["mode"],
        source=value["source"],
        run_id=value["run_id"],
        race_id=value["race_id"],
        lane_index=value["lane_index"],
        lane_label=value["lane_label"],
        created_at=datetime.fromisoformat(value["created_at"]),
        t_start=t_start,
        t_run=after_start("queue_s"),
        t0=t0,
        chunks=[Chunk(entry[0], entry[1], entry[2:3] == ["thought"])
                for entry in timeline if entry[0] is not None],
        t_shown=after_start("perceived_s"),
        input_tokens=value["input_tokens"] if from_server else None,
        output_tokens=value["output_tokens"] if from_server else None,
        reasoning_tokens=value["reasoning_tokens"] if value["reasoning_source"] == "server"
        else None,
        status=value["status"],
        error=value["error"],
        error_kind=value["error_kind"],
        bench_id=value["bench_id"],
        bench_phase=value["bench_phase"],
        screen_first_s=value["screen_first_s"],
        screen_done_s=value["screen_done_s"],
        t_bench=None
        if t_start is None or value["bench_offset_s"] is None
        else t_start - value["bench_offset_s"],
    )


def _structure(value: Mapping):
    if not value.get("schema_name"):
        return None
    from lib.structured.schemas import structure_from_row  # only rows of structured runs

    return structure_from_row(value["schema_name"], value["output_schema"], value["format_mode"])


def _present(value):
    """None for SQL NULL as pandas or a driver hands it over (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


EXPORTED_BY = "exported_by"
"""The column an export made by a signed-in user gets last: who made the file."""


def to_csv(frame: pd.DataFrame, exported_by: str | None = None) -> bytes:
    return _stamped(frame, exported_by).to_csv(index=False).encode("utf-8")


def to_parquet(frame: pd.DataFrame, exported_by: str | None = None) -> bytes:
    buffer = io.BytesIO()
    _stamped(frame, exported_by).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _stamped(frame: pd.DataFrame, exported_by: str | None) -> pd.DataFrame:
    """The rows, and who exported them (sign-in on): each row says whose file it came from."""
    return frame if exported_by is None else frame.assign(**{EXPORTED_BY: exported_by})

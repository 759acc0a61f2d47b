"""The run log as history: filtered queries, in the database, for the History page and the report.

Every filter becomes a WHERE clause with bound parameters (SQLAlchemy Core), so the database
does the filtering, and each query selects only the columns it needs: the wide ones
(`output_text`, `timeline`) are read only for the few runs whose detail is shown.
Columns other engineers add to the run log are ignored here, or carried into the table and
its exports when they are in `lib.store.RUN_COLUMNS`.

    filters = Filters(sources=("live",), models=("gpt-4o-mini",), prompt_contains="50%")
    frame = chart_frame(store.engine, filters)      # one row per run, metric columns
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import sqlalchemy as sa

from lib.core import metrics
from lib.core.trace import Trace
from lib.storage.store import RUN_COLUMNS, trace_from_row

DEFAULT_SOURCES = ("live",)
HEAVY_COLUMNS = ("output_text", "timeline", "guard_timeline")
TABLE_COLUMNS = tuple(c for c in RUN_COLUMNS if c not in HEAVY_COLUMNS)
"""The table the page shows and exports: every run-log column but the answer and its chunks."""
CHART_COLUMNS = ("mode", "status", "perceived_s", "ttft_s", "e2e_s", "tpot_s", "output_tps",
                 "output_tokens", "screen_first_s", "lane_label")
"""What the charts and comparisons need of every filtered run: no text, no ids. The index
ix_runs_history (m005, rebuilt by m008_screen and m010_lanes) holds them, so these queries never
read the wide rows."""
GROUP_COLUMNS = {"mode": "modes", "model": "models", "endpoint_kind": "endpoint_kinds",
                 "source": "sources", "lane_label": "lane_labels", "created_at": None}
"""Columns two groups can differ by, and the filter each narrows (created_at: a date range).
Not status: comparisons are of runs that ended ok."""
SUMMARY_METRICS = ("perceived_s", "ttft_s", "e2e_s", "output_tps")
FACET_COLUMNS = ("source", "endpoint_kind", "model", "mode", "status", "lane_label")
TABLE_LIMIT = 1000
"""Rows shown in the page's grid (the newest); charts and exports use every filtered run."""

RUNS = sa.table("runs", *(sa.column(name) for name in RUN_COLUMNS))


@dataclass(frozen=True)
class Filters:
    """Which runs to show. An empty tuple means "any"; times are UTC when naive."""

    since: datetime | None = None
    """Inclusive."""
    until: datetime | None = None
    """Exclusive."""
    sources: tuple[str, ...] = DEFAULT_SOURCES
    endpoint_kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    prompt_contains: str = ""
    lane_labels: tuple[str, ...] = ()
    """Race lanes by label (lane_label); rows of no race have none and match only "any"."""
    owners: tuple[str, ...] = ()
    """Who ran them (the `owner` column, sign-in on): History's "mine"."""

    def describe(self) -> str:
        """One line for captions and the report."""
        parts = []
        if self.since or self.until:
            parts.append(f"{_shown_time(self.since) or 'the start'} – "
                         f"{_shown_time(self.until) or 'now'}")
        for label, values in (("source", self.sources), ("endpoint", self.endpoint_kinds),
                              ("model", self.models), ("mode", self.modes),
                              ("status", self.statuses), ("lane", self.lane_labels)):
            if values or label != "lane":  # lanes are named only when filtered by
                parts.append(f"{label}: {', '.join(values) if values else 'any'}")
        if self.prompt_contains:
            parts.append(f"prompt contains “{self.prompt_contains}”")
        if self.owners:
            parts.append(f"run by {', '.join(self.owners)}")
        return " · ".join(parts)


def iso_utc(moment: datetime) -> str:
    """A moment written as the run log writes `created_at`, so strings compare as times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _shown_time(moment: datetime | None) -> str | None:
    return None if moment is None else iso_utc(moment)[:16].replace("T", " ") + " UTC"


def where(filters: Filters) -> list[sa.ColumnElement[bool]]:
    """The filters as SQL conditions, every value a bound parameter."""
    runs = RUNS.c
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(runs.created_at >= iso_utc(filters.since))
    if filters.until is not None:
        conditions.append(runs.created_at < iso_utc(filters.until))
    for column, values in ((runs.source, filters.sources),
                           (runs.endpoint_kind, filters.endpoint_kinds),
                           (runs.model, filters.models), (runs.mode, filters.modes),
                           (runs.status, filters.statuses),
                           (runs.lane_label, filters.lane_labels),
                           (runs.owner, filters.owners)):
        if values:
            conditions.append(column.in_(values))
    if filters.prompt_contains:
        # autoescape: a typed % or _ is matched literally, not as a wildcard.
        conditions.append(runs.prompt.icontains(filters.prompt_contains, autoescape=True))
    return conditions


def _read(engine: sa.Engine, query: sa.Select) -> pd.DataFrame:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return _read_binary(conn, query)
        result = conn.execute(query)
        # The driver's plain tuples: wrapping 100,000 of them in Row objects doubles the time,
        # and these untyped columns have no result processing to lose.
        return pd.DataFrame(result.cursor.fetchall(), columns=list(result.keys()))


def _read_binary(conn: sa.Connection, query: sa.Select) -> pd.DataFrame:
    """PostgreSQL: the same query through a psycopg cursor that receives binary values, which
    halves reading 100,000 runs (floats arrive as doubles, not text to parse)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    dbapi: Any = conn.connection.dbapi_connection  # a psycopg.Connection
    with dbapi.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        columns = [column.name for column in cursor.description or ()]
        return pd.DataFrame(cursor.fetchall(), columns=columns)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Metric columns as floats (missing = NaN), also when a column is all NULL."""
    for name in frame.columns:
        if name.endswith("_s") or name == "output_tps":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif name in ("output_tokens", "input_tokens", "output_chars"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("Int64")
    return frame


def _newest_first(query: sa.Select) -> sa.Select:
    return query.order_by(RUNS.c.created_at.desc(), RUNS.c.mode, RUNS.c.run_id)


def count(engine: sa.Engine, filters: Filters) -> int:
    query = sa.select(sa.func.count()).select_from(RUNS).where(*where(filters))
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def table(engine: sa.Engine, filters: Filters, limit: int | None = TABLE_LIMIT) -> pd.DataFrame:
    """The filtered runs, newest first, with TABLE_COLUMNS; every one of them when limit is None."""
    query = sa.select(*(RUNS.c[name] for name in TABLE_COLUMNS))
    if limit is None:
        query = query.where(*where(filters))
    else:
        # The newest ids first (from the index alone), then only those rows: sorting every
        # matching row, wide columns and all, to keep 1,000 costs seconds at 100,000 runs.
        # (created_at alone: a tie-break here would make SQLite sort every match.)
        newest = (sa.select(RUNS.c.run_id).where(*where(filters))
                  .order_by(RUNS.c.created_at.desc()).limit(limit))
        query = query.where(RUNS.c.run_id.in_(newest.scalar_subquery()))
    return _typed(_read(engine, _newest_first(query)))


def chart_frame(engine: sa.Engine, filters: Filters) -> pd.DataFrame:
    """Every filtered run with CHART_COLUMNS (in no particular order): what the charts draw.

    `mode` and `status` become categories: small, and quick to cache.
    """
    query = sa.select(*(RUNS.c[name] for name in CHART_COLUMNS)).where(*where(filters))
    frame = _typed(_read(engine, query))
    for name in ("mode", "status"):
        frame[name] = frame[name].astype("category")
    return frame


def narrowed(filters: Filters, column: str, values: tuple[str, ...] = (),
             since: datetime | None = None, until: datetime | None = None) -> Filters:
    """The filters narrowed to one comparison group: values of a column, or a date range.

    A date range is intersected with the filters' own; other columns take the group's values.
    """
    if column not in GROUP_COLUMNS:
        raise ValueError(f"cannot group by {column!r}")
    if column == "created_at":
        starts = [t for t in (filters.since, since) if t is not None]
        ends = [t for t in (filters.until, until) if t is not None]
        return replace(filters, since=max(starts, key=iso_utc) if starts else None,
                       until=min(ends, key=iso_utc) if ends else None)
    changes: dict = {GROUP_COLUMNS[column]: tuple(values)}
    return replace(filters, **changes)


def runs_by_id(engine: sa.Engine, run_ids: list[str]) -> pd.DataFrame:
    """A few runs with every column, in the order of `run_ids` (for their detail and timeline)."""
    if not run_ids:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    query = sa.select(*(RUNS.c[name] for name in RUN_COLUMNS)).where(RUNS.c.run_id.in_(run_ids))
    frame = _typed(_read(engine, query))
    order = {run_id: i for i, run_id in enumerate(run_ids)}
    return frame.sort_values("run_id", key=lambda ids: ids.map(order)).reset_index(drop=True)


def facets(engine: sa.Engine, filters: Filters | None = None) -> pd.DataFrame:
    """Runs per (source, endpoint, model, mode, status) among the filtered runs (default: all
    runs): the values a filter or a comparison group can take."""
    columns = [RUNS.c[name] for name in FACET_COLUMNS]
    query = sa.select(*columns, sa.func.count().label("runs")).group_by(*columns)
    return _read(engine, query if filters is None else query.where(*where(filters)))


def version(engine: sa.Engine) -> tuple[int, str | None]:
    """(runs, newest created_at): changes when runs are logged, so caches keyed on it refresh."""
    query = sa.select(sa.func.count(), sa.func.max(RUNS.c.created_at)).select_from(RUNS)
    with engine.connect() as conn:
        total, newest = conn.execute(query).one()
    return total, newest


def timeline(row: pd.Series | dict, thoughts: bool = False) -> list[tuple[float, str]]:
    """A run's answer chunks from its `timeline` JSON: (seconds after t0, text); unreadable → [].
    With `thoughts`, its thought (reasoning) chunks instead."""
    try:
        pairs = json.loads(row["timeline"] or "[]")
    except (TypeError, ValueError):
        return []
    if not isinstance(pairs, list):
        return []
    return [(float(pair[0]), str(pair[1])) for pair in pairs
            if isinstance(pair, list) and len(pair) == (3 if thoughts else 2)
            and (not thoughts or pair[2] == "thought")
            and isinstance(pair[0], (int, float)) and pair[1] is not None]



REASONING_COLUMNS = ("mode", "status", "model", "ttft_s", "ttfo_s", "thinking_s", "e2e_s",
                     "reasoning_tokens", "answer_tokens")
"""What the thinking-against-answering chart needs of the filtered streamed runs that reasoned."""


def reasoning_frame(engine: sa.Engine, filters: Filters) -> pd.DataFrame:
    """The filtered streamed runs that showed thinking (thinking_s > 0), REASONING_COLUMNS.
    Rows logged before m007_reasoning have no thinking_s and are never among them."""
    query = sa.select(*(RUNS.c[name] for name in REASONING_COLUMNS)).where(
        *where(filters), RUNS.c.thinking_s > 0)
    return _read(engine, query)


def latest_structured_race(engine: sa.Engine, filters: Filters) -> list[Trace]:
    """The newest structured race among the filtered runs (a schema was asked for), its lanes
    as Traces (the field chart derives every figure from their chunks); [] when there is none."""
    newest = (sa.select(RUNS.c.race_id).where(*where(filters), RUNS.c.schema_name.is_not(None),
                                               RUNS.c.race_id.is_not(None))
              .order_by(RUNS.c.created_at.desc()).limit(1))
    with engine.connect() as conn:
        race_id = conn.execute(newest).scalar()
        if race_id is None:
            return []
        rows = conn.execute(sa.select(*(RUNS.c[n] for n in RUN_COLUMNS))
                            .where(RUNS.c.race_id == race_id)).mappings().all()
    return [trace_from_row(row) for row in rows if row["mode"] in ("blocking", "streaming")]


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per mode: runs, how many ended ok, and p50/p90 of the headline metrics (ok runs)."""
    rows = []
    for mode, runs in frame.groupby("mode", observed=True, sort=True):
        ok = runs[runs["status"] == "ok"]
        row = {"mode": mode, "runs": len(runs), "ok": len(ok), "failed": len(runs) - len(ok)}
        for name in SUMMARY_METRICS:
            p50, p90 = metrics.percentiles(ok[name].dropna().to_numpy(), (50, 90))
            row[f"{name} p50"], row[f"{name} p90"] = p50, p90
        rows.append(row)
    return pd.DataFrame(rows)


LANE_METRICS = ("perceived_s", "ttft_s", "e2e_s", "output_tps", "screen_first_s")


def lane_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Race lanes compared over many races, by label, fastest blank screen first: runs, ok
    runs, p50/p90 of each LANE_METRICS over the ok runs, and how many times sooner the p50
    blank screen is than the slowest lane's. Empty unless two labels have ok runs."""
    rows = []
    labelled = frame[frame["lane_label"].notna()] if "lane_label" in frame else frame.iloc[:0]
    for label, runs in labelled.groupby("lane_label", sort=True):
        ok = runs[runs["status"] == "ok"]
        row = {"lane": label, "mode": ", ".join(sorted(set(runs["mode"].astype(str)))),
               "runs": len(runs), "ok": len(ok)}
        for name in LANE_METRICS:
            p50, p90 = metrics.percentiles(ok[name].dropna().to_numpy(), (50, 90))
            row[f"{name} p50"], row[f"{name} p90"] = p50, p90
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty or table["perceived_s p50"].notna().sum() < 2:
        return table.iloc[:0]
    table = table.sort_values("perceived_s p50", na_position="last").reset_index(drop=True)
    slowest = table["perceived_s p50"].max()
    table["sooner"] = slowest / table["perceived_s p50"]
    return table


def prompt_set(engine: sa.Engine, filters: Filters, limit: int = 50) -> pd.DataFrame:
    """The distinct prompts of the filtered runs, most used first: prompt, runs."""
    runs = sa.func.count().label("runs")
    query = (sa.select(RUNS.c.prompt, runs).where(*where(filters)).group_by(RUNS.c.prompt)
             .order_by(runs.desc(), RUNS.c.prompt).limit(limit))
    return _read(engine, query)


def endpoint_set(engine: sa.Engine, filters: Filters) -> pd.DataFrame:
    """Where the filtered runs went: endpoint_kind, base_url (no credentials), model, runs."""
    columns = [RUNS.c.endpoint_kind, RUNS.c.base_url, RUNS.c.model]
    runs = sa.func.count().label("runs")
    query = (sa.select(*columns, runs).where(*where(filters)).group_by(*columns)
             .order_by(runs.desc()))
    frame = _read(engine, query)
    frame["base_url"] = frame["base_url"].map(safe_url)
    return frame


def safe_url(url: str | None) -> str:
    """A base URL without user, password or query string: a report may leave the team."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))

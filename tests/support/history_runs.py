"""Run logs with known answers, for the History tests (lib, page, browser, report).

`make_run` builds a real Trace whose timestamps are exact: the call starts at t_start = 0,
the request leaves 1 ms later (t0), the first text arrives at exactly `blank_s` (so
perceived_s = blank_s), then one chunk after each of `gaps`.

KNOWN is a hand-made set whose patience answers are worked out in its docstring.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from lib.core.trace import Chunk, Params, Request, Trace
from lib.storage.store import RUN_COLUMNS, Store, trace_to_row

DAY = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)
CLIENT_S = 0.001


def make_run(mode: str, blank_s: float | None, *, gaps: tuple[float, ...] = (0.05, 0.05),
             tokens: int | None = None, status: str = "ok", source: str = "live",
             model: str = "model-a", endpoint_kind: str = "compatible",
             base_url: str = "http://127.0.0.1:9/v1", prompt: str = "Why stream?",
             created: datetime = DAY, error: str | None = None,
             race_id: str | None = None, lane: str | None = None) -> Trace:
    """A finished call. blank_s None: no text arrived (a failed call)."""
    request = Request(prompt, Params(), endpoint_kind, base_url, model)
    chunks: list[Chunk] = []
    if blank_s is not None:
        times = [blank_s]
        for gap in gaps:
            times.append(times[-1] + gap)
        words = [f"w{i} " for i in range(len(times))]
        if mode == "blocking":  # one chunk, the whole answer, when it all arrived
            chunks = [Chunk(blank_s, "".join(words))]
        else:
            chunks = [Chunk(t, w) for t, w in zip(times, words)]
    end = chunks[-1].t if chunks else 0.5
    return Trace(request=request, mode=mode, source=source, race_id=race_id, lane_label=lane,
                 created_at=created, t_start=0.0, t0=CLIENT_S, chunks=chunks, t_end=end,
                 output_tokens=tokens, input_tokens=3 if tokens else None, status=status,
                 error=error or (None if status == "ok" else "The endpoint answered 500."))


def insert_rows(store: Store, rows: list[dict]) -> None:
    """Rows as another writer could have left them (e.g. without token counts)."""
    insert = sa.text(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) "
                     f"VALUES ({', '.join(':' + c for c in RUN_COLUMNS)})")
    with store.engine.begin() as conn:
        conn.execute(insert, rows)


def without_tokens(trace: Trace) -> dict:
    row = trace_to_row(trace)
    row.update(output_tokens=None, tpot_s=None, output_tps=None, token_source=None)
    return row


BLOCKING_BLANKS = (0.5, 1.0, 2.5, 3.5)
STREAMING_BLANKS = (0.2, 0.3, 0.4, 1.2)
KNOWN_HEADLINE_PP = 25.0
"""KNOWN: four blocking and four streaming live runs, plus noise the filters must drop.

A user with patience p leaves if perceived_s > p (a run of exactly p keeps its user):
  p = 1 s: blocking keeps 0.5 and 1.0 → 2/4 = 50 %; streaming keeps 0.2, 0.3, 0.4 → 75 %:
           streaming keeps 25 percentage points more (the default headline, at 1 s).
  p = 3 s: blocking keeps 3/4 = 75 %; streaming 4/4 = 100 %: +25 points.
  p = 0.1 s: nobody is kept by either: 0 points.
  p = 10 s: everybody is kept by both: 0 points.
Noise: a replayed and a simulated streaming run (source filter), and a failed blocking run
(status: in the table, not in the charts).
"""


def known_runs() -> list[Trace]:
    runs = []
    for i, blank in enumerate(BLOCKING_BLANKS):
        runs.append(make_run("blocking", blank, tokens=10 + 20 * i,
                             created=DAY + timedelta(minutes=i)))
    for i, blank in enumerate(STREAMING_BLANKS):
        runs.append(make_run("streaming", blank, tokens=10 + 20 * i,
                             created=DAY + timedelta(minutes=i, seconds=1)))
    runs.append(make_run("streaming", 9.0, source="replay", created=DAY + timedelta(hours=1)))
    runs.append(make_run("streaming", 9.0, source="simulated", created=DAY + timedelta(hours=1)))
    runs.append(make_run("blocking", None, status="error", created=DAY + timedelta(hours=2)))
    return runs


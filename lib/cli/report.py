"""python -m lib.report: write the stakeholder report of the run log as one HTML file.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

from lib.cli.common import fail
from lib.core.config import ENDPOINT_KINDS, load_settings
from lib.core.errors import StreamRaceError
from lib.core.trace import MODES
from lib.present import stats
from lib.report import build
from lib.storage import history
from lib.storage.store import SOURCES, Store

DESCRIPTION = (
    "The stakeholder report: one self-contained HTML file about the filtered runs."
)
"""What --help says first (unchanged since the command was written: scripts may show it)."""


def _moment(text: str, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise); a bare date as --until means
    the end of that day."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {text!r}") from None
    if end_of_day and len(text) == 10:
        moment = datetime.combine(moment.date() + timedelta(days=1), time())
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.report",
                                     description=DESCRIPTION)
    parser.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    parser.add_argument("--since", type=_moment, help="ISO date or date-time, inclusive (UTC)")
    parser.add_argument("--until", type=lambda t: _moment(t, end_of_day=True),
                        help="ISO date (inclusive: the whole day) or date-time (exclusive)")
    parser.add_argument("--source", action="append", choices=SOURCES,
                        help="repeatable; default: live")
    parser.add_argument("--endpoint", action="append", choices=ENDPOINT_KINDS,
                        help="endpoint kind, repeatable")
    parser.add_argument("--model", action="append", help="repeatable")
    parser.add_argument("--mode", action="append", choices=MODES, help="repeatable")
    parser.add_argument("--status", action="append", choices=("ok", "error", "cancelled"))
    parser.add_argument("--prompt-contains", default="", help="case-insensitive, literal text")
    parser.add_argument("--threshold", action="append", type=float, metavar="SECONDS",
                        help="patience threshold, repeatable; default: 1 and 3")
    parser.add_argument("--database-url", help="default: DATABASE_URL or the user's data folder")
    args = parser.parse_args(argv)
    filters = history.Filters(
        since=args.since, until=args.until,
        sources=tuple(args.source or history.DEFAULT_SOURCES),
        endpoint_kinds=tuple(args.endpoint or ()), models=tuple(args.model or ()),
        modes=tuple(args.mode or ()), statuses=tuple(args.status or ()),
        prompt_contains=args.prompt_contains,
    )
    thresholds = tuple(t for t in (args.threshold or stats.DEFAULT_THRESHOLDS_S) if t > 0)
    if not thresholds:
        parser.error("--threshold must be a positive number of seconds")
    try:
        store = Store(args.database_url or load_settings().database_url)
        document = build(store.engine, filters, thresholds)
        runs = history.count(store.engine, filters)
    except StreamRaceError as exc:
        return fail(exc)
    try:
        args.out.write_text(document, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({runs:,} runs, {len(document) / 1e6:.1f} MB)")
    return 0


"""python -m lib.race: one race on the configured endpoint, its table and summary.

    python -m lib.race --prompt "Why stream?"      # one race on the configured endpoint
    python -m lib.race --prompt "Why stream?" \
        --lane label=ours,base_url=http://127.0.0.1:8000/v1,model=qwen,mode=streaming \
        --lane endpoint=local,mode=streaming --lane endpoint=local,mode=blocking
"""

from __future__ import annotations

import argparse
import os

from lib.cli.common import (
    add_cli_arguments,
    cli_params,
    cli_settings,
    fail,
    format_table,
    prompt_text,
)
from lib.core.calls import check_request
from lib.core.config import load_endpoints
from lib.core.errors import StreamRaceError
from lib.endpoints.resolve import resolve
from lib.race import (
    parse_spec,
    ranking_lines,
    resolve_lanes,
    run_headless,
    spread_line,
    summary_line,
)
from lib.storage.store import Store

DESCRIPTION = (
    "The race: the same prompt sent blocking and streamed at the same instant."
)
"""What --help says first (unchanged since the command was written: scripts may show it)."""

LANE_HELP = (
    "a lane of the race (2 to 4, one flag each; without it: blocking beside streamed on the "
    "configured endpoint): comma-separated key=value pairs, label, mode (blocking|streaming), "
    "model, and endpoint (a configured endpoint's name or a kind, e.g. local; default the "
    "endpoint flags') or base_url (a compatible endpoint); optional api_key_env (the variable "
    "holding its key), effort (reasoning effort) and thinking (on|off). E.g. "
    "label=ours,base_url=http://127.0.0.1:8000/v1,model=qwen,mode=streaming"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.race",
                                     description=DESCRIPTION)
    parser.add_argument("--prompt", required=True, type=prompt_text,
                        help="the prompt; '-' reads it from standard input")
    parser.add_argument("--lane", action="append", metavar="SPEC", default=[], help=LANE_HELP)
    add_cli_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = cli_settings(args)
    try:
        # Checked before anything starts: no model server, no database for a bad prompt.
        check_request(args.prompt, cli_params(args))
        specs = [parse_spec(spec) for spec in args.lane]
        if specs:
            lanes = resolve_lanes(specs, load_endpoints(), settings, os.environ)
            store = Store(settings.database_url)
            traces = run_headless(lanes, args.prompt, cli_params(args), store)
        else:
            endpoint = resolve(settings)
            store = Store(settings.database_url)
            traces = run_headless(endpoint, args.prompt, cli_params(args, endpoint), store)
    except StreamRaceError as exc:
        return fail(exc)
    if specs:
        print(format_table(traces, lanes=True))
        print("\n".join(ranking_lines(traces)))
        print(spread_line(traces))
    else:
        print(format_table(traces))
        print(summary_line(*traces))
    print(
        f"logged race {traces[0].race_id} to "
        f"{store.engine.url.render_as_string(hide_password=True)}"
    )
    return 0 if all(trace.status == "ok" for trace in traces) else 1

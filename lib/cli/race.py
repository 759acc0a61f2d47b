"""python -m lib.race: one race on the configured endpoint, its table and summary.

    python -m lib.race --prompt "Why stream?"      # one race on the configured endpoint
    python -m lib.race --schema report             # a structured race: a report, field by field
    python -m lib.race --prompt "Why stream?" \
        --lane label=ours,base_url=http://127.0.0.1:8000/v1,model=qwen,mode=streaming \
        --lane endpoint=local,mode=streaming --lane endpoint=local,mode=blocking
"""

from __future__ import annotations

import argparse
import os

from lib.cli.common import (
    add_cli_arguments,
    add_schema_arguments,
    cli_params,
    cli_settings,
    cli_structure,
    fail,
    format_table,
    prompt_text,
)
from lib.core.calls import check_request
from lib.core.config import load_endpoints
from lib.core.errors import StreamRaceError
from lib.endpoints.resolve import resolve
from lib.present.structured import figure_lines
from lib.race import (
    parse_spec,
    ranking_lines,
    resolve_lanes,
    run_headless,
    spread_line,
    summary_line,
)
from lib.storage.store import Store
from lib.structured.schemas import schema_prompt

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
    parser.add_argument("--prompt", type=prompt_text,
                        help="the prompt; '-' reads it from standard input (with --schema, "
                             "default: the schema's own prompt)")
    parser.add_argument("--lane", action="append", metavar="SPEC", default=[], help=LANE_HELP)
    add_cli_arguments(parser)
    add_schema_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.prompt is None and not args.structure:
        parser.error("the following arguments are required: --prompt")
    try:
        settings = cli_settings(args)
        structure = cli_structure(args, settings.endpoint_kind)
        if args.prompt is None:
            args.prompt = schema_prompt(structure)
        # Checked before anything starts: no model server, no database for a bad prompt.
        check_request(args.prompt, cli_params(args))
        specs = [parse_spec(spec) for spec in args.lane]
        if specs:
            lanes = resolve_lanes(specs, load_endpoints(), settings, os.environ)
            store = Store(settings.database_url)
            traces = run_headless(lanes, args.prompt, cli_params(args), store,
                                  structure=structure)
        else:
            endpoint = resolve(settings)
            store = Store(settings.database_url)
            traces = run_headless(endpoint, args.prompt, cli_params(args, endpoint), store,
                                  structure=structure)
    except StreamRaceError as exc:
        return fail(exc)
    if specs:
        print(format_table(traces, lanes=True))
    else:
        print(format_table(traces))
    for line in figure_lines(traces):
        print(line)
    if specs:
        print("\n".join(ranking_lines(traces)))
        print(spread_line(traces))
    else:
        print(summary_line(*traces))
    print(
        f"logged race {traces[0].race_id} to "
        f"{store.engine.url.render_as_string(hide_password=True)}"
    )
    return 0 if all(trace.status == "ok" for trace in traces) else 1

"""python -m lib.race: one race on the configured endpoint, its table and summary.

    python -m lib.race --prompt "Why stream?"      # one race on the configured endpoint
    python -m lib.race --schema report             # a structured race: a report, field by field
"""

from __future__ import annotations

import argparse

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
from lib.core.errors import StreamRaceError
from lib.endpoints.resolve import resolve
from lib.present.structured import figure_lines
from lib.race import run_headless, summary_line
from lib.storage.store import Store
from lib.structured.schemas import schema_prompt

DESCRIPTION = (
    "The race: the same prompt sent blocking and streamed at the same instant."
)
"""What --help says first (unchanged since the command was written: scripts may show it)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.race",
                                     description=DESCRIPTION)
    parser.add_argument("--prompt", type=prompt_text,
                        help="the prompt; '-' reads it from standard input (with --schema, "
                             "default: the schema's own prompt)")
    add_cli_arguments(parser)
    add_schema_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.prompt is None and not args.structure:
        parser.error("the following arguments are required: --prompt")
    settings = cli_settings(args)
    try:
        structure = cli_structure(args, settings.endpoint_kind)
        if args.prompt is None:
            args.prompt = schema_prompt(structure)
        # Checked before anything starts: no model server, no database for a bad prompt.
        check_request(args.prompt, cli_params(args))
        endpoint = resolve(settings)
        params = cli_params(args, endpoint)
        store = Store(settings.database_url)
        blocking, streaming = run_headless(endpoint, args.prompt, params, store,
                                           structure=structure)
    except StreamRaceError as exc:
        return fail(exc)
    print(format_table([blocking, streaming]))
    for line in figure_lines([blocking, streaming]):
        print(line)
    print(summary_line(blocking, streaming))
    print(
        f"logged race {blocking.race_id} to {store.engine.url.render_as_string(hide_password=True)}"
    )
    return 0 if blocking.status == streaming.status == "ok" else 1



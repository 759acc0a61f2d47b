"""python -m lib.guards: one guardrails run on the configured endpoint, a table per strategy.

    python -m lib.guards --structure report --plant ops@example.com   # `field` among them
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from lib.cli.common import (
    add_cli_arguments,
    add_schema_arguments,
    aligned,
    cli_params,
    cli_settings,
    cli_structure,
    fail,
    prompt_text,
)
from lib.core.calls import check_request
from lib.core.config import moderation_config
from lib.core.errors import InvalidInput, StreamRaceError
from lib.endpoints.resolve import resolve
from lib.guards import (
    ALL_STRATEGIES,
    DEFAULT_SCHEMA,
    PRESETS,
    TABLE_FIELDS,
    VALIDATORS,
    GuardOptions,
    Plant,
    ValidatorSettings,
    build_validators,
    check_strategies,
    run_headless,
    strategies_for,
    summary_rows,
)
from lib.storage.store import Store
from lib.structured.schemas import schema_prompt

STRUCTURED_MAX_TOKENS = 400
"""--max-tokens with --structure unless given: room for a shipped schema's whole object."""

DESCRIPTION = (
    "Guardrails: what validating a streamed answer costs, and what streaming it exposes."
)
"""What --help says first (unchanged since the command was written: scripts may show it)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib.guards", description=DESCRIPTION
    )
    parser.add_argument(
        "--prompt",
        type=prompt_text,
        help="default: the contact-details preset (with --structure, the schema's prompt); "
             "'-' reads it from standard input",
    )
    parser.add_argument(
        "--strategies",
        help="comma-separated: " + ", ".join(ALL_STRATEGIES) + " (default: all; `field` only "
             "with --structure)",
    )
    parser.add_argument(
        "--validators", default="pii", help="comma-separated: " + ", ".join(VALIDATORS)
    )
    parser.add_argument("--plant", metavar="TEXT", help="insert this violation into the stream")
    parser.add_argument(
        "--plant-at",
        type=float,
        default=0.5,
        metavar="FRACTION",
        help="where, as a fraction of --max-tokens (default 0.5)",
    )
    parser.add_argument(
        "--banned", default=",".join(ValidatorSettings.banned), help="comma-separated terms"
    )
    parser.add_argument("--max-chars", type=int, default=ValidatorSettings.max_chars)
    parser.add_argument(
        "--schema", type=Path, metavar="FILE", help="JSON Schema file (default: name + email)"
    )
    parser.add_argument("--on-fail", choices=("redact", "retract"), default=GuardOptions.on_fail)
    parser.add_argument("--window-tokens", type=int, default=GuardOptions.chunk_size)
    parser.add_argument("--window-context", type=int, default=GuardOptions.context_size)
    parser.add_argument(
        "--stream-first",
        action=argparse.BooleanOptionalAction,
        default=GuardOptions.stream_first,
        help="window: release, then validate",
    )
    parser.add_argument("--out", type=Path, metavar="CSV", help="also write the table here")
    add_cli_arguments(parser, max_tokens=None)  # None: set in main(), by the answer's kind
    add_schema_arguments(parser, "--structure")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = cli_settings(args)
        # Everything is checked before the model or the run log is touched.
        structure = cli_structure(args, settings.endpoint_kind)
        if args.prompt is None:
            args.prompt = schema_prompt(structure) if structure else PRESETS[0].prompt
        if args.max_tokens is None:  # a report needs room to close its object
            args.max_tokens = STRUCTURED_MAX_TOKENS if structure else PRESETS[0].max_tokens
        params = cli_params(args)
        check_request(args.prompt, params)
        strategies = check_strategies(args.strategies.split(",") if args.strategies
                                      else strategies_for(structure is not None))
        options = GuardOptions(
            args.on_fail, args.window_tokens, args.window_context, args.stream_first
        )
        validators = build_validators(args.validators.split(","), _validator_settings(args))
        plant = (
            Plant.at_fraction(args.plant, args.plant_at, args.max_tokens)
            if args.plant is not None
            else None
        )
        endpoint = resolve(settings)
        store = Store(settings.database_url)
        traces = run_headless(
            endpoint,
            args.prompt,
            cli_params(args, endpoint),
            validators,
            strategies,
            options,
            plant,
            store,
            structure=structure,
        )
    except StreamRaceError as exc:
        return fail(exc)
    rows = summary_rows(traces)
    print(aligned(TABLE_FIELDS, rows))
    base = traces[0]
    if base.error:
        print(f"error: {base.error}")
    if args.out:
        with args.out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=TABLE_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.out}")
    print(
        f"logged run {base.race_id} ({len(traces)} rows) to "
        f"{store.engine.url.render_as_string(hide_password=True)}"
    )
    return 0 if base.status == "ok" else 1


def _validator_settings(args: argparse.Namespace) -> ValidatorSettings:
    schema: dict | str = dict(DEFAULT_SCHEMA)
    if args.schema is not None:
        try:
            schema = args.schema.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(
                f"Cannot read the schema file {args.schema}: {exc.strerror}."
            ) from None
    url, key = moderation_config()
    return ValidatorSettings(
        banned=tuple(args.banned.split(",")),
        max_chars=args.max_chars,
        schema=schema,
        moderation_url=url,
        moderation_key=key,
    )


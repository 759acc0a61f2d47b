"""What every `python -m lib.<name>` command shares: the endpoint and sampling flags, the
prompt input, the text table, the one-line error exit, and how a command ends on a signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Callable

from lib.core import metrics
from lib.core.config import ENDPOINT_KINDS, Settings, load_settings
from lib.core.errors import StreamRaceError
from lib.core.trace import Params, Trace
from lib.endpoints import Endpoint
from lib.endpoints.resolve import default_params


def add_endpoint_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Where the calls go: the same four flags, with the same meaning, in every command."""
    parser.add_argument("--endpoint", choices=ENDPOINT_KINDS,
                        help="default: compatible with --base-url, else STREAMRACE_ENDPOINT "
                             "or local")
    parser.add_argument(
        "--base-url",
        help="an OpenAI-compatible base URL, e.g. "
        "http://127.0.0.1:8000/v1 (default: STREAMRACE_BASE_URL)",
    )
    parser.add_argument("--model", help="default: STREAMRACE_MODEL")
    parser.add_argument("--api-key-env", metavar="VAR", help="read the key from this variable")


def add_database_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--database-url", help="default: DATABASE_URL or the user's data folder")


def add_cli_arguments(parser: argparse.ArgumentParser,
                      max_tokens: int | None = Params.max_tokens) -> None:
    """The flags of a command that makes calls: endpoint, sampling, run log."""
    add_endpoint_arguments(parser)
    parser.add_argument("--max-tokens", type=int, default=max_tokens)
    parser.add_argument("--temperature", type=float, default=Params.temperature)
    parser.add_argument("--seed", type=int, default=Params.seed)
    parser.add_argument("--timeout", type=float, default=Params.timeout_s, help="seconds")
    add_database_argument(parser)


def add_schema_arguments(parser: argparse.ArgumentParser, flag: str = "--schema") -> None:
    """A structured answer: the schema to fill (`flag`, read by `cli_structure`) and how."""
    from lib.structured import SCHEMAS

    parser.add_argument(
        flag, dest="structure", metavar="NAME|JSON|@FILE",
        help=f"ask for a structured answer: a shipped schema ({', '.join(SCHEMAS)}), a JSON "
             "Schema object, or @path to a JSON Schema file")
    parser.add_argument(
        "--output-mode", choices=("auto", "strict", "json", "tool"), default="auto",
        help="how the schema is asked for (auto: strict on the embedded model and OpenAI, "
             "json elsewhere; see the README)")


def cli_structure(args: argparse.Namespace, endpoint_kind: str):
    """The --schema flags as a Structure (None without --schema); InvalidInput when the schema
    cannot be read (a file that is missing, JSON that does not parse)."""
    from lib.core.errors import InvalidInput
    from lib.structured import structure_for

    schema = getattr(args, "structure", None)
    if not schema:
        return None
    if schema.startswith("@"):
        try:
            with open(schema[1:], encoding="utf-8") as handle:
                schema = handle.read()
        except OSError as exc:
            raise InvalidInput(
                f"Cannot read the schema file {schema[1:]}: {exc.strerror}.") from None
    return structure_for(schema, endpoint_kind, args.output_mode)


def cli_settings(args: argparse.Namespace) -> Settings:
    """The configuration with the command's flags applied.

    A --base-url without --endpoint means that URL's server (`compatible`), in every command:
    a URL given on the command line is never silently ignored for the configured endpoint.
    A kind given here is configured as STREAMRACE_ENDPOINT would configure it: its own key
    (OPENAI_API_KEY for `openai`), default model and base URL, never another kind's.
    """
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    kind = args.endpoint or ("compatible" if args.base_url else None)
    environ = dict(os.environ) if kind is None else {**os.environ, "STREAMRACE_ENDPOINT": kind}
    return load_settings(environ).with_overrides(
        base_url=args.base_url,
        model=args.model,
        api_key=api_key,
        database_url=args.database_url,
    )


def fail(error: StreamRaceError) -> int:
    """The one-line error exit: the message a user can act on, on stderr; exit status 2."""
    print(f"error: {error.message}", file=sys.stderr)
    return 2


def cli_params(args: argparse.Namespace, endpoint: Endpoint | None = None) -> Params:
    """The sampling flags as Params (with the endpoint's defaults once it is known)."""
    values = dict(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        timeout_s=args.timeout,
    )
    return default_params(endpoint, **values) if endpoint is not None else Params(**values)


def prompt_text(value: str) -> str:
    """A --prompt value: '-' reads the prompt from standard input (long prompts, any bytes)."""
    return sys.stdin.read() if value == "-" else value


def format_table(traces: list[Trace], lanes: bool = False) -> str:
    """The run-log rows of these traces as an aligned text table (with `lanes`, each row
    starts with its race lane's label)."""
    fields = [
        *(["lane"] if lanes else []),
        "mode",
        "status",
        "client_s",
        "ttft_s",
        "perceived_s",
        "e2e_s",
        "tpot_s",
        "icl_p50_s",
        "icl_max_s",
        "output_tokens",
        "token_source",
        "output_tps",
    ]
    rows = [
        {"lane": trace.lane_label, "mode": trace.mode, "status": trace.status,
         **metrics.compute(trace).as_dict()}
        for trace in traces
    ]
    lines = [aligned(fields, rows)]
    for trace in traces:
        if trace.error:
            lines.append(f"{trace.lane_label if lanes else trace.mode} error: {trace.error}")
    return "\n".join(lines)


def aligned(fields: list[str], rows: list[dict]) -> str:
    """Rows as a text table with a header, one column per field, values formatted."""
    cells = [[_fmt(row[f]) for f in fields] for row in rows]
    widths = [max([len(f), *(len(r[i]) for r in cells)]) for i, f in enumerate(fields)]
    lines = ["  ".join(f.ljust(w) for f, w in zip(fields, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 100 else f"{value:.1f}"
    return str(value)


SIGINT_STATUS = 130
SIGTERM_STATUS = 143
_terminated = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it unwinds exactly as on Ctrl-C: whatever
    is in flight is cancelled and logged by the same code (lib.core.runs)."""


def _terminate(signum: int, frame: object) -> None:
    if not _terminated.is_set():  # once: a second SIGTERM must not interrupt the logging
        _terminated.set()
        raise Terminated()


def run(main: Callable[[], int]) -> int:
    """Run a command's `main` the way `python -m lib.<name>` does.

    SIGTERM (what `timeout`, containers and process managers send) unwinds the command like
    Ctrl-C. The exit status is `main`'s own, except 143 after a SIGTERM, and 130 when an
    interrupt came before anything could be cancelled (e.g. while a server was starting).
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main()
    except KeyboardInterrupt:
        print("interrupted: nothing was running yet", file=sys.stderr)
        code = SIGINT_STATUS
    return SIGTERM_STATUS if _terminated.is_set() else code

"""python -m lib.access check: whether StreamRace may be shared as configured (`make share`).

Exit 0 when sign-in is ready; else one line saying what to configure, on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from lib.access.setup import loopback_redirect, share_problems
from lib.core.config import SECRETS_PATH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.access", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="is sign-in configured for sharing?")
    check.add_argument("--port", type=int, default=8501, help="the port the app will listen on")
    check.add_argument("--secrets", type=Path, default=SECRETS_PATH,
                       help=f"the secrets file (default: {SECRETS_PATH})")
    args = parser.parse_args(argv)
    try:
        with args.secrets.open("rb") as handle:
            secrets = tomllib.load(handle)
    except FileNotFoundError:
        secrets = {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"make share: not started: {args.secrets} cannot be read ({exc}).", file=sys.stderr)
        return 2
    problems = share_problems(secrets, args.port)
    if problems:
        print(f"make share: not started: sign-in is not configured; in {args.secrets}, "
              f"{'; '.join(problems)} (README: Sharing).", file=sys.stderr)
        return 2
    if loopback_redirect(secrets):
        print("make share: note: [auth] redirect_uri points at this machine (localhost): "
              "people on other machines cannot finish signing in until it names this "
              "machine's address.", file=sys.stderr)
    return 0

"""python -m lib.replay: serve, list, save, export, import and delete recordings.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from lib.cli.common import fail
from lib.core.config import load_settings
from lib.core.errors import InvalidInput, StreamRaceError
from lib.replay import ReplayServer, Transform, lookup, summary_rows
from lib.storage.recording import Recording, check_name, dumps, from_rows, loads
from lib.storage.recordings import Recordings
from lib.storage.store import Store

DESCRIPTION = (
    "Record and replay, and what-if: logged runs played back by a real OpenAI-compatible server."
)
"""What --help says first (unchanged since the command was written: scripts may show it)."""


def _transform_from(args: argparse.Namespace) -> Transform:
    return Transform(time_scale=args.scale, max_tokens_per_s=args.cap, jitter_s=args.jitter,
                     seed=args.seed, stall_s=args.stall, stall_at=args.stall_at,
                     first_chunk_delay_s=args.delay)


def _serve(args: argparse.Namespace, store_url: str | None) -> int:
    transform = _transform_from(args)
    if args.file:
        recording = loads(_read(args.file))
        recordings: Mapping[str, Recording] = {recording.name: recording}
        default: str | None = recording.name
    else:
        recordings = Recordings(Store(store_url))
        default = args.recording
        if default is not None:
            lookup(recordings, check_name(default))
    server = ReplayServer(recordings, default=default, transform=transform, port=args.port)
    try:  # from the start: a signal at any moment stops the server cleanly
        server.start()
        names = ", ".join(server.model_names()) or "(no recordings yet)"
        print(f"replaying on {server.base_url}: {names}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (lib.cli.common.run): stop serving
        pass
    finally:
        server.stop()
    return 0


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror}.") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.replay",
                                     description=DESCRIPTION)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help="default: DATABASE_URL or the user's data folder")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002
        return commands.add_parser(name, help=help, parents=[common])

    serve = command("serve", "serve recordings on 127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="default: a free port")
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--recording", metavar="NAME", help="answer unknown model names with it")
    which.add_argument("--file", metavar="F", help="serve this exported recording only")
    serve.add_argument("--delay", type=float, default=0.0,
                       help="seconds added before the first chunk")
    serve.add_argument("--scale", type=float, default=1.0, help="time per token x (0.25-4)")
    serve.add_argument("--cap", type=float, default=None, help="at most this many tokens/s")
    serve.add_argument("--jitter", type=float, default=0.0, help="each gap +- up to this (s)")
    serve.add_argument("--seed", type=int, default=0, help="the jitter's seed")
    serve.add_argument("--stall", type=float, default=0.0, help="a pause of this many seconds")
    serve.add_argument("--stall-at", type=float, default=0.5, help="where: 0-1 of the answer")
    command("list", "list the saved recordings")
    save = command("save", "save logged runs as a recording")
    save.add_argument("name")
    save.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    export = command("export", "write a recording to a JSON file")
    export.add_argument("name")
    export.add_argument("--out", required=True, metavar="F")
    load = command("import", "save a recording from a JSON file")
    load.add_argument("file")
    load.add_argument("--name", help="save it under this name instead")
    load.add_argument("--replace", action="store_true", help="replace one of the same name")
    delete = command("delete", "delete a recording")
    delete.add_argument("name")
    args = parser.parse_args(argv)
    try:
        store_url = args.database_url or load_settings().database_url
        if args.command == "serve":
            return _serve(args, store_url)
        recordings = Recordings(Store(store_url))
        if args.command == "list":
            rows = summary_rows(recordings.all())
            for row in rows:
                print(f"{row['name']:<24} {row['mode']:<9} {row['chunks']:>6} chunks  "
                      f"ttft {row['ttft_s']:.3f} s  e2e {row['e2e_s']:.3f} s  {row['model']}")
            if not rows:
                print("no recordings yet")
        elif args.command == "save":
            frame = Store(store_url).runs(args.run_ids)
            missing = set(args.run_ids) - set(frame["run_id"])
            if missing:
                raise InvalidInput(f"No logged run has the id {sorted(missing)[0]}.")
            recording = from_rows(args.name, frame.to_dict("records"))
            recordings.save(recording)
            print(f"saved '{recording.name}': {len(recording.offsets)} chunks")
        elif args.command == "export":
            Path(args.out).write_text(dumps(lookup(recordings, args.name)), encoding="utf-8")
            print(f"wrote {args.out}")
        elif args.command == "import":
            recording = loads(_read(args.file))
            if args.name:
                recording = replace(recording, name=check_name(args.name))
            recordings.save(recording, replace=args.replace)
            print(f"imported '{recording.name}': {len(recording.offsets)} chunks")
        elif args.command == "delete":
            if not recordings.delete(args.name):
                lookup({}, args.name)
            print(f"deleted '{args.name}'")
    except StreamRaceError as exc:
        return fail(exc)
    return 0


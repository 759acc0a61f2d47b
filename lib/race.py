"""The race: the same prompt sent blocking and streamed at the same instant.

Both calls run on worker threads released together by a barrier; each takes its own
t_start at the release. The renderer (a page, or nothing when headless) reads the stream
through `frames()`, which batches chunks into frames so that a fast stream never waits on
rendering and rendering never alters the timestamps.

    python -m lib.race --prompt "Why stream?"      # one race on the configured endpoint
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Iterator

from lib import endpoints, metrics
from lib.calls import Call, check_request, warm_up
from lib.embedded import REPEAT_PENALTY, STOP
from lib.config import ENDPOINT_KINDS, Settings, load_settings
from lib.endpoints import Endpoint
from lib.errors import StreamRaceError
from lib.store import Store
from lib.trace import Params, Trace

FRAME_S = 0.04
"""Shortest time between two frames handed to the renderer (25 frames a second)."""


@dataclass(frozen=True)
class Preset:
    label: str
    prompt: str
    max_tokens: int


PRESETS = (
    Preset("One-line answer", "In one sentence, what is the capital of France?", 48),
    Preset(
        "Long report (~300 tokens)",
        "Write a report of about 300 words on why streaming responses improve the user "
        "experience of chat applications.",
        300,
    ),
)


class Race:
    """Two calls of the same request, one blocking and one streamed, started together."""

    def __init__(self, endpoint: Endpoint, prompt: str, params: Params, source: str = "live"):
        check_request(prompt, params)
        warm_up()
        self.race_id = uuid.uuid4().hex
        self.blocking = Call(endpoint, prompt, params, "blocking", source=source, race_id=self.race_id)
        self.streaming = Call(endpoint, prompt, params, "streaming", source=source, race_id=self.race_id)
        # The barrier's action runs once, before either worker is released: both calls share
        # one t_start, and whichever thread gets the GIL second pays for it in client_s.
        self._released_at = 0.0
        self._barrier = threading.Barrier(2, action=self._mark_release)
        self._threads: list[threading.Thread] = []

    def _mark_release(self) -> None:
        self._released_at = time.perf_counter()

    @property
    def calls(self) -> tuple[Call, Call]:
        return self.blocking, self.streaming

    @property
    def traces(self) -> tuple[Trace, Trace]:
        return self.blocking.trace, self.streaming.trace

    def start(self) -> "Race":
        def release() -> float:
            self._barrier.wait()
            return self._released_at

        for call in self.calls:
            thread = threading.Thread(
                target=lambda c=call: c.run(release()), daemon=True, name=f"race-{call.trace.mode}"
            )
            thread.start()
            self._threads.append(thread)
        return self

    def cancel(self) -> None:
        """Cancel whatever is still running; finished calls keep their outcome."""
        for call in self.calls:
            if not call.trace.done:
                call.cancel()

    def join(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return all(call.trace.done for call in self.calls)

    @property
    def done(self) -> bool:
        return all(call.trace.done for call in self.calls)

    def elapsed(self) -> float:
        """Seconds since the race started (0 before it did)."""
        starts = [t.t_start for t in self.traces if t.t_start is not None]
        return time.perf_counter() - min(starts) if starts else 0.0

    def frames(self, frame_s: float = FRAME_S, tick_s: float = 0.05) -> Iterator[str]:
        """The streamed text as the renderer should receive it.

        Yields each new batch of text as soon as it arrives, but never two batches within
        `frame_s`; yields "" every `tick_s` while nothing new came (so a caller can update a
        timer). Marks the moment the first text is handed over as the stream's `t_shown`.
        Ends when the streaming call ends.
        """
        call = self.streaming
        trace = call.trace
        seen = 0
        last_frame = 0.0
        while True:
            with call.progress:
                call.progress.wait_for(lambda: len(trace.chunks) > seen or trace.done, tick_s)
                available = len(trace.chunks)
                finished = trace.done
            if available > seen:
                wait = last_frame + frame_s - time.perf_counter()
                if wait > 0 and not finished:
                    time.sleep(wait)  # let more chunks join this frame
                    available = len(trace.chunks)
                text = "".join(chunk.text for chunk in trace.chunks[seen:available])
                seen = available
                if trace.t_shown is None:
                    trace.t_shown = time.perf_counter()
                last_frame = time.perf_counter()
                yield text
            elif finished:
                return
            else:
                yield ""

    def mark_blocking_shown(self) -> None:
        """The renderer has the blocking answer: its blank screen ends now."""
        if self.blocking.trace.chunks and self.blocking.trace.t_shown is None:
            self.blocking.trace.t_shown = time.perf_counter()


def summary_line(blocking: Trace, streaming: Trace) -> str:
    """One sentence on the outcome, for the CLI and the page."""
    factor = metrics.speedup(blocking, streaming)
    if factor is None:
        return "No comparison: at least one call showed no text."
    return f"Streaming showed the first words {factor:.1f}× sooner."


def run_headless(endpoint: Endpoint, prompt: str, params: Params, store: Store | None,
                 timeout_s: float | None = None) -> tuple[Trace, Trace]:
    """Run one race without a renderer, log both rows, return the traces."""
    race = Race(endpoint, prompt, params).start()
    try:
        if not race.join(timeout_s):
            race.cancel()
            race.join(5)
    except KeyboardInterrupt:
        race.cancel()
        race.join(5)
    if store is not None:
        store.log(race.traces)
    return race.traces


def add_cli_arguments(parser: argparse.ArgumentParser, max_tokens: int = Params.max_tokens) -> None:
    """The flags every `python -m lib.<name>` command shares: endpoint, sampling, run log."""
    parser.add_argument("--endpoint", choices=ENDPOINT_KINDS, help="default: STREAMRACE_ENDPOINT or local")
    parser.add_argument("--base-url", help="default: STREAMRACE_BASE_URL")
    parser.add_argument("--model", help="default: STREAMRACE_MODEL")
    parser.add_argument("--api-key-env", metavar="VAR", help="read the key from this variable")
    parser.add_argument("--max-tokens", type=int, default=max_tokens)
    parser.add_argument("--temperature", type=float, default=Params.temperature)
    parser.add_argument("--seed", type=int, default=Params.seed)
    parser.add_argument("--timeout", type=float, default=Params.timeout_s, help="seconds")
    parser.add_argument("--database-url", help="default: DATABASE_URL or the user's data folder")


def cli_settings(args: argparse.Namespace) -> Settings:
    """The configuration with the command's flags applied."""
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    return load_settings().with_overrides(
        endpoint_kind=args.endpoint, base_url=args.base_url, model=args.model,
        api_key=api_key, database_url=args.database_url,
    )


def cli_params(args: argparse.Namespace, endpoint: Endpoint | None = None) -> Params:
    """The sampling flags as Params (with the endpoint's defaults once it is known)."""
    values = dict(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed,
                  timeout_s=args.timeout)
    return default_params(endpoint, **values) if endpoint is not None else Params(**values)


def prompt_text(value: str) -> str:
    """A --prompt value: '-' reads the prompt from standard input (long prompts, any bytes)."""
    return sys.stdin.read() if value == "-" else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.race", description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", required=True, type=prompt_text,
                        help="the prompt; '-' reads it from standard input")
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    settings = cli_settings(args)
    try:
        # Checked before anything starts: no model server, no database for a bad prompt.
        check_request(args.prompt, cli_params(args))
        endpoint = endpoints.resolve(settings)
        params = cli_params(args, endpoint)
        store = Store(settings.database_url)
        blocking, streaming = run_headless(endpoint, args.prompt, params, store)
    except StreamRaceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(format_table([blocking, streaming]))
    print(summary_line(blocking, streaming))
    print(f"logged race {blocking.race_id} to {store.engine.url.render_as_string(hide_password=True)}")
    return 0 if blocking.status == streaming.status == "ok" else 1


def default_params(endpoint: Endpoint, **overrides) -> Params:
    """Sampling defaults: the embedded base model also gets a repeat penalty."""
    if endpoint.kind == "local":
        overrides.setdefault("repeat_penalty", REPEAT_PENALTY)
        overrides.setdefault("stop", STOP)
    return Params(**overrides)


def format_table(traces: list[Trace]) -> str:
    """The run-log rows of these traces as an aligned text table."""
    fields = ["mode", "status", "client_s", "ttft_s", "perceived_s", "e2e_s", "tpot_s",
              "icl_p50_s", "icl_max_s", "output_tokens", "token_source", "output_tps"]
    rows = [{"mode": trace.mode, "status": trace.status, **metrics.compute(trace).as_dict()}
            for trace in traces]
    lines = [aligned(fields, rows)]
    for trace in traces:
        if trace.error:
            lines.append(f"{trace.mode} error: {trace.error}")
    return "\n".join(lines)


def aligned(fields: list[str], rows: list[dict]) -> str:
    """Rows as a text table with a header, one column per field, values formatted."""
    rows = [[_fmt(row[f]) for f in fields] for row in rows]
    widths = [max([len(f), *(len(r[i]) for r in rows)]) for i, f in enumerate(fields)]
    lines = ["  ".join(f.ljust(w) for f, w in zip(fields, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 100 else f"{value:.1f}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())

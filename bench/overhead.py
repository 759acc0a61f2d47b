"""Client overhead per chunk: our streaming path against a bare httpx SSE reader.

A `lib.playback.PlaybackServer` in a separate process (bench/_playback_proc.py, so its sending
thread does not compete with the client for the GIL) sends one script of many chunks back to
back (every offset 0) on 127.0.0.1. Two readers take the same stream, alternating, repeated:

  ours  `lib.calls.Call(..., "streaming").run()`: Mirascope 2 `text_stream(sep="")` over
        the OpenAI SDK (chunks decoded by pydantic-core); chunk times from the trace.
  raw   `httpx.Client().stream("POST", base_url + "/chat/completions", json=...)`,
        `iter_lines()`, `json.loads` of each `data:` line, `choices[0].delta.content`,
        each non-empty content stamped with `time.perf_counter()`.

Per-chunk time = (last chunk received − first chunk received) / (chunks − 1), wall clock,
median over the repetitions; the figure is ours / raw. Both get a fresh client (so a fresh
connection) per call, as `Call` does. Where the time goes, also printed:
  - CPU µs/chunk: the reading thread's CPU time over the whole call / chunks. Steadier than
    wall time on a loaded machine.
  - GC µs/chunk: wall time inside the garbage collector (`gc.callbacks`); Mirascope keeps
    every raw chunk of a stream, so ours gives the collector work.
  - the server's own send time per chunk: a reader cannot go faster than the server sends,
    so when raw ≈ server the ratio understates our overhead (the CPU column tells it then).

    .venv/bin/python bench/overhead.py [--chunks 2000] [--reps 15]     # ~20 s
        --variants  also time our client split by layer: the OpenAI SDK stream alone (no
                    Mirascope), and Mirascope's `chunk_stream()` (no `text_stream` layers)
        --profile   cProfile (CPU-time clock) one of our calls; print the top functions

Prints the table; the last line is the ratio, `overhead_ratio=…` (target <= 1.2). Exits 1
only on a gross failure (a call not ok, or chunks missing).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs us by path

import httpx  # noqa: E402

from bench._playback_proc import RemotePlayback  # noqa: E402
from lib.core.calls import Call, warm_up  # noqa: E402
from lib.core.metrics import percentile  # noqa: E402
from lib.core.trace import MODES, Params  # noqa: E402
from lib.endpoints import Endpoint  # noqa: E402
from lib.serving.playback import WORDS, Script  # noqa: E402

TARGET_RATIO = 1.2
MODEL = "burst"
PROMPT = "overhead probe"
PARAMS = Params(temperature=0.0, max_tokens=8192, timeout_s=30.0)


class Result(NamedTuple):
    times: list[float]
    """perf_counter() at the receipt of each non-empty text."""
    cpu_s: float
    """The reading thread's CPU time over the call."""


def _new_call(endpoint: Endpoint) -> Call:
    return Call(endpoint, PROMPT, PARAMS, "streaming", source="benchmark")


def read_ours(endpoint: Endpoint) -> Result:
    call = _new_call(endpoint)
    cpu = time.thread_time()
    trace = call.run()
    cpu = time.thread_time() - cpu
    if trace.status != "ok":
        raise RuntimeError(f"our call ended {trace.status}: {trace.error}")
    return Result([chunk.t for chunk in trace.chunks], cpu)


def read_raw(endpoint: Endpoint) -> Result:
    body = {"model": endpoint.model, "messages": [{"role": "user", "content": PROMPT}],
            "stream": True, "stream_options": {"include_usage": True},
            "temperature": PARAMS.temperature, "max_tokens": PARAMS.max_tokens}
    times: list[float] = []
    with httpx.Client(timeout=PARAMS.timeout_s) as client:
        cpu = time.thread_time()
        with client.stream("POST", endpoint.url_for("streaming") + "/chat/completions",
                           json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:]).get("choices")
                if choices and choices[0]["delta"].get("content"):
                    times.append(time.perf_counter())
        cpu = time.thread_time() - cpu
    return Result(times, cpu)


# -- the layers of our path (--variants) ---------------------------------------------------
# Call exposes no public way to run a lower layer alone; these two readers take the call's own
# provider (`_provider`: our OpenAI client, socket tracker and t0 hook) and request (`_kwargs`),
# so they differ from `ours` only in the layers they leave out.

def read_sdk(endpoint: Endpoint) -> Result:
    """The OpenAI SDK's stream alone, on our client: no Mirascope."""
    client = _new_call(endpoint)._provider.client  # private: see above
    times: list[float] = []
    cpu = time.thread_time()
    stream = client.chat.completions.create(
        model=endpoint.model, messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True}, temperature=PARAMS.temperature,
        max_tokens=PARAMS.max_tokens)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    cpu = time.thread_time() - cpu
    client.close()
    return Result(times, cpu)


def read_chunk_stream(endpoint: Endpoint) -> Result:
    """Our provider and request, Mirascope's `chunk_stream()` instead of `text_stream()`."""
    call = _new_call(endpoint)
    times: list[float] = []
    cpu = time.thread_time()
    stream = call._provider.stream(**call._kwargs)  # private: see above
    for chunk in stream.chunk_stream():
        if chunk.type == "text_chunk" and chunk.delta:
            times.append(time.perf_counter())
    cpu = time.thread_time() - cpu
    call._provider.client.close()
    return Result(times, cpu)


def profile_ours(endpoint: Endpoint, top: int = 25) -> str:
    profiler = cProfile.Profile(time.thread_time)  # CPU time: immune to preemption
    profiler.runcall(_new_call(endpoint).run)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


class GcClock:
    """The client's wall time inside the garbage collector, all generations."""

    def __init__(self) -> None:
        self.total = 0.0
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--reps", type=int, help="repetitions (default 15, 8 with --variants)")
    parser.add_argument("--variants", action="store_true", help="also time our path by layer")
    parser.add_argument("--profile", action="store_true", help="cProfile one of our calls")
    args = parser.parse_args(argv)

    n = args.chunks
    reps = args.reps or (8 if args.variants else 15)
    script = Script(offsets=(0.0,) * n, texts=tuple(WORDS[i % len(WORDS)] + " " for i in range(n)))
    readers: dict[str, Callable[[Endpoint], Result]] = {"ours": read_ours, "raw": read_raw}
    if args.variants:
        readers |= {"openai sdk only": read_sdk, "mirascope chunk_stream": read_chunk_stream}

    warm_up()
    gc_clock = GcClock()
    gc.callbacks.append(gc_clock)
    failures: list[str] = []
    wall = {name: [] for name in readers}
    cpu = {name: [] for name in readers}
    in_gc = {name: [] for name in readers}
    server_send: list[float] = []
    with RemotePlayback({MODEL: script}) as server:
        endpoint = Endpoint("compatible", MODEL, {mode: server.base_url for mode in MODES})
        for read in readers.values():  # one discarded call each: connections, caches
            read(endpoint)
        server.records()
        names = list(readers)
        for rep in range(reps):
            for name in names if rep % 2 == 0 else names[::-1]:
                gc_before = gc_clock.total
                result = readers[name](endpoint)
                in_gc[name].append((gc_clock.total - gc_before) / n)
                sent = server.records()[0]["sent"]
                if len(result.times) != n:
                    failures.append(f"{name}: {len(result.times)} of {n} chunks")
                    continue
                wall[name].append((result.times[-1] - result.times[0]) / (n - 1))
                cpu[name].append(result.cpu_s / n)
                server_send.append((sent[-1] - sent[0]) / (n - 1))
        if args.profile:
            print(profile_ours(endpoint))
    gc.callbacks.remove(gc_clock)

    for failure in failures[:10]:
        print("FAILED", failure, file=sys.stderr)
    if not wall["ours"] or not wall["raw"]:
        return 1
    med = {name: percentile(values, 50) for name, values in wall.items() if values}
    print(f"{n} chunks sent back to back, {reps} alternating repetitions "
          f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    print(f"  {'reader':<24}{'wall µs/chunk':>14}{'  (min–max)':>18}{'CPU µs/chunk':>14}"
          f"{'GC µs/chunk':>13}{'vs raw':>8}   (wall, CPU: medians; GC: mean)")
    for name in med:
        print(f"  {name:<24}{med[name] * 1e6:14.2f}  "
              f"({min(wall[name]) * 1e6:6.2f}–{max(wall[name]) * 1e6:6.2f})"
              f"{percentile(cpu[name], 50) * 1e6:14.2f}"
              f"{sum(in_gc[name]) / len(in_gc[name]) * 1e6:13.2f}{med[name] / med['raw']:8.2f}")
    server_med = percentile(server_send, 50)
    print(f"  {'server send (for ref.)':<24}{server_med * 1e6:14.2f}")
    if med["raw"] < server_med * 1.1:
        print("  note: raw reads as fast as the server sends: the ratio understates our "
              "overhead; compare the CPU column")
    print(f"ours_us_per_chunk={med['ours'] * 1e6:.2f}")
    print(f"raw_us_per_chunk={med['raw'] * 1e6:.2f}")
    print(f"cpu_ratio={percentile(cpu['ours'], 50) / percentile(cpu['raw'], 50):.2f}")
    print(f"target: overhead_ratio <= {TARGET_RATIO}")
    print(f"overhead_ratio={med['ours'] / med['raw']:.2f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

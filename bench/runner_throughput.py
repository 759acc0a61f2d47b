"""Requests per second the benchmark runner sustains, against a plain httpx async client.

A `lib.playback.PlaybackServer` in a child process (`bench/_playback_proc.py`) answers every
request at once (one chunk, "ok", then usage and [DONE]). Both clients send the same
streaming Chat Completions request `--requests` times with at most `--concurrency` in flight,
alternating, `--reps` times:

  runner      `lib.bench.Benchmark` (streaming only, warm-up of one round first): every
              request a `lib.calls.Call` on a worker thread: Mirascope 2, the OpenAI SDK,
              httpx, a new connection per call (so that a call can be cancelled alone).
              req/s = measured requests / the measured phase's span (lib.bench.measured_span).
  httpx async `httpx.AsyncClient` (its connection pool, keep-alive), an asyncio.Semaphore of
              the same size, the same JSON body, the SSE read to [DONE].
              req/s = requests / wall time from the first send to the last response read.
  httpx async, new connection each: the same with a fresh AsyncClient per request, which is
              what the runner does per call (for reference: it shows the connection's part).

The client's CPU per request (process CPU time / requests; the server is another process) and
its CPU share (CPU time / wall time; 100% = a core) are printed too. Both clients are
CPU-bound; when other work loads the machine, the OS gives our 64 threads a larger share
than the event loop's one thread, and the wall ratio flatters us: then read the CPU ratio.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/runner_throughput.py [--requests 1000]
        [--concurrency 64] [--reps 3] [--switch-interval-ms 5]

The last line is the ratio runner / httpx async (median req/s), target >= 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs us by path

from bench._playback_proc import RemotePlayback
from lib.bench import Benchmark, BenchPrompt, BenchSettings, PromptSet, measured_span
from lib.core import metrics
from lib.core.calls import warm_up
from lib.core.trace import MODES, Params
from lib.endpoints import Endpoint
from lib.serving.playback import Script

TARGET_RATIO = 0.8
MODEL = "instant"
PROMPT = "throughput probe"
PARAMS = Params(temperature=0.0, max_tokens=16, timeout_s=30.0)


def runner(base_url: str, requests: int, concurrency: int) -> tuple[float, float, float, int]:
    endpoint = Endpoint("compatible", MODEL, {m: base_url for m in MODES})
    settings = BenchSettings(prompts=PromptSet("t", (BenchPrompt(PROMPT),), PARAMS.max_tokens),
                             modes=("streaming",), requests=requests, concurrency=concurrency,
                             warmup=concurrency)
    run = Benchmark(endpoint, settings, PARAMS)
    cpu, wall = time.process_time(), time.perf_counter()
    run.start().join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    measured = [t for t in run.traces if t.bench_phase == "measured"]
    failed = sum(t.status != "ok" for t in measured)
    return (len(measured) / measured_span(run.traces), cpu / (requests + concurrency),
            cpu / wall, failed)


def body() -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "stream_options": {"include_usage": True}, "temperature": PARAMS.temperature,
            "max_tokens": PARAMS.max_tokens, "seed": PARAMS.seed}


async def _one(client: httpx.AsyncClient, url: str, payload: dict) -> bool:
    async with client.stream("POST", url, json=payload) as response:
        if response.status_code != 200:
            return False
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                return True
            if line.startswith("data: "):
                json.loads(line[6:])
    return False


async def _plain(base_url: str, requests: int, concurrency: int, pooled: bool) -> tuple[float, int]:
    url, payload = base_url + "/chat/completions", body()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    tls = httpx.create_ssl_context()  # once: httpx builds one per client otherwise (~40 ms)
    shared = httpx.AsyncClient(timeout=PARAMS.timeout_s, limits=limits, verify=tls)

    async def send() -> bool:
        async with gate:
            if pooled:
                return await _one(shared, url, payload)
            async with httpx.AsyncClient(timeout=PARAMS.timeout_s, verify=tls) as own:
                return await _one(own, url, payload)

    await asyncio.gather(*(send() for _ in range(concurrency)))  # warm-up round, as the runner
    began = time.perf_counter()
    results = await asyncio.gather(*(send() for _ in range(requests)))
    elapsed = time.perf_counter() - began
    await shared.aclose()
    return requests / elapsed, results.count(False)


def plain(base_url: str, requests: int, concurrency: int, pooled: bool
          ) -> tuple[float, float, float, int]:
    cpu, wall = time.process_time(), time.perf_counter()
    rps, failed = asyncio.run(_plain(base_url, requests, concurrency, pooled))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return rps, cpu / (requests + concurrency), cpu / wall, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--switch-interval-ms", type=float,
                        help="sys.setswitchinterval for this run (Python's default: 5 ms)")
    args = parser.parse_args(argv)
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    warm_up()
    clients = {
        "runner (lib.bench)": lambda url: runner(url, args.requests, args.concurrency),
        "httpx async": lambda url: plain(url, args.requests, args.concurrency, pooled=True),
        "httpx async, new conn.": lambda url: plain(
            url, args.requests, args.concurrency, pooled=False
        ),
    }
    rps: dict[str, list[float]] = {name: [] for name in clients}
    cpu: dict[str, list[float]] = {name: [] for name in clients}
    share: dict[str, list[float]] = {name: [] for name in clients}
    failures = 0
    load_before = os.getloadavg()[0]
    with RemotePlayback({MODEL: Script(offsets=(0.0,), texts=("ok",))}) as server:
        names = list(clients)
        for rep in range(args.reps):
            for name in names if rep % 2 == 0 else names[::-1]:
                value, per_request, cpu_share, failed = clients[name](server.base_url)
                rps[name].append(value)
                cpu[name].append(per_request)
                share[name].append(cpu_share)
                failures += failed
                server.records()  # keep the child's memory flat

    print(
        f"{args.requests} streaming requests at concurrency {args.concurrency}, "
        f"{args.reps} alternating repetitions, medians; GIL switch interval "
        f"{sys.getswitchinterval() * 1e3:g} ms; load average {load_before:.2f} -> "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        f"  {'client':<24}{'req/s':>9}{'  (min–max)':>16}{'client CPU ms/req':>19}{'CPU share':>11}"
    )
    for name in clients:
        print(
            f"  {name:<24}{metrics.percentile(rps[name], 50):9.1f}  "
            f"({min(rps[name]):6.1f}–{max(rps[name]):6.1f})"
            f"{metrics.percentile(cpu[name], 50) * 1e3:19.2f}"
            f"{metrics.percentile(share[name], 50):11.0%}"
        )
    # Both clients are CPU-bound (one core at most: the GIL, one event loop). Under other
    # load the OS gives a 64-thread process more CPU than a one-thread one, which flatters
    # the runner's wall figure: the CPU figure is the one the machine's load does not move.
    cpu_ratio = metrics.percentile(cpu["httpx async"], 50) / metrics.percentile(
        cpu["runner (lib.bench)"], 50
    )
    print(
        f"cpu_bound_ratio_runner_over_httpx={cpu_ratio:.2f} (httpx CPU per request / ours: "
        f"the wall ratio on an otherwise idle core)"
    )
    if failures:
        print(f"  {failures} requests failed", file=sys.stderr)
    ours = metrics.percentile(rps["runner (lib.bench)"], 50)
    plain_rps = metrics.percentile(rps["httpx async"], 50)
    print(f"runner_rps={ours:.1f}")
    print(f"httpx_async_rps={plain_rps:.1f}")
    print(f"ratio_runner_over_httpx={ours / plain_rps:.2f} (target >= {TARGET_RATIO})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The embedded model's server, measured: start, memory, first token and tokens/s per lane.

    .venv/bin/python bench/embedded_server.py [--rounds 5]
    .venv/bin/python bench/embedded_server.py --llama-cpp-python /path/to/python

By default it measures what the app runs: llama.cpp's `llama-server` (lib.serving.embedded:
one process, parallel slots). With `--llama-cpp-python PYTHON` it measures what the app ran
before: two `python -m llama_cpp.server` processes (llama-cpp-python 0.3.x, one request at a
time each), one per lane, one thread each, from a venv where that package is installed.

Each round sends the race's two requests at the same instant (one per lane, streamed, the same
prompt, up to 128 tokens, the embedded sampling defaults without the stop sequence; an answer
that ends before 16 tokens is left out) and reads per lane: time to first token and
tokens/s after it (the server's own usage count / (last token − first token)). Also printed:
time from launch to a warm server, and resident memory of the server processes afterwards.
The last line is `per_lane_tokens_per_s=…` (the median over lanes and rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs us by path

import httpx  # noqa: E402

from lib.core.config import default_data_dir  # noqa: E402
from lib.serving import embedded  # noqa: E402
from lib.serving.process import ManagedProcess, free_port  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
TOKENS = 128


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stream_once(base_url: str, model: str, barrier: threading.Barrier) -> tuple[float, float]:
    """(ttft_s, tokens/s after the first token) of one streamed request."""
    body = {"model": model, "max_tokens": TOKENS, "stream": True, "temperature": 0.7,
            "seed": 42, "repeat_penalty": embedded.REPEAT_PENALTY,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": PROMPT}]}
    barrier.wait()
    start = time.perf_counter()
    first = last = None
    chunks = 0
    tokens = None
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=120) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("choices") and data["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
    if chunks < 16:  # the model ended early: too few tokens for a rate
        return first - start if first else float("nan"), float("nan")
    tokens = tokens or chunks  # llama-cpp-python's server sends no usage on streams
    return first - start, (tokens - 1) / (last - first)


def race_round(urls: list[str], model: str) -> list[tuple[float, float]]:
    barrier = threading.Barrier(len(urls))
    results: list = [None] * len(urls)

    def lane(i: int) -> None:
        try:
            results[i] = stream_once(urls[i], model, barrier)
        except Exception as exc:  # handed to the main thread
            results[i] = exc

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def start_llama_cpp_python(python: str, model_path: str) -> list[ManagedProcess]:
    servers = []
    for name in ("blocking", "streaming"):
        port = free_port()
        server = ManagedProcess(
            f"llama-cpp-python ({name})",
            [python, "-m", "llama_cpp.server", "--model", model_path, "--model_alias",
             embedded.MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
             "--chat_format", "alpaca", "--n_ctx", "2048", "--n_threads", "1",
             "--n_threads_batch", "1", "--interrupt_requests", "False", "--verbose", "False"],
            health_url=f"http://127.0.0.1:{port}/v1/models",
            log_path=default_data_dir() / f"bench-llama-cpp-python-{name}.log",
            start_timeout_s=180)
        servers.append(server)
    return servers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--llama-cpp-python", metavar="PYTHON",
                        help="measure llama-cpp-python's server from this interpreter instead")
    args = parser.parse_args()
    model_path = embedded.bundled_model_path()
    started = time.monotonic()
    if args.llama_cpp_python:
        servers = start_llama_cpp_python(args.llama_cpp_python, model_path)
        for server in servers:
            server.start()
        urls = [server.health_url.removesuffix("/models") for server in servers]
        pids = [server.process.pid for server in servers]
        what = "llama-cpp-python server, 2 processes x 1 thread"
    else:
        lanes = embedded.ensure_lanes(model_path)
        urls = [lanes.urls["blocking"], lanes.urls["streaming"]]
        pids = [embedded._server.process.process.pid]
        what = f"llama-server, 1 process, {embedded.SLOTS} slots x {embedded.threads()} threads"
    ready_s = time.monotonic() - started
    race_round(urls, embedded.MODEL_ALIAS)  # a first race, not counted
    ttfts, rates = [], []
    for _ in range(args.rounds):
        for ttft, rate in race_round(urls, embedded.MODEL_ALIAS):
            if rate == rate:  # not NaN: an answer long enough to measure
                ttfts.append(ttft)
                rates.append(rate)
    if not rates:
        sys.exit("error: every answer ended before 16 tokens: nothing to measure")
    memory = sum(rss_mb(pid) for pid in pids)
    if args.llama_cpp_python:
        for server in servers:
            server.stop()
    else:
        embedded.stop_all()
    print(f"server: {what}")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"launch to warm: {ready_s:.2f} s; resident memory: {memory:.0f} MB")
    print(f"two lanes at once, {len(rates)} lane-answers of {2 * args.rounds}: "
          f"TTFT p50 {statistics.median(ttfts):.3f} s (max {max(ttfts):.3f}); "
          f"tokens/s per lane min {min(rates):.1f}, max {max(rates):.1f}")
    print(f"per_lane_tokens_per_s={statistics.median(rates):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

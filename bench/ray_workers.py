"""Benchmark workers on Ray: TTFT fidelity with 1 and 2 workers, throughput, start-up cost.

The reference script of issue 16 plays in a `lib.playback.PlaybackServer` in a child process
(`bench/_playback_proc.py`): the first token 0.2 s after the request arrived, then one every
10 ms, 40 tokens. Parts (`--parts`, all by default):

  startup     a local Ray started (lib.bench.workers.connect) and N workers ready (actor
              processes up, the SDKs imported and warmed up), per N.
  fidelity    `RayBenchmark` (streaming only) with 1 and 2 workers at concurrency 1, 64 and
              256 (2 workers cannot share one request in flight: c=1 runs with 1 worker):
              measured − scripted TTFT p50/p99, the server's own lateness p99 (from its
              records: first chunk sent − request received − 0.2 s; a Python server with
              hundreds of streams is late itself), the most requests in flight reached, the
              workers' and the server's CPU (from /proc: 1.00 = one core), and where the
              error is spent: the send leg (t0 → the server has the request) and the receive
              leg (the server sent the first chunk → its bytes arrived here, as the kernel
              stamped them), p99.
  throughput  requests/s against an instant server (one chunk, then [DONE]): `RayBenchmark`
              with 1 and 2 workers at concurrency 64 per worker, against one plain
              `httpx.AsyncClient` (keep-alive pool, asyncio) at 64 in this process.
              Goal: N workers >= 0.8 × N × the httpx client.
  command     the issue's Done-when, as a user types it: `python -m lib.bench --workers 2
              --concurrency 64` against the reference server, a fresh run log; every request
              logged once (rows = requests + warm-up, distinct run ids, one bench_id) and the
              TTFT error p50/p99 read back from the run log. Printed last.

Then a projection on paper: what N machines would reach, from the measured CPU per request of
a worker and of the driver. Load average before/after is printed: run it on a quiet machine.

    cd /work/main && .venv/bin/python bench/ray_workers.py [--parts fidelity,command]
        [--requests-per-slot 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs us by path

import sqlalchemy as sa  # noqa: E402

from bench._playback_proc import RemotePlayback  # noqa: E402
from bench.runner_throughput import plain  # noqa: E402
from lib.bench import BenchPrompt, BenchSettings, PromptSet, measured_span  # noqa: E402
from lib.bench import workers as ray_workers  # noqa: E402
from lib.bench.summary import max_in_flight  # noqa: E402
from lib.core import metrics  # noqa: E402
from lib.core.trace import MODES, Params  # noqa: E402
from lib.endpoints import Endpoint  # noqa: E402
from lib.serving.playback import Script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Script.regular(ttft_s=0.2, gap_s=0.01, n=40)
INSTANT = Script(offsets=(0.0,), texts=("ok",))
def probes(count: int) -> PromptSet:
    """`count` distinct prompts: the server's record of each request is found by its prompt."""
    return PromptSet("probe", tuple(BenchPrompt(f"ray worker probe #{i}")
                                    for i in range(count)), 64)
PARAMS = Params(temperature=0.0, max_tokens=64, timeout_s=60.0)
GOAL_P99_MS = 10.0


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1e3:.2f}"


def run(server: RemotePlayback, model: str, workers: int, concurrency: int, requests: int,
        warmup: int) -> dict:
    endpoint = Endpoint("compatible", model, {m: server.base_url for m in MODES})
    settings = BenchSettings(prompts=probes(requests), modes=("streaming",), requests=requests,
                             concurrency=concurrency, warmup=warmup, workers=workers)
    bench = ray_workers.RayBenchmark(endpoint, settings, PARAMS)
    began = time.perf_counter()
    bench.start()
    ready = time.perf_counter() - began
    server.records()  # forget the workers' warm-up calls
    pids = [w.pid for w in bench.workers]
    cpu0, driver0, wall0 = ([cpu_seconds(p) for p in pids], time.process_time(),
                            time.perf_counter())
    server0 = cpu_seconds(server.pid)
    bench.join()
    wall = time.perf_counter() - wall0
    worker_cpu = sum(cpu_seconds(p) - c for p, c in zip(pids, cpu0))
    server_cpu = cpu_seconds(server.pid) - server0
    driver_cpu = time.process_time() - driver0
    records = {r["prompt"]: r for r in server.records()}  # the measured request last
    traces = bench.traces
    measured = [t for t in traces if t.bench_phase == "measured"]
    ok = [t for t in measured if t.status == "ok"]
    # Our own part of the error: measured TTFT minus the time the server itself took between
    # receiving the request and sending its first chunk (its lateness left out).
    served = [(t, records[t.request.prompt]) for t in ok
              if records.get(t.request.prompt, {}).get("sent")]
    client = [metrics.ttft_s(t) - (r["sent"][0] - r["t_received"]) for t, r in served]
    return {
        "workers": workers, "concurrency": concurrency, "ready_s": ready,
        "status": bench.status, "failure": bench.failure, "n": len(ok),
        "failed": len(measured) - len(ok),
        "errors": [metrics.ttft_s(t) - REFERENCE.offsets[0] for t in ok],
        "server_late": [r["sent"][0] - r["t_received"] - REFERENCE.offsets[0]
                        for _, r in served],
        "client": client,
        # Where the rest of the error is spent: request leaving us → the server has it, and
        # the server sent the first chunk → it arrived here (one clock: CLOCK_MONOTONIC).
        "send_leg": [r["t_received"] - t.t0 for t, r in served],
        "receive_leg": [t.t0 + metrics.ttft_s(t) - r["sent"][0] for t, r in served],
        "server_cpu_share": server_cpu / wall,
        "reached": max_in_flight([(t.t_run, t.t_end) for t in measured]),
        "rps": len(measured) / (measured_span(traces) or float("nan")),
        "worker_cpu_share": worker_cpu / wall, "worker_cpu_per_request": worker_cpu / len(traces),
        "driver_cpu_per_request": driver_cpu / len(traces),
        "bench_ids": {t.bench_id for t in traces}, "rows": len(traces),
    }


def part_startup(counts: list[int]) -> list[str]:
    lines = []
    ray_workers.shutdown()
    session = ray_workers.connect(None)
    lines.append(f"local Ray started in {session.started_s:.2f} s (loopback, no dashboard, "
                 f"{ray_workers.OBJECT_STORE_BYTES // 2**20} MB object store)")
    with RemotePlayback({"instant": INSTANT}) as server:
        for count in counts:
            result = run(server, "instant", count, count, count, 0)
            lines.append(f"{count} worker(s) ready in {result['ready_s']:.2f} s (processes up, "
                         "SDKs imported and warmed up)")
    return lines


def part_fidelity(per_slot: int, levels: list[int], counts: list[int]) -> list[str]:
    lines = [f"{'':>10} {'ok':>5} {'reached':>7}  ttft error ms p50 / p99  | server late "
             f"p99 ms | ours (error less the server's lateness) p50 / p99 ms | workers' CPU "
             f"(cores) | driver CPU ms/req | send / receive leg p99 ms | server CPU (cores)"]
    with RemotePlayback({"reference": REFERENCE}) as server:
        for count in counts:
            for level in levels:
                if level < count:
                    lines.append(f"w={count} c={level:<4} –  (one request in flight cannot be "
                                 f"shared by {count} workers)")
                    continue
                requests = max(per_slot * level, 100)
                r = run(server, "reference", count, level, requests, level)
                e = r["errors"]
                lines.append(
                    f"w={count} c={level:<4}{r['n']:>5} {r['reached']:>7}  "
                    f"{ms(metrics.percentile(e, 50)):>8} / {ms(metrics.percentile(e, 99)):<8} | "
                    f"{ms(metrics.percentile(r['server_late'], 99)):>14} | "
                    f"{ms(metrics.percentile(r['client'], 50)):>8} / "
                    f"{ms(metrics.percentile(r['client'], 99)):<8} | "
                    f"{r['worker_cpu_share']:>20.2f} | "
                    f"{r['driver_cpu_per_request'] * 1e3:>17.2f} | "
                    f"{ms(metrics.percentile(r['send_leg'], 99)):>8} / "
                    f"{ms(metrics.percentile(r['receive_leg'], 99)):<8} | "
                    f"{r['server_cpu_share']:.2f}"
                    + (f" | {r['failed']} FAILED ({r['failure']})" if r["failed"] else ""))
    return lines


def part_throughput(requests: int, counts: list[int]) -> tuple[list[str], dict]:
    found: dict = {}
    with RemotePlayback({"instant": INSTANT}) as server:
        httpx_rps, httpx_cpu, _, _ = plain(server.base_url, requests, 64, pooled=True)
        server.records()
        found["httpx"] = httpx_rps
        lines = [f"httpx async, one client, c=64: {httpx_rps:.1f} req/s "
                 f"({httpx_cpu * 1e3:.2f} ms CPU a request)"]
        for count in counts:
            r = run(server, "instant", count, 64 * count, requests * count, 64 * count)
            server.records()
            found[count] = r
            goal = 0.8 * count * httpx_rps
            lines.append(
                f"{count} worker(s), c={64 * count}: {r['rps']:.1f} req/s = "
                f"{r['rps'] / (count * httpx_rps):.2f} × {count} × httpx (goal ≥ 0.8: "
                f"{goal:.0f} req/s); {r['worker_cpu_per_request'] * 1e3:.2f} ms worker CPU "
                f"and {r['driver_cpu_per_request'] * 1e3:.2f} ms driver CPU a request; "
                f"workers' CPU {r['worker_cpu_share']:.2f} cores")
            # Under other load the OS gives many threads more CPU than one event loop, and
            # the wall ratio flatters us; the CPU each request costs is what load cannot move.
            lines.append(f"  CPU-bound ratio (httpx CPU a request / a worker's): "
                         f"{httpx_cpu / r['worker_cpu_per_request']:.2f}")
    return lines, found


def projection(found: dict) -> list[str]:
    one = found.get(1)
    if not one:
        return []
    per_core = 1.0 / one["worker_cpu_per_request"]
    driver_cap = 1.0 / max(one["driver_cpu_per_request"], 1e-9)
    lines = [f"projection (on paper): a worker needs {one['worker_cpu_per_request'] * 1e3:.2f} ms "
             f"of CPU a request, so one core sends at most ~{per_core:.0f} req/s; the driver "
             f"collects a trace for {one['driver_cpu_per_request'] * 1e3:.2f} ms, a ceiling of "
             f"~{driver_cap:.0f} req/s for one benchmark."]
    for machines in (1, 2, 4, 8, 16):
        workers = machines * 4  # 4-core machines, one worker per core
        lines.append(f"  {machines:>2} machine(s) × 4 cores = {workers:>3} workers: "
                     f"~{min(workers * per_core, driver_cap):.0f} req/s"
                     + ("  (driver-bound)" if workers * per_core > driver_cap else ""))
    return lines


def part_command(requests: int) -> tuple[list[str], str]:
    with tempfile.TemporaryDirectory() as tmp, RemotePlayback({"reference": REFERENCE}) as server:
        db = Path(tmp) / "runs.db"
        command = ["--base-url", server.base_url, "--model", "reference", "--modes", "streaming",
                   "--requests", str(requests), "--warmup", "64", "--workers", "2",
                   "--concurrency", "64", "--out", str(Path(tmp) / "out.csv"),
                   "--database-url", f"sqlite:///{db}"]
        began = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "lib.bench", *command], cwd=ROOT,
                                capture_output=True, text=True, timeout=600, check=False)
        took = time.perf_counter() - began
        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "select run_id, bench_id, bench_phase, status, ttft_s from runs")).all()
        engine.dispose()
    measured = [r for r in rows if r.bench_phase == "measured"]
    errors = [r.ttft_s - REFERENCE.offsets[0] for r in measured if r.status == "ok"]
    once = (len(rows) == requests + 64 and len({r.run_id for r in rows}) == len(rows)
            and len({r.bench_id for r in rows}) == 1)
    p50, p99 = metrics.percentile(errors, 50), metrics.percentile(errors, 99)
    lines = [f"python -m lib.bench --workers 2 --concurrency 64 --requests {requests} --warmup 64 "
             f"(exit {result.returncode}, {took:.1f} s with Ray's start): {len(rows)} rows, "
             f"{'every request logged once' if once else 'NOT every request logged once'}, "
             f"{sum(r.status == 'ok' for r in measured)}/{len(measured)} measured ok"]
    if result.returncode:
        lines.append(result.stderr.strip()[-500:])
    figure = (f"done_when_w2_c64 ttft_error_ms p50={ms(p50)} p99={ms(p99)} "
              f"(goal p99<={GOAL_P99_MS:g}) logged_once={'yes' if once else 'NO'}")
    return lines, figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="startup,fidelity,throughput,command")
    parser.add_argument("--levels", default="1,64,256")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--requests-per-slot", type=int, default=10,
                        help="measured requests per request in flight (at least 100)")
    parser.add_argument("--throughput-requests", type=int, default=1000,
                        help="per worker, against the instant server")
    parser.add_argument("--command-requests", type=int, default=640)
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    counts = [int(c) for c in args.workers.split(",")]
    levels = [int(c) for c in args.levels.split(",")]
    load_before = os.getloadavg()
    out: list[str] = []
    found: dict = {}
    figure = None
    try:
        if "startup" in parts:
            out += ["", "== Ray's start-up cost", *part_startup(counts)]
        if "fidelity" in parts:
            out += ["", "== TTFT fidelity, reference script (0.2 s, 10 ms a token, 40 tokens)",
                    *part_fidelity(args.requests_per_slot, levels, counts)]
        if "throughput" in parts:
            lines, found = part_throughput(args.throughput_requests, counts)
            out += ["", "== Throughput against an instant server", *lines, *projection(found)]
    finally:
        ray_workers.shutdown()
    if "command" in parts:
        lines, figure = part_command(args.command_requests)
        out += ["", "== The Done-when command", *lines]
    print(f"load average before: {load_before[0]:.2f} / {load_before[1]:.2f} (1/5 min); "
          f"after: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    print("\n".join(out))
    if figure:
        print(figure)
    else:
        print(f"ray_workers parts={','.join(parts)} done (no command part: no Done-when figure)"
              f" load={load_before[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

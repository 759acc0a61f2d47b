"""python -m lib.bench: a benchmark from the command line, results as CSV (and JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import pandas as pd

from lib.bench import (
    Benchmark,
    BenchSettings,
    Progress,
    RayBenchmark,
    benchmark_for,
    compare_frame,
    load_prompts,
    progress_line,
    results_frame,
    suite_params,
)
from lib.bench.workers import check_address, shutdown
from lib.cli.common import (
    add_database_argument,
    add_endpoint_arguments,
    add_schema_arguments,
    cli_settings,
    cli_structure,
    fail,
)
from lib.core.config import load_endpoints
from lib.core.errors import InvalidInput, StreamRaceError
from lib.core.metrics import Slo
from lib.core.trace import MODES, Mode, Params
from lib.endpoints.resolve import default_params, resolve
from lib.race.lanes import parse_spec, spec_settings
from lib.storage.store import Store, to_csv

DESCRIPTION = (
    "Benchmark mode: many calls, under load, summarised with percentiles, throughput and goodput."
)
"""What --help says first (unchanged since the command was written: scripts may show it)."""


def _modes(text: str) -> tuple[Mode, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError("use blocking, streaming or blocking,streaming")
    return modes  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.bench",
                                     description=DESCRIPTION)
    where = parser.add_argument_group("endpoint (default: STREAMRACE_* settings, else the "
                                      "embedded model)")
    add_endpoint_arguments(where)
    what = parser.add_argument_group("the suite")
    what.add_argument("--prompts", default="short", metavar="FILE|short|medium|long",
                      help="a built-in set or a file: one prompt a line, or JSONL with "
                           "prompt and optional max_tokens (default: short)")
    count = what.add_mutually_exclusive_group()
    count.add_argument("--requests", type=int, metavar="N",
                       help="measured requests, all modes together (default: one pass)")
    count.add_argument("--repetitions", type=int, metavar="R",
                       help="passes over prompts × modes instead of --requests")
    what.add_argument("--modes", type=_modes, default=MODES, help="default: blocking,streaming")
    what.add_argument("--max-tokens", type=int, metavar="T",
                      help="for prompts without their own (default: the prompt set's)")
    what.add_argument("--temperature", type=float, default=Params.temperature)
    what.add_argument("--timeout", type=float, default=Params.timeout_s, help="seconds, per byte")
    load = parser.add_argument_group("load")
    load.add_argument("--concurrency", type=int, metavar="C",
                      help="at most C in flight (default 1; with --rate: 1024 unless given)")
    load.add_argument("--rate", type=float, metavar="R", help="requests per second")
    load.add_argument("--poisson", action="store_true", help="Poisson arrivals at --rate")
    load.add_argument("--seed", type=int, default=0, help="seed of the Poisson arrivals")
    load.add_argument("--warmup", type=int, default=0, metavar="W",
                      help="requests sent first and not counted")
    load.add_argument("--deadline", type=float, metavar="S",
                      help="stop after S seconds; calls in flight are cancelled")
    load.add_argument("--workers", type=int, default=0, metavar="N",
                      help="send from N Ray workers, each with its share of the concurrency "
                           "or of the schedule and its own clients (default: this process)")
    load.add_argument("--ray-address", metavar="HOST:PORT",
                      help="with --workers: join this Ray cluster (`ray start --head` prints "
                           "it; default: start a local Ray on this machine)")
    parser.add_argument(
        "--target", action="append", default=[], metavar="SPEC",
        help="compare endpoints: run the same suite against each target in turn (2 or more, "
             "one flag each) and compare them in the summary. A SPEC is a race lane's without "
             "mode: label, model, and endpoint (a named endpoint or a kind) or base_url, e.g. "
             "label=ours,base_url=http://127.0.0.1:8000/v1,model=qwen")
    out = parser.add_argument_group("objectives and output")
    out.add_argument("--slo-ttft-ms", type=float, default=Slo.ttft_s * 1000)
    out.add_argument("--slo-icl-p99-ms", type=float, default=Slo.icl_p99_s * 1000)
    out.add_argument("--out", required=True, metavar="results.csv",
                     help="every request's run-log row")
    out.add_argument("--summary-json", metavar="summary.json")
    add_database_argument(out)
    add_schema_arguments(parser)
    return parser


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    prompts = load_prompts(args.prompts)
    if args.poisson and args.rate is None:
        raise InvalidInput("--poisson needs --rate.")
    if args.ray_address is not None:
        if not args.workers:
            raise InvalidInput("--ray-address needs --workers N: the workers run on that "
                               "cluster.")
        check_address(args.ray_address)
    pairs = len(prompts.prompts) * len(args.modes)
    requests = args.requests or (args.repetitions or 1) * pairs
    concurrency = args.concurrency if args.concurrency is not None or args.rate else 1
    return BenchSettings(
        prompts=prompts, modes=args.modes, requests=requests, concurrency=concurrency,
        rate=args.rate, poisson=args.poisson, seed=args.seed, warmup=args.warmup,
        deadline_s=args.deadline, max_tokens=args.max_tokens, workers=args.workers,
        slo=Slo(ttft_s=args.slo_ttft_ms / 1000, icl_p99_s=args.slo_icl_p99_ms / 1000),
    ).check()


class _Reporter:
    """Progress on stderr: a bar redrawn with \\r on a terminal, a plain line every 10% else."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_step = -1

    def update(self, p: Progress) -> None:
        if self.tty:
            filled = int(p.fraction * 24)
            self.stream.write(f"\r[{'#' * filled}{'.' * (24 - filled)}] {progress_line(p)}\033[K")
            self.stream.flush()
            return
        step = int(p.fraction * 10)
        if step != self._last_step:
            self._last_step = step
            print(progress_line(p), file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _bench(args)
    finally:
        shutdown()  # a local Ray stops with the command (nothing of it outlives it)


def _bench(args: argparse.Namespace) -> int:
    try:
        config = cli_settings(args)
        # Checked before a server or a database is touched.
        settings = dataclasses.replace(settings_from_args(args),
                                       structure=cli_structure(args, config.endpoint_kind))
        suite_params(settings, Params(temperature=args.temperature, timeout_s=args.timeout))
        targets = [parse_spec(spec, mode_required=False) for spec in args.target]
        if len(targets) == 1:
            raise InvalidInput("Compare at least two targets (one --target each), or give the "
                               "endpoint with --endpoint/--base-url.")
        if targets:
            return _compare(args, config, settings, targets)
        if config.endpoint_kind == "local":
            print("starting the embedded model…", file=sys.stderr, flush=True)
        endpoint = resolve(config)
        params = default_params(endpoint, temperature=args.temperature, timeout_s=args.timeout)
        store = Store(config.database_url)
        bench = _start(endpoint, settings, params, store, args)
    except StreamRaceError as exc:
        return fail(exc)
    interrupted = _follow(bench)
    code = _report(bench, args, store)
    return 130 if interrupted else code


def _start(endpoint, settings: BenchSettings, params: Params, store: Store,
           args: argparse.Namespace) -> Benchmark:
    bench = benchmark_for(endpoint, settings, params, store, args.ray_address)
    if settings.workers:
        print(f"starting {settings.workers} Ray workers "
              f"({'on ' + args.ray_address if args.ray_address else 'a local Ray'})…",
              file=sys.stderr, flush=True)
    bench.start()
    return bench


def _compare(args: argparse.Namespace, config, settings: BenchSettings, targets: list) -> int:
    """The same suite against each target in turn (one at a time: running them together would
    make them share this client's CPU and the machine's), then the targets compared."""
    resolved = []
    for spec in targets:  # every target checked and started before the first is measured
        name, target_settings = spec_settings(spec, load_endpoints(), config, os.environ)
        endpoint = resolve(target_settings)
        label = spec.label or f"{name} · {endpoint.model}"
        resolved.append((label, endpoint))
    labels = [label for label, _ in resolved]
    if len(set(labels)) < len(labels):
        raise InvalidInput("Two targets have the same label: give each its own (label=…).")
    store = Store(config.database_url)
    benches: list[Benchmark] = []
    for label, endpoint in resolved:
        print(f"benchmarking {label}…", file=sys.stderr, flush=True)
        params = default_params(endpoint, temperature=args.temperature, timeout_s=args.timeout)
        bench = _start(endpoint, settings, params, store, args)
        benches.append(bench)
        interrupted = _follow(bench)
        print(f"\n== {label}")
        _report(bench, args, store, write=False)
        if interrupted:
            break
    summaries = [bench.summary() for bench in benches]
    print("\n== Endpoints compared (the same suite; p50 and p99 in ms)")
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.1f}".format):
        print(compare_frame(summaries, labels=labels[:len(benches)]).to_string(index=False))
    ranked = sorted(((s.modes["streaming"].metrics["perceived_s"].p50, label)
                     for s, label in zip(summaries, labels) if "streaming" in s.modes
                     and s.modes["streaming"].metrics["perceived_s"].p50 is not None))
    if len(ranked) >= 2:
        (fast, first), (slow, last) = ranked[0], ranked[-1]
        print(f"{first} showed streamed words first: p50 {fast * 1000:.0f} ms, "
              f"{slow / fast:.1f}× sooner than {last} ({slow * 1000:.0f} ms).")
    traces = [trace for bench in benches for trace in bench.traces]
    Path(args.out).write_bytes(to_csv(results_frame(traces)))
    print(f"wrote {len(traces)} rows to {args.out}")
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(
            {label: s.as_dict() for label, s in zip(labels, summaries)}, indent=2))
        print(f"wrote the summaries to {args.summary_json}")
    if len(benches) < len(resolved):
        return 130
    return 0 if all(any(m.ok for m in s.modes.values()) for s in summaries) else 1


def _follow(bench: Benchmark) -> bool:
    """Show the benchmark's progress until it ends; True if Ctrl-C cancelled it."""
    if isinstance(bench, RayBenchmark) and bench.session is not None:
        print(f"{len(bench.workers)} workers ready: {bench.describe_workers()}", file=sys.stderr)
    if bench.note:
        print(f"note: {bench.note}", file=sys.stderr)
    reporter = _Reporter(sys.stderr)
    interrupted = False
    try:
        while not bench.join(0.5 if reporter.tty else 1.0):
            reporter.update(bench.progress())
    except KeyboardInterrupt:
        interrupted = True
        bench.cancel()
        bench.join()
    reporter.update(bench.progress())
    reporter.close()
    return interrupted


def _report(bench: Benchmark, args: argparse.Namespace, store: Store, write: bool = True) -> int:
    """Print the benchmark's summary; with `write`, its CSV (and JSON) too."""
    summary = bench.summary()
    to_print = [summary.title(), f"duration {summary.duration_s or 0:.2f} s · SLO: TTFT ≤ "
                f"{summary.slo.ttft_s * 1000:g} ms, ICL p99 ≤ {summary.slo.icl_p99_s * 1000:g} ms"]
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.1f}".format):
        to_print += ["", summary.counts_frame().to_string(index=False), "",
                     summary.percentiles_frame().to_string(index=False)]
    for group in summary.errors:
        to_print.append(
            f"{group['mode']} {group['error_kind']} ×{group['count']}: {group['error']}")
    if bench.note:
        to_print += ["", f"note: {bench.note}"]
    print("\n".join(to_print))
    if write:
        Path(args.out).write_bytes(to_csv(results_frame(bench.traces)))
        print(f"wrote {len(bench.traces)} rows to {args.out}")
    if write and args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.as_dict(), indent=2))
        print(f"wrote the summary to {args.summary_json}")
    for problem in (bench.failure, bench.log_error):
        if problem:
            print(f"error: {problem}", file=sys.stderr)
    if not bench.log_error:
        print(
            f"logged benchmark {bench.bench_id} ({len(bench.traces)} runs) to "
            f"{store.engine.url.render_as_string(hide_password=True)}"
        )
    return 0 if any(m.ok for m in summary.modes.values()) else 1


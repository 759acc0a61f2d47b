"""Benchmark mode: many calls, under load, summarised with percentiles, throughput and goodput.

A benchmark is a prompt set × modes, cycled for N measured requests (after W warm-up requests
that are logged but not counted), sent at a fixed concurrency (at most C in flight, the next
one as soon as a slot frees) or at a request rate (constant or Poisson, seeded; optionally
capped at C in flight), within an optional deadline, and cancellable at any moment.

Every request is a `lib.calls.Call` run on a worker thread of the runner's pool: the same
call path as the race. Its `t_start` is the moment the runner decided to send it (a slot
freed) or, at a rate, the moment it was due; so any wait inside our client (for a worker
thread, for the GIL, for a runner that fell behind its schedule) is measured in `client_s`
and `queue_s`, never inside `ttft_s`. Every request sent becomes a run-log row
(`source = benchmark`, its `bench_id` and `bench_phase`), failed and cancelled ones too.

    python -m lib.bench --base-url http://127.0.0.1:8000/v1 --model NAME --prompts short \\
        --requests 200 --concurrency 16 --out results.csv --summary-json summary.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from lib import endpoints, metrics
from lib.calls import MAX_TOKENS_LIMIT, Call, check_request, warm_up
from lib.config import ENDPOINT_KINDS, load_settings
from lib.embedded import SLOTS
from lib.endpoints import Endpoint
from lib.errors import CallFailed, InvalidInput, StreamRaceError, redact
from lib.metrics import ModeSummary, Slo
from lib.race import default_params
from lib.store import RUN_COLUMNS, Store, to_csv, trace_to_row
from lib.trace import MODES, Mode, Params, Trace

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 1024
STOP_GRACE_S = 10.0
"""How long cancelled calls get to unwind before the runner logs them anyway."""


# -- prompts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchPrompt:
    prompt: str
    max_tokens: int | None = None
    """This prompt's own limit (a JSONL line's `max_tokens`); None: the benchmark's."""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[BenchPrompt, ...]
    max_tokens: int
    """The limit for prompts without their own, unless the benchmark sets one."""


def _builtin(name: str, max_tokens: int, *prompts: str) -> PromptSet:
    return PromptSet(name, tuple(BenchPrompt(p) for p in prompts), max_tokens)


PROMPT_SETS = {
    s.name: s for s in (
        _builtin(
            "short", 48,
            "In one sentence, what is the capital of France?",
            "In one sentence, why is the sky blue?",
            "Name three primary colours in one line.",
            "In one sentence, what does HTTP stand for?",
            "In one sentence, what is a prime number?",
            "Give a one-line definition of latency.",
            "In one sentence, what does a compiler do?",
            "In one sentence, why do leaves change colour in autumn?",
        ),
        _builtin(
            "medium", 160,
            "Explain in a short paragraph why streaming responses feel faster to users.",
            "Describe in a short paragraph how a web browser loads a page.",
            "In a short paragraph, explain what a database index is and when to use one.",
            "Summarise in a short paragraph the trade-offs between threads and async I/O.",
            "In a short paragraph, explain what a percentile is and why p99 matters.",
            "Describe in a short paragraph how a rainbow forms.",
        ),
        _builtin(
            "long", 500,
            "Write a report of about 400 words on why streaming responses improve the user "
            "experience of chat applications.",
            "Write an essay of about 400 words on the history of the printing press.",
            "Write a guide of about 400 words on how to run a load test against a web service.",
            "Write a story of about 400 words about a lighthouse keeper who finds a message "
            "in a bottle.",
        ),
    )
}
"""Built-in prompt sets: short (one-line answers), medium (a paragraph), long (a report)."""


def parse_prompts(text: str, name: str) -> PromptSet:
    """A user prompt file: one prompt a line, or JSONL with `prompt` and optional `max_tokens`.

    The file is JSONL when its first non-blank line starts with "{". Blank lines are skipped.
    """
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise InvalidInput(f"{name} has no prompts: write one prompt a line, or JSONL lines "
                           'like {"prompt": "...", "max_tokens": 64}.')
    if not lines[0][1].startswith("{"):
        return PromptSet(name, tuple(BenchPrompt(line) for _, line in lines), 256)
    prompts = []
    for number, line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"Line {number} of {name} is not valid JSON ({exc.msg}).") from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
            raise InvalidInput(f'Line {number} of {name} needs a "prompt" string.')
        limit = item.get("max_tokens")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or not 1 <= limit <= MAX_TOKENS_LIMIT):
            raise InvalidInput(f"Line {number} of {name}: max_tokens must be a whole number "
                               f"from 1 to {MAX_TOKENS_LIMIT:,}.")
        prompts.append(BenchPrompt(item["prompt"], limit))
    return PromptSet(name, tuple(prompts), 256)


def load_prompts(spec: str) -> PromptSet:
    """A built-in set by name (short, medium, long), or a prompt file by path."""
    if spec in PROMPT_SETS:
        return PROMPT_SETS[spec]
    path = Path(spec)
    if not path.is_file():
        raise InvalidInput(f"'{spec}' is neither a prompt file nor one of "
                           f"{', '.join(PROMPT_SETS)}.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read {spec}: {exc}") from None
    return parse_prompts(text, path.name)


# -- settings, plan, schedule ---------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    """What to send, how hard, for how long. `check()` refuses absurd values before anything
    is sent."""

    prompts: PromptSet
    modes: tuple[Mode, ...] = MODES
    requests: int = 20
    """Measured requests, all modes together (the prompt × mode pairs are cycled)."""
    concurrency: int | None = 1
    """At most this many in flight; None (only with a rate): MAX_CONCURRENCY, one thread each."""
    rate: float | None = None
    """Requests per second; None: each as soon as a slot frees."""
    poisson: bool = False
    seed: int = 0
    """Seeds the Poisson arrivals."""
    warmup: int = 0
    deadline_s: float | None = None
    max_tokens: int | None = None
    """For every prompt without its own limit; None: the prompt set's default."""
    slo: Slo = Slo()

    def check(self) -> "BenchSettings":
        if not self.modes or any(m not in MODES for m in self.modes) or len(set(self.modes)) < len(self.modes):
            raise InvalidInput("Choose the modes to benchmark: blocking, streaming, or both.")
        if not 1 <= self.requests <= MAX_REQUESTS:
            raise InvalidInput(f"The number of requests must be between 1 and {MAX_REQUESTS:,}.")
        if self.concurrency is None and self.rate is None:
            raise InvalidInput("Give a concurrency, a request rate, or both.")
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise InvalidInput(f"Concurrency must be between 1 and {MAX_CONCURRENCY:,}.")
        if self.rate is not None and not 0 < self.rate <= 10_000:
            raise InvalidInput("The request rate must be above 0 and at most 10,000 per second.")
        if not 0 <= self.warmup <= MAX_REQUESTS:
            raise InvalidInput(f"Warm-up requests must be between 0 and {MAX_REQUESTS:,}.")
        if self.deadline_s is not None and not 0.1 <= self.deadline_s <= 7 * 86400:
            raise InvalidInput("The deadline must be between 0.1 s and a week.")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidInput(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT:,}.")
        if self.slo.ttft_s <= 0 or self.slo.icl_p99_s <= 0:
            raise InvalidInput("The SLO limits must be above 0 ms.")
        return self

    def as_dict(self) -> dict:
        """For the run log and the summary JSON: the prompt set by name, not its text."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(prompts=self.prompts.name, prompt_count=len(self.prompts.prompts),
                      modes=list(self.modes), slo=dataclasses.asdict(self.slo))
        return values


def plan(settings: BenchSettings, count: int) -> list[tuple[BenchPrompt, Mode]]:
    """The first `count` requests of the suite: each prompt in every mode, one after the other
    (so both modes of a prompt meet the same load), the prompt set cycled."""
    pairs = [(prompt, mode) for prompt in settings.prompts.prompts for mode in settings.modes]
    return [pairs[i % len(pairs)] for i in range(count)]


def arrival_offsets(count: int, rate: float, poisson: bool, seed: int) -> list[float]:
    """When each request is due, in seconds after the phase begins: the first at 0, then every
    1/rate (constant) or after exponential gaps of mean 1/rate (Poisson, seeded: the same
    seed gives the same schedule)."""
    if not poisson:
        return [i / rate for i in range(count)]
    draw = random.Random(seed)
    offsets, t = [], 0.0
    for i in range(count):
        if i:
            t += draw.expovariate(rate)
        offsets.append(t)
    return offsets


def token_limit(settings: BenchSettings, prompt: BenchPrompt) -> int:
    """max_tokens of a request: the prompt's own, else the benchmark's, else the set's."""
    return prompt.max_tokens or settings.max_tokens or settings.prompts.max_tokens


def suite_params(settings: BenchSettings, base: Params) -> dict[int, Params]:
    """The request parameters per token limit, every prompt checked with its own
    (InvalidInput before anything is sent)."""
    params: dict[int, Params] = {}
    for number, prompt in enumerate(settings.prompts.prompts, 1):
        limit = token_limit(settings, prompt)
        params.setdefault(limit, dataclasses.replace(base, max_tokens=limit))
        try:
            check_request(prompt.prompt, params[limit])
        except InvalidInput as error:
            raise InvalidInput(f"Prompt {number} of {settings.prompts.name}: {error.message}") from None
    return params


def measured_span(traces: Sequence[Trace]) -> float | None:
    """The measured phase's duration, the denominator of every throughput.
    Formula: max(t_end) − min(t_start) over the measured calls; None without any."""
    measured = [t for t in traces if t.bench_phase == "measured"
                and t.t_start is not None and t.t_end is not None]
    if not measured:
        return None
    return max(t.t_end for t in measured) - min(t.t_start for t in measured)


def lane_note(endpoint: Endpoint, settings: BenchSettings) -> str | None:
    """What the user must know about the embedded model's server under load."""
    if endpoint.kind != "local":
        return None
    note = (f"Embedded model: one llama-server decodes up to {SLOTS} requests at once, sharing "
            "this machine's cores: the more run together, the slower each one.")
    if settings.rate is None and settings.concurrency <= SLOTS:
        return note
    return note + (f" Beyond {SLOTS} in flight, requests wait in the server's queue, and that "
                   "wait shows in TTFT: real server queueing, not client queueing (which is "
                   "client_s / queue_s).")


# -- the runner -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A snapshot for a progress bar: counts and the running p50s of the measured calls."""

    phase: str
    """`warmup`, `measured` or `done`."""
    done: int
    total: int
    warmup_done: int
    warmup_total: int
    in_flight: int
    errors: int
    elapsed_s: float
    p50: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """mode → {"ttft_s": …, "perceived_s": …} over the measured calls done so far."""

    @property
    def fraction(self) -> float:
        total = self.total + self.warmup_total
        return (self.done + self.warmup_done) / total if total else 1.0


LIVE_METRICS = {"ttft_s": metrics.ttft_s, "perceived_s": metrics.perceived_s}
"""The running p50s shown while a benchmark runs."""


class Benchmark:
    """One benchmark: `start()` it, watch `progress()`, `cancel()` it from any thread, `join()`.

    A supervisor thread dispatches the requests to a pool of worker threads (one call each at
    a time) and, when the last call has ended, writes every call to the run log.
    """

    def __init__(self, endpoint: Endpoint, settings: BenchSettings, params: Params,
                 store: Store | None = None) -> None:
        self.settings = settings.check()
        self.endpoint = endpoint
        self.store = store
        self.bench_id = uuid.uuid4().hex
        self.created_at = datetime.now(timezone.utc)
        self._params = suite_params(settings, params)  # refused before anything is sent
        self.note = lane_note(endpoint, settings)
        self.traces: list[Trace] = []
        """Every call sent, in the order it was sent (warm-up first)."""
        self.status = "running"
        self.duration_s: float | None = None
        self.log_error: str | None = None
        self.failure: str | None = None
        self._cond = threading.Condition()
        self._running: set[Call] = set()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._stopping: str | None = None
        self._live: dict[str, dict[str, list[float]]] = {
            m: {name: [] for name in LIVE_METRICS} for m in settings.modes}
        self._counts = {"warmup": 0, "measured": 0, "errors": 0}
        self._phase = "warmup" if settings.warmup else "measured"
        self._t_bench = time.perf_counter()
        self._deadline: float | None = None
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name=f"bench-{self.bench_id[:8]}")

    # -- control, from any thread --------------------------------------------------------

    def start(self) -> "Benchmark":
        """Log the benchmark as running, then start sending (a broken run log raises here)."""
        warm_up()
        if self.store is not None:
            try:
                self.store.save_benchmark(self.record())
            except Exception as exc:  # noqa: BLE001 - nothing sent yet: refuse with a message
                raise CallFailed(f"The run log cannot be written, so nothing was sent "
                                 f"({type(exc).__name__}: {redact(str(exc))}).") from exc
        self._t_bench = time.perf_counter()
        if self.settings.deadline_s is not None:
            self._deadline = self._t_bench + self.settings.deadline_s
        self._supervisor.start()
        return self

    def cancel(self, reason: str = "stopped") -> None:
        """Send nothing more and cancel every call in flight; they are logged `cancelled`."""
        with self._cond:
            if self._stopping is None:
                self._stopping = reason
            running = list(self._running)
            self._cond.notify_all()
        for call in running:
            call.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every call has ended and been logged; True if so."""
        self._supervisor.join(timeout)
        return not self._supervisor.is_alive()

    @property
    def done(self) -> bool:
        return self._supervisor.ident is not None and not self._supervisor.is_alive()

    def threads(self) -> list[threading.Thread]:
        """The runner's own threads that are still alive (none once it has finished)."""
        return [t for t in (self._supervisor, *self._workers) if t.is_alive()]

    def progress(self) -> Progress:
        with self._cond:  # copied under the lock, sorted outside it: workers never wait on it
            values = {mode: {name: list(v) for name, v in per.items()}
                      for mode, per in self._live.items()}
            counts, in_flight = dict(self._counts), len(self._running)
        return Progress(
            phase="done" if self.done else self._phase,
            done=counts["measured"], total=self.settings.requests,
            warmup_done=counts["warmup"], warmup_total=self.settings.warmup,
            in_flight=in_flight, errors=counts["errors"],
            elapsed_s=time.perf_counter() - self._t_bench,
            p50={mode: {name: metrics.percentile(v, 50) for name, v in per.items()}
                 for mode, per in values.items()},
        )

    # -- the supervisor thread -----------------------------------------------------------

    def _supervise(self) -> None:
        try:
            if self.settings.warmup:
                self._dispatch(plan(self.settings, self.settings.warmup), "warmup")
                self._wait_idle()
            self._phase = "measured"
            self._dispatch(plan(self.settings, self.settings.requests), "measured")
            self._wait_idle()
        except Exception as exc:  # noqa: BLE001 - a runner bug must still cancel and log
            self.failure = f"The benchmark failed: {type(exc).__name__}: {exc}"
            self.cancel("failed")
        finally:
            # Whatever happened, nothing may keep running and everything sent is logged.
            self.cancel("completed")  # the first reason given wins
            self._wait_idle(STOP_GRACE_S)
            for _ in self._workers:
                self._jobs.put(None)
            self.status = self._stopping or "completed"
            self.duration_s = measured_span(self.traces)
            self._log()

    def _wait(self, ready: Callable[[], bool], until: float | None = None) -> bool:
        """Wait, holding the condition, until `ready()`; wake at `until` to look again.
        False if the benchmark stops first: cancelled, or its deadline has passed."""
        while True:
            if self._stopping:
                return False
            if ready():
                return True
            now = time.perf_counter()
            if self._deadline is not None and self._deadline <= now:
                self._stopping = "deadline"
                return False
            limits = [t - now for t in (until, self._deadline) if t is not None]
            self._cond.wait(max(0.0, min(limits)) if limits else None)

    def _dispatch(self, items: list[tuple[BenchPrompt, Mode]], phase: str) -> None:
        rate = self.settings.rate
        due_at = (arrival_offsets(len(items), rate, self.settings.poisson, self.settings.seed)
                  if rate else None)
        origin = time.perf_counter()
        cap = self.settings.concurrency or MAX_CONCURRENCY
        for index, (prompt, mode) in enumerate(items):
            # Built before it is due: setting a call up is not part of its time.
            params = self._params[token_limit(self.settings, prompt)]
            call = Call(self.endpoint, prompt.prompt, params, mode, source="benchmark")
            trace = call.trace
            trace.bench_id, trace.bench_phase, trace.t_bench = self.bench_id, phase, self._t_bench
            due = None if due_at is None else origin + due_at[index]
            with self._cond:
                if due is not None and not self._wait(lambda: time.perf_counter() >= due, due):
                    return
                if not self._wait(lambda: len(self._running) < cap):
                    return
                t_start = due if due is not None else time.perf_counter()
                self._running.add(call)
                self.traces.append(trace)
                spawn = self._idle == 0
                if not spawn:
                    self._idle -= 1
            if spawn:
                self._spawn_worker()
            self._jobs.put((call, t_start))

    def _spawn_worker(self) -> None:
        worker = threading.Thread(target=self._work, daemon=True,
                                  name=f"bench-{self.bench_id[:8]}-call-{len(self._workers)}")
        self._workers.append(worker)
        worker.start()

    def _wait_idle(self, grace_s: float | None = None) -> None:
        """Wait until no call is in flight: within the deadline, or (stopping already, the
        calls cancelled) within `grace_s`."""
        with self._cond:
            if grace_s is None:
                self._wait(lambda: not self._running)
                return
            until = time.perf_counter() + grace_s
            while self._running and time.perf_counter() < until:
                self._cond.wait(until - time.perf_counter())

    # -- the worker threads --------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, t_start = job
            call.run(t_start)
            trace = call.trace
            live = ({name: metric(trace) for name, metric in LIVE_METRICS.items()}
                    if trace.bench_phase == "measured" and trace.status == "ok" else {})
            with self._cond:
                self._running.discard(call)
                self._idle += 1
                self._counts[trace.bench_phase] += 1
                self._counts["errors"] += trace.status == "error"
                for name, value in live.items():
                    if value is not None:
                        self._live[trace.mode][name].append(value)
                self._cond.notify_all()

    # -- results -------------------------------------------------------------------------

    def record(self) -> dict:
        """This benchmark's row of the `benchmarks` table."""
        return {
            "bench_id": self.bench_id,
            "created_at": self.created_at.isoformat(timespec="milliseconds"),
            "endpoint_kind": self.endpoint.kind, "base_url": self.endpoint.display_url,
            "model": self.endpoint.model, "settings": self.settings.as_dict(),
            "status": self.status, "duration_s": self.duration_s,
        }

    def _log(self) -> None:
        if self.store is None:
            return
        try:
            self.store.log(list(self.traces))
            self.store.save_benchmark(self.record())
        except Exception as exc:  # noqa: BLE001 - reported to the user; the traces stay in memory
            self.log_error = (f"The run log could not be written ({type(exc).__name__}: "
                              f"{redact(str(exc))}); export the results as CSV.")

    def summary(self, slo: Slo | None = None) -> "BenchSummary":
        return BenchSummary.of(self.record(), self.traces, slo or self.settings.slo, self.note)


# -- the summary ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSummary:
    """A benchmark's summary: per mode, counts, rates, goodput and a distribution per metric
    (definitions in lib.metrics.summarize). Built the same way from a live benchmark and from
    the run log."""

    bench_id: str
    created_at: str
    endpoint: dict
    settings: dict
    status: str
    duration_s: float | None
    slo: Slo
    modes: dict[str, ModeSummary]
    note: str | None = None
    errors: tuple[dict, ...] = ()
    """What went wrong: one entry per mode and error kind, with a count and the first message."""

    @classmethod
    def of(cls, record: dict, traces: Sequence[Trace], slo: Slo, note: str | None = None
           ) -> "BenchSummary":
        measured = [t for t in traces if t.bench_phase == "measured"]
        settings = record["settings"]
        modes = [m for m in MODES if m in settings.get("modes", MODES)]
        return cls(
            bench_id=record["bench_id"], created_at=record["created_at"],
            endpoint={k: record[k] for k in ("endpoint_kind", "base_url", "model")},
            settings=settings, status=record["status"], duration_s=record["duration_s"],
            slo=slo, note=note,
            modes={m: metrics.summarize(measured, m, record["duration_s"], slo) for m in modes},
            errors=error_groups(measured),
        )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def title(self) -> str:
        s = self.settings
        load = (f"{s['rate']:g} req/s" + (" Poisson" if s.get("poisson") else "")
                if s.get("rate") else f"concurrency {s.get('concurrency')}")
        return (f"{self.created_at[:19].replace('T', ' ')} · {self.endpoint['model']} · "
                f"{s.get('prompts')} · {s.get('requests')} requests · {load} · {self.status}")

    def counts_frame(self) -> pd.DataFrame:
        """One row per mode: counts, throughput, error rate and goodput."""
        return pd.DataFrame([{
            "mode": m.mode, "requests": m.requests, "ok": m.ok, "errors": m.errors,
            "cancelled": m.cancelled, "req/s": m.request_throughput_rps,
            "good": m.good, "goodput req/s": m.goodput_rps,
            "goodput %": _percent(m.goodput_ratio), "error %": _percent(m.error_rate),
            "output tok/s": m.output_token_throughput_tps,
        } for m in self.modes.values()])

    def errors_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.errors), columns=["mode", "error_kind", "count", "error"])

    def percentiles_frame(self) -> pd.DataFrame:
        """One row per mode and metric that has values: n, mean and percentiles in ms (tokens/s
        for output_tps). A blocking call has no TPOT and no ICL: those rows are left out."""
        rows = []
        for name in metrics.SUMMARY_METRICS:
            for m in self.modes.values():
                d = m.metrics[name]
                if not d.n:
                    continue
                scale, unit = (1.0, "tok/s") if name == "output_tps" else (1000.0, "ms")
                rows.append({"metric": name, "mode": m.mode, "unit": unit, "n": d.n, **{
                    k: getattr(d, k) * scale for k in ("mean", "p50", "p90", "p95", "p99")}})
        return pd.DataFrame(rows, columns=["metric", "mode", "unit", "n", "mean", "p50", "p90",
                                           "p95", "p99"])


def error_groups(traces: Sequence[Trace]) -> tuple[dict, ...]:
    """The failed traces grouped by mode and error kind, most frequent first: a benchmark
    against a broken endpoint says why in one line per cause, not once per request."""
    groups: dict[tuple[str, str], dict] = {}
    for trace in traces:
        if trace.status == "error":
            key = (trace.mode, trace.error_kind or "error")
            group = groups.setdefault(key, {"mode": key[0], "error_kind": key[1], "count": 0,
                                            "error": trace.error or ""})
            group["count"] += 1
    return tuple(sorted(groups.values(), key=lambda g: (-g["count"], g["mode"], g["error_kind"])))


def logged_summary(store: Store, bench_id: str, slo: Slo | None = None) -> BenchSummary:
    """The summary of a benchmark in the run log, computed as for a live one (against `slo`,
    else the benchmark's own objectives)."""
    record = store.benchmark(bench_id)
    if record is None:
        raise InvalidInput(f"There is no benchmark {bench_id} in the run log.")
    if slo is None:
        slo = Slo(**record["settings"].get("slo", {}))
    return BenchSummary.of(record, store.bench_traces(bench_id), slo)


def _percent(ratio: float | None) -> float | None:
    return None if ratio is None else 100.0 * ratio


def compare_frame(summaries: Sequence[BenchSummary], metric_names=("ttft_s", "perceived_s", "e2e_s")
                  ) -> pd.DataFrame:
    """Benchmarks side by side: per benchmark and mode, p50 and p99 (ms) and goodput."""
    rows = []
    for summary in summaries:
        for m in summary.modes.values():
            row = {"benchmark": summary.bench_id[:8], "mode": m.mode, "requests": m.requests,
                   "req/s": m.request_throughput_rps, "goodput %": _percent(m.goodput_ratio),
                   "error %": _percent(m.error_rate)}
            for name in metric_names:
                d = m.metrics[name]
                for q in ("p50", "p99"):
                    value = getattr(d, q)
                    row[f"{name} {q} ms"] = None if value is None else value * 1000.0
            rows.append(row)
    return pd.DataFrame(rows)


def results_frame(traces: Sequence[Trace]) -> pd.DataFrame:
    """The run-log rows of these calls (the CSV export)."""
    return pd.DataFrame([trace_to_row(t) for t in traces], columns=list(RUN_COLUMNS))


def progress_line(p: Progress) -> str:
    """One line of progress: counts, then each mode's running p50 TTFT and blank screen."""
    if p.phase == "warmup":
        head = f"warm-up {p.warmup_done}/{p.warmup_total}"
    else:
        head = f"{p.done}/{p.total} requests"
    parts = [head, f"{p.in_flight} in flight", f"{p.errors} errors", f"{p.elapsed_s:.1f} s"]
    for mode, values in p.p50.items():
        shown = [f"{label} {_ms(values.get(name))}" for name, label in
                 (("ttft_s", "ttft"), ("perceived_s", "blank"))]
        parts.append(f"{mode} p50 " + " ".join(shown))
    return " · ".join(parts)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"


# -- the CLI ----------------------------------------------------------------------------------


def _modes(text: str) -> tuple[Mode, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError("use blocking, streaming or blocking,streaming")
    return modes  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.bench",
                                     description=__doc__.splitlines()[0])
    where = parser.add_argument_group("endpoint (default: STREAMRACE_* settings, else the "
                                      "embedded model)")
    where.add_argument("--endpoint", choices=ENDPOINT_KINDS,
                       help="default: compatible with --base-url, else STREAMRACE_ENDPOINT")
    where.add_argument("--base-url", help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    where.add_argument("--model", help="default: STREAMRACE_MODEL")
    where.add_argument("--api-key-env", metavar="VAR", help="read the key from this variable")
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
    out = parser.add_argument_group("objectives and output")
    out.add_argument("--slo-ttft-ms", type=float, default=Slo.ttft_s * 1000)
    out.add_argument("--slo-icl-p99-ms", type=float, default=Slo.icl_p99_s * 1000)
    out.add_argument("--out", required=True, metavar="results.csv",
                     help="every request's run-log row")
    out.add_argument("--summary-json", metavar="summary.json")
    out.add_argument("--database-url", help="default: DATABASE_URL or the user's data folder")
    return parser


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    prompts = load_prompts(args.prompts)
    if args.poisson and args.rate is None:
        raise InvalidInput("--poisson needs --rate.")
    pairs = len(prompts.prompts) * len(args.modes)
    requests = args.requests or (args.repetitions or 1) * pairs
    concurrency = args.concurrency if args.concurrency is not None or args.rate else 1
    return BenchSettings(
        prompts=prompts, modes=args.modes, requests=requests, concurrency=concurrency,
        rate=args.rate, poisson=args.poisson, seed=args.seed, warmup=args.warmup,
        deadline_s=args.deadline, max_tokens=args.max_tokens,
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
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    kind = args.endpoint or ("compatible" if args.base_url else None)
    config = load_settings().with_overrides(
        endpoint_kind=kind, base_url=args.base_url, model=args.model, api_key=api_key,
        database_url=args.database_url)
    try:
        # Checked before a server or a database is touched.
        settings = settings_from_args(args)
        suite_params(settings, Params(temperature=args.temperature, timeout_s=args.timeout))
        if config.endpoint_kind == "local":
            print("starting the embedded model…", file=sys.stderr, flush=True)
        endpoint = endpoints.resolve(config)
        params = default_params(endpoint, temperature=args.temperature, timeout_s=args.timeout)
        store = Store(config.database_url)
        bench = Benchmark(endpoint, settings, params, store).start()
    except StreamRaceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
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
    code = _report(bench, args, store)
    return 130 if interrupted else code


def _report(bench: Benchmark, args: argparse.Namespace, store: Store) -> int:
    summary = bench.summary()
    to_print = [summary.title(), f"duration {summary.duration_s or 0:.2f} s · SLO: TTFT ≤ "
                f"{summary.slo.ttft_s * 1000:g} ms, ICL p99 ≤ {summary.slo.icl_p99_s * 1000:g} ms"]
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.1f}".format):
        to_print += ["", summary.counts_frame().to_string(index=False), "",
                     summary.percentiles_frame().to_string(index=False)]
    for group in summary.errors:
        to_print.append(f"{group['mode']} {group['error_kind']} ×{group['count']}: {group['error']}")
    if bench.note:
        to_print += ["", f"note: {bench.note}"]
    print("\n".join(to_print))
    Path(args.out).write_bytes(to_csv(results_frame(bench.traces)))
    print(f"wrote {len(bench.traces)} rows to {args.out}")
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.as_dict(), indent=2))
        print(f"wrote the summary to {args.summary_json}")
    for problem in (bench.failure, bench.log_error):
        if problem:
            print(f"error: {problem}", file=sys.stderr)
    if not bench.log_error:
        print(f"logged benchmark {bench.bench_id} ({len(bench.traces)} runs) to "
              f"{store.engine.url.render_as_string(hide_password=True)}")
    return 0 if any(m.ok for m in summary.modes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

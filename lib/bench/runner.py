"""The benchmark runner: N requests at a fixed concurrency or request rate, cancellable.

A benchmark is a prompt set × modes, cycled for N measured requests (after W warm-up requests
that are logged but not counted), sent at a fixed concurrency (at most C in flight, the next
one as soon as a slot frees) or at a request rate (constant or Poisson, seeded; optionally
capped at C in flight), within an optional deadline, and cancellable at any moment.

Every request is a `lib.core.calls.Call` run on a worker thread of a `Sender`'s pool: the same
call path as the race. Its `t_start` is the moment the runner decided to send it (a slot
freed) or, at a rate, the moment it was due; so any wait inside our client (for a worker
thread, for the GIL, for a runner that fell behind its schedule) is measured in `client_s`
and `queue_s`, never inside `ttft_s`. Every request sent becomes a run-log row.

`Benchmark` runs one `Sender` in this process; `lib.bench.workers.RayBenchmark` runs one in
each of N Ray actors, each with its share of the same plan and schedule.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Sequence

from lib.bench.plan import (
    MAX_CONCURRENCY,
    BenchSettings,
    arrival_offsets,
    lane_note,
    measured_span,
    plan,
    suite_params,
    token_limit,
)
from lib.bench.prompts import BenchPrompt
from lib.bench.summary import BenchSummary, Progress
from lib.core import metrics
from lib.core.calls import Call, warm_up
from lib.core.errors import CallFailed, redact
from lib.core.metrics import Slo
from lib.core.trace import Mode, Params, Trace
from lib.endpoints import Endpoint
from lib.storage.store import Store

STOP_GRACE_S = 10.0
"""How long cancelled calls get to unwind before the runner logs them anyway."""


LIVE_METRICS = {"ttft_s": metrics.ttft_s, "perceived_s": metrics.perceived_s}
"""The running p50s shown while a benchmark runs."""


Item = tuple[BenchPrompt, Mode]


class Sender:
    """The sending half of a runner: it sends a phase's items, each on a thread of its pool
    (one call per thread at a time, threads added as the load needs them), at most `cap` in
    flight, each when due; `cancel()` from any thread stops it and cancels what is in flight.

    `traces` holds every call sent, in the order sent; `finished` those that ended, in the
    order they ended."""

    def __init__(self, endpoint: Endpoint, settings: BenchSettings, params: dict[int, Params],
                 bench_id: str, name: str) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.params = params
        self.bench_id = bench_id
        self.name = name
        self.traces: list[Trace] = []
        self.finished: list[Trace] = []
        self.stopping: str | None = None
        """Why sending stopped (`stopped`, `deadline`, `failed`, `completed`); None while not."""
        self.deadline: float | None = None
        """perf_counter() moment past which nothing is sent and sending stops."""
        self.t_bench = time.perf_counter()
        """The origin of the benchmark, stamped on every trace (`t_bench`)."""
        self.cond = threading.Condition()
        self.running: set[Call] = set()
        self.live: dict[str, dict[str, list[float]]] = {
            m: {name: [] for name in LIVE_METRICS} for m in settings.modes}
        self.counts = {"warmup": 0, "measured": 0, "errors": 0}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def cancel(self, reason: str = "stopped") -> None:
        """Send nothing more and cancel every call in flight; they are logged `cancelled`."""
        with self.cond:
            if self.stopping is None:
                self.stopping = reason
            running = list(self.running)
            self.cond.notify_all()
        for call in running:
            call.cancel()

    def threads(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]

    def _wait(self, ready: Callable[[], bool], until: float | None = None) -> bool:
        """Wait, holding the condition, until `ready()`; wake at `until` to look again.
        False if sending stops first: cancelled, or the deadline has passed."""
        while True:
            if self.stopping:
                return False
            if ready():
                return True
            now = time.perf_counter()
            if self.deadline is not None and self.deadline <= now:
                self.stopping = "deadline"
                return False
            limits = [t - now for t in (until, self.deadline) if t is not None]
            self.cond.wait(max(0.0, min(limits)) if limits else None)

    def send(self, items: Sequence[Item], phase: str, due_at: Sequence[float] | None = None,
             origin: float | None = None, cap: int = MAX_CONCURRENCY) -> None:
        """Send `items`: each when a slot frees, or at `origin + due_at[i]` (perf_counter
        seconds; origin defaults to now). Returns once all are sent, or sending stopped."""
        origin = time.perf_counter() if origin is None else origin
        for index, (prompt, mode) in enumerate(items):
            # Built before it is due: setting a call up is not part of its time.
            params = self.params[token_limit(self.settings, prompt)]
            call = Call(self.endpoint, prompt.prompt, params, mode, source="benchmark",
                        structure=self.settings.structure)
            trace = call.trace
            trace.bench_id, trace.bench_phase, trace.t_bench = self.bench_id, phase, self.t_bench
            due = None if due_at is None else origin + due_at[index]
            with self.cond:
                # The lambdas run within this iteration (B023 does not apply).
                if due is not None and not self._wait(
                        lambda: time.perf_counter() >= due, due):  # noqa: B023
                    return
                if not self._wait(lambda: len(self.running) < cap):
                    return
                t_start = due if due is not None else time.perf_counter()
                self.running.add(call)
                self.traces.append(trace)
                spawn = self._idle == 0
                if not spawn:
                    self._idle -= 1
            if spawn:
                self._spawn_thread()
            self._jobs.put((call, t_start))

    def _spawn_thread(self) -> None:
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"{self.name}-call-{len(self._threads)}")
        self._threads.append(thread)
        thread.start()

    def wait_idle(self, grace_s: float | None = None) -> None:
        """Wait until no call is in flight: within the deadline, or (stopping already, the
        calls cancelled) within `grace_s`."""
        with self.cond:
            if grace_s is None:
                self._wait(lambda: not self.running)
                return
            until = time.perf_counter() + grace_s
            while self.running and time.perf_counter() < until:
                self.cond.wait(until - time.perf_counter())

    def close(self) -> None:
        """Let the pool's threads end (after the calls they run)."""
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, t_start = job
            call.run(t_start)
            trace = call.trace
            live = ({name: metric(trace) for name, metric in LIVE_METRICS.items()}
                    if trace.bench_phase == "measured" and trace.status == "ok" else {})
            with self.cond:
                self.running.discard(call)
                self.finished.append(trace)
                self._idle += 1
                self.counts[trace.bench_phase] += 1
                self.counts["errors"] += trace.status == "error"
                for name, value in live.items():
                    if value is not None:
                        self.live[trace.mode][name].append(value)
                self.cond.notify_all()


def phase_items(settings: BenchSettings, phase: str) -> tuple[list[Item], list[float] | None]:
    """A phase's requests in order, and at a rate their due times after the phase begins."""
    count = settings.warmup if phase == "warmup" else settings.requests
    items = plan(settings, count)
    due_at = (arrival_offsets(count, settings.rate, settings.poisson, settings.seed)
              if settings.rate else None)
    return items, due_at


class Benchmark:
    """One benchmark: `start()` it, watch `progress()`, `cancel()` it from any thread, `join()`.

    A supervisor thread runs the phases (warm-up, then measured) and, when the last call has
    ended, writes every call to the run log. Here the calls are sent by one `Sender` in this
    process; a subclass sends them elsewhere (`lib.bench.workers.RayBenchmark`).
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
        self.status = "running"
        self.duration_s: float | None = None
        self.log_error: str | None = None
        self.failure: str | None = None
        self._phase = "warmup" if settings.warmup else "measured"
        self._t_bench = time.perf_counter()
        self._deadline: float | None = None
        self._sender = Sender(endpoint, self.settings, self._params, self.bench_id,
                              f"bench-{self.bench_id[:8]}")
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name=f"bench-{self.bench_id[:8]}")
        self._ended = threading.Event()
        """Set when the supervisor has logged everything (join waits on it, not Thread.join)."""

    @property
    def traces(self) -> list[Trace]:
        """Every call sent, in the order it was sent (warm-up first)."""
        return self._sender.traces

    # -- control, from any thread --------------------------------------------------------

    def start(self) -> "Benchmark":
        """Log the benchmark as running, then start sending (a broken run log raises here)."""
        self._prepare()
        if self.store is not None:
            try:
                self.store.save_benchmark(self.record())
            except Exception as exc:  # noqa: BLE001 - nothing sent yet: refuse with a message
                self._unprepare()
                raise CallFailed(f"The run log cannot be written, so nothing was sent "
                                 f"({type(exc).__name__}: {redact(str(exc))}).") from exc
        self._t_bench = self._sender.t_bench = time.perf_counter()
        if self.settings.deadline_s is not None:
            self._deadline = self._sender.deadline = self._t_bench + self.settings.deadline_s
        self._supervisor.start()
        return self

    def _prepare(self) -> None:
        """What must be ready before the benchmark is logged as running (raises if not)."""
        warm_up()

    def _unprepare(self) -> None:
        """Undo `_prepare` when the benchmark does not start after all."""

    def cancel(self, reason: str = "stopped") -> None:
        """Send nothing more and cancel every call in flight; they are logged `cancelled`."""
        self._sender.cancel(reason)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every call has ended and been logged; True if so.

        On an Event, not Thread.join: after a Ctrl-C or SIGTERM interrupted a Thread.join, the
        next one can return before the thread has ended (CPython 3.11), and the command would
        report and exit before the cancelled calls were logged."""
        return self._ended.wait(timeout)

    @property
    def done(self) -> bool:
        return self._supervisor.ident is not None and not self._supervisor.is_alive()

    def threads(self) -> list[threading.Thread]:
        """The runner's own threads that are still alive (none once it has finished)."""
        return [t for t in (self._supervisor, *self._sender.threads()) if t.is_alive()]

    def progress(self) -> Progress:
        sender = self._sender
        with sender.cond:  # copied under the lock, sorted outside it: workers never wait on it
            values = {mode: {name: list(v) for name, v in per.items()}
                      for mode, per in sender.live.items()}
            counts, in_flight = dict(sender.counts), len(sender.running)
        return self._progress(counts, in_flight, values)

    def _progress(self, counts: dict, in_flight: int, values: dict) -> Progress:
        return Progress(
            phase="done" if self.done else self._phase,
            done=counts["measured"], total=self.settings.requests,
            warmup_done=counts["warmup"], warmup_total=self.settings.warmup,
            in_flight=in_flight, errors=counts["errors"],
            elapsed_s=time.perf_counter() - self._t_bench,
            p50={mode: {name: metrics.percentile(v, 50) for name, v in per.items()}
                 for mode, per in values.items()},
        )

    def describe_workers(self) -> str:
        """Where the requests are sent from, for a command's or a page's output."""
        return "every request sent from this process"

    # -- the supervisor thread -----------------------------------------------------------

    def _supervise(self) -> None:
        try:
            self._run_phases()
        except Exception as exc:  # noqa: BLE001 - a runner bug must still cancel and log
            self.failure = f"The benchmark failed: {type(exc).__name__}: {exc}"
            self.cancel("failed")
        finally:
            # Whatever happened, nothing may keep running and everything sent is logged.
            self.cancel("completed")  # the first reason given wins
            try:
                self.status = self._wind_down() or "completed"
                self.duration_s = measured_span(self.traces)
                self._log()
            finally:
                self._ended.set()

    def _run_phases(self) -> None:
        sender = self._sender
        for phase in ("warmup", "measured"):
            items, due_at = phase_items(self.settings, phase)
            if not items:
                continue
            self._phase = phase
            sender.send(items, phase, due_at, cap=self.settings.concurrency or MAX_CONCURRENCY)
            sender.wait_idle()
            if sender.stopping:
                return

    def _wind_down(self) -> str | None:
        """Wait (within the grace) for cancelled calls to end; the reason sending stopped."""
        self._sender.wait_idle(STOP_GRACE_S)
        self._sender.close()
        return self._sender.stopping

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

"""The benchmark runner: N requests at a fixed concurrency or request rate, cancellable.

A benchmark is a prompt set × modes, cycled for N measured requests (after W warm-up requests
that are logged but not counted), sent at a fixed concurrency (at most C in flight, the next
one as soon as a slot frees) or at a request rate (constant or Poisson, seeded; optionally
capped at C in flight), within an optional deadline, and cancellable at any moment.

Every request is a `lib.core.calls.Call` run on a worker thread of the runner's pool: the same
call path as the race. Its `t_start` is the moment the runner decided to send it (a slot
freed) or, at a rate, the moment it was due; so any wait inside our client (for a worker
thread, for the GIL, for a runner that fell behind its schedule) is measured in `client_s`
and `queue_s`, never inside `ttft_s`. Every request sent becomes a run-log row.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Callable

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
        self._ended = threading.Event()
        """Set when the supervisor has logged everything (join waits on it, not Thread.join)."""

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
            try:
                self._log()
            finally:
                self._ended.set()

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
            call = Call(self.endpoint, prompt.prompt, params, mode, source="benchmark",
                        structure=self.settings.structure)
            trace = call.trace
            trace.bench_id, trace.bench_phase, trace.t_bench = self.bench_id, phase, self._t_bench
            due = None if due_at is None else origin + due_at[index]
            with self._cond:
                # The lambdas run within this iteration (B023 does not apply).
                if due is not None and not self._wait(
                        lambda: time.perf_counter() >= due, due):  # noqa: B023
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

"""Benchmark workers on Ray: one benchmark's load spread over N actors, local or on a cluster.

    driver (this process)                       worker actors (each a process, own clients)
    RayBenchmark ─ plan + one schedule ──deal──▶ BenchWorker ─ Sender ─ Call … Call
         ▲  polls every POLL_S: traces that ended,   │   timestamps taken here, on the thread
         └────── requests that started ◀─────────────┘   that receives the bytes

The driver plans the whole benchmark as `Benchmark` would (lib.bench.plan): the requests in
order and, at a rate, one arrival schedule with offsets from one shared start instant. Each
worker gets its share, dealt in proportion to its share of the concurrency, and sends it with
its own `Sender` (the in-process runner's sending half). Traces come back incrementally, so
whatever a worker finished is never lost with it; each is logged once, by the driver, under
the benchmark's one `bench_id`. Cancel, Stop and the deadline reach every worker. A worker that
dies is reported (`failure`), its requests in flight at its last report are logged as errors
(`worker_lost`), and the benchmark stops: the load is no longer what was asked.

Clocks: a worker on this machine shares the driver's `perf_counter()` (CLOCK_MONOTONIC, one
per boot), so its timestamps are used as they are. A worker on another machine has its own;
its timestamps are moved onto the driver's through both machines' wall clocks (as good as
their NTP), which shifts whole traces, never the durations inside one.

Ray itself: `connect(None)` starts a local Ray for this process, `ray start --head --block` as a
child server (lib.serving.process: a process group of its own, stopped at exit or by
`shutdown()` with every process of it; loopback only, no dashboard, a small object store, its
files in a temp folder, token authentication) and joins it; `connect("host:port")` joins a
running cluster (README: a Ray cluster for load).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lib.bench.plan import MAX_CONCURRENCY, BenchSettings, deal, split
from lib.bench.runner import LIVE_METRICS, STOP_GRACE_S, Benchmark, Item, Sender, phase_items
from lib.bench.summary import Progress
from lib.core.calls import warm_up
from lib.core.errors import InvalidInput, ServerStartFailed, WorkerLost, WorkersUnavailable
from lib.core.trace import Chunk, Params, Trace
from lib.endpoints import Endpoint
from lib.serving.process import ManagedProcess, free_port
from lib.storage.store import Store

POLL_S = 0.25
"""How often the driver collects what the workers finished (and hears that they live)."""
LEAD_S = 0.1
"""A phase's shared start instant is this far after the driver hands out the shares: time for
the shares to reach every worker before its first request is due."""
WORKER_START_TIMEOUT_S = 120.0
"""How long the cluster gets to start the workers (a process each, importing the SDKs)."""
UNRESPONSIVE_S = 30.0
"""A worker that has answered no poll for this long is given up as lost."""
OBJECT_STORE_BYTES = 100 * 1024**2
"""The local Ray's shared-memory object store: traces are small, the default would be 30% of
the machine's memory."""
LIB_DIR = Path(__file__).resolve().parents[1]
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
"""What the local Ray's head gets of this process's environment for token authentication
(its sealed environment keeps HOME, so it finds Ray's token file as this process does)."""


# -- Ray itself: start a local one, or join a cluster -----------------------------------------


@dataclass
class RaySession:
    """The Ray this process is connected to."""

    address: str | None
    """None: the local Ray this process started."""
    started_s: float
    """Wall time to start (or join) it."""
    temp_dir: str | None = None
    head: ManagedProcess | None = None
    """The local Ray's head process (its group holds every Ray process of it)."""


_session: RaySession | None = None
_session_lock = threading.Lock()


def _ray():
    """Ray, imported on first use (0.7 s; a benchmark without workers never pays it).

    Before the import: a local Ray must stay on 127.0.0.1 (Ray reads this once, at import;
    a cluster join names its own address, `_reachable_ip`)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Ray's C++ core would take SIGTERM over (log a stack, die by the signal): the app or
    # command it ran in would skip its exit handlers, and the local Ray would outlive it.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    # Ray's token authentication, read once too: the user's token (RAY_AUTH_TOKEN, or Ray's
    # token file) when there is one, else one of this process's own, which the local Ray it
    # starts gets as well.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    import ray

    return ray


def check_address(address: str) -> tuple[str, int]:
    """host:port of a Ray cluster's head (its GCS, `ray start --head --port`), or InvalidInput."""
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in address:
        raise InvalidInput(f"'{address}' is not a Ray address: give the head node's host:port, "
                           "e.g. 10.0.0.5:6379 (what `ray start --head` printed).")
    return host.strip("[]"), int(port)


def _reachable_ip(host: str, port: int) -> str:
    """This machine's address as the cluster's head sees it (the route to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return probe.getsockname()[0]


def connect(address: str | None = None) -> RaySession:
    """The Ray session of this process: a local Ray (address None), started on first use, or
    the cluster at `address`. Raises WorkersUnavailable with a one-line message, having
    started nothing, when it cannot."""
    global _session
    with _session_lock:
        if _session is not None and _session.address == address:
            return _session
        if _session is not None:
            _shutdown_locked()
        ray = _ray()
        t0 = time.perf_counter()
        # ray.init makes SIGTERM exit the process at once (sys.exit), which would skip the
        # command's cancelling and logging (lib.cli.common.run): its handler is put back.
        on_sigterm = signal.getsignal(signal.SIGTERM)
        try:
            _session = _join(ray, address, t0)
        finally:
            if threading.current_thread() is threading.main_thread() and on_sigterm is not None:
                signal.signal(signal.SIGTERM, on_sigterm)
        return _session


def _join(ray, address: str | None, t0: float) -> RaySession:
    """Start a local Ray and join it (address None), or join the cluster at `address`."""
    if address is None:
        return _start_local(ray, t0)
    host, port = check_address(address)
    try:  # Ray itself would retry for minutes, printing as it goes
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise WorkersUnavailable(
            f"Cannot reach a Ray cluster at {address} ({exc.strerror or exc}): is "
            f"`ray start --head --port {port}` running there, and is the address right?"
        ) from exc
    try:
        ray.init(address=f"{host}:{port}", _node_ip_address=_reachable_ip(host, port),
                 runtime_env={"py_modules": [str(LIB_DIR)]}, log_to_driver=False,
                 logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises becomes one line
        _quiet_shutdown(ray)
        raise WorkersUnavailable(f"Could not join the Ray cluster at {address}: "
                                 f"{_first_line(exc)}") from exc
    return RaySession(address, time.perf_counter() - t0)


def _start_local(ray, t0: float) -> RaySession:
    """A Ray head on 127.0.0.1 for this process, as a child server of its own (`ray start
    --head --block`, a process group of its own: a signal meant for this process, Ctrl-C or
    a SIGTERM to our group, never reaches Ray's processes before we have cancelled and logged;
    stopping the group stops every one of them), then this process joined to it."""
    temp_dir = tempfile.mkdtemp(prefix="streamrace-ray-")
    port = free_port()
    auth = {name: os.environ[name] for name in AUTH_VARIABLES if name in os.environ}
    head = ManagedProcess(
        "A local Ray", [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                        f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=0",
                        "--include-dashboard=false", "--disable-usage-stats",
                        f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={temp_dir}"],
        # Its workers are started by its processes: they find `lib` from its environment.
        healthy=lambda: _head_ready(temp_dir, port), log_path=Path(temp_dir) / "head.log",
        # Ray starts its workers at nice 15 (background work): ours are measuring
        # instruments, whose every wait for a core would land in some request's TTFT.
        env={"PYTHONPATH": str(LIB_DIR.parent), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
             "RAY_worker_niceness": "0", **auth},
        cwd=LIB_DIR.parent, start_timeout_s=120)
    try:
        head.start()
        ray.init(address=f"127.0.0.1:{port}", _node_ip_address="127.0.0.1",
                 log_to_driver=False, logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises becomes one line
        _quiet_shutdown(ray)
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
        message = exc.message if isinstance(exc, ServerStartFailed) else _first_line(exc)
        raise WorkersUnavailable(f"A local Ray could not be started for the workers: "
                                 f"{message}") from exc
    return RaySession(None, time.perf_counter() - t0, temp_dir, head)


def _head_ready(temp_dir: str, port: int) -> bool:
    """The head's GCS takes connections and its raylet is up (its socket exists)."""
    if not list(Path(temp_dir).glob("session_*/sockets/raylet")):
        return False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def shutdown() -> None:
    """Leave Ray; a local Ray is stopped (every process of it) and its files removed."""
    with _session_lock:
        _shutdown_locked()


def _shutdown_locked() -> None:
    global _session
    session, _session = _session, None
    if session is None:
        return
    _quiet_shutdown(_ray())
    if session.head is not None:
        session.head.stop()
    if session.temp_dir:
        shutil.rmtree(session.temp_dir, ignore_errors=True)


def _quiet_shutdown(ray) -> None:
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - leaving a Ray that is already gone
        pass


atexit.register(shutdown)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# -- one worker: an actor that sends its share -------------------------------------------------


def _boot_id() -> str:
    """Which monotonic clock this is: perf_counter() values compare only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"{socket.gethostname()}-{os.getpid()}"


class BenchWorker:
    """A Ray actor (threaded: polls and cancels come while it sends) running one `Sender`.

    `run()` starts one phase and returns; `poll()` hands over, once each, the requests that
    started (without their chunks: enough to log them if this worker dies) and the traces
    that ended since the last poll."""

    def __init__(self, endpoint: Endpoint, settings: BenchSettings, params: dict[int, Params],
                 bench_id: str, index: int) -> None:
        warm_up()  # the SDKs' first-call cost, paid before anything is timed
        self.sender = Sender(endpoint, settings, params, bench_id, f"worker-{index}")
        self._done_phase: str | None = None
        self._failure: str | None = None

    def hello(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id(),
                "wall_minus_perf": time.time() - time.perf_counter()}

    def run(self, items: list[Item], phase: str, due_at: list[float] | None, origin: float,
            cap: int, t_bench: float, deadline: float | None) -> None:
        """Send these requests (origin, t_bench, deadline on this worker's clock)."""
        self.sender.t_bench, self.sender.deadline = t_bench, deadline

        def send() -> None:
            try:
                self.sender.send(items, phase, due_at, origin, cap)
                self.sender.wait_idle()
                if self.sender.stopping:  # its own deadline: what is in flight ends now
                    self.sender.cancel(self.sender.stopping)
            except Exception as exc:  # noqa: BLE001 - reported to the driver by poll()
                self._failure = f"{type(exc).__name__}: {exc}"
                self.sender.cancel("failed")
            finally:
                self._done_phase = phase

        threading.Thread(target=send, daemon=True, name=f"{phase}-share").start()

    def poll(self, phase: str | None) -> dict:
        """What happened since the last poll; `idle`: `phase` (the last one the driver
        gave) is sent and nothing is in flight (cancelled calls included)."""
        sender = self.sender
        with sender.cond:
            # Handed over and forgotten: the driver keeps them, and a worker whose heap grew
            # with every trace would pause longer in each full garbage collection (every
            # thread stops then, and the pause lands in some request's TTFT).
            started, finished = list(sender.traces), list(sender.finished)
            sender.traces.clear()
            sender.finished.clear()
            stopping, running = sender.stopping, bool(sender.running)
        return {
            "started": [dataclasses.replace(t, chunks=[]) for t in started],
            "finished": finished,
            "idle": (phase is None or self._done_phase == phase) and not running,
            "stopping": stopping, "failure": self._failure,
        }

    def cancel(self, reason: str) -> None:
        self.sender.cancel(reason)


# -- the driver ---------------------------------------------------------------------------------


def shifted(trace: Trace, by: float) -> Trace:
    """The trace with every timestamp moved by `by` seconds (another machine's clock onto
    ours); durations inside it are unchanged."""
    if not by:
        return trace
    moved = {name: getattr(trace, name) + by for name in
             ("t_start", "t_run", "t0", "t_shown", "t_end", "t_bench")
             if getattr(trace, name) is not None}
    chunks = [Chunk(c.t + by, c.text, c.thought) for c in trace.chunks]
    return dataclasses.replace(trace, chunks=chunks, **moved)


@dataclass
class _Worker:
    index: int
    actor: Any
    pid: int
    host: str
    shift: float
    """This worker's perf_counter() minus the driver's at one instant (0 on this machine)."""
    in_flight: dict[str, Trace] = dataclasses.field(default_factory=dict)
    sent: int = 0
    """Requests it reported sent."""
    sent_phase: str | None = None
    """The phase it was last given; None before the first."""
    idle: bool = True
    alive: bool = True
    last_heard: float = 0.0

    def describe(self, of: int) -> str:
        return f"worker {self.index + 1} of {of} (pid {self.pid} on {self.host})"


class RayBenchmark(Benchmark):
    """A `Benchmark` whose requests are sent by N Ray actors (`settings.workers`), each with its
    share of the concurrency (or of the one arrival schedule) and its own clients.

    The same interface as `Benchmark`: start, progress, cancel, join, traces, summary."""

    def __init__(self, endpoint: Endpoint, settings: BenchSettings, params: Params,
                 store: Store | None = None, ray_address: str | None = None) -> None:
        super().__init__(endpoint, settings, params, store)
        if not self.settings.workers:
            raise InvalidInput("A benchmark on Ray workers needs at least one worker.")
        if ray_address is not None:
            check_address(ray_address)
        self.ray_address = ray_address
        self.session: RaySession | None = None
        self.workers: list[_Worker] = []
        self.workers_ready_s: float | None = None
        self._lock = threading.Lock()
        self._collected: list[Trace] = []
        self._stop: str | None = None
        self._wake = threading.Event()
        self._counts = {"warmup": 0, "measured": 0, "errors": 0}
        self._live: dict[str, dict[str, list[float]]] = {
            m: {name: [] for name in LIVE_METRICS} for m in self.settings.modes}

    @property
    def traces(self) -> list[Trace]:
        """Every request sent, in the order sent (warm-up first): those that ended, and
        those still in flight as their worker last reported them."""
        with self._lock:
            traces = self._collected + [t for w in self.workers for t in w.in_flight.values()]
        return sorted(traces, key=lambda t: (t.bench_phase != "warmup", t.t_start or 0.0))

    # -- start: Ray, the actors, their clocks ---------------------------------------------------

    def _prepare(self) -> None:
        ray = _ray()
        self.session = connect(self.ray_address)
        t0 = time.perf_counter()
        actor_class = ray.remote(BenchWorker).options(
            num_cpus=0, max_concurrency=4, scheduling_strategy="SPREAD", max_restarts=0)
        count = self.settings.workers
        actors = [actor_class.remote(self.endpoint, self.settings, self._params, self.bench_id, i)
                  for i in range(count)]
        try:
            hellos = ray.get([a.hello.remote() for a in actors], timeout=WORKER_START_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a timeout, or a worker that failed to start
            for actor in actors:
                ray.kill(actor)
            if isinstance(exc, ray.exceptions.GetTimeoutError):
                raise WorkersUnavailable(
                    f"Ray did not start {count} benchmark workers within "
                    f"{WORKER_START_TIMEOUT_S:g} s: does the cluster have room for them?"
                ) from exc
            raise WorkersUnavailable(f"A benchmark worker failed to start: "
                                     f"{_first_line(exc)}") from exc
        here, offset = _boot_id(), time.time() - time.perf_counter()
        now = time.perf_counter()
        self.workers = [
            _Worker(i, actor, h["pid"], h["host"],
                    0.0 if h["boot_id"] == here else offset - h["wall_minus_perf"],
                    last_heard=now)
            for i, (actor, h) in enumerate(zip(actors, hellos))]
        self.workers_ready_s = time.perf_counter() - t0
        for worker in self.workers:
            if worker.shift:
                self._check_reachable(worker)

    def describe_workers(self) -> str:
        """Where the workers run and what starting them cost, for a command's output."""
        where = (f"joined {self.ray_address}" if self.ray_address
                 else "a local Ray") + (f" in {self.session.started_s:.1f} s"
                                        if self.session else "")
        pids = ", ".join(f"{w.pid}@{w.host}" for w in self.workers)
        return f"{where}; workers ready {self.workers_ready_s:.1f} s later ({pids})"

    def _check_reachable(self, worker: _Worker) -> None:
        for url in set(self.endpoint.urls.values()):
            host = urlparse(url).hostname or ""
            if host in ("localhost", "::1") or host.startswith("127."):
                self._unprepare()
                raise InvalidInput(
                    f"{worker.describe(len(self.workers)).capitalize()} runs on another "
                    f"machine: it cannot reach {url} on this one. Give the endpoint an "
                    f"address the cluster's machines can reach.")

    def _unprepare(self) -> None:
        ray = _ray()
        for worker in self.workers:
            ray.kill(worker.actor)
        self.workers = []

    # -- control ------------------------------------------------------------------------------

    def cancel(self, reason: str = "stopped") -> None:
        with self._lock:
            if self._stop is None:
                self._stop = reason
            live = [w for w in self.workers if w.alive]
        for worker in live:
            worker.actor.cancel.remote(reason)
        self._wake.set()

    def progress(self) -> Progress:
        with self._lock:
            counts = dict(self._counts)
            in_flight = sum(len(w.in_flight) for w in self.workers)
            values = {mode: {name: list(v) for name, v in per.items()}
                      for mode, per in self._live.items()}
        return self._progress(counts, in_flight, values)

    # -- the supervisor thread ------------------------------------------------------------------

    def _run_phases(self) -> None:
        cap = self.settings.concurrency or MAX_CONCURRENCY
        caps = split(cap, len(self.workers))
        for phase in ("warmup", "measured"):
            items, due_at = phase_items(self.settings, phase)
            if not items:
                continue
            if self._stop:
                return
            self._phase = phase
            origin = time.perf_counter() + LEAD_S
            for worker, hand, worker_cap in zip(self.workers, deal(len(items), caps), caps):
                worker.idle, worker.sent_phase = False, phase
                worker.actor.run.remote(
                    [items[i] for i in hand], phase,
                    None if due_at is None else [due_at[i] for i in hand],
                    origin + worker.shift, worker_cap, self._t_bench + worker.shift,
                    None if self._deadline is None else self._deadline + worker.shift)
            self._collect(until=None)
            if self._stop:
                return

    def _collect(self, until: float | None) -> None:
        """Poll the workers until every live one is idle, or the benchmark stops (or, with
        `until`, that moment passes)."""
        ray = _ray()
        while True:
            self._wake.clear()
            live = [w for w in self.workers if w.alive]
            replies = [(w, w.actor.poll.remote(w.sent_phase)) for w in live]
            for worker, ref in replies:
                try:
                    report = ray.get(ref, timeout=max(POLL_S, 5.0))
                except ray.exceptions.GetTimeoutError:
                    if time.perf_counter() - worker.last_heard > UNRESPONSIVE_S:
                        self._lose(worker, f"it answered nothing for {UNRESPONSIVE_S:g} s")
                    continue
                except Exception as exc:  # noqa: BLE001 - RayActorError: the process is gone
                    self._lose(worker, _first_line(exc))
                    continue
                self._absorb(worker, report)
            now = time.perf_counter()
            if self._deadline is not None and now >= self._deadline:
                self.cancel("deadline")
            live = [w for w in self.workers if w.alive]
            if all(w.idle for w in live):
                return
            if until is None and self._stop:
                return
            if until is not None and now >= until:
                return
            self._wake.wait(POLL_S)

    def _absorb(self, worker: _Worker, report: dict) -> None:
        worker.last_heard = time.perf_counter()
        started = [shifted(t, -worker.shift) for t in report["started"]]
        finished = [shifted(t, -worker.shift) for t in report["finished"]]
        live = [(t, {name: m(t) for name, m in LIVE_METRICS.items()}) for t in finished
                if t.bench_phase == "measured" and t.status == "ok"]
        with self._lock:
            worker.sent += len(started)
            for trace in started:
                worker.in_flight[trace.run_id] = trace
            for trace in finished:
                worker.in_flight.pop(trace.run_id, None)
                self._collected.append(trace)
                self._counts[trace.bench_phase or "measured"] += 1
                self._counts["errors"] += trace.status == "error"
            for trace, values in live:
                for name, value in values.items():
                    if value is not None:
                        self._live[trace.mode][name].append(value)
            worker.idle = report["idle"]
        if report["failure"] and not self.failure:
            self.failure = (f"Benchmark {worker.describe(len(self.workers))} failed: "
                            f"{report['failure']}")
        if report["stopping"] and self._stop is None:  # the worker's deadline, or a failure
            self.cancel(report["stopping"])

    def _lose(self, worker: _Worker, cause: str) -> None:
        """A worker is gone: its requests in flight become errors, and the benchmark stops."""
        now = time.perf_counter()
        with self._lock:
            worker.alive = False
            lost = list(worker.in_flight.values())
            worker.in_flight.clear()
            message = (f"The benchmark {worker.describe(len(self.workers))} died with this "
                       f"request in flight ({cause}); what it had received was lost with it.")
            for trace in lost:
                trace.status, trace.t_end = "error", now
                trace.error, trace.error_kind = message, WorkerLost.kind
                self._collected.append(trace)
                self._counts[trace.bench_phase or "measured"] += 1
                self._counts["errors"] += 1
        if not self.failure:
            self.failure = (f"Benchmark {worker.describe(len(self.workers))} died ({cause}); "
                            f"its {len(lost)} requests in flight are logged as errors "
                            f"({WorkerLost.kind}), and the other workers were stopped.")
        self.cancel("failed")

    def _wind_down(self) -> str | None:
        ray = _ray()
        self._collect(until=time.perf_counter() + STOP_GRACE_S)
        self._collect(until=time.perf_counter())  # what ended during the last wait
        for worker in self.workers:
            if worker.alive and worker.in_flight:
                self._lose(worker, f"its requests did not end within {STOP_GRACE_S:g} s of "
                                   "being cancelled")
            ray.kill(worker.actor)
        with self._lock:
            self._collected.sort(key=lambda t: (t.bench_phase != "warmup", t.t_start or 0.0))
        return self._stop


def benchmark_for(endpoint: Endpoint, settings: BenchSettings, params: Params,
                  store: Store | None = None, ray_address: str | None = None) -> Benchmark:
    """The runner these settings ask for: in this process, or on `settings.workers` Ray
    workers (a local Ray, or the cluster at `ray_address`)."""
    if not settings.workers:
        if ray_address:
            raise InvalidInput("A Ray address needs workers: give the number of workers too.")
        return Benchmark(endpoint, settings, params, store)
    return RayBenchmark(endpoint, settings, params, store, ray_address or None)

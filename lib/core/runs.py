"""One lifecycle for every run (a race, a benchmark, a guardrails run): start, cancel, join
with a deadline, log.

A run is anything with `start()`, `cancel()`, `join(timeout) -> bool` and `done`; the runs
themselves only say how they start and stop. What happens around them, the same for the
command lines and the pages, is here: wait with one deadline, cancel what is unfinished
(timeout, Ctrl-C, SIGTERM, a Stop click), give it a grace period to unwind, then log what it
measured. A run that something draws while it goes (a page) is `Owned` from the moment it
starts: its logging never depends on whoever started it staying alive.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Callable, Iterable, Protocol, TypeVar

from lib.core.trace import Trace


class Run(Protocol):
    def start(self) -> Run: ...

    def cancel(self) -> None: ...

    def join(self, timeout: float | None = None) -> bool: ...

    @property
    def done(self) -> bool: ...


class Log(Protocol):
    """Where finished runs go (lib.storage.store.Store)."""

    def log(self, traces: Iterable[Trace]) -> None: ...


R = TypeVar("R", bound=Run)

GRACE_S = 10.0
"""How long a cancelled run gets to unwind (close its connections, record its end)."""


def run_to_end(run: R, timeout_s: float | None = None, grace_s: float = GRACE_S) -> R:
    """Start `run` and wait for it; past `timeout_s` or on Ctrl-C, cancel it and give it
    `grace_s` to end. Returns the run, ended (or as far as it got)."""
    run.start()
    try:
        if not run.join(timeout_s):
            run.cancel()
            run.join(grace_s)
    except KeyboardInterrupt:
        run.cancel()
        run.join(grace_s)
    return run


def run_logged(run: Run, rows: Callable[[], list[Trace]], log: Log | None,
               timeout_s: float | None = None, grace_s: float = GRACE_S) -> list[Trace]:
    """A run without a renderer: run it to its end, log its rows, return them."""
    run_to_end(run, timeout_s, grace_s)
    traces = rows()
    if log is not None:
        log.log(traces)
    return traces


class Owned:
    """A run whose end is taken care of from the moment it starts.

    `start()` starts the run, then a watcher thread that waits for it to end (finished,
    failed or cancelled) and calls `on_end` (log it) exactly once. Nothing that happens to the
    starter afterwards (an exception, a Streamlit rerun or a closed tab interrupting the script,
    the starter forgetting it) can leave the run unlogged; whoever must stop it calls
    `cancel()`, and `wait()` tells when it has been logged. Runs still going when the process
    exits are cancelled and given `GRACE_S` to log.
    """

    def __init__(self, run: Run, on_end: Callable[[], None]):
        self.run = run
        self._on_end = on_end
        self.settled = threading.Event()
        """Set once `on_end` has returned (or failed)."""

    def start(self) -> Owned:
        self.run.start()
        _owned.add(self)
        threading.Thread(target=self._watch, daemon=True, name="owned-run").start()
        return self

    def _watch(self) -> None:
        try:
            self.run.join(None)  # bounded by the run's own timeouts; cancel() ends it sooner
        finally:
            try:
                self._on_end()
            finally:
                _owned.discard(self)
                self.settled.set()

    def cancel(self) -> None:
        self.run.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the run has ended and been logged within `timeout`."""
        return self.settled.wait(timeout)


class _OwnedRuns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: set[Owned] = set()

    def add(self, item: Owned) -> None:
        with self._lock:
            self._items.add(item)

    def discard(self, item: Owned) -> None:
        with self._lock:
            self._items.discard(item)

    def settle_all(self, grace_s: float = GRACE_S) -> None:
        """Cancel every run still going and wait (one deadline) until each is logged."""
        with self._lock:
            items = list(self._items)
        for item in items:
            item.cancel()
        deadline = time.monotonic() + grace_s
        for item in items:
            item.wait(max(0.0, deadline - time.monotonic()))


_owned = _OwnedRuns()
atexit.register(_owned.settle_all)

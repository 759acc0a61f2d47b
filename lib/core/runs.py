"""One lifecycle for every run (a race, a benchmark, a guardrails run): start, cancel, join
with a deadline, log.

A run is anything with `start()`, `cancel()`, `join(timeout) -> bool` and `done`; the runs
themselves only say how they start and stop. What happens around them, the same for the
command lines and the pages, is here: wait with one deadline, cancel what is unfinished
(timeout, Ctrl-C, a Stop click), give it a grace period to unwind, then log what it measured.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

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


def join_all(threads: Sequence[threading.Thread], timeout: float | None) -> None:
    """Join every thread within one deadline shared by all of them (not `timeout` each)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


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


@contextmanager
def supervised(run: Run, on_end: Callable[[], None], grace_s: float = GRACE_S) -> Iterator[None]:
    """Around a started run that something watches (a page draws it while it goes): however
    the block ends (finished, an exception, the script interrupted by Stop or a re-click),
    cancel the run if the block did not finish, wait up to `grace_s` for it, then `on_end()`
    (log it, keep it). `on_end` must not call Streamlit: an interrupted script raises again at
    its next call."""
    completed = False
    try:
        yield
        completed = True
    finally:
        if not completed:
            run.cancel()
        run.join(grace_s)
        on_end()

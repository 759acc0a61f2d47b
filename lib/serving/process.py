"""One way to run a child server: start, log, wait for health, stop; the environment it gets.

Every server StreamRace starts (the embedded llama.cpp model, the replay server, the test and
benchmark apps) goes through `ManagedProcess`, so that all of them:

- get a *sealed* environment: only what `sealed_env()` keeps plus what the caller names.
  Nothing from the user's shell (HOST, PORT, CONFIG_FILE, MODEL, LLAMA_ARG_*, STREAMLIT_*…)
  can move a child off 127.0.0.1, onto a port it did not choose, or onto another model;
- run in a process group of their own, so that stopping one stops whatever it started;
- fail with a `ServerStartFailed` whose message names the cause in words a user can act on
  (binary missing, killed by a signal, exited, no health in time) and leave nothing running;
- are stopped when this process exits.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Sequence

from lib.core.errors import ServerStartFailed

KEPT_VARIABLES = ("PATH", "HOME", "TMPDIR", "USER", "LOGNAME")
"""What a child keeps of our environment: where programs and the home folder are. Locale is
set, not inherited (a hostile LC_ALL must not change how numbers are printed)."""
KEPT_PREFIXES = ("OPENBLAS_",)
"""OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set on some machines because older OpenBLAS builds
crash on their CPU without them: a Python child that imports numpy needs them too."""


OWNER_VARIABLE = "STREAMRACE_OWNER_PID"
"""Set in every child's environment: whoever looks (a test, a person with `grep -z`) can tell
which process started it, and find a child that outlived its parent."""


def sealed_env(extra: Mapping[str, str] | None = None,
               environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child server: a few harmless variables of ours, plus `extra`."""
    environ = os.environ if environ is None else environ
    env = {name: value for name, value in environ.items()
           if name in KEPT_VARIABLES or name.startswith(KEPT_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", PYTHONUNBUFFERED="1")
    env[OWNER_VARIABLE] = str(os.getpid())
    env.update(extra or {})
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """Whether GET `url` answers 200 (a health check)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def describe_exit(returncode: int) -> str:
    """How a process ended, in words."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGILL:
            return (f"was killed by {name} (illegal instruction): this build uses CPU "
                    "instructions this machine cannot run")
        return f"was killed by {name}"
    return f"exited with code {returncode}"


class ManagedProcess:
    """A child server: its command, sealed environment, log file and health check."""

    def __init__(self, name: str, command: Sequence[str], *, health_url: str = "",
                 healthy: Callable[[], bool] | None = None, log_path: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 start_timeout_s: float = 60.0, rebuild_hint: str | None = None):
        self.name = name
        """What it is, for messages: "The embedded llama.cpp server"."""
        self.command = list(command)
        self.health_url = health_url
        self.healthy = healthy or (lambda: http_ok(health_url))
        """Whether it is ready: its health URL answers 200, or (a server that speaks no HTTP,
        a local Ray) the caller's own check."""
        self.log_path = log_path
        self.env = sealed_env(env)
        self.cwd = cwd
        self.start_timeout_s = start_timeout_s
        self.rebuild_hint = rebuild_hint
        """Said after a SIGILL: the command that builds a version this machine can run."""
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        """The last child's pid, kept after it stopped: also its process group's id."""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, ready: Callable[[], None] | None = None) -> "ManagedProcess":
        """Start, wait until the health URL answers 200, then run `ready` (a warm-up).

        Any failure stops the process (and its group) and raises ServerStartFailed.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self.process = subprocess.Popen(
                    self.command, cwd=self.cwd, env=self.env, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
                self.pid = self.process.pid
            except OSError as exc:  # missing or not executable
                raise ServerStartFailed(
                    f"{self.name} could not be started: {self.command[0]} "
                    f"({exc.strerror or exc}). {self.rebuild_hint or ''}".strip()) from exc
        if not _running.add(self):
            self.stop()
            raise ServerStartFailed(f"{self.name} was not started: this process is exiting")
        try:
            self._wait_healthy()
            if ready is not None:
                ready()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, ServerStartFailed):
                raise
            if isinstance(exc, Exception):
                raise self._failure(f"failed its first request ({type(exc).__name__}: {exc})") \
                    from exc
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise self._failure("stopped while starting")
            if self.healthy():
                return
            time.sleep(0.05)  # polling a process that is starting: nothing else to wait on
        raise self._failure(f"did not answer within {self.start_timeout_s:g} s")

    def _failure(self, what: str) -> ServerStartFailed:
        """A ServerStartFailed saying what happened; a dead process says how it ended."""
        if self.process is not None and self.process.poll() is not None:
            what = describe_exit(self.process.returncode)
            if self.process.returncode == -signal.SIGILL and self.rebuild_hint:
                what += f". {self.rebuild_hint}"
        tail = self.log_tail()
        return ServerStartFailed(
            f"{self.name} {what}. Its log: {self.log_path}"
            + (f" (last line: {tail})" if tail else ""))

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM to its whole group, SIGKILL after `grace_s`; idempotent."""
        process, self.process = self.process, None
        _running.discard(self)
        if process is not None:
            stop_group(process, grace_s)


def stop_process(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Stop one child (SIGTERM, SIGKILL after `grace_s`) that has no process group of its own."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_group(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Stop a child started with start_new_session=True, and everything in its group."""
    def signal_group(sig: int) -> None:
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    if process.poll() is None:
        signal_group(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            signal_group(signal.SIGKILL)
            process.wait()
    signal_group(signal.SIGKILL)  # what the leader left behind in its group


_lock = threading.Lock()


class _Running:
    """The managed processes alive in this process, stopped at exit.

    Daemon threads still run while atexit handlers do: one starting a server (the embedded
    model, started in the background) could start it just after `stop_all`, and the server
    outlived us (seen once, on a loaded machine). After `stop_all`, `add` refuses: the caller
    stops what it started."""

    def __init__(self) -> None:
        self._items: set[ManagedProcess] = set()
        self._closed = False

    def add(self, item: ManagedProcess) -> bool:
        with _lock:
            if self._closed:
                return False
            self._items.add(item)
            return True

    def discard(self, item: ManagedProcess) -> None:
        with _lock:
            self._items.discard(item)

    def stop_all(self) -> None:
        with _lock:
            self._closed = True
            items = list(self._items)
        for item in items:
            item.stop()


_running = _Running()
atexit.register(_running.stop_all)
# And before the interpreter waits for its other threads at exit: a thread waiting on a child
# (a race waiting for the embedded model to start) would hold the exit up until the child
# answered, past the grace a supervisor gives before SIGKILL, which leaves children orphaned.
# (threading's own hook for this, used by concurrent.futures; plain atexit runs after.)
getattr(threading, "_register_atexit", lambda hook: None)(_running.stop_all)

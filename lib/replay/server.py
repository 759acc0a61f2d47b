"""The replay server: recordings played at their offsets by an OpenAI-compatible server.

`ReplayServer` (a `lib.serving.playback.PlaybackServer`) re-emits a recording at its offsets,
streaming or blocking; because it is a real HTTP endpoint (`endpoint_kind = replay`), the race,
the benchmark and the guardrails lab measure it through the real network and client path.
The app's replay server runs in a process of its own (`ensure_server`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import httpx

from lib.core.config import default_data_dir
from lib.core.errors import EndpointUnreachable, StreamRaceError
from lib.replay.whatif import Spec, Transform, parse_model
from lib.serving.playback import PlaybackServer, Script
from lib.serving.process import ManagedProcess, free_port
from lib.storage.recording import Recording
from lib.storage.store import default_url


class ReplayServer(PlaybackServer):
    """An OpenAI-compatible server playing recordings by model name (see the module docstring).

    `recordings` is any mapping name → Recording: the database's (`Recordings`), or a dict.
    A plain recording name gets `transform`; names that ask for a transform get theirs.
    With `default`, a model name that is no recording (a tool with a fixed model name, e.g.
    gpt-4o-mini) gets that recording.
    """

    def __init__(self, recordings: Mapping[str, Recording], *, default: str | None = None,
                 transform: Transform = Transform(), port: int = 0):
        super().__init__({}, port=port)
        self.recordings = recordings
        self.default = default
        self.transform = transform

    def spec_for(self, model: str) -> Spec:
        if self.default is not None and "~" not in model and model not in self.recordings:
            return Spec(recording=self.default, transform=self.transform)
        spec = parse_model(model)
        if spec.profile is None and spec.transform.is_identity:
            spec = replace(spec, transform=self.transform)
        return spec

    def script_for(self, model: str) -> Script:
        try:
            return self.spec_for(model).script(self.recordings)
        except StreamRaceError as exc:
            raise LookupError(exc.message) from None

    def model_names(self) -> list[str]:
        return list(self.recordings)


# -- the app's replay server: a process of its own, started once --------------------------------

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0

_lock = threading.Lock()
_served: tuple[str, ManagedProcess] | None = None
"""The database URL this process's replay server serves, and the server."""


def ensure_server(database_url: str | None = None) -> str:
    """The base URL of this process's replay server for that database; started on first use.

    A process of its own (like the embedded model): in the app's process, its timing would
    wait on the GIL whenever the page renders, and the replay would not be the recording.
    """
    global _served
    url = database_url or default_url()
    with _lock:
        if _served is not None and _served[0] == url and _served[1].alive():
            return _base_url(_served[1])
        _stop()
        port = free_port()
        server = ManagedProcess(
            "The replay server", [sys.executable, "-m", "lib.replay", "serve", "--port", str(port)],
            health_url=f"http://127.0.0.1:{port}/v1/models",
            log_path=default_data_dir() / f"replay-server-{os.getpid()}.log",
            # Sealed: the database it plays from, and nothing else of ours (no key: it needs none).
            env={"DATABASE_URL": url}, cwd=ROOT, start_timeout_s=START_TIMEOUT_S,
        ).start()
        _served = (url, server)
        return _base_url(server)


def _base_url(server: ManagedProcess) -> str:
    return server.health_url.removesuffix("/models")


def _stop() -> None:
    global _served
    if _served is not None:
        _served[1].stop()
        _served = None


def stop_server() -> None:
    with _lock:
        _stop()


def served_names(base_url: str) -> list[str]:
    """The recordings a replay server offers (its /v1/models)."""
    try:
        response = httpx.get(f"{base_url}/models", timeout=5.0)
        response.raise_for_status()
        return [model["id"] for model in response.json()["data"]]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise EndpointUnreachable(
            f"The replay server at {base_url} did not answer ({exc}).") from exc

"""A `lib.playback.PlaybackServer` in its own process, for the benchmarks. Not a benchmark.

In the measuring process the server's sleeping and sending thread would compete with the
client for the GIL, and the benchmark would measure that contention instead of the client.
Here the server runs in a child process on 127.0.0.1; the two talk over pipes:

    parent -> child stdin   line 1: {"model": {"offsets": [...], "texts": [...], "usage": true}}
    child  -> parent stdout PORT <port>
    parent -> child stdin   "records" -> one JSON line:
                            [{"t_received": s, "sent": [s, ...], "prompt": "..."}, ...]
                            (the records seen since the last "records"; then forgotten)
    parent closes stdin     -> the server stops and the child exits

Server timestamps are `time.perf_counter()`, CLOCK_MONOTONIC on Linux, one clock for every
process on the machine: they can be subtracted from the client's.

    with RemotePlayback({"m": Script.regular(0.03, 0.01, 10)}) as server:
        server.base_url; server.records()

Run directly without `--serve` (as `for script in bench/*.py` would), it only says what it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVE_FLAG = "--serve"


class RemotePlayback:
    """Parent-side handle on a playback server running in a child process."""

    def __init__(self, scripts: dict) -> None:
        self.scripts = scripts
        self._proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The child's process id (for CPU accounting), None when it is not running."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> "RemotePlayback":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), SERVE_FLAG],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )
        spec = {name: {"offsets": list(s.offsets), "texts": list(s.texts), "usage": s.usage}
                for name, s in self.scripts.items()}
        self._proc.stdin.write(json.dumps(spec) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"playback child did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def records(self) -> list[dict]:
        """Server-side records of the requests since the last call: t_received and sent times."""
        self._proc.stdin.write("records\n")
        self._proc.stdin.flush()
        return json.loads(self._proc.stdout.readline())

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> "RemotePlayback":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _prompt(body: dict) -> str:
    return "".join(str(m.get("content", "")) for m in body.get("messages", []))


def _serve() -> None:
    from lib.serving.playback import PlaybackServer, Script

    spec = json.loads(sys.stdin.readline())
    scripts = {name: Script(offsets=tuple(s["offsets"]), texts=tuple(s["texts"]), usage=s["usage"])
               for name, s in spec.items()}
    server = PlaybackServer(scripts).start()
    print(f"PORT {server.port}", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "records":
                taken = len(server.received)
                batch, server.received[:taken] = server.received[:taken], []
                print(json.dumps([{"t_received": r.t_received, "sent": r.sent,
                                   "prompt": _prompt(r.body)} for r in batch]), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:] == [SERVE_FLAG]:
        _serve()
    else:
        print("bench/_playback_proc.py is a helper of the benchmarks, not one; nothing to run.")

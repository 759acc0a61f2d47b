"""The command lines under SIGINT (Ctrl-C) and SIGTERM (`timeout`, containers, process
managers): what is in flight is cancelled and logged before the command exits, and the
server sees every connection closed. Real processes, real signals, a real playback server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
SLOW = Script.regular(ttft_s=0.05, gap_s=0.5, n=40)  # 20 s of stream: always interrupted
WAIT_S = 60.0


pytestmark = pytest.mark.usefixtures("ctrl_c_reaches_the_commands")


@pytest.fixture(scope="module")
def server(warmed):
    with PlaybackServer({"slow": SLOW}) as server:
        yield server


def start(module: str, *args: str, server: PlaybackServer, database_url: str) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STREAMRACE_")}
    environment.update(STREAMRACE_ENDPOINT="compatible", STREAMRACE_BASE_URL=server.base_url,
                       STREAMRACE_MODEL="slow", DATABASE_URL=database_url)
    return subprocess.Popen([sys.executable, "-m", f"lib.{module}", *args], cwd=ROOT,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def received(server: PlaybackServer, prompt: str) -> int:
    return sum(1 for r in server.received if prompt in str(r.body))


def wait_for(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling a process and a server: nothing to wait on


def command(name: str, prompt: str, tmp_path: Path) -> tuple[tuple[str, ...], int, int]:
    """(arguments, requests in flight once it has started, exit status on Ctrl-C)."""
    if name == "race":
        return ("race", "--max-tokens", "40", "--prompt", prompt), 2, 1
    if name == "bench":
        prompts = tmp_path / "prompts.txt"
        prompts.write_text(prompt + "\n")
        return ("bench", "--prompts", str(prompts), "--requests", "4", "--concurrency", "2",
                "--modes", "streaming", "--max-tokens", "40", "--warmup", "0",
                "--out", str(tmp_path / "out.csv")), 2, 130
    return ("guards", "--strategies", "none,after", "--max-tokens", "40",
            "--prompt", prompt), 1, 1


COMMANDS = ("race", "bench", "guards")


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, None), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", COMMANDS)
def test_a_signal_cancels_and_logs_what_is_in_flight(name, sig, status, server, tmp_path):
    prompt = f"signal test {uuid.uuid4().hex}"
    args, in_flight, sigint_status = command(name, prompt, tmp_path)
    database_url = f"sqlite:///{tmp_path / 'runs.db'}"
    process = start(*args, server=server, database_url=database_url)
    try:
        wait_for(lambda: received(server, prompt) >= in_flight, "the requests to arrive")
        time.sleep(0.3)  # a few chunks in: something measured to keep
        process.send_signal(sig)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == (status or sigint_status), (out, err)
    assert "Traceback" not in err, err
    rows = Store(database_url).recent(100)
    sent = received(server, prompt)
    if name == "guards":  # one generation, a row per strategy
        assert sent == 1 and len(rows) == 2
    else:
        assert len(rows) == sent, f"{sent} requests reached the server, {len(rows)} rows logged"
    assert set(rows["status"]) <= {"cancelled", "ok"} and "cancelled" in set(rows["status"])
    assert (rows["output_chars"] > 0).any(), "what the calls had received is kept"
    wait_for(lambda: server.open_connections == 0, "the server to see every connection close",
             timeout_s=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 0), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_the_replay_server_stops_on_a_signal(sig, status, tmp_path):
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STREAMRACE_")}
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'runs.db'}"
    process = subprocess.Popen([sys.executable, "-m", "lib.replay", "serve", "--port", str(port)],
                               cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: process.stdout.readline().startswith("replaying on"), "the server")
        process.send_signal(sig)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == status, err
    assert "Traceback" not in err, err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

"""A chunk's moment is its bytes' arrival even when the reading thread cannot run Python.

On a busy client (dozens of streams, one GIL) a reader woken by its bytes waits for the GIL.
If it waited before reading (a Python socket timeout polls, then takes the GIL, then reads),
the next chunks would reach the receive queue meanwhile, where TCP merges them under the
newest stamp; blocked in recvmsg itself, it takes its bytes and their stamp on waking.
"""

from __future__ import annotations

import mmap
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpcore
import pytest

from lib.core import seams
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(seams.SO_TIMESTAMPNS is None, reason="Linux receive stamps")

# A server in its own process (it must run while this one holds the GIL): two chunks 0.1 s
# apart once told to go; its perf_counter stamps around the first write, and "sent both", go
# through a shared page, which this process reads without letting go of the GIL.
SERVER = """
import mmap, socket, struct, sys, time
with open(sys.argv[1], "r+b") as f:
    shared = mmap.mmap(f.fileno(), 64)
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while shared[0] != 1:
    time.sleep(0.0005)
sending = time.perf_counter()
conn.sendall(b"first")
sent = time.perf_counter()
struct.pack_into("@dd", shared, 8, sending, sent)
time.sleep(0.1)
conn.sendall(b"second")
shared[1] = 1
conn.recv(1)
"""


@pytest.fixture
def two_chunk_server(tmp_path: Path):
    page = tmp_path / "shared"
    page.write_bytes(bytes(64))
    with open(page, "r+b") as f:
        shared = mmap.mmap(f.fileno(), 64)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(page)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        stream = seams.ArrivalStream(httpcore.SyncBackend().connect_tcp("127.0.0.1", port))
        yield stream, shared
        stream.close()
    finally:
        server.kill()
        server.wait(5)
        shared.close()


def thread_state(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_reader_that_cannot_run_python_still_takes_the_first_chunk_alone(two_chunk_server):
    stream, shared = two_chunk_server
    result: dict = {}

    def read() -> None:
        result["id"] = threading.get_native_id()
        result["data"] = stream.read(65536, timeout=10.0)
        result["at"] = stream.arrived_at

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(lambda: "id" in result and thread_state(result["id"]) == "S",
               what="the reader to wait for bytes")
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)  # nothing takes the GIL from this thread while it loops
    try:
        shared[0] = 1
        deadline = time.perf_counter() + 2.0
        while shared[1] != 1 and time.perf_counter() < deadline:
            pass  # hold the GIL: the reader can run no Python until both chunks are sent
        both_sent = shared[1] == 1
    finally:
        sys.setswitchinterval(interval)
    assert both_sent, "the server did not send both chunks within 2 s"
    reader.join(5)
    sending, sent = struct.unpack_from("@dd", shared, 8)
    assert result["data"] == b"first", "read after the second chunk came: merged with it"
    assert sending - 0.001 <= result["at"] <= sent + 0.001, (sending, result["at"], sent)


def test_a_read_timeout_is_still_a_read_timeout(two_chunk_server):
    """The kernel keeps the read timeout now (SO_RCVTIMEO): past it, httpcore's ReadTimeout,
    which the call reports as a timeout, not as a broken connection."""
    stream, _ = two_chunk_server
    started = time.perf_counter()
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(65536, timeout=0.3)
    assert 0.3 <= time.perf_counter() - started < 1.3
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(65536, timeout=0.0)  # nothing there, and asked not to wait


"""Moments are the bytes' arrival even when the thread that reads them cannot run Python.

On a busy process (dozens of streams, one GIL) a reader woken by its bytes waits for the GIL.
The client's stream: if it waited before reading (a Python socket timeout polls, then takes
the GIL, then reads), the next chunks would reach the receive queue meanwhile, where TCP merges
them under the newest stamp; blocked in recvmsg itself, it takes its bytes and their stamp on
waking. The playback server: a handler that gets to a request late still times the script
from when the request arrived.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import httpcore
import pytest
from conftest import endpoint_for, received_for

from lib.core import arrival, seams
from lib.core.calls import Call
from lib.core.trace import Params
from lib.serving.playback import PlaybackServer, Script
from tests.support.gil import child
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not arrival.AVAILABLE, reason="Linux receive stamps")

# Two chunks 0.1 s apart once told to go, the first one's send timed.
TWO_CHUNKS = """
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
wait_for_go()
timed_send(conn, b"first")
time.sleep(0.1)
conn.sendall(b"second")
shared[1] = 1
conn.recv(1)
"""


@pytest.fixture
def two_chunks(tmp_path: Path):
    with child(TWO_CHUNKS, tmp_path) as server:
        port = int(server.line())
        stream = seams.ArrivalStream(httpcore.SyncBackend().connect_tcp("127.0.0.1", port))
        yield stream, server
        stream.close()


def thread_state(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_reader_that_cannot_run_python_still_takes_the_first_chunk_alone(two_chunks):
    stream, server = two_chunks
    result: dict = {}

    def read() -> None:
        result["id"] = threading.get_native_id()
        result["data"] = stream.read(65536, timeout=10.0)
        result["at"] = stream.arrived_at

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(lambda: "id" in result and thread_state(result["id"]) == "S",
               what="the reader to wait for bytes")
    server.hold_the_gil_while_it_works()
    reader.join(5)
    sending, sent = server.timed_send
    assert result["data"] == b"first", "read after the second chunk came: merged with it"
    assert sending - 0.001 <= result["at"] <= sent + 0.001, (sending, result["at"], sent)


def test_a_read_timeout_is_still_a_read_timeout(two_chunks):
    """The kernel keeps the read timeout now (SO_RCVTIMEO): past it, httpcore's ReadTimeout,
    which the call reports as a timeout, not as a broken connection."""
    stream, _ = two_chunks
    started = time.perf_counter()
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(65536, timeout=0.3)
    assert 0.3 <= time.perf_counter() - started < 1.3
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(65536, timeout=0.0)  # nothing there, and asked not to wait


# A request whose headers go at once and whose body 50 ms later, the body's send timed.
LATE_BODY = """
body = json.dumps({"model": "m", "stream": True,
                   "messages": [{"role": "user", "content": "a late handler"}]}).encode()
conn = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("connected", flush=True)
wait_for_go()
conn.sendall(b"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n"
             b"Content-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body))
time.sleep(0.05)
timed_send(conn, body)
shared[1] = 1
while conn.recv(65536):
    pass
"""


def test_a_late_handler_times_the_script_from_the_request_s_arrival(tmp_path):
    with PlaybackServer({"m": Script.regular(ttft_s=0.2, gap_s=0.01, n=3)}) as server, \
            child(LATE_BODY, tmp_path, str(server.port)) as client:
        assert client.line() == "connected"
        wait_until(lambda: server.open_connections == 1, what="a handler to wait for bytes")
        released = client.hold_the_gil_while_it_works()
        wait_until(lambda: server.received, what="the server to read the request")
        [record] = server.received
        sending, sent = client.timed_send
        assert record.t_received < released, "timed from when its handler ran, not arrival"
        assert sending - 0.001 <= record.t_received <= sent + 0.001, \
            (sending, record.t_received, sent)
        wait_until(lambda: record.t_done is not None, what="the answer")
        assert record.sending[0] >= record.t_received + 0.2


def test_a_request_leaves_in_one_send_at_its_t0_however_busy_the_process(playback):
    """Another thread runs Python all along, so each time a thread of ours lets go of the GIL
    (a system call) it waits a whole switch interval (10 ms) to run again. The request's head
    and body still leave in one send, begun at t0: the server (its kernel's stamp of the
    request's last bytes) has it all within 2 ms of t0. Sent apart (head, then the body once
    the thread had the GIL back) or timed before the Python that builds it, it was ≥ 10 ms."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            pass

    legs = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.010)
    hog = threading.Thread(target=busy, daemon=True)
    hog.start()
    try:
        for i in range(5):
            prompt = f"one send #{i} [{uuid.uuid4().hex}]"
            trace = Call(endpoint_for(playback.base_url, "fast"), prompt, Params(),
                         "streaming").run()
            assert trace.status == "ok", trace.error
            [request] = received_for(playback, prompt)
            legs.append(request.t_received - trace.t0)
    finally:
        stop.set()
        hog.join(5)
        sys.setswitchinterval(interval)
    assert min(legs) >= 0, legs
    assert statistics.median(legs) < 0.002, legs


class HeldBeforeTheSend(Call):
    """A call whose thread is kept from running (as a busy process's GIL can) after the SDK
    has built and handed over its request, before the bytes go out."""

    def _on_http_event(self, event: str, info: dict) -> None:
        super()._on_http_event(event, info)
        if event.endswith(".send_request_body.complete"):
            time.sleep(0.02)


def test_t0_is_the_send_not_the_building_before_it(playback, unique_prompt):
    """t0 is when the request's bytes start to go out; time the thread lost before that is
    client work (client_s), not the endpoint's TTFT."""
    trace = HeldBeforeTheSend(endpoint_for(playback.base_url, "fast"), unique_prompt, Params(),
                              "streaming").run()
    assert trace.status == "ok", trace.error
    [request] = received_for(playback, unique_prompt)
    assert 0 <= request.t_received - trace.t0 < 0.002
    assert trace.t0 - trace.t_run >= 0.02  # the held 20 ms are in client_s

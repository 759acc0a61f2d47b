"""The playback server's own promises: handler threads are kept and reused, so a wave of new
connections is handed to waiting threads instead of each waiting for a thread to start (under
load that wait reached 90 ms and the benchmark saw it as TTFT), and stop() ends them."""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from lib.serving.playback import PlaybackServer, Script
from tests.support.waiting import wait_until

SCRIPT = Script.regular(ttft_s=0.05, gap_s=0.005, n=5)


def post(server: PlaybackServer, prompt: str) -> str:
    """One streamed request on a connection of its own (as every Call opens one), its text."""
    body = json.dumps({"model": "m", "stream": True,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, stream = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    text = ""
    for line in stream.decode().splitlines():  # chunked framing lines are not "data: " lines
        if line.startswith("data: {"):
            choice = json.loads(line[6:])["choices"][0]
            text += choice.get("delta", {}).get("content") or ""
    return text


def handler_threads(port: int) -> int:
    """The server's handler threads still alive (they are named after its port)."""
    return sum(1 for t in threading.enumerate() if t.name.startswith(f"playback {port} handler"))


def test_connections_one_after_another_reuse_one_thread():
    with PlaybackServer({"m": SCRIPT}) as server:
        for i in range(5):
            assert post(server, f"#{i}") == SCRIPT.text
            wait_until(lambda: server._httpd.idle_threads == 1, 5, "the thread to wait again")
        assert server._httpd.handler_threads == 1


def test_two_waves_of_64_connections_are_served_by_at_most_64_threads():
    slow = Script.regular(ttft_s=0.3, gap_s=0.005, n=5)  # a wave's connections overlap
    with PlaybackServer({"m": slow}) as server, ThreadPoolExecutor(64) as clients:
        pool = server._httpd
        for wave in ("a", "b"):
            texts = list(clients.map(lambda i, w=wave: post(server, f"{w}/{i}"), range(64)))
            assert texts == [slow.text] * 64
            wait_until(lambda: pool.idle_threads == pool.handler_threads, 5, "every thread idle")
        # One thread a connection would be 128; the second wave found the first one's waiting.
        assert 1 <= pool.handler_threads <= 64
        assert len(server.received) == 128


def test_stop_ends_the_handler_threads():
    with PlaybackServer({"m": SCRIPT}) as server, ThreadPoolExecutor(8) as clients:
        assert list(clients.map(lambda i: post(server, str(i)), range(8))) == [SCRIPT.text] * 8
        port = server.port
        assert handler_threads(port) == server._httpd.handler_threads >= 1
    wait_until(lambda: handler_threads(port) == 0, 5, "the handler threads to end")


def test_a_held_server_answers_nothing_until_it_is_let_go():
    """`answering` cleared: a request is received but no content leaves; set, what fell due
    meanwhile goes out at once (tests hold a model while they ready the page)."""
    with PlaybackServer({"m": SCRIPT}) as server:
        server.answering.clear()
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(post, server, "held")
            wait_until(lambda: len(server.received) == 1, what="the request to arrive")
            assert not reply.done()
            assert server.received[0].sent == []
            server.answering.set()
            assert reply.result(timeout=10) == SCRIPT.text
        [record] = server.received
        assert len(record.sent) == len(SCRIPT.offsets)
        assert record.sent[0] - record.t_received >= SCRIPT.offsets[0]

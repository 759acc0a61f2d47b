"""Calls over HTTPS (every remote endpoint's case): a real TLS server on loopback, with a
certificate from a throwaway authority the client trusts through SSL_CERT_FILE.

The chunks keep their arrival moments (the kernel's receive stamp of the bytes that completed
each TLS record, lib/core/seams.ArrivalTLSStream), as over plain HTTP; a certificate the
client does not trust is a clear error, not a traceback.
"""

from __future__ import annotations

import statistics

import pytest
from conftest import SCRIPTS, check_a_late_read_keeps_the_arrival, endpoint_for, received_for

from lib.core import calls
from lib.core.calls import Call
from lib.core.trace import Params
from lib.serving.playback import PlaybackServer
from tests.support.tls import make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_server(certificates):
    with PlaybackServer(SCRIPTS, tls=certificates.server_context()) as server:
        yield server


@pytest.fixture
def trusting(monkeypatch, certificates):
    """The client trusts the test authority (SSL_CERT_FILE, read when the shared context is
    built), and only for this test."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.authority))
    calls._ssl_context.cache_clear()
    yield
    calls._ssl_context.cache_clear()


def test_the_server_is_https(https_server):
    assert https_server.base_url.startswith("https://127.0.0.1:")


@pytest.mark.parametrize("mode", ["streaming", "blocking"])
def test_a_call_over_https_gets_the_whole_answer(https_server, trusting, unique_prompt, mode):
    endpoint = endpoint_for(https_server.base_url, "scripted")
    trace = Call(endpoint, unique_prompt, Params(), mode).run()
    assert trace.status == "ok", trace.error
    assert trace.text == SCRIPTS["scripted"].text
    [request] = received_for(https_server, unique_prompt)
    if mode == "streaming":
        assert len(trace.chunks) == len(request.sent)
        # Stamped as the bytes arrived: close to the server's own send stamps (same clock).
        delays = [chunk.t - sent for chunk, sent in zip(trace.chunks, request.sent)]
        assert statistics.median(delays) < 0.010, delays


def test_a_chunk_read_late_over_https_keeps_the_moment_its_bytes_arrived(
        https_server, trusting, unique_prompt):
    """As over plain HTTP (it was the read time over TLS before ArrivalTLSStream)."""
    check_a_late_read_keeps_the_arrival(https_server, unique_prompt)


def test_a_certificate_the_client_does_not_trust_is_a_clear_error(https_server, unique_prompt,
                                                                   monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    calls._ssl_context.cache_clear()
    try:
        trace = Call(endpoint_for(https_server.base_url, "scripted"), unique_prompt, Params(),
                     "streaming").run()
    finally:
        calls._ssl_context.cache_clear()
    assert trace.status == "error"
    assert trace.error_kind == "unreachable"
    assert "TLS certificate this machine does not trust" in trace.error, trace.error
    assert "SSL_CERT_FILE" in trace.error
    assert "Traceback" not in trace.error
    assert received_for(https_server, unique_prompt) == []

"""Integration with the real embedded model: Gemma 3 270M served by llama.cpp on 127.0.0.1."""

from urllib.parse import urlparse

import pytest

from lib import embedded
from lib.core import metrics
from lib.core.config import Settings
from lib.endpoints.resolve import default_params, resolve
from lib.race import PRESETS, run_headless

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def endpoint():
    return resolve(Settings(endpoint_kind="local"))


def test_lanes_are_two_servers_on_loopback(endpoint):
    urls = [urlparse(endpoint.url_for(mode)) for mode in ("blocking", "streaming")]
    assert all(url.hostname == "127.0.0.1" for url in urls)
    assert urls[0].port != urls[1].port, "one server per lane, or the race measures a queue"


def test_race_on_the_embedded_model(endpoint, tmp_path):
    from lib.storage.store import Store

    store = Store(f"sqlite:///{tmp_path}/runs.db")
    short = PRESETS[0]
    params = default_params(endpoint, max_tokens=short.max_tokens)
    blocking, streaming = run_headless(endpoint, short.prompt, params, store, timeout_s=120)

    assert (blocking.status, streaming.status) == ("ok", "ok"), (blocking.error, streaming.error)
    # Same model, same parameters, same seed: the same answer, twice.
    assert blocking.text == streaming.text and len(streaming.text) > 10
    assert metrics.perceived_s(streaming) < metrics.perceived_s(blocking)
    assert metrics.ttft_s(streaming) < 3.0  # typically ~0.2-0.6 s on 2 cores
    b, s = metrics.compute(blocking), metrics.compute(streaming)
    assert b.token_source == "server"  # llama.cpp reports usage on blocking answers...
    assert s.token_source == "estimated"  # ...but never on streams
    assert abs(s.output_tokens - b.output_tokens) <= 2
    rows = store.recent()
    assert sorted(rows["mode"]) == ["blocking", "streaming"]
    assert rows["race_id"].nunique() == 1


def test_a_dead_server_is_restarted_and_said_so(endpoint):
    server = embedded._servers["streaming"]
    server.process.kill()
    server.process.wait()
    again = resolve(Settings(endpoint_kind="local"))
    assert again.note and "restarted" in again.note
    assert embedded._servers["streaming"].alive()


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on `port`, read from /proc (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def current_lanes():
    """The lanes as they are now (another test may have had one restarted on a new port)."""
    return resolve(Settings(endpoint_kind="local"))


def test_the_servers_listen_on_loopback_only():
    endpoint = current_lanes()
    for mode in ("blocking", "streaming"):
        port = urlparse(endpoint.url_for(mode)).port
        assert listening_addresses(port) == {"0100007F"}, "127.0.0.1 only, never 0.0.0.0"


def test_two_app_processes_do_not_fight_over_the_servers():
    """A second process starts servers of its own, on other free ports, and both keep working."""
    import json
    import subprocess
    import sys

    import httpx

    script = ("import json; from lib import embedded; "
              "print(json.dumps(embedded.ensure_lanes().urls))")
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=300, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert other.returncode == 0, other.stderr[-2000:]
    other_urls = json.loads(other.stdout.strip().splitlines()[-1])
    endpoint = current_lanes()
    ours = {endpoint.url_for(m) for m in ("blocking", "streaming")}
    assert not ours & set(other_urls.values())
    # The other process has exited (and stopped its servers); ours still answer.
    for url in ours:
        assert httpx.get(f"{url}/models", timeout=5).status_code == 200
    for url in other_urls.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/models", timeout=5)

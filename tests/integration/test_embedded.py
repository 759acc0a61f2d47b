"""Integration with the real embedded model: Gemma 3 270M served by llama-server on 127.0.0.1."""

from urllib.parse import urlparse

import pytest

from lib.core import metrics
from lib.core.config import Settings
from lib.endpoints.resolve import default_params, resolve
from lib.race import PRESETS, run_headless
from lib.serving import embedded

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def endpoint():
    return resolve(Settings(endpoint_kind="local"))


def test_lanes_share_one_server_on_loopback(endpoint):
    urls = {endpoint.url_for(mode) for mode in ("blocking", "streaming")}
    assert len(urls) == 1 and urlparse(urls.pop()).hostname == "127.0.0.1"


def test_resolving_the_running_model_is_instant(endpoint):
    """What the Run click does before the requests leave (issue 17): with the server up, no
    file is hashed again (the GGUF's sha256 took 0.3-1 s of every race's click path)."""
    import time

    best = min(_timed(lambda: resolve(Settings(endpoint_kind="local")), time) for _ in range(3))
    assert best < 0.05, f"resolving the running embedded model took {best * 1000:.0f} ms"


def _timed(call, time) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def test_the_lanes_run_at_once_not_in_a_queue(endpoint):
    """Two streams started together on the one server both produce tokens from the start:
    with one request at a time, the second's first token would wait for the first's last."""
    import threading
    import time

    import httpx

    url = endpoint.url_for("streaming")
    firsts: dict[int, float] = {}
    lasts: dict[int, float] = {}
    barrier = threading.Barrier(2)

    def stream(i: int) -> None:
        body = {"model": embedded.MODEL_ALIAS, "max_tokens": 40, "stream": True,
                "messages": [{"role": "user", "content": f"Count to ten, take {i}."}]}
        barrier.wait()
        start = time.perf_counter()
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if '"content":"' in line:
                    firsts.setdefault(i, time.perf_counter() - start)
                    lasts[i] = time.perf_counter() - start

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(firsts) == 2
    # Queued, one stream's first token would come after the other's last: here both streams
    # are under way together.
    assert max(firsts.values()) < min(lasts.values()), (firsts, lasts)


def test_race_on_the_embedded_model(endpoint, tmp_path):
    from lib.storage.store import Store

    store = Store(f"sqlite:///{tmp_path}/runs.db")
    short = PRESETS[0]
    params = default_params(endpoint, max_tokens=short.max_tokens)
    blocking, streaming = run_headless(endpoint, short.prompt, params, store, timeout_s=120)

    assert (blocking.status, streaming.status) == ("ok", "ok"), (blocking.error, streaming.error)
    # Same model, parameters and seed. Decoded together in one batch, the two answers usually
    # match but need not: llama.cpp's batched kernels do not promise bit-identical logits.
    assert len(blocking.text) > 10 and len(streaming.text) > 10
    assert metrics.perceived_s(streaming) < metrics.perceived_s(blocking)
    assert metrics.ttft_s(streaming) < 3.0  # typically ~0.2-0.6 s on 2 cores
    b, s = metrics.compute(blocking), metrics.compute(streaming)
    # llama-server reports usage on both, streams included.
    assert (b.token_source, s.token_source) == ("server", "server")
    assert s.output_tokens > 0 and b.output_tokens > 0
    rows = store.recent()
    assert sorted(rows["mode"]) == ["blocking", "streaming"]
    assert rows["race_id"].nunique() == 1
    # The server runs with --reasoning-format deepseek; Gemma does not reason, so its ordinary
    # answer is unchanged: no thoughts, the first answer token is the first token.
    assert not blocking.thinking and not streaming.thinking
    assert s.ttfo_s == s.ttft_s and s.thinking_s == 0 and s.reasoning_tokens == 0


def test_a_dead_server_is_restarted_and_said_so(endpoint):
    process = embedded._server.process.process
    process.kill()
    process.wait()
    again = resolve(Settings(endpoint_kind="local"))
    assert again.note and "restarted" in again.note
    assert embedded._server.alive()


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
    port = urlparse(current_lanes().url_for("streaming")).port
    assert listening_addresses(port) == {"0100007F"}, "127.0.0.1 only, never 0.0.0.0"


def test_two_app_processes_do_not_fight_over_the_servers():
    """A second process starts servers of its own, on other free ports, and both keep working."""
    import json
    import subprocess
    import sys

    import httpx

    script = ("import json; from lib.serving import embedded; "
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

"""The benchmark page through Streamlit's AppTest, against a real playback server on 127.0.0.1.

The whole app runs (`streamlit_app.py`, st.navigation, the sidebar) and switches to the page;
it is pointed at the playback server by the environment variables a user would set, and each
test reads its own run log back through `lib.store.Store`.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store

TIMEOUT = 60
SCRIPT = Script.regular(ttft_s=0.02, gap_s=0.005, n=6)


@pytest.fixture(scope="module")
def server():
    scripts = {"quick": SCRIPT,
               "flaky": Script.regular(ttft_s=0.02, gap_s=0.005, n=6, status_schedule=(200, 503))}
    with PlaybackServer(scripts) as server:
        yield server


@pytest.fixture
def make_page(server, open_app):
    return lambda model="quick": open_app(server.base_url, model, "app_pages/benchmark.py")


def run_benchmark(at: AppTest, requests: int = 8, concurrency: int = 4, warmup: int = 2) -> AppTest:
    at.number_input(key="bench_requests").set_value(requests)
    at.number_input(key="bench_concurrency").set_value(concurrency)
    at.number_input(key="bench_warmup").set_value(warmup)
    at.button(key="bench_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_renders_the_form(make_page):
    at = make_page()
    assert any("Benchmark" in t.value for t in at.title)
    assert at.selectbox(key="bench_prompts").value == "short"
    assert at.multiselect(key="bench_modes").value == ["blocking", "streaming"]
    assert at.number_input(key="bench_slo_ttft").value == 200.0
    assert at.number_input(key="bench_slo_icl").value == 50.0
    assert any("No earlier benchmark" in c.value for c in at.caption)
    assert not at.warning and not at.error


def test_a_benchmark_runs_summarises_and_logs_every_request(make_page, server, store_url):
    at = make_page()
    before = len(server.received)
    run_benchmark(at)

    assert len(server.received) - before == 10  # 2 warm-up + 8 measured
    frame = Store(store_url).recent(50)
    assert len(frame) == 10
    assert set(frame["source"]) == {"benchmark"}
    assert frame["bench_id"].nunique() == 1
    assert sorted(frame["bench_phase"]) == ["measured"] * 8 + ["warmup"] * 2
    assert set(frame["status"]) == {"ok"}

    counts, percentiles = (d.value for d in at.dataframe[:2])
    assert list(counts["mode"]) == ["blocking", "streaming"]
    assert list(counts["requests"]) == [4, 4] and list(counts["ok"]) == [4, 4]
    ttft = percentiles[(percentiles["metric"] == "ttft_s") & (percentiles["mode"] == "streaming")]
    assert ttft["n"].item() == 4
    assert ttft["p50"].item() >= 20.0  # ms: the script's first text leaves at 20 ms
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # percentile bars, and blank screen / TTFT over the run
    assert not at.warning and not at.error


def test_failures_count_against_goodput(make_page, store_url):
    at = make_page("flaky")
    run_benchmark(at, requests=8, concurrency=1, warmup=0)

    counts = at.dataframe[0].value
    assert counts["errors"].sum() == 4  # every second request answers 503
    assert counts["good"].sum() <= 4
    frame = Store(store_url).recent(50)
    failed = frame[frame["status"] == "error"]
    assert len(failed) == 4 and all("503" in e for e in failed["error"])


def test_an_earlier_benchmark_can_be_compared(make_page, store_url):
    at = make_page()
    run_benchmark(at, requests=4, warmup=0)
    first = Store(store_url).benchmarks()["bench_id"].item()
    run_benchmark(at, requests=6, warmup=0)

    at.selectbox(key="bench_compare").set_value(first).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[2].value  # after the two summary tables
    assert set(table["benchmark"]) == {first[:8], Store(store_url).benchmarks()["bench_id"][0][:8]}
    assert sorted(table["requests"]) == [2, 2, 3, 3]


def test_no_mode_is_refused_and_nothing_is_sent(make_page, server, store_url):
    at = make_page()
    at.multiselect(key="bench_modes").set_value([])
    before = len(server.received)
    at.button(key="bench_run").click().run()
    assert not at.exception
    assert any("modes" in w.value for w in at.warning)
    assert len(server.received) == before
    assert Store(store_url).count() == 0


def test_an_upload_choice_without_a_file_is_refused(make_page, server):
    at = make_page()
    at.selectbox(key="bench_prompts").set_value("📄 My file")
    before = len(server.received)
    at.button(key="bench_run").click().run()
    assert any("Upload a prompt file" in w.value for w in at.warning)
    assert len(server.received) == before


def test_ray_workers_send_the_benchmark_and_it_is_logged_once(make_page, server, store_url):
    from lib.bench import workers as ray_workers

    at = make_page()
    at.number_input(key="bench_workers").set_value(2)
    before = len(server.received)
    try:
        run_benchmark(at, requests=8, concurrency=4, warmup=2)
    finally:
        ray_workers.shutdown()  # the app keeps its local Ray; this test process must not
    assert len(server.received) - before == 10
    frame = Store(store_url).recent(50)
    assert len(frame) == 10 and frame["run_id"].nunique() == 10
    assert frame["bench_id"].nunique() == 1 and set(frame["status"]) == {"ok"}
    assert any("2 workers" in c.value or "Ray workers" in c.value for c in at.caption)
    assert any("a local Ray" in c.value for c in at.caption)
    assert not at.warning and not at.error


def test_an_unreachable_ray_address_is_a_message_and_sends_nothing(make_page, server,
                                                                   store_url):
    from lib.serving.process import free_port

    at = make_page()
    at.number_input(key="bench_workers").set_value(2)
    at.text_input(key="bench_ray_address").set_value(f"127.0.0.1:{free_port()}")
    before = len(server.received)
    run_benchmark(at, requests=8, concurrency=4, warmup=0)
    assert [w.value for w in at.warning][0].startswith("Cannot reach a Ray cluster at 127.0.0.1")
    assert len(server.received) == before
    assert Store(store_url).count() == 0

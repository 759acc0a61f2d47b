"""Benchmark mode: summary statistics on hand-made traces, the runner against a real playback
server on 127.0.0.1, the run log's benchmark rows, and the CLI end to end.

The server runs in this process, so its `time.perf_counter()` stamps (t_received, t_done)
share the client's clock. Each runner test uses a model of its own, so the requests it
caused can be picked out of `server.received`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from lib import bench
from lib.bench import (
    PROMPT_SETS,
    Benchmark,
    BenchPrompt,
    BenchSettings,
    PromptSet,
    arrival_offsets,
    logged_summary,
    measured_span,
    parse_prompts,
    plan,
)
from lib.bench.summary import max_in_flight
from lib.cli import bench as bench_cli
from lib.core import metrics
from lib.core.errors import InvalidInput
from lib.core.metrics import Slo
from lib.core.trace import MODES, Chunk, Params, Request, Trace
from lib.endpoints import Endpoint
from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import BENCH_COLUMNS, RUN_COLUMNS, Store, trace_from_row, trace_to_row
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
KEY = "pbk-bench-key-51c0ffee77"

SCRIPTS = {
    "quick": Script.regular(ttft_s=0.01, gap_s=0.002, n=4),
    "c6": Script.regular(ttft_s=0.08, gap_s=0.01, n=4),  # ~110 ms a request: they overlap
    "rate": Script.regular(ttft_s=0.005, gap_s=0.001, n=2),
    "half-fail": Script.regular(ttft_s=0.005, gap_s=0.002, n=3, status_schedule=(200, 500)),
    "slow": Script.regular(ttft_s=0.05, gap_s=1.0, n=5),  # one word a second: to cancel
    "slow-deadline": Script.regular(ttft_s=0.05, gap_s=1.0, n=5),
}


@pytest.fixture(scope="module")
def server(warmed):
    with PlaybackServer(SCRIPTS) as server:
        yield server


def endpoint(server: PlaybackServer, model: str, api_key: str | None = None) -> Endpoint:
    return Endpoint("compatible", model, {m: server.base_url for m in MODES}, api_key)


def of_model(server: PlaybackServer, model: str):
    return [r for r in list(server.received) if r.body.get("model") == model]


def settings(**changes) -> BenchSettings:
    return BenchSettings(prompts=PROMPT_SETS["short"], **changes)



# -- summary statistics on hand-made traces ----------------------------------------------------

T0 = 10.0


def hand(mode: str, offsets: list[float], *, status: str = "ok", client_s: float = 0.01,
         tokens: int | None = None, bench_offset: float = 0.0, queue: float = 0.001) -> Trace:
    """A measured call: t_start = T0 − client_s, chunks at T0 + offset."""
    request = Request("p", Params(), "compatible", "http://127.0.0.1:9/v1", "m")
    t_start = T0 - client_s
    return Trace(
        request=request, mode=mode, source="benchmark", bench_id="b" * 32, bench_phase="measured",
        t_bench=t_start - bench_offset, t_start=t_start, t_run=t_start + queue, t0=T0,
        chunks=[Chunk(T0 + o, "w ") for o in offsets],
        t_end=T0 + (offsets[-1] if offsets else 0.05), output_tokens=tokens, status=status,
    )


def test_distribution_of_known_values():
    values = [i / 1000 for i in range(101)]  # 0 … 100 ms
    random.Random(1).shuffle(values)
    d = metrics.distribution([*values, None, None])  # "not measured" is left out
    assert d.n == 101
    assert d.mean == pytest.approx(0.050)
    assert (d.p50, d.p90, d.p95, d.p99) == pytest.approx((0.050, 0.090, 0.095, 0.099))


def test_distribution_interpolates_between_ranks():
    d = metrics.distribution([0.1, 0.2, 0.3, 0.4])  # rank = q/100 × 3
    assert d.p50 == pytest.approx(0.25)
    assert d.p90 == pytest.approx(0.37)
    assert d.p99 == pytest.approx(0.397)


def test_distribution_of_nothing_is_none_not_zero():
    assert metrics.distribution([None]) == metrics.Distribution(0, None, None, None, None, None)


def test_icl_p99_of_one_call():
    gaps = [0.01] * 99 + [1.0]
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    trace = hand("streaming", offsets)
    # rank 0.99 × 99 = 98.01: between the 99th gap (10 ms) and the 100th (1 s).
    assert metrics.icl_p99_s(trace) == pytest.approx(0.01 + 0.01 * 0.99)
    assert metrics.icl_p99_s(hand("blocking", [0.3])) is None


def test_queue_and_bench_offset():
    trace = hand("streaming", [0.1, 0.2], client_s=0.02, bench_offset=3.5, queue=0.004)
    assert metrics.queue_s(trace) == pytest.approx(0.004)
    assert metrics.bench_offset_s(trace) == pytest.approx(3.5)
    assert metrics.client_s(trace) == pytest.approx(0.02)  # the queue is inside client_s
    outside = dataclasses.replace(trace, t_bench=None, t_run=None)
    assert metrics.bench_offset_s(outside) is None and metrics.queue_s(outside) is None


@pytest.mark.parametrize(("offsets", "status", "good"), [
    # Binary fractions, so that "exactly at the limit" is exact: TTFT ≤ 250 ms, ICL p99 ≤ 62.5 ms.
    ([0.25, 0.3125], "ok", True),            # both exactly at their limit: good
    ([0.2501, 0.26], "ok", False),           # TTFT just over
    ([0.125, 0.1876], "ok", False),          # its one gap just over 62.5 ms
    ([0.125], "ok", True),                   # one chunk: no gaps, judged on TTFT alone
    ([0.125, 0.13], "error", False),         # failed: never good
    ([0.125, 0.13], "cancelled", False),
])
def test_meets_slo(offsets, status, good):
    assert metrics.meets_slo(hand("streaming", offsets, status=status), Slo(0.25, 0.0625)) is good


def test_summarize_one_mode():
    streaming = [hand("streaming", [t, t + 0.01, t + 0.02], tokens=3) for t in (0.1, 0.2, 0.3, 0.4)]
    failed = hand("streaming", [], status="error")
    cancelled = hand("streaming", [0.5], status="cancelled")
    blocking = [hand("blocking", [0.5], tokens=3)]
    s = metrics.summarize([*streaming, failed, cancelled, *blocking], "streaming",
                          duration_s=2.0, slo=Slo(0.25, 0.05))
    assert (s.requests, s.ok, s.errors, s.cancelled) == (6, 4, 1, 1)
    assert s.good == 2  # TTFT 100 and 200 ms
    assert s.error_rate == pytest.approx(1 / 6)
    assert s.goodput_ratio == pytest.approx(2 / 6)
    assert s.request_throughput_rps == pytest.approx(2.0)
    assert s.goodput_rps == pytest.approx(1.0)
    assert s.output_token_throughput_tps == pytest.approx(12 / 2.0)
    ttft = s.metrics["ttft_s"]
    assert ttft.n == 4 and ttft.mean == pytest.approx(0.25) and ttft.p50 == pytest.approx(0.25)
    assert s.metrics["icl_s"].n == 8 and s.metrics["icl_s"].p50 == pytest.approx(0.01)
    assert s.metrics["tpot_s"].p50 == pytest.approx(0.01)
    assert s.metrics["perceived_s"].p50 == pytest.approx(0.26)  # + client_s, from t_start
    assert s.metrics["queue_s"].p99 == pytest.approx(0.001)
    assert list(s.metrics) == list(metrics.SUMMARY_METRICS)


def test_summarize_without_duration_or_calls():
    s = metrics.summarize([], "blocking", duration_s=None, slo=Slo())
    assert (s.requests, s.error_rate, s.goodput_ratio,
            s.request_throughput_rps) == (0, None, None, None)
    assert s.metrics["ttft_s"].n == 0 and s.metrics["ttft_s"].p50 is None


def test_measured_span_leaves_warmup_out():
    warm = dataclasses.replace(hand("streaming", [0.1]), bench_phase="warmup", t_start=0.0)
    calls = [hand("streaming", [0.1]), hand("blocking", [0.7])]
    assert measured_span([warm, *calls]) == pytest.approx(0.7 + 0.01)
    assert measured_span([warm]) is None


# -- plan, schedule, prompts, settings ----------------------------------------------------------


def test_plan_pairs_modes_and_cycles_prompts():
    prompts = PromptSet("p", (BenchPrompt("a"), BenchPrompt("b")), 16)
    items = plan(BenchSettings(prompts=prompts), 6)
    assert [(p.prompt, m) for p, m in items] == [
        ("a", "blocking"),
        ("a", "streaming"),
        ("b", "blocking"),
        ("b", "streaming"),
        ("a", "blocking"),
        ("a", "streaming"),
    ]
    only = plan(BenchSettings(prompts=prompts, modes=("streaming",)), 3)
    assert [(p.prompt, m) for p, m in only] == [
        ("a", "streaming"),
        ("b", "streaming"),
        ("a", "streaming"),
    ]


def test_constant_arrivals():
    assert arrival_offsets(4, 8.0, poisson=False, seed=0) == [0.0, 0.125, 0.25, 0.375]


def test_poisson_arrivals_are_seeded_with_the_right_mean():
    a = arrival_offsets(4000, 20.0, poisson=True, seed=7)
    assert a == arrival_offsets(4000, 20.0, poisson=True, seed=7)
    assert a != arrival_offsets(4000, 20.0, poisson=True, seed=8)
    assert a[0] == 0.0 and a == sorted(a)
    gaps = [b - x for x, b in zip(a, a[1:])]
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 20, rel=0.06)
    # Exponential gaps: their standard deviation equals their mean (a constant rate's is 0).
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert sd == pytest.approx(mean, rel=0.1)


def test_prompt_file_one_a_line():
    prompts = parse_prompts("first prompt\n\n  second prompt  \n", "mine.txt")
    assert [p.prompt for p in prompts.prompts] == ["first prompt", "second prompt"]
    assert all(p.max_tokens is None for p in prompts.prompts)


def test_prompt_file_jsonl():
    text = '{"prompt": "a", "max_tokens": 12}\n{"prompt": "b"}\n'
    prompts = parse_prompts(text, "mine.jsonl")
    assert [(p.prompt, p.max_tokens) for p in prompts.prompts] == [("a", 12), ("b", None)]
    # A prompt's own limit wins over the benchmark's, which wins over the set's.
    s = BenchSettings(prompts=prompts, max_tokens=40)
    assert [bench.token_limit(s, p) for p in prompts.prompts] == [12, 40]
    assert bench.token_limit(dataclasses.replace(s, max_tokens=None), prompts.prompts[1]) == 256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no prompts"),
        ('{"prompt": "a"}\n{"prompt": \n', "Line 2 of f is not valid JSON"),
        ('{"prompt": "a"}\n{"text": "b"}\n', 'Line 2 of f needs a "prompt" string'),
        ('{"prompt": "a", "max_tokens": "many"}\n', "Line 1 of f: max_tokens"),
        ('{"prompt": "a", "max_tokens": 0}\n', "Line 1 of f: max_tokens"),
    ],
)
def test_bad_prompt_files_say_what_is_wrong(text, message):
    with pytest.raises(InvalidInput) as info:
        parse_prompts(text, "f")
    assert message in info.value.message


def test_unknown_prompt_set():
    with pytest.raises(InvalidInput, match="neither a prompt file nor one of short, medium, long"):
        bench.load_prompts("no-such-file.txt")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"modes": ()}, "modes"),
        ({"requests": 0}, "number of requests"),
        ({"concurrency": 0}, "Concurrency"),
        ({"concurrency": None}, "concurrency, a request rate"),
        ({"rate": -1.0}, "request rate"),
        ({"deadline_s": 0.0}, "deadline"),
        ({"slo": Slo(0.0, 0.05)}, "SLO"),
    ],
)
def test_settings_are_checked(changes, message):
    with pytest.raises(InvalidInput, match=message):
        settings(**changes).check()


def test_an_invalid_prompt_is_refused_before_anything_is_sent(server):
    prompts = PromptSet("p", (BenchPrompt("ok"), BenchPrompt("   ")), 16)
    before = len(server.received)
    with pytest.raises(InvalidInput, match="prompt"):
        Benchmark(endpoint(server, "quick"), BenchSettings(prompts=prompts), Params())
    assert len(server.received) == before


# -- the runner against the playback server ---------------------------------------------------


@pytest.fixture(scope="module")
def counted(server, tmp_path_factory):
    """12 measured requests (both modes) after 4 warm-ups, at concurrency 3, logged."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('counted') / 'runs.db'}")
    run = Benchmark(
        endpoint(server, "quick"), settings(requests=12, warmup=4, concurrency=3), Params(), store
    ).start()
    assert run.join(30)
    return run, store


def test_every_request_is_sent_once_and_logged(counted, server):
    run, store = counted
    assert run.status == "completed" and run.failure is None and run.log_error is None
    assert len(of_model(server, "quick")) == 16
    assert [t.bench_phase for t in run.traces] == ["warmup"] * 4 + ["measured"] * 12
    assert all(t.status == "ok" for t in run.traces)
    rows = store.recent(100)
    assert len(rows) == 16
    assert set(rows["bench_id"]) == {run.bench_id}
    assert set(rows["source"]) == {"benchmark"}
    assert sorted(rows["bench_phase"]) == ["measured"] * 12 + ["warmup"] * 4
    assert (rows["queue_s"] >= 0).all() and (rows["client_s"] >= rows["queue_s"]).all()
    assert rows["bench_offset_s"].min() >= 0


def test_the_summary_counts_measured_requests_only(counted):
    run, _ = counted
    summary = run.summary()
    assert list(summary.modes) == ["blocking", "streaming"]
    for mode in summary.modes.values():
        assert (mode.requests, mode.ok, mode.errors, mode.cancelled) == (6, 6, 0, 0)
        assert mode.metrics["ttft_s"].n == 6
        assert mode.metrics["ttft_s"].p50 >= 0.01  # never below the script
        assert mode.request_throughput_rps == pytest.approx(6 / run.duration_s)
    assert summary.modes["streaming"].metrics["icl_s"].n == 6 * 3
    assert summary.modes["blocking"].metrics["icl_s"].n == 0


def test_the_logged_benchmark_summarises_as_the_live_one(counted):
    run, store = counted
    record = store.benchmark(run.bench_id)
    assert list(record) == list(BENCH_COLUMNS)
    assert record["status"] == "completed"
    assert record["duration_s"] == pytest.approx(run.duration_s)
    assert record["settings"]["requests"] == 12 and record["settings"]["concurrency"] == 3
    live, logged = run.summary(), logged_summary(store, run.bench_id)
    assert logged.slo == live.slo == Slo()
    for mode in MODES:
        a, b = live.modes[mode], logged.modes[mode]
        assert (a.requests, a.ok, a.good) == (b.requests, b.ok, b.good)
        for name in metrics.SUMMARY_METRICS:
            x, y = a.metrics[name], b.metrics[name]
            assert x.n == y.n, name
            for q in ("mean", "p50", "p99"):
                assert getattr(y, q) == close(getattr(x, q), name), (mode, name, q)


def close(value, name: str):
    """The log keeps chunk offsets to the microsecond: times agree within 2 µs, rates within
    what 2 µs make of a span of a few ms (a loaded machine can squeeze a span to ~0.5 ms)."""
    return (
        pytest.approx(value, rel=1e-2) if name.endswith("tps") else pytest.approx(value, abs=2e-6)
    )


def test_a_row_reads_back_as_the_same_trace(counted):
    run, _ = counted
    for trace in run.traces[-2:]:
        row = trace_to_row(trace)
        again = trace_to_row(trace_from_row(row))
        for column in RUN_COLUMNS:
            if isinstance(row[column], float):
                assert again[column] == close(row[column], column), column
            elif column != "timeline":
                assert again[column] == row[column], column


def test_concurrency_actually_reached_and_never_exceeded(server):
    run = Benchmark(endpoint(server, "c6"), settings(requests=30, concurrency=6), Params()).start()
    assert run.join(30)
    assert all(t.status == "ok" for t in run.traces)
    records = of_model(server, "c6")
    assert len(records) == 30
    # Server side: from when it received each request until it began the last bytes.
    assert max_in_flight([(r.t_received, r.t_done) for r in records]) == 6


def test_a_request_rate_is_kept(server):
    rate, n = 40.0, 20
    run = Benchmark(
        endpoint(server, "rate"), settings(requests=n, rate=rate, concurrency=None), Params()
    ).start()
    assert run.join(30)
    # t_start is the schedule itself, exactly: lateness goes to queue_s, not into the start.
    offsets = [metrics.bench_offset_s(t) for t in run.traces]
    assert [o - offsets[0] for o in offsets] == pytest.approx(
        [i / rate for i in range(n)], abs=1e-9
    )
    received = sorted(r.t_received for r in of_model(server, "rate"))
    span = received[-1] - received[0]
    assert span <= (n - 1) / rate + 0.25, span  # 475 ms scheduled
    # Sent at the rate, not in a burst: the typical gap the server saw is the schedule's. (Not
    # the span's lower bound: beside two other suites the first request alone came 0.12 s late,
    # which shortened the span to 0.36 s while every later one kept the rate.)
    gaps = [later - earlier for earlier, later in zip(received, received[1:])]
    assert 0.5 / rate <= statistics.median(gaps) <= 1.5 / rate, gaps
    assert all(metrics.queue_s(t) >= 0 for t in run.traces)


def test_errors_are_counted_against_goodput(server, store):
    # SLOs no answer of this 5 ms script can miss, even on a loaded machine: every ok request
    # is good, every failed one is not, so goodput is exactly the ok half.
    slo = Slo(ttft_s=2.0, icl_p99_s=1.0)
    run = Benchmark(
        endpoint(server, "half-fail"), settings(requests=10, concurrency=2, slo=slo), Params(),
        store,
    ).start()
    assert run.join(30)
    summary = run.summary()
    errors = sum(m.errors for m in summary.modes.values())
    good = sum(m.good for m in summary.modes.values())
    assert errors == 5  # every second request is answered 500
    assert good == 5
    for m in summary.modes.values():
        assert m.good == m.ok and m.goodput_ratio == pytest.approx(m.ok / m.requests)
    assert sum(m.requests for m in summary.modes.values()) == 10
    for m in summary.modes.values():
        assert m.good <= m.ok == m.requests - m.errors  # a failed request is never good
        assert m.goodput_ratio == m.good / m.requests and m.error_rate == m.errors / m.requests
    rows = store.recent(50)
    failed = rows[rows["status"] == "error"]
    assert len(failed) == 5 and all("500" in e for e in failed["error"])


def test_cancel_ends_every_request_and_logs_them(server, store):
    run = Benchmark(
        endpoint(server, "slow"), settings(requests=40, concurrency=8), Params(), store
    ).start()
    wait_until(lambda: len(of_model(server, "slow")) == 8, 10, "8 requests in flight")
    run.cancel()
    assert run.join(5), "the benchmark did not end within 5 s of cancel()"
    assert run.status == "stopped"
    assert run.threads() == [], "runner threads still alive"
    assert not [t for t in threading.enumerate() if t.name.startswith(f"bench-{run.bench_id[:8]}")]
    assert len(run.traces) == 8 and {t.status for t in run.traces} == {"cancelled"}
    assert len(of_model(server, "slow")) == 8  # the other 32 were never sent
    rows = store.recent(50)
    assert len(rows) == 8 and set(rows["status"]) == {"cancelled"}
    # The server sees every connection closed (it notices at its next write, <= 1 s).
    wait_until(lambda: server.open_connections == 0, 5, "the server's connections to close")


def test_the_deadline_cancels_what_is_running(server, store):
    began = time.perf_counter()
    run = Benchmark(
        endpoint(server, "slow-deadline"),
        settings(requests=8, concurrency=2, deadline_s=0.4),
        Params(),
        store,
    ).start()
    assert run.join(10)
    assert time.perf_counter() - began < 3.0
    assert run.status == "deadline"
    assert len(run.traces) == 2 and {t.status for t in run.traces} == {"cancelled"}
    assert store.count() == 2
    assert store.benchmark(run.bench_id)["status"] == "deadline"


def test_embedded_endpoint_says_the_server_queues():
    local = Endpoint("local", "gemma", {m: "http://127.0.0.1:9/v1" for m in MODES})
    assert "up to 4 requests at once" in bench.lane_note(local, settings(concurrency=1))
    assert "server's queue" not in bench.lane_note(local, settings(concurrency=4))
    assert "server's queue" in bench.lane_note(local, settings(concurrency=5))
    assert (
        bench.lane_note(endpoint_for_url("http://127.0.0.1:9/v1"), settings(concurrency=4)) is None
    )


def endpoint_for_url(url: str) -> Endpoint:
    return Endpoint("compatible", "m", {m: url for m in MODES})


# -- progress ----------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(counted):
    run, _ = counted
    progress = run.progress()
    assert (progress.done, progress.total, progress.warmup_done, progress.in_flight) == (
        12,
        12,
        4,
        0,
    )
    assert progress.fraction == 1.0
    assert set(progress.p50) == set(MODES) and progress.p50["streaming"]["ttft_s"] > 0
    tty, plain = Terminal(), io.StringIO()
    for stream in (tty, plain):
        reporter = bench_cli._Reporter(stream)
        reporter.update(progress)
        reporter.update(progress)
        reporter.close()
    assert tty.getvalue().startswith("\r[########################] 12/12 requests")
    assert tty.getvalue().count("\r") == 2
    assert "\r" not in plain.getvalue() and plain.getvalue().count("\n") == 1  # same step once
    assert "streaming p50 ttft" in plain.getvalue()


# -- the CLI end to end -----------------------------------------------------------------------


def run_cli(args: list[str], tmp: Path, **env_vars: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STREAMRACE_") and k not in ("DATABASE_URL", "OPENAI_API_KEY")
    }
    env.update(XDG_DATA_HOME=str(tmp / "xdg"), **env_vars)
    return subprocess.run(
        [sys.executable, "-m", "lib.bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def keyed_server(warmed):
    with PlaybackServer({"quick": SCRIPTS["quick"]}, api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def cli_run(keyed_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    prompts = tmp / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "one", "max_tokens": 8}\n{"prompt": "two"}\n{"prompt": "three"}\n'
    )
    result = run_cli(
        [
            "--base-url",
            keyed_server.base_url,
            "--model",
            "quick",
            "--api-key-env",
            "BENCH_KEY",
            "--prompts",
            str(prompts),
            "--requests",
            "12",
            "--concurrency",
            "4",
            "--warmup",
            "2",
            "--modes",
            "blocking,streaming",
            "--max-tokens",
            "32",
            "--out",
            str(tmp / "results.csv"),
            "--summary-json",
            str(tmp / "summary.json"),
            "--slo-ttft-ms",
            "150",
            "--database-url",
            f"sqlite:///{tmp / 'runs.db'}",
        ],
        tmp,
        BENCH_KEY=KEY,
    )
    return result, tmp


def test_cli_writes_the_csv_with_the_run_log_columns(cli_run, keyed_server):
    result, tmp = cli_run
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp / "results.csv")
    assert list(frame.columns) == list(RUN_COLUMNS)
    assert len(frame) == 14
    assert set(frame["source"]) == {"benchmark"} and frame["bench_id"].nunique() == 1
    assert sorted(frame["bench_phase"]) == ["measured"] * 12 + ["warmup"] * 2
    assert set(frame["status"]) == {"ok"}
    assert set(frame["prompt"]) == {"one", "two", "three"}
    limits = {json.loads(p)["max_tokens"] for p in frame[frame["prompt"] == "one"]["params"]}
    assert limits == {8}  # the JSONL line's own limit
    assert {json.loads(p)["max_tokens"] for p in frame[frame["prompt"] == "two"]["params"]} == {32}
    bodies = [r.body for r in keyed_server.received if r.body["messages"][0]["content"] == "two"]
    assert bodies and {b["max_tokens"] for b in bodies} == {32}


def test_cli_writes_the_summary_json(cli_run):
    result, tmp = cli_run
    summary = json.loads((tmp / "summary.json").read_text())
    frame = pd.read_csv(tmp / "results.csv")
    assert summary["bench_id"] == frame["bench_id"][0]
    assert summary["status"] == "completed"
    assert summary["slo"] == {"ttft_s": 0.15, "icl_p99_s": 0.05}
    assert summary["settings"]["concurrency"] == 4 and summary["settings"]["warmup"] == 2
    assert summary["endpoint"] == {
        "endpoint_kind": "compatible",
        "base_url": frame["base_url"][0],
        "model": "quick",
    }
    assert set(summary["modes"]) == {"blocking", "streaming"}
    streaming = summary["modes"]["streaming"]
    assert (streaming["requests"], streaming["ok"], streaming["errors"]) == (6, 6, 0)
    assert set(streaming["metrics"]) == {
        "ttft_s",
        "ttfo_s",
        "thinking_s",
        "perceived_s",
        "e2e_s",
        "tpot_s",
        "icl_s",
        "output_tps",
        "client_s",
        "queue_s",
    }
    assert set(streaming["metrics"]["ttft_s"]) == {"n", "mean", "p50", "p90", "p95", "p99"}
    measured = frame[(frame["bench_phase"] == "measured") & (frame["mode"] == "streaming")]
    assert streaming["metrics"]["ttft_s"]["p50"] == pytest.approx(
        measured["ttft_s"].median(), abs=1e-9
    )
    assert streaming["request_throughput_rps"] == pytest.approx(6 / summary["duration_s"])


def test_cli_logs_and_prints(cli_run):
    result, tmp = cli_run
    engine = sa.create_engine(f"sqlite:///{tmp / 'runs.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar_one() == 14
        assert conn.execute(sa.text("SELECT status FROM benchmarks")).scalar_one() == "completed"
    engine.dispose()
    assert "ttft_s" in result.stdout and "goodput" in result.stdout
    assert "wrote 14 rows" in result.stdout and "logged benchmark" in result.stdout
    # Not a terminal: plain progress lines, no carriage returns.
    assert "12/12 requests" in result.stderr and "\r" not in result.stderr


def test_cli_never_writes_the_key(cli_run, keyed_server):
    result, tmp = cli_run
    assert {r.authorization for r in keyed_server.received} == {f"Bearer {KEY}"}  # it was used
    engine = sa.create_engine(f"sqlite:///{tmp / 'runs.db'}")
    with engine.connect() as conn:
        stored = [
            str(v)
            for table in ("runs", "benchmarks")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
            for v in row
        ]
    engine.dispose()
    for text in [
        result.stdout,
        result.stderr,
        (tmp / "results.csv").read_text(),
        (tmp / "summary.json").read_text(),
        *stored,
    ]:
        assert KEY not in text and KEY[-10:] not in text


def test_cli_refuses_a_bad_prompt_file_and_touches_nothing(keyed_server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\nnot json\n')
    before = len(keyed_server.received)
    result = run_cli(
        [
            "--base-url",
            keyed_server.base_url,
            "--model",
            "quick",
            "--prompts",
            str(bad),
            "--out",
            str(tmp_path / "r.csv"),
            "--database-url",
            f"sqlite:///{tmp_path / 'runs.db'}",
        ],
        tmp_path,
    )
    assert result.returncode == 2
    assert "Line 2 of bad.jsonl is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(keyed_server.received) == before
    assert not (tmp_path / "runs.db").exists() and not (tmp_path / "r.csv").exists()


# -- the embedded model ---------------------------------------------------------------------


@pytest.mark.embedded
def test_a_small_benchmark_on_the_embedded_model(tmp_path):
    """Both modes go to the one llama-server; the summary says how it shares the cores."""
    from lib.core.config import Settings
    from lib.endpoints.resolve import default_params, resolve

    local = resolve(Settings(endpoint_kind="local"))
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    run = Benchmark(
        local, settings(requests=2, concurrency=1, max_tokens=8), default_params(local), store
    ).start()
    assert run.join(240)
    assert [t.status for t in run.traces] == ["ok", "ok"], [t.error for t in run.traces]
    assert {t.mode: t.request.base_url for t in run.traces} == dict(local.urls)
    summary = run.summary()
    assert "up to 4 requests at once" in summary.note
    assert all(m.ok == 1 and m.metrics["ttft_s"].n == 1 for m in summary.modes.values())
    assert store.count() == 2


# -- the run log's migration --------------------------------------------------------------------


def test_m002_upgrades_a_log_that_has_races_in_it(tmp_path):
    """A run log written before benchmarks existed gains the columns; its rows keep their values."""
    from tests.support.legacy_runlog import legacy_migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    legacy_migrate(engine, upto="m001_runs")  # the log as m001 left it, with one race row
    with engine.begin() as conn:
        old = {
            k: v
            for k, v in trace_to_row(hand("streaming", [0.1, 0.2])).items()
            if k in RUN_COLUMNS[: RUN_COLUMNS.index("timeline") + 1]
        }
        conn.execute(
            sa.text(
                f"INSERT INTO runs ({', '.join(old)}) VALUES ({', '.join(':' + k for k in old)})"
            ),
            old,
        )
    engine.dispose()

    log = Store(url)
    assert log.columns() == list(RUN_COLUMNS)
    row = log.recent().iloc[0]
    assert row["ttft_s"] == pytest.approx(0.1)
    assert all(pd.isna(row[c]) for c in ("bench_id", "bench_phase", "queue_s", "icl_p99_s"))
    assert log.benchmarks().empty and list(log.benchmarks().columns) == [*BENCH_COLUMNS, "runs"]
    log.engine.dispose()

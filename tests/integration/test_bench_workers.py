"""Benchmark workers on Ray (issue 16): a real local Ray, real actors, a real playback server.

One local Ray serves the whole module (starting one costs seconds); at the end the module
checks that none of its processes outlived it. Each test uses a model of its own, so the
requests it caused can be picked out of `server.received`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lib.bench import BenchPrompt, BenchSettings, PromptSet, RayBenchmark, arrival_offsets
from lib.bench import workers as ray_workers
from lib.bench.plan import deal, split
from lib.core import metrics
from lib.core.errors import InvalidInput, WorkerLost
from lib.core.trace import MODES, Params
from lib.endpoints import Endpoint
from lib.serving.playback import PlaybackServer, Script
from lib.serving.process import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = {
    "w-count": Script.regular(ttft_s=0.05, gap_s=0.01, n=4),
    "w-rate": Script.regular(ttft_s=0.005, gap_s=0.001, n=2),
    "w-poisson": Script.regular(ttft_s=0.005, gap_s=0.001, n=2),
    "w-slow": Script.regular(ttft_s=0.05, gap_s=1.0, n=6),  # one word a second: to cancel
    "w-deadline": Script.regular(ttft_s=0.05, gap_s=1.0, n=6),
    "w-die": Script.regular(ttft_s=0.05, gap_s=1.0, n=6),
    "w-cli": Script.regular(ttft_s=0.02, gap_s=0.005, n=4),
}
PROMPTS = PromptSet("probe", (BenchPrompt("worker probe"),), 16)


def ray_processes(marker: str) -> list[int]:
    """Processes whose command line or environment holds `marker` (a temp dir, a tag)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in text:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def local_ray():
    session = ray_workers.connect(None)
    yield session
    ray_workers.shutdown()
    deadline = time.monotonic() + 10
    while ray_processes(session.temp_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray_processes(session.temp_dir) == [], "Ray processes outlived the tests"


@pytest.fixture(scope="module")
def server(warmed):
    with PlaybackServer(SCRIPTS) as server:
        yield server


def endpoint(server: PlaybackServer, model: str) -> Endpoint:
    return Endpoint("compatible", model, {m: server.base_url for m in MODES})


def of_model(server: PlaybackServer, model: str):
    return [r for r in list(server.received) if r.body.get("model") == model]


def settings(**changes) -> BenchSettings:
    return BenchSettings(prompts=PROMPTS, modes=("streaming",), **changes)



def test_shares_follow_the_concurrency():
    assert split(64, 2) == [32, 32] and split(5, 2) == [3, 2] and split(1, 3) == [1, 0, 0]
    hands = deal(10, [3, 2])
    assert sorted(i for hand in hands for i in hand) == list(range(10))  # each once
    assert [len(h) for h in hands] == [6, 4]
    assert hands[1][0] == 1 and hands[1][-1] == 9  # spread over the whole plan


def test_workers_are_checked_before_anything_starts():
    with pytest.raises(InvalidInput, match="concurrency of at least 4"):
        settings(requests=4, concurrency=2, workers=4).check()
    with pytest.raises(InvalidInput, match="between 0"):
        settings(workers=65).check()
    with pytest.raises(InvalidInput, match="not a Ray address"):
        ray_workers.check_address("http://head:6379/")


def test_every_request_is_sent_once_by_its_worker_and_logged_once(local_ray, server, store):
    run = RayBenchmark(endpoint(server, "w-count"),
                       settings(requests=20, concurrency=4, warmup=2, workers=2),
                       Params(), store).start()
    assert run.join(60), "the benchmark did not end"
    assert run.status == "completed" and run.failure is None
    assert len({w.pid for w in run.workers}) == 2 and all(w.pid != os.getpid()
                                                         for w in run.workers)
    assert [w.sent for w in run.workers] == [11, 11]  # its share of 22, warm-up included
    traces = run.traces
    assert len(traces) == 22 and len({t.run_id for t in traces}) == 22
    assert {t.status for t in traces} == {"ok"} and {t.bench_id for t in traces} == {run.bench_id}
    assert [t.bench_phase for t in traces].count("warmup") == 2
    assert len(of_model(server, "w-count")) == 22  # the server saw each request once
    rows = store.bench_traces(run.bench_id)
    assert len(rows) == 22 and {t.run_id for t in rows} == {t.run_id for t in traces}
    # The workers' timestamps are on this process's clock: each receipt on the server lies
    # between some request's t0 and its first chunk (a clock off by more would miss them all).
    for request in of_model(server, "w-count"):
        assert any(t.t0 <= request.t_received <= t.chunks[0].t for t in traces), request
    assert max(metrics.ttft_s(t) for t in traces) < 0.05 + 0.1  # scripted 50 ms
    progress = run.progress()
    assert (progress.done, progress.warmup_done, progress.in_flight) == (20, 2, 0)
    assert store.benchmark(run.bench_id)["settings"]["workers"] == 2
    assert "2 Ray workers" in run.summary().title()


@pytest.mark.parametrize("poisson", [False, True], ids=["constant", "poisson"])
def test_one_arrival_schedule_across_workers(local_ray, server, poisson):
    model = "w-poisson" if poisson else "w-rate"
    run = RayBenchmark(endpoint(server, model),
                       settings(requests=30, rate=40.0, poisson=poisson, seed=7,
                                concurrency=8, workers=2), Params()).start()
    assert run.join(60) and run.status == "completed"
    measured = sorted(run.traces, key=lambda t: t.t_start)
    origin = measured[0].t_start
    expected = arrival_offsets(30, 40.0, poisson, 7)
    # Each request was due exactly where the one schedule put it, whichever worker sent it.
    assert [round(t.t_start - origin, 6) for t in measured] == [round(e, 6) for e in expected]
    assert all(w.sent == 15 for w in run.workers)
    # ... and left on time: the server received them over the schedule's span (a worker
    # that fell behind, or a second schedule per worker, would stretch or squeeze it).
    received = sorted(r.t_received for r in of_model(server, model))
    span = received[-1] - received[0]
    assert 0.8 * expected[-1] <= span <= expected[-1] + 0.25, (span, expected[-1])
    assert all(metrics.queue_s(t) >= 0 for t in measured)
    assert max(metrics.bench_offset_s(t) for t in measured) == pytest.approx(
        expected[-1] + metrics.bench_offset_s(measured[0]), abs=1e-6)


def test_cancel_reaches_every_worker(local_ray, server, store):
    run = RayBenchmark(endpoint(server, "w-slow"), settings(requests=20, concurrency=4,
                                                            workers=2), Params(), store).start()
    wait_until(lambda: len(of_model(server, "w-slow")) == 4, 30, "4 requests in flight")
    cancelled_at = time.perf_counter()
    run.cancel()
    assert run.join(10)
    assert time.perf_counter() - cancelled_at < 3.0
    assert run.status == "stopped"
    assert len(run.traces) == 4 and {t.status for t in run.traces} == {"cancelled"}
    assert all(w.sent == 2 for w in run.workers)
    assert store.count() == 4 and len(of_model(server, "w-slow")) == 4
    wait_until(lambda: server.open_connections == 0, 5, "the server's connections to close")


def test_the_deadline_reaches_every_worker(local_ray, server, store):
    run = RayBenchmark(endpoint(server, "w-deadline"),
                       settings(requests=20, concurrency=4, deadline_s=1.0, workers=2),
                       Params(), store).start()
    began = time.perf_counter()  # the deadline counts from here, the workers being ready
    assert run.join(15)
    assert time.perf_counter() - began < 5.0
    assert run.status == "deadline"
    assert len(run.traces) == 4 and {t.status for t in run.traces} == {"cancelled"}
    assert store.benchmark(run.bench_id)["status"] == "deadline"


def test_a_worker_that_dies_is_reported_and_its_requests_logged_as_errors(local_ray, server,
                                                                          store):
    run = RayBenchmark(endpoint(server, "w-die"), settings(requests=20, concurrency=4,
                                                           workers=2), Params(), store).start()
    wait_until(lambda: run.progress().in_flight == 4, 30, "4 requests reported in flight")
    victim = run.workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    assert run.join(20)
    assert run.status == "failed"
    assert f"worker 1 of 2 (pid {victim.pid}" in run.failure and "died" in run.failure
    lost = [t for t in run.traces if t.status == "error"]
    assert len(lost) == 2 and {t.error_kind for t in lost} == {WorkerLost.kind}
    assert all("died with this request in flight" in t.error for t in lost)
    others = [t for t in run.traces if t.status != "error"]
    assert len(others) == 2 and {t.status for t in others} == {"cancelled"}
    logged = store.bench_traces(run.bench_id)
    assert len(logged) == 4 and len({t.run_id for t in logged}) == 4
    assert sorted(t.status for t in logged) == ["cancelled", "cancelled", "error", "error"]


def run_cli(args: list[str], tmp: Path, tag: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STREAMRACE_", "RAY_")) and k != "DATABASE_URL"}
    env.update(XDG_DATA_HOME=str(tmp / "xdg"), STREAMRACE_TEST_TAG=tag)
    return subprocess.run([sys.executable, "-m", "lib.bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def test_the_command_runs_workers_on_a_local_ray_and_leaves_nothing_running(server, tmp_path):
    tag = uuid.uuid4().hex
    db = tmp_path / "runs.db"
    result = run_cli(["--base-url", server.base_url, "--model", "w-cli", "--modes", "streaming",
                      "--requests", "16", "--concurrency", "4", "--warmup", "2", "--workers", "2",
                      "--out", str(tmp_path / "out.csv"), "--database-url", f"sqlite:///{db}"],
                     tmp_path, tag)
    assert result.returncode == 0, result.stderr
    assert "2 workers ready: a local Ray" in result.stderr
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("select bench_id, status from runs")).all()
    engine.dispose()
    assert len(rows) == 18 and len({r.bench_id for r in rows}) == 1
    assert {r.status for r in rows} == {"ok"}
    assert ray_processes(tag) == [], "Ray processes outlived the command"


def test_an_unreachable_ray_address_is_one_line_and_writes_nothing(tmp_path):
    db = tmp_path / "runs.db"
    out = tmp_path / "out.csv"
    port = free_port()
    began = time.monotonic()
    result = run_cli(["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--workers", "2",
                      "--concurrency", "2", "--ray-address", f"127.0.0.1:{port}",
                      "--out", str(out), "--database-url", f"sqlite:///{db}"],
                     tmp_path, uuid.uuid4().hex)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()  # a status line, then the error, one line
    assert lines[-1].startswith(f"error: Cannot reach a Ray cluster at 127.0.0.1:{port}")
    assert lines[:-1] == [f"starting 2 Ray workers (on 127.0.0.1:{port})…"], result.stderr
    assert time.monotonic() - began < 30
    assert not out.exists()
    if db.exists():
        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            assert "benchmarks" not in tables or not connection.execute(
                sa.text("select count(*) from benchmarks")).scalar()
        engine.dispose()


@pytest.mark.parametrize("args, message", [
    (["--ray-address", "head:6379"], "--ray-address needs --workers"),
    (["--workers", "2", "--ray-address", "nonsense"], "is not a Ray address"),
    (["--workers", "3", "--concurrency", "2"], "concurrency of at least 3"),
])
def test_bad_worker_flags_are_refused(args, message, tmp_path):
    result = run_cli(["--base-url", "http://127.0.0.1:9/v1", "--model", "m", *args,
                      "--out", str(tmp_path / "o.csv")], tmp_path, uuid.uuid4().hex)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr


@pytest.mark.usefixtures("ctrl_c_reaches_the_commands")
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["sigterm", "ctrl-c"])
def test_a_signal_to_the_command_s_group_cancels_every_worker_and_logs(sig, status, server,
                                                                       tmp_path):
    """A terminal's Ctrl-C and a service manager's SIGTERM reach the whole process group: the
    local Ray runs in a group of its own, so the command cancels and logs before it stops."""
    tag = uuid.uuid4().hex
    db = tmp_path / "runs.db"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STREAMRACE_", "RAY_")) and k != "DATABASE_URL"}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), STREAMRACE_TEST_TAG=tag)
    model = f"w-sig-{sig.name}"
    server.scripts[model] = SCRIPTS["w-slow"]
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.bench", "--base-url", server.base_url, "--model", model,
         "--modes", "streaming", "--requests", "20", "--concurrency", "4", "--workers", "2",
         "--out", str(tmp_path / "out.csv"), "--database-url", f"sqlite:///{db}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        wait_until(lambda: len(of_model(server, model)) == 4, 90, "4 requests in flight")
        os.killpg(process.pid, sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == status, err
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("select status from runs")).all()
    engine.dispose()
    assert [r.status for r in rows] == ["cancelled"] * 4
    deadline = time.monotonic() + 10
    while ray_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray_processes(tag) == [], "Ray processes outlived the command"

"""One benchmark run against several endpoints (`python -m lib.bench --target SPEC ...`): the
same prompt set against each target in turn, two real playback servers of known speeds, and
the summary compares them."""

from __future__ import annotations

import sqlite3

import pytest
from test_bench import run_cli

from lib.serving.playback import PlaybackServer, Script

QUICK = Script.regular(ttft_s=0.05, gap_s=0.005, n=6)
SLOW = Script.regular(ttft_s=0.25, gap_s=0.005, n=6)


@pytest.fixture(scope="module")
def servers(warmed):
    with PlaybackServer({"quick": QUICK}) as a, PlaybackServer({"slow": SLOW}) as b:
        yield a, b


def test_two_targets_run_the_same_suite_and_are_compared(servers, tmp_path):
    a, b = servers
    db = tmp_path / "runs.db"
    out = tmp_path / "results.csv"
    result = run_cli(["--prompts", "short", "--requests", "4", "--modes", "streaming",
                      "--target", f"label=ours,base_url={a.base_url},model=quick",
                      "--target", "label=theirs,endpoint=box,model=slow",
                      "--out", str(out), "--database-url", f"sqlite:///{db}"], tmp_path,
                     STREAMRACE_ENDPOINT_BOX_BASE_URL=b.base_url)
    assert result.returncode == 0, result.stderr
    assert "== ours" in result.stdout and "== theirs" in result.stdout
    compared = result.stdout.split("== Endpoints compared")[1]
    lines = compared.splitlines()
    assert lines[1].split()[:2] == ["endpoint", "mode"]
    rows = [line.split() for line in lines[2:4]]
    assert [row[:2] for row in rows] == [["ours", "streaming"], ["theirs", "streaming"]]
    assert "ours showed streamed words first" in compared
    # The same prompts went to both; each target's TTFT p50 is its script's, not the other's.
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT model, bench_id, prompt, ttft_s FROM runs "
                            "WHERE bench_phase = 'measured'").fetchall()
    by_model = {m: [r for r in runs if r[0] == m] for m in ("quick", "slow")}
    assert len(by_model["quick"]) == len(by_model["slow"]) == 4
    assert sorted(r[2] for r in by_model["quick"]) == sorted(r[2] for r in by_model["slow"])
    assert len({r[1] for r in runs}) == 2  # two benchmarks, each logged with its bench_id
    assert all(0.05 <= r[3] < 0.2 for r in by_model["quick"])
    assert all(0.25 <= r[3] < 0.4 for r in by_model["slow"])
    assert out.read_text().count("\n") == 1 + 8


def test_one_target_is_refused(servers, tmp_path):
    a, _ = servers
    result = run_cli(["--target", f"base_url={a.base_url},model=quick",
                      "--out", str(tmp_path / "r.csv")], tmp_path)
    assert result.returncode == 2
    assert "at least two targets" in result.stderr and "Traceback" not in result.stderr


def test_a_target_with_a_mode_is_refused(servers, tmp_path):
    a, _ = servers
    result = run_cli(["--target", f"base_url={a.base_url},model=quick,mode=blocking",
                      "--target", f"base_url={a.base_url},model=quick,label=x",
                      "--out", str(tmp_path / "r.csv")], tmp_path)
    assert result.returncode == 2
    assert "--modes apply" in result.stderr

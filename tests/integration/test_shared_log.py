"""One run log shared by a team: three app instances and two benchmarks writing at once.

Five processes open one fresh database at the same moment (each migrates it; one does, under
the migration lock, the others wait and find it current), then write concurrently: the apps
race on four threads each (two rows a race, then the browser's figures added to them), the
benchmarks log their calls and their own row. Nothing may be lost (every request the server
saw has its row, every race both rows and its figures, every benchmark all its calls) and no
process may see a lock error. On PostgreSQL, what a team runs, and on SQLite, whose file
locking the same writers must survive.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lib.serving.process import sealed_env, stop_process
from lib.storage import migrations

pytestmark = [pytest.mark.both_databases, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
APPS, RACES, THREADS = 3, 16, 4
BENCHMARKS, BENCH_REQUESTS = 2, 48
FINISH_S = 240
LOCK_ERROR = re.compile(r"\b(is locked|deadlock|lock timeout|could not obtain lock|"
                        r"lock not available|traceback)", re.IGNORECASE)
"""What SQLite and PostgreSQL say when a writer lost to a lock, and any Python failure."""


def test_three_apps_and_two_benchmarks_write_one_log_at_once(store_url, playback, tmp_path):
    tag = f"shared-{uuid.uuid4().hex[:12]}"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"{tag} bench prompt {i}" for i in range(4)) + "\n")
    env = sealed_env({"PYTHONPATH": str(ROOT)})
    commands = [[sys.executable, "-m", "tests.support.app_writer", store_url, playback.base_url,
                 str(RACES), str(THREADS), f"{tag} app {n}"] for n in range(APPS)]
    commands += [[sys.executable, "-m", "lib.bench", "--database-url", store_url,
                  "--endpoint", "compatible", "--base-url", playback.base_url, "--model", "fast",
                  "--prompts", str(prompts), "--requests", str(BENCH_REQUESTS),
                  "--concurrency", "8", "--out", str(tmp_path / f"bench{n}.csv")]
                 for n in range(BENCHMARKS)]
    started = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for command in commands]
    try:
        outputs = [process.communicate(timeout=FINISH_S) for process in processes]
    finally:
        for process in processes:
            stop_process(process)
    took = time.perf_counter() - started
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, f"{process.args[2]} failed: {err[-2000:]}"
        assert not LOCK_ERROR.search(err), err[-2000:]

    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT run_id, race_id, bench_id, prompt, status, screen_first_s FROM runs "
                "WHERE prompt LIKE :tag"), {"tag": f"{tag}%"}).mappings().all()
            benchmarks = conn.execute(sa.text("SELECT bench_id, status FROM benchmarks")).all()
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert versions == [(migrations.head(),)], "migrated once, to the newest revision"

    sent = received_for_tag(playback, tag)
    assert len(rows) == len({row["run_id"] for row in rows}) == sent, "a row per request"
    assert all(row["status"] == "ok" for row in rows)

    race_rows = [row for row in rows if row["bench_id"] is None]
    race_ids = {row["race_id"] for row in race_rows}
    printed = {line for out, _ in outputs[:APPS] for line in out.split()}
    assert race_ids == printed and len(race_ids) == APPS * RACES
    assert len(race_rows) == 2 * APPS * RACES
    assert all(row["screen_first_s"] is not None for row in race_rows), "every figure added"

    per_bench: dict[str, int] = {}
    for row in rows:
        if row["bench_id"] is not None:
            per_bench[row["bench_id"]] = per_bench.get(row["bench_id"], 0) + 1
    assert sorted(per_bench.values()) == [BENCH_REQUESTS] * BENCHMARKS
    assert sorted(benchmarks) == sorted((bench_id, "completed") for bench_id in per_bench)
    print(f"{APPS} apps and {BENCHMARKS} benchmarks at once: {len(rows)} rows for {sent} "
          f"requests ({len(race_ids)} races, {len(per_bench)} benchmarks), no lock error, "
          f"{took:.1f} s with their start-up")


def received_for_tag(playback, tag: str) -> int:
    """Requests the playback server received whose prompt starts with `tag`."""
    return sum(1 for record in list(playback.received)
               if any(str(m.get("content", "")).startswith(tag)
                      for m in record.body.get("messages", [])))

"""Secrets on the command line: every `python -m lib.<name>` command with a canary key in its
environment (or in .streamlit/secrets.toml, or named with --api-key-env), against a playback
server that requires the key and quotes the Authorization header it got in its error messages.
Their stdout and stderr, and every file they wrote (run log with its -wal/-shm, CSV and JSON
outputs, report, exported recording), are scanned for both canaries (tests/support/key_scan.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import received_for

from lib.core.errors import from_exception
from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store
from tests.support.key_scan import CANARY, WRONG, assert_no_key_in, assert_no_key_in_files

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 180
SCRIPTS = {
    "keyed": Script.regular(ttft_s=0.02, gap_s=0.005, n=8),
    "e500": Script(status=500),
    "flaky": Script.regular(ttft_s=0.02, gap_s=0.005, n=6, status_schedule=(200, 200, 500)),
}


@pytest.fixture
def server():
    with PlaybackServer(SCRIPTS, api_key=CANARY, flagged_terms=("blank",),
                        echo_key=True) as server:
        yield server


class Commands:
    """Runs `python -m lib.<name>` in a clean environment, and checks what it printed."""

    def __init__(self, server: PlaybackServer, out: Path):
        self.out = out
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("STREAMRACE_") and k != "OPENAI_API_KEY"}
        self.env.update(
            PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
            DATABASE_URL=f"sqlite:///{out / 'runs.db'}", XDG_DATA_HOME=str(out / "data"),
            STREAMRACE_ENDPOINT="compatible", STREAMRACE_BASE_URL=server.base_url,
            STREAMRACE_MODEL="keyed", STREAMRACE_API_KEY=CANARY,
            OPENAI_API_KEY=CANARY, STREAMRACE_MODERATION_URL=server.base_url,
            WRONG_KEY=WRONG,
        )
        self.work = out / "cwd"  # no .streamlit/secrets.toml here
        self.work.mkdir(parents=True)

    def run(self, *args: str, rc: int = 0, cwd: Path | None = None, drop: tuple[str, ...] = ()
            ) -> str:
        env = {k: v for k, v in self.env.items() if k not in drop}
        done = subprocess.run([sys.executable, "-m", *args], cwd=cwd or self.work, env=env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        name = " ".join(args)
        assert_no_key_in(done.stdout, f"the stdout of `{name}`")
        assert_no_key_in(done.stderr, f"the stderr of `{name}`")
        assert done.returncode == rc, (
            f"`{name}` exited {done.returncode}, not {rc}:\n{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr


@pytest.mark.slow  # eleven commands, each paying Python's and the SDK's imports
def test_no_key_in_any_command_output_or_file(server, tmp_path):
    out = tmp_path / "out"
    commands = Commands(server, out)
    run = commands.run
    Store(commands.env["DATABASE_URL"]).engine.dispose()  # migrated once, before they share it
    secrets_cwd = tmp_path / "secrets-cwd"  # outside `out`: the file itself holds the key
    (secrets_cwd / ".streamlit").mkdir(parents=True)
    (secrets_cwd / ".streamlit" / "secrets.toml").write_text(f'STREAMRACE_API_KEY = "{CANARY}"\n')

    # The commands that call the endpoint, a few at a time (each pays Python's and the SDK's
    # imports): races with the key from the environment, with the server's 500 quoting it,
    # with a wrong key (401) named by --api-key-env, with the key from secrets.toml only; a
    # benchmark whose failures quote the key, and one with the wrong key; the guardrails with
    # the moderation validator (OPENAI_API_KEY), then with the wrong key. CSV and JSON out.
    calls = {  # name: (the command's arguments, how to run it)
        "race": (("lib.race", "--prompt", "key scan: env"), {}),
        "race 500": (("lib.race", "--prompt", "key scan: 500", "--model", "e500"), {"rc": 1}),
        "race wrong": (("lib.race", "--prompt", "key scan: wrong", "--api-key-env", "WRONG_KEY"),
                       {"rc": 1}),
        "race secrets": (("lib.race", "--prompt", "key scan: secrets.toml"),
                         {"cwd": secrets_cwd, "drop": ("STREAMRACE_API_KEY",)}),
        "bench": (("lib.bench", "--model", "flaky", "--requests", "6", "--concurrency", "2",
                   "--warmup", "0", "--out", str(out / "bench.csv"),
                   "--summary-json", str(out / "bench.json")), {}),
        "bench wrong": (("lib.bench", "--api-key-env", "WRONG_KEY", "--requests", "2",
                         "--warmup", "0", "--out", str(out / "bench-wrong.csv"),
                         "--summary-json", str(out / "bench-wrong.json")), {"rc": 1}),
        "guards": (("lib.guards", "--validators", "pii,moderation",
                    "--out", str(out / "guards.csv")), {}),
        "guards wrong": (("lib.guards", "--api-key-env", "WRONG_KEY",
                          "--out", str(out / "guards-wrong.csv")), {"rc": 1}),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        running = {name: pool.submit(run, *args, **options)
                   for name, (args, options) in calls.items()}
        shown = {name: future.result() for name, future in running.items()}
    assert "HTTP 500" in shown["race 500"] and "Received Authorization" in shown["race 500"], (
        shown["race 500"])
    for name in ("race wrong", "guards wrong"):
        assert "refused the API key (HTTP 401)" in shown[name], shown[name]

    # The report over every source, and a recording of the first race, exported.
    run("lib.report", "--out", str(out / "report.html"), "--source", "live", "--source",
        "benchmark", "--source", "guardrails")
    with sqlite3.connect(out / "runs.db") as conn:
        race = [r for (r,) in conn.execute(
            "SELECT run_id FROM runs WHERE prompt = 'key scan: env' AND status = 'ok'")]
    assert len(race) == 2, race
    run("lib.replay", "save", "key-scan", *race)
    run("lib.replay", "export", "key-scan", "--out", str(out / "key-scan.json"))
    run("lib.replay", "list")

    assert_no_key_in_files(out, expected=(
        "runs.db", "runs.db-wal", "bench.csv", "bench.json", "bench-wrong.csv", "guards.csv",
        "guards-wrong.csv", "report.html", "key-scan.json"))

    # The key was in play: each source of it reached the server, and the wrong one did too.
    for prompt, key in (("key scan: env", CANARY), ("key scan: 500", CANARY),
                        ("key scan: wrong", WRONG), ("key scan: secrets.toml", CANARY)):
        sent = {r.authorization for r in received_for(server, prompt)}
        assert sent == {f"Bearer {key}"}, (prompt, sent)
    moderated = [r for r in server.received if "input" in r.body]
    assert moderated and {r.authorization for r in moderated} == {f"Bearer {CANARY}"}
    with sqlite3.connect(out / "runs.db") as conn:
        errors = [e for (e,) in conn.execute("SELECT error FROM runs WHERE error IS NOT NULL")]
    assert any("Received Authorization" in e for e in errors), errors  # scrubbed, not dropped


def test_a_key_cut_by_the_message_length_limit_is_still_scrubbed():
    """The server's words are shortened to 300 characters: a key straddling the cut must not
    leave its first characters behind."""
    for at in range(280, 301):
        error = RuntimeError("x" * at + f"Bearer {CANARY} was refused")
        message = from_exception(error, base_url="http://127.0.0.1:9/v1", model="m",
                                 timeout_s=1.0, started=False, secrets=(CANARY,)).message
        assert_no_key_in(message, f"a message with the key at character {at}")

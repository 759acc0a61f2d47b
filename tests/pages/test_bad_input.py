"""Bad input everywhere a user can type it: a clear message, nothing sent, nothing lost.

The race page's own cases (empty, 200k, control characters, right-to-left and emoji, invalid
URL, unusable DATABASE_URL) are in tests/pages/test_race_page.py; here are the other pages and
every command line, run as a user runs them (a subprocess) against a real playback server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lib.bench import BenchSettings, parse_prompts, suite_params
from lib.core.errors import InvalidInput
from lib.core.trace import Params
from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
QUICK = Script.regular(ttft_s=0.01, gap_s=0.005, n=4)
HUGE = "word " * 40_000  # 200,000 characters
ODD = ("Right-to-left: مرحبا بالعالم · emoji 🏁🚀👩‍💻 · control: \x00\x07\x1b[31m · "
       "zero-width: a\u200bb")


@pytest.fixture(scope="module")
def server(warmed):
    with PlaybackServer({"quick": QUICK}) as server:
        yield server


def cli(
    module: str, *args: str, server: PlaybackServer, database_url: str, stdin: str = "", **env: str
):
    """Run `python -m lib.<module> ...` pointed at the server, as a user would."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STREAMRACE_")}
    environment.update(
        STREAMRACE_ENDPOINT="compatible",
        STREAMRACE_BASE_URL=server.base_url,
        STREAMRACE_MODEL="quick",
        DATABASE_URL=database_url,
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", f"lib.{module}", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


RACE = ("race", "--prompt", "Why stream?")
BENCH = ("bench", "--out", "{tmp}/out.csv", "--requests", "2")
GUARDS = ("guards", "--prompt", "Why stream?")

REFUSED = [
    # (command line, words the one-line message contains)
    (("race", "--prompt", ""), "prompt"),
    (("race", "--prompt", "   \n\t "), "prompt"),
    (("race", "--prompt", "-"), "200,000 characters"),  # HUGE on standard input
    ((*RACE, "--max-tokens", "0"), "max_tokens"),
    ((*RACE, "--max-tokens", "1000000000"), "max_tokens"),
    ((*RACE, "--temperature", "7"), "temperature"),
    ((*RACE, "--temperature", "nan"), "temperature"),
    ((*RACE, "--timeout", "-1"), "timeout"),
    ((*RACE, "--base-url", "not a url"), "URL"),
    ((*RACE, "--base-url", "ftp://127.0.0.1/v1"), "URL"),
    ((*BENCH, "--max-tokens", "0"), "max_tokens"),
    ((*BENCH, "--temperature", "7"), "temperature"),
    ((*BENCH, "--concurrency", "0"), "concurrency"),
    (("bench", "--out", "{tmp}/out.csv", "--requests", "-5"), "requests"),
    ((*BENCH, "--rate", "0"), "rate"),
    ((*BENCH, "--prompts", "{tmp}/empty.txt"), "no prompt"),
    ((*BENCH, "--prompts", "{tmp}/latin1.txt"), "UTF-8"),
    ((*BENCH, "--prompts", "{tmp}/missing.txt"), "missing.txt"),
    (("guards", "--prompt", " "), "prompt"),
    ((*GUARDS, "--max-tokens", "0"), "max_tokens"),
    ((*GUARDS, "--temperature", "7"), "temperature"),
    ((*GUARDS, "--strategies", "nonsense"), "nonsense"),
    ((*RACE, "--database-url", "notadialect://x"), "DATABASE_URL"),
]


@pytest.mark.parametrize("args, says", REFUSED, ids=[" ".join(a)[:60] for a, _ in REFUSED])
def test_cli_refuses_bad_input_with_one_line(args, says, server, tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    database_url = f"sqlite:///{tmp_path / 'runs.db'}"
    before = len(server.received)
    result = cli(
        *(a.replace("{tmp}", str(tmp_path)) for a in args),
        server=server,
        database_url=database_url,
        stdin=HUGE,
    )
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert says.lower() in result.stderr.lower(), result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr  # a message, not a dump
    assert len(server.received) == before, "nothing may be sent for refused input"
    if Path(tmp_path / "runs.db").exists():
        assert Store(database_url).count() == 0


def test_cli_races_odd_text_and_logs_it_whole(server, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'runs.db'}"
    result = cli("race", "--prompt", "-", server=server, database_url=database_url, stdin=ODD)
    assert result.returncode == 0, result.stderr
    frame = Store(database_url).recent(5)
    assert list(frame["prompt"]) == [ODD, ODD]  # stored exactly, control characters included
    assert set(frame["status"]) == {"ok"}


# -- the other pages ----------------------------------------------------------------------------

PAGES = [
    "app_pages/benchmark.py",
    "app_pages/history.py",
    "app_pages/replay.py",
    "app_pages/guardrails.py",
    None,
]


BAD_DATABASE_URLS = {
    "notadialect://x": "DATABASE_URL is not a usable SQLAlchemy URL (Can't load plugin: "
                       "sqlalchemy.dialects:notadialect).",
    "sqlite:////proc/no/such/dir/runs.db": "Cannot open the run log at "
                                           "sqlite:////proc/no/such/dir/runs.db: unable to open "
                                           "database file.",
}


@pytest.mark.parametrize("url", list(BAD_DATABASE_URLS))
@pytest.mark.parametrize("page", PAGES, ids=lambda p: (p or "race").split("/")[-1])
def test_every_page_explains_an_unusable_database_url(page, url, server, open_app):
    at = open_app(server.base_url, "quick", page, DATABASE_URL=url)
    messages = [m.value for m in [*at.error, *at.warning, *at.caption]]
    about = [m for m in messages if "run log" in m.lower() or "database_url" in m.lower()]
    expected = BAD_DATABASE_URLS[url]
    if page == "app_pages/guardrails.py":  # the lab says why its Run is not there
        expected += " Nothing is sent until the run log can be written."
    assert about == [expected], messages


def test_the_app_refuses_an_unknown_configured_endpoint_kind(server, open_app):
    """STREAMRACE_ENDPOINT=bogus: one line on screen and no page, not a race on another endpoint."""
    at = open_app(server.base_url, "quick", STREAMRACE_ENDPOINT="bogus")
    assert [e.value for e in at.error] == [
        "Unknown endpoint kind 'bogus' (STREAMRACE_ENDPOINT, environment): use local, openai, "
        "compatible or replay."]
    assert not at.button and not at.text_area and not at.sidebar.selectbox


@pytest.mark.parametrize(
    "prompt, says",
    [("", "prompt"), ("  \n ", "prompt"), (HUGE, "200,000 characters")],
    ids=["empty", "whitespace", "200k"],
)
def test_guardrails_lab_refuses_a_bad_prompt(prompt, says, server, open_app, store_url):
    at = open_app(server.base_url, "quick", "app_pages/guardrails.py")
    before = len(server.received)
    at.text_area(key="guard_prompt").input(prompt)
    at.button(key="guard_run").click().run()
    assert not at.exception
    assert any(says in w.value for w in at.warning), [w.value for w in at.warning]
    assert len(server.received) == before
    assert Store(store_url).count() == 0


def test_guardrails_lab_takes_odd_text(server, open_app, store_url):
    at = open_app(server.base_url, "quick", "app_pages/guardrails.py")
    at.text_area(key="guard_prompt").input(ODD)
    at.button(key="guard_run").click().run()
    assert not at.exception and not at.warning
    assert set(Store(store_url).recent(10)["prompt"]) == {ODD}


@pytest.mark.parametrize(
    "content, says",
    [
        ("", "no prompt"),
        ("\n  \n", "no prompt"),
        ('{"prompt": "a", "max_tokens": 0}\n', "max_tokens"),
        ('{"prompt": 5}\n', "prompt"),
        (HUGE + "\n", "the limit is 100,000"),
    ],
    ids=["empty", "blank", "max_tokens0", "prompt-not-text", "200k"],
)
def test_benchmark_refuses_a_bad_prompt_file(content, says):
    """What the page and the CLI both do with an uploaded prompt file (AppTest cannot upload)."""
    with pytest.raises(InvalidInput, match=f"(?i){re.escape(says)}"):
        settings = BenchSettings(prompts=parse_prompts(content, "mine.jsonl")).check()
        suite_params(settings, Params())

"""Endpoint kinds the other tests do not reach: `openai` (and its missing key), an unknown
kind (configured, or on the command line), and STREAMRACE_MODEL_PATH for the `local` kind.

The `openai` kind is pointed at a playback server that serves `gpt-4o-mini` (a base URL
override, as a gateway in front of OpenAI would be): the real call path, with OpenAI's own
model features switched on, and the key from OPENAI_API_KEY.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lib.core.calls import Call
from lib.core.config import OPENAI_BASE_URL, load_settings
from lib.core.errors import InvalidInput
from lib.core.trace import MODES, Params
from lib.endpoints.resolve import resolve
from lib.serving import embedded
from lib.serving.playback import PlaybackServer, Script

ROOT = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-test-openai-0123456789"
MISSING_KEY = ("The openai endpoint needs OPENAI_API_KEY (environment, .streamlit/secrets.toml "
               "or the key field in the sidebar).")
NO_SECRETS = Path("/nonexistent/secrets.toml")


@pytest.fixture(scope="module")
def openai_like(warmed):
    with PlaybackServer({"gpt-4o-mini": Script.regular(ttft_s=0.02, gap_s=0.005, n=5)},
                        api_key=OPENAI_KEY) as server:
        yield server


def test_openai_settings_from_the_environment():
    settings = load_settings({"STREAMRACE_ENDPOINT": "openai", "OPENAI_API_KEY": OPENAI_KEY,
                              "STREAMRACE_API_KEY": "not-this-one"}, NO_SECRETS)
    assert (settings.endpoint_kind, settings.base_url, settings.model) == (
        "openai", OPENAI_BASE_URL, "gpt-4o-mini")
    assert (settings.api_key, settings.key_origin) == (OPENAI_KEY, "environment")
    endpoint = resolve(settings)
    assert endpoint.kind == "openai" and endpoint.api_key == OPENAI_KEY
    assert set(endpoint.urls.values()) == {OPENAI_BASE_URL}


def test_a_key_from_secrets_toml_says_so_once_streamlit_copied_it_into_the_environment(
        tmp_path):
    """Streamlit copies secrets.toml's top-level values into the app's environment: the
    sidebar still names the file (sharing limits the configured key either way)."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'OPENAI_API_KEY = "{OPENAI_KEY}"\n')
    copied = load_settings({"STREAMRACE_ENDPOINT": "openai", "OPENAI_API_KEY": OPENAI_KEY},
                           secrets)
    assert (copied.api_key, copied.key_origin) == (OPENAI_KEY, "secrets.toml")
    other = load_settings({"STREAMRACE_ENDPOINT": "openai", "OPENAI_API_KEY": "env-key"},
                          secrets)
    assert (other.api_key, other.key_origin) == ("env-key", "environment")


def test_openai_without_a_key_says_which_variable():
    settings = load_settings({"STREAMRACE_ENDPOINT": "openai",
                              "STREAMRACE_API_KEY": "not-for-openai"}, NO_SECRETS)
    assert settings.api_key is None
    with pytest.raises(InvalidInput) as info:
        resolve(settings)
    assert info.value.message == MISSING_KEY


@pytest.mark.parametrize("mode", MODES)
def test_openai_kind_makes_real_calls_with_its_key(openai_like, mode):
    settings = load_settings({"STREAMRACE_ENDPOINT": "openai", "OPENAI_API_KEY": OPENAI_KEY},
                             NO_SECRETS).with_overrides(base_url=openai_like.base_url)
    prompt = f"openai kind {mode}"
    trace = Call(resolve(settings), prompt, Params(), mode).run()
    assert trace.status == "ok", trace.error
    assert trace.text == "".join(Script.regular(ttft_s=0.02, gap_s=0.005, n=5).texts)
    assert trace.request.endpoint_kind == "openai"
    [request] = [r for r in openai_like.received if r.body["messages"][0]["content"] == prompt]
    assert request.authorization == f"Bearer {OPENAI_KEY}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["temperature"] == 0.7  # kept for a model OpenAI's features know
    assert bool(request.body.get("stream")) == (mode == "streaming")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMRACE_") and k not in ("DATABASE_URL", "OPENAI_API_KEY")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return {**env, **extra}


def race_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.race", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_openai_cli_without_a_key_is_one_line_and_sends_nothing(openai_like, tmp_path):
    db = tmp_path / "runs.db"
    before = len(openai_like.received)
    result = race_cli(["--endpoint", "openai", "--base-url", openai_like.base_url, "--prompt",
                       "hi", "--database-url", f"sqlite:///{db}"], clean_env(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: {MISSING_KEY}"
    assert len(openai_like.received) == before
    assert not db.exists()


def test_openai_cli_with_its_key_logs_openai_rows(openai_like, tmp_path):
    db = tmp_path / "runs.db"
    result = race_cli(["--endpoint", "openai", "--base-url", openai_like.base_url, "--prompt",
                       "hi", "--database-url", f"sqlite:///{db}"],
                      clean_env(tmp_path, OPENAI_API_KEY=OPENAI_KEY))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT endpoint_kind, model, mode, status FROM runs").fetchall()
    assert sorted(rows) == [("openai", "gpt-4o-mini", "blocking", "ok"),
                            ("openai", "gpt-4o-mini", "streaming", "ok")]
    assert OPENAI_KEY not in db.read_bytes().decode("latin-1")


def test_unknown_endpoint_kind_is_refused_with_the_known_ones():
    settings = load_settings({}, NO_SECRETS).with_overrides(endpoint_kind="bogus")
    with pytest.raises(InvalidInput) as info:
        resolve(settings)
    assert info.value.message == (
        "Unknown endpoint kind 'bogus': use local, openai, compatible or replay.")


UNKNOWN = ("Unknown endpoint kind 'bogus' (STREAMRACE_ENDPOINT, {origin}): use local, openai, "
           "compatible or replay.")


def test_an_unknown_configured_kind_is_refused_not_replaced(tmp_path):
    """A typo in STREAMRACE_ENDPOINT never silently races the embedded model instead."""
    with pytest.raises(InvalidInput) as info:
        load_settings({"STREAMRACE_ENDPOINT": "Bogus "}, NO_SECRETS)
    assert info.value.message == UNKNOWN.format(origin="environment")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('STREAMRACE_ENDPOINT = "bogus"\n')
    with pytest.raises(InvalidInput) as info:
        load_settings({}, secrets)
    assert info.value.message == UNKNOWN.format(origin="secrets.toml")
    assert load_settings({"STREAMRACE_ENDPOINT": " "}, NO_SECRETS).endpoint_kind == "local"
    assert load_settings({"STREAMRACE_ENDPOINT": " Replay"}, NO_SECRETS).endpoint_kind == "replay"


COMMANDS = {
    "race": ["race", "--prompt", "hi"],
    "guards": ["guards", "--prompt", "hi"],
    "bench": ["bench", "--requests", "1", "--out", "{tmp}/out.csv"],
    "replay": ["replay", "list"],
    "report": ["report", "--out", "{tmp}/report.html"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_an_unknown_configured_kind(command, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in COMMANDS[command]]
    result = subprocess.run([sys.executable, "-m", f"lib.{args[0]}", *args[1:]], cwd=ROOT,
                            env=clean_env(tmp_path, STREAMRACE_ENDPOINT="bogus"),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip() == f"error: {UNKNOWN.format(origin='environment')}"
    assert not (tmp_path / "xdg").exists(), "nothing is started or written"


def test_a_kind_on_the_command_line_wins_over_an_unknown_configured_one(openai_like, tmp_path):
    db = tmp_path / "runs.db"
    result = race_cli(["--endpoint", "compatible", "--base-url", openai_like.base_url,
                       "--model", "gpt-4o-mini", "--prompt", "hi", "--database-url",
                       f"sqlite:///{db}"],
                      clean_env(tmp_path, STREAMRACE_ENDPOINT="bogus",
                                STREAMRACE_API_KEY=OPENAI_KEY))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone() == (2,)


def test_unknown_endpoint_kind_on_the_command_line(tmp_path):
    result = race_cli(["--endpoint", "bogus", "--prompt", "hi"], clean_env(tmp_path))
    assert result.returncode == 2
    assert "invalid choice: 'bogus'" in result.stderr and "Traceback" not in result.stderr


def test_model_path_is_read_from_the_environment():
    settings = load_settings({"STREAMRACE_MODEL_PATH": "/models/other.gguf"}, NO_SECRETS)
    assert settings.model_path == "/models/other.gguf"


def test_a_missing_model_path_is_refused_before_starting_anything(tmp_path):
    path = tmp_path / "nowhere.gguf"
    started = embedded._server
    settings = load_settings({"STREAMRACE_MODEL_PATH": str(path)}, NO_SECRETS)
    with pytest.raises(InvalidInput) as info:
        resolve(settings)
    assert info.value.message == (
        f"The model file {path} does not exist (STREAMRACE_MODEL_PATH).")
    assert embedded._server is started


@pytest.mark.embedded
def test_model_path_serves_that_file(tmp_path):
    """Another GGUF file (here the bundled one under another name) is the one served."""
    other = tmp_path / "other.gguf"
    other.symlink_to(embedded.bundled_model_path())
    try:
        endpoint = resolve(load_settings({"STREAMRACE_MODEL_PATH": str(other)}, NO_SECRETS))
        assert embedded._server is not None and embedded._server.model_path == str(other)
        assert embedded._server.alive()
        trace = Call(endpoint, "Say hi.", Params(max_tokens=4), "streaming").run()
        assert trace.status == "ok" and trace.text, trace.error
    finally:
        embedded.ensure_lanes()  # back to the bundled model for the other tests

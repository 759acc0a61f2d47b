"""First run on any machine: the embedded model's server fails with a message a user can act
on, on every page and command that starts it, and leaves nothing running (stand-in binaries
that crash, exit or never answer); `make run` takes its port from its command line only and the
app listens on 127.0.0.1 only; the build is portable; every package is pinned."""

from __future__ import annotations

import os
import platform
import re
import stat
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path

import pytest

from lib.core.errors import ServerStartFailed
from lib.serving import embedded
from tests.support.browser_harness import start_app, stop_app
from tests.support.processes import LOOPBACK, listening_on, owned_by

ROOT = Path(__file__).resolve().parents[2]

STANDINS = {
    # name: (shell body, what the message must say)
    "sigill": ("kill -ILL $$",
               "this build uses CPU instructions this machine cannot run. Rebuild it for this "
               "machine with `make rebuild-llama-server`"),
    "exits": ("echo 'gguf_init: failed to load model' >&2; exit 1",
              "exited with code 1. Its log:"),
    "silent": ("while :; do sleep 1; done", "did not answer within 2 s"),
}


def standin(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"llama-server-{name}"
    path.write_text("#!/bin/sh\n" + STANDINS[name][0] + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def no_server():
    """The module's embedded server stopped before and after (a stand-in must not be reused)."""
    embedded.stop_all()
    yield
    embedded.stop_all()


@pytest.mark.parametrize("name", list(STANDINS))
def test_every_failed_start_is_a_message_and_leaves_nothing(name, tmp_path, monkeypatch,
                                                             no_server):
    monkeypatch.setenv(embedded.SERVER_ENV, standin(tmp_path, name))
    monkeypatch.setattr(embedded, "START_TIMEOUT_S", 2.0)
    started = time.monotonic()
    with pytest.raises(ServerStartFailed) as caught:
        embedded.ensure_lanes()
    assert STANDINS[name][1] in caught.value.message
    assert caught.value.message.startswith("The embedded llama.cpp server ")
    assert time.monotonic() - started < 10
    assert not owned_by(os.getpid(), running=str(tmp_path))


def test_a_missing_server_says_how_to_install_it(tmp_path, monkeypatch, no_server):
    monkeypatch.setenv(embedded.SERVER_ENV, str(tmp_path / "nothing-here"))
    with pytest.raises(ServerStartFailed, match="could not be started: .*nothing-here "
                                                r"\(No such file or directory\)"):
        embedded.ensure_lanes()


def cli_race(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STREAMRACE_")}
    environment.update(XDG_DATA_HOME=str(tmp_path / "data"),
                       DATABASE_URL=f"sqlite:///{tmp_path / 'runs.db'}", **env)
    return subprocess.run(
        [sys.executable, "-m", "lib.race", "--endpoint", "local", "--max-tokens", "8",
         "--prompt", "Say hello."], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=300)


def test_the_race_command_says_why_and_exits(tmp_path):
    done = cli_race(tmp_path, STREAMRACE_LLAMA_SERVER=standin(tmp_path, "sigill"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: The embedded llama.cpp server was killed by SIGILL")
    assert "make rebuild-llama-server" in line


@pytest.mark.parametrize("page, button", [
    (None, "race_run"),
    ("app_pages/benchmark.py", "bench_run"),
    ("app_pages/guardrails.py", "guard_run"),
])
def test_every_page_says_why(page, button, tmp_path, monkeypatch, open_app, no_server):
    monkeypatch.setenv(embedded.SERVER_ENV, standin(tmp_path, "sigill"))
    at = open_app("", "", page, STREAMRACE_ENDPOINT="local")
    at.button(key=button).click().run()
    assert not at.exception, [e.value for e in at.exception]
    said = " ".join(e.value for e in [*at.error, *at.warning])
    assert "this build uses CPU instructions this machine cannot run" in said
    assert "make rebuild-llama-server" in said
    assert not owned_by(os.getpid(), running=str(tmp_path))


@pytest.mark.embedded
def test_a_hostile_environment_cannot_move_the_server(tmp_path):
    """HOST, PORT (taken), LLAMA_ARG_* and a foreign locale in the user's shell: the race still
    runs on 127.0.0.1, and the command leaves no process behind."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    try:
        done = cli_race(tmp_path, HOST="0.0.0.0", PORT=port, LLAMA_ARG_HOST="0.0.0.0",
                        LLAMA_ARG_PORT=port, LLAMA_ARG_MODEL="/nonexistent.gguf",
                        LLAMA_ARG_CTX_SIZE="8", LC_ALL="C", MODEL="/nonexistent.gguf")
    finally:
        taken.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^streaming\s+ok", done.stdout, re.M), done.stdout
    log = next((tmp_path / "data").rglob("llama-server-*.log")).read_text()
    assert "listening on http://127.0.0.1:" in log and f":{port}" not in log.split("listening")[1]
    pid = int(re.search(r"llama-server-(\d+)\.log", str(next((tmp_path / "data").rglob(
        "llama-server-*.log")))).group(1))
    assert not owned_by(pid), "the command's llama-server outlived it"


# -- make run ----------------------------------------------------------------------------------


def make_run_command(*args: str) -> str:
    """The command `make run` would start (a dry run: nothing is installed or started), with
    HOST and PORT in the environment as containers and PaaS set them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(["make", "-n", "run", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "HOST": "0.0.0.0", "PORT": "1"}, timeout=60, check=True)
    [line] = [line for line in done.stdout.splitlines() if "streamlit run" in line]
    return line


def test_make_run_takes_its_port_from_its_command_line_only():
    assert make_run_command("PORT=8601") == (
        "env -u HOST -u PORT .venv/bin/streamlit run streamlit_app.py --server.port 8601")
    assert make_run_command().endswith("--server.port 8501")  # not the environment's PORT=1


def test_the_app_listens_on_loopback_only(tmp_path):
    """.streamlit/config.toml: the dashboard, and the key configured for it, stay on this machine
    (a HOST in the environment changes nothing)."""
    app = start_app(tmp_path, HOST="0.0.0.0")
    try:
        assert listening_on(app.port) == {LOOPBACK}
    finally:
        stop_app(app)


def test_a_rerun_never_runs_beside_the_script_it_stops():
    """.streamlit/config.toml turns Streamlit's fast reruns off: with them, a click starts a
    second script thread while the stopped one still uses the session's widget state (seen in
    the twenty-sessions test: "dictionary keys changed during iteration", a traceback)."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["fastReruns"] is False


# -- the build ---------------------------------------------------------------------------------

BEYOND_AVX2 = re.compile(
    r"%zmm|\{%k[1-7]\}|\bk(?:mov|and|or|xor|not|test|shift)[bwdq]\b"  # AVX-512
    r"|\b(?:tilezero|tileloadd|tilestored|ldtilecfg|sttilecfg|tdpb\w+|tilerelease)\b"  # AMX
    r"|\bvpdpbusds?\b|\bvpdpwssds?\b")  # VNNI (AVX-512 or AVX-VNNI)


@pytest.mark.slow  # disassembles the whole binary
@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 instruction check")
def test_the_installed_server_uses_nothing_beyond_avx2():
    """Disassembled, the binary holds no AVX-512, AMX or VNNI instruction: it runs on any
    x86-64 CPU with AVX2, whatever CPU built it (a native build crashed on an AMX machine)."""
    binary = embedded.server_binary()
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary],
                             capture_output=True, text=True, check=True).stdout
    assert "vfmadd" in listing and "ymm" in listing, "AVX2/FMA kernels are in"
    found = sorted({m.group(0) for m in BEYOND_AVX2.finditer(listing)})
    assert not found, f"instructions beyond AVX2 in {binary}: {found[:10]}"


# -- dependencies --------------------------------------------------------------------------------

def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_every_installed_package_is_the_locked_one():
    """What `make run` / `make test` installed is exactly constraints.txt (make lock)."""
    pins = pinned()
    # Only what pip installed into the venv: Ray puts its vendored psutil and colorama
    # (ray/thirdparty_files) on sys.path once imported, which made this test depend on order.
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
                 for d in metadata.distributions(path=site)}
    unpinned = sorted(set(installed) - set(pins) - {"pip", "setuptools", "wheel"})
    assert not unpinned, f"installed but not locked: {unpinned}"
    differ = {name: (installed[name], pins[name]) for name in installed
              if name in pins and installed[name] != pins[name]}
    assert not differ, f"installed ≠ locked: {differ}"


def test_installing_llama_server_replaces_a_running_one_and_stamps_it_now(tmp_path):
    """`make` installs the cached build into the venv. A copy onto a running binary failed
    ("Text file busy", a second `make test` while an app ran); the cache's old time stamp made
    make install it again on every run."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from build_llama_server import install
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    cached = tmp_path / "cache" / "llama-server"
    cached.parent.mkdir()
    cached.write_bytes(Path("/bin/sleep").read_bytes())
    cached.chmod(0o755)
    os.utime(cached, (1_000_000_000, 1_000_000_000))  # built long ago
    target = tmp_path / "venv" / "bin" / "llama-server"
    install(cached, target)
    running = subprocess.Popen([str(target), "30"])
    try:
        before = time.time()
        install(cached, target)  # over the running one
        assert target.stat().st_mtime >= before - 1
        assert target.read_bytes() == cached.read_bytes()
        assert running.poll() is None, "the running server kept its file"
        assert not list(target.parent.glob("*.partial"))
    finally:
        running.kill()
        running.wait()

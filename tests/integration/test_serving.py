"""lib.serving.process: every way a child server can fail to start is a message, and leaves
nothing running; a child's environment holds nothing of ours it was not given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lib.core.errors import ServerStartFailed
from lib.serving.process import OWNER_VARIABLE, ManagedProcess, free_port, http_ok, sealed_env
from tests.support.processes import group_alive, owned_by

HOSTILE_ENV = {"HOST": "0.0.0.0", "PORT": "1", "CONFIG_FILE": "/nonexistent.json",
               "MODEL": "/nonexistent.gguf", "LLAMA_ARG_HOST": "0.0.0.0",
               "LLAMA_ARG_PORT": "1", "STREAMLIT_SERVER_PORT": "1", "LC_ALL": "de_DE.UTF-8",
               "OPENAI_API_KEY": "sk-not-for-children", "STREAMRACE_API_KEY": "key-x"}


def script(tmp_path: Path, body: str) -> list[str]:
    """A stand-in server: a Python program that does `body`."""
    path = tmp_path / "standin.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def standin_server(tmp_path: Path, body: str, **kwargs) -> ManagedProcess:
    port = free_port()
    return ManagedProcess("The stand-in server", script(tmp_path, body) + [str(port)],
                          health_url=f"http://127.0.0.1:{port}/health",
                          log_path=tmp_path / "standin.log", **kwargs)


HEALTHY = """
    import http.server, json, os, sys
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(dict(os.environ)).encode()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *args): pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_child_gets_a_sealed_environment(tmp_path, monkeypatch):
    for name, value in HOSTILE_ENV.items():
        monkeypatch.setenv(name, value)
    server = standin_server(tmp_path, HEALTHY, env={"DATABASE_URL": "sqlite:///x.db"})
    server.start()
    try:
        import httpx

        seen = httpx.get(server.health_url, timeout=5).json()
    finally:
        server.stop()
    assert not set(HOSTILE_ENV) - {"LC_ALL"} & set(seen), "nothing of the user's shell leaks"
    assert seen["LC_ALL"] == "C.UTF-8" and seen["DATABASE_URL"] == "sqlite:///x.db"
    assert seen[OWNER_VARIABLE] == str(os.getpid())
    assert not group_alive(server.pid)


def test_sealed_env_keeps_openblas_settings():
    env = sealed_env(environ={"OPENBLAS_CORETYPE": "Haswell", "PORT": "1", "PATH": "/bin"})
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and "PORT" not in env and env["PATH"] == "/bin"


@pytest.mark.parametrize("body, expected", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGILL)",
     "killed by SIGILL (illegal instruction): this build uses CPU instructions this machine "
     "cannot run. Rebuild with `make it`"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "killed by SIGSEGV"),
    ("print('model file is corrupt'); raise SystemExit(3)", "exited with code 3"),
])
def test_a_crash_while_starting_says_how_it_ended(tmp_path, body, expected):
    server = standin_server(tmp_path, body, rebuild_hint="Rebuild with `make it`.")
    started = time.monotonic()
    with pytest.raises(ServerStartFailed) as caught:
        server.start()
    assert expected in caught.value.message
    assert str(tmp_path / "standin.log") in caught.value.message
    assert time.monotonic() - started < 10, "a dead child is noticed at once, not at the limit"
    assert not server.alive() and not group_alive(server.pid)


def test_the_last_log_line_is_quoted(tmp_path):
    server = standin_server(tmp_path, "print('error: model file is corrupt'); raise SystemExit(1)")
    with pytest.raises(ServerStartFailed, match="last line: error: model file is corrupt"):
        server.start()


def test_a_server_that_never_answers_is_stopped_at_the_limit(tmp_path):
    # It also starts a grandchild: stopping the group must take both.
    body = """
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        time.sleep(600)
    """
    server = standin_server(tmp_path, body, start_timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(ServerStartFailed, match=r"did not answer within 1.5 s"):
        server.start()
    assert 1.5 <= time.monotonic() - started < 10
    assert not group_alive(server.pid), "no child or grandchild survives a failed start"


def test_a_missing_binary_is_a_message(tmp_path):
    server = ManagedProcess("The stand-in server", [str(tmp_path / "no-such-binary")],
                            health_url="http://127.0.0.1:1/health",
                            log_path=tmp_path / "x.log", rebuild_hint="Run `make run`.")
    with pytest.raises(ServerStartFailed, match=r"could not be started: .*no-such-binary "
                                                r"\(No such file or directory\). Run `make run`."):
        server.start()


def test_a_failed_warm_up_is_a_message_and_stops_the_server(tmp_path):
    server = standin_server(tmp_path, HEALTHY)

    def warm_up() -> None:
        raise ConnectionResetError("peer closed connection without sending complete message")

    with pytest.raises(ServerStartFailed, match="failed its first request .*peer closed"):
        server.start(ready=warm_up)
    assert not server.alive() and not group_alive(server.pid)


def test_children_are_stopped_when_their_parent_exits(tmp_path):
    """A process that started a server and exits normally leaves nothing behind (atexit)."""
    program = f"""
import sys; sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from pathlib import Path
from lib.serving.process import ManagedProcess, free_port
port = free_port()
Path({str(tmp_path / 'body.py')!r}).write_text({textwrap.dedent(HEALTHY)!r})
ManagedProcess("x", [sys.executable, {str(tmp_path / 'body.py')!r}, str(port)],
               health_url=f"http://127.0.0.1:{{port}}/health",
               log_path=Path({str(tmp_path / 'x.log')!r})).start()
print(__import__("os").getpid())
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert not owned_by(int(done.stdout.split()[-1]))


def test_http_ok_is_false_for_nothing_listening():
    assert http_ok(f"http://127.0.0.1:{free_port()}/health") is False
    assert json  # (imported for the stand-ins' bodies)
    assert signal.SIGILL


EXITING = """
    import atexit, os, sys, threading
    sys.path.insert(0, {root!r})
    go, done = threading.Event(), threading.Event()
    # Registered before lib.serving.process (whose stop_all is then run first): at exit, a
    # daemon thread starts a server after stop_all, as the embedded model's background start
    # can while the app exits.
    atexit.register(lambda: (go.set(), done.wait(10)))
    from pathlib import Path

    from lib.core.errors import ServerStartFailed
    from lib.serving.process import ManagedProcess

    def late_start():
        go.wait()
        command = [sys.executable, "-c", "import time; time.sleep(60)"]
        server = ManagedProcess("The late server", command, healthy=lambda: True,
                                log_path=Path({log!r}))
        try:
            server.start()
            print("started", flush=True)
        except ServerStartFailed as exc:
            print(exc.message, flush=True)
        done.set()

    threading.Thread(target=late_start, daemon=True).start()
    print(os.getpid(), flush=True)
"""


def test_a_server_started_while_the_process_exits_does_not_outlive_it(tmp_path):
    root = str(Path(__file__).resolve().parents[2])
    program = tmp_path / "exiting.py"
    program.write_text(textwrap.dedent(EXITING).format(root=root, log=str(tmp_path / "late.log")))
    done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    pid, said = done.stdout.strip().splitlines()
    assert said == "The late server was not started: this process is exiting"
    assert owned_by(int(pid), "time.sleep(60)") == []

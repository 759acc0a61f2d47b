"""What the sign-in tests need: an OpenID Connect provider on loopback, the app started by the
real `make share` (or `make run`) in a folder of its own, and the addresses a process listens on.

The provider is the `oidc-provider-mock` package run as a child process: its authorization form
takes the user's `sub`; the users below are predefined with their claims (--user-claims), so a
test signs someone in by clicking their button on the form.

A shared app runs in a *checkout* of its own: the project's code linked in, its own
`.streamlit/config.toml` (a copy of the project's) and `.streamlit/secrets.toml` (the test's),
so that `make share` is run as a user runs it, and nothing of the developer's own secrets.toml
is read.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lib.serving.process import ManagedProcess, free_port, sealed_env
from tests.support.browser_harness import ROOT, START_TIMEOUT_S, App

USERS = {
    # allowed by name, and an admin
    "alice": {"email": "alice@example.com", "name": "Alice Presenter"},
    # allowed by domain
    "bob": {"email": "bob@team.example", "name": "Bob Colleague"},
    # signed in, not allowed
    "mallory": {"email": "mallory@elsewhere.example", "name": "Mallory"},
}
COOKIE_SECRET = "cookie-secret-9Xq2Lk7Vb3Nm5Rt8Wz1Yp4"
CLIENT_SECRET = "client-secret-Hd6Jf2Ks9Qa4Lm7Xe1Cv"
LINKED = ("streamlit_app.py", "app_pages", "lib", "Makefile", ".venv", "requirements.txt",
          "constraints.txt", "scripts")


@dataclass
class Provider:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"


def start_provider(folder: Path, port: int | None = None) -> Provider:
    """The OIDC provider on 127.0.0.1, with USERS predefined (their e-mail vouched for)."""
    port = port or free_port()
    claims = [json.dumps({"sub": sub, "email_verified": True, **values})
              for sub, values in USERS.items()]
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1",
               "--port", str(port)]
    for item in claims:
        command += ["--user-claims", item]
    process = ManagedProcess(
        "The OIDC provider", command, health_url=f"http://127.0.0.1:{port}/.well-known/"
        "openid-configuration", log_path=folder / "provider.log", env={"NO_COLOR": "1"},
        start_timeout_s=START_TIMEOUT_S)
    process.start()
    return Provider(process, port)


def auth_secrets(metadata_url: str, *, allowed=("alice@example.com", "@team.example"),
                 admins=("alice@example.com",), runs_per_minute: int | None = None,
                 max_benchmark_requests: int | None = None) -> str:
    """The [auth] and [sharing] sections of a secrets.toml for the provider at `metadata_url`."""
    lines = [
        "[auth]",
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"',
        f'cookie_secret = "{COOKIE_SECRET}"',
        'client_id = "streamrace-test"',
        f'client_secret = "{CLIENT_SECRET}"',
        f'server_metadata_url = "{metadata_url}"',
        "",
        "[sharing]",
        f"allowed = {json.dumps(list(allowed))}",
        f"admins = {json.dumps(list(admins))}",
    ]
    if runs_per_minute is not None:
        lines.append(f"runs_per_minute = {runs_per_minute}")
    if max_benchmark_requests is not None:
        lines.append(f"max_benchmark_requests = {max_benchmark_requests}")
    return "\n".join(lines) + "\n"


def checkout(folder: Path, secrets: str | None) -> Path:
    """A folder to run `make` in as in a clone of the project: the code linked in, the
    project's config.toml copied, and `secrets` (if any) as .streamlit/secrets.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = folder / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    (folder / ".streamlit").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit" / "config.toml")
    if secrets is not None:
        (folder / ".streamlit" / "secrets.toml").write_text(secrets)
    return folder


def make_command(target: str, port: int) -> list[str]:
    """`make <target> PORT=<port>`, the README's command, without its install step (done)."""
    return ["make", "--no-print-directory", "-o", "install", target, f"PORT={port}"]


def start_made_app(folder: Path, target: str, secrets: str | None, **env: str) -> App:
    """The app as `make <target>` starts it, in a checkout of its own beside `folder` (which
    gets what the app writes: its run log, log and data folder); waits for health."""
    work = checkout(folder.with_name(folder.name + "-checkout"), secrets)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = folder / "streamlit.log"
    server = ManagedProcess(
        f"make {target}", make_command(target, port),
        health_url=f"http://127.0.0.1:{port}/_stcore/health", log_path=log_path,
        env={"DATABASE_URL": f"sqlite:///{folder / 'runs.db'}",
             "XDG_DATA_HOME": str(folder / "data"), **env},
        cwd=work, start_timeout_s=START_TIMEOUT_S)
    app = App(server, port, log_path)
    try:
        server.start()
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{app.log()}") from exc
    return app


def run_make(folder: Path, target: str, secrets: str | None, timeout_s: float = 60
             ) -> subprocess.CompletedProcess:
    """`make <target>` run to its end (a refusal), in a checkout of its own, as a user's shell
    runs it: in the sealed environment, so that a make running this suite (`make test`, whose
    MAKELEVEL would turn "make: ***" into "make[1]: ***") is not seen by the make under test."""
    work = checkout(folder / "checkout", secrets)
    return subprocess.run(make_command(target, free_port()), cwd=work, capture_output=True,
                          text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                          env=sealed_env())


def listening(port: int) -> set[str]:
    """The local addresses with a socket listening on TCP `port` on this machine (from
    /proc/net/tcp and tcp6): e.g. {"127.0.0.1"}, {"0.0.0.0"}, {"::"}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) != port or fields[3] != "0A":  # 0A: LISTEN
                continue
            found.add(_address(address))
    return found


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # The kernel writes each 32-bit word in host (little-endian) order.
    return str(ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))))

"""A throwaway PostgreSQL cluster for the tests and bench/ scripts: Debian's own server
(`make postgresql` installs it), a fresh data folder, loopback and a unix socket, stopped after.

    with Cluster.start() as cluster:
        url = cluster.new_database()        # postgresql+psycopg://streamrace:…@127.0.0.1:port/db_…
        ...

- It never outlives whoever started it: the server is our child, started through `setpriv
  --pdeathsig INT`, so the kernel tells it to shut down (SIGINT: a fast shutdown) the moment the
  thread that started it ends, however that ends (a failed test, Ctrl-C, a SIGKILL). A normal
  stop is `pg_ctl stop -m fast`, then the data folder is deleted.
- PostgreSQL refuses to run as root: as root (CI, this machine) the server and `initdb` run as
  the `postgres` system user the Debian package creates; as anyone else, as that user.
- Durability is off (fsync, synchronous_commit, full_page_writes): a test cluster lives for
  minutes and is thrown away; nothing measured here depends on the disk's flush time.
- Password authentication over TCP (scram-sha-256) for a user `streamrace`, as a team's server
  would have it, so a wrong password is really refused.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from lib.serving.process import free_port, sealed_env

USER = "streamrace"
START_TIMEOUT_S = 60.0


class PostgresMissing(RuntimeError):
    """Debian's PostgreSQL server is not installed here."""


def bin_dir() -> Path:
    """The newest installed server's programs (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name) if path.parent.parent.name
                   .isdigit() else 0)
    if not found:
        raise PostgresMissing("PostgreSQL is not installed: `make postgresql` (Debian's "
                              "postgresql package, with apt) installs it")
    return found[-1].parent


class Cluster:
    """One running PostgreSQL server in its own temporary folder."""

    def __init__(self, folder: Path, port: int, password: str, process: subprocess.Popen,
                 as_user: list[str]):
        self.folder = folder
        self.port = port
        self.password = password
        self.process = process
        self.as_user = as_user
        self.data = folder / "data"
        self.log_path = folder / "server.log"

    # -- start and stop ----------------------------------------------------------------------

    @classmethod
    def start(cls, **settings: str) -> "Cluster":
        """initdb a fresh cluster and start its server; `settings` are extra `-c name=value`.

        Must be called from a thread that lives as long as the cluster should (the main thread
        of a test session): the server is stopped when that thread ends."""
        programs = bin_dir()
        _remove_stale()
        root = os.geteuid() == 0
        owner = pwd.getpwnam("postgres") if root else None
        as_user = (["--reuid", str(owner.pw_uid), "--regid", str(owner.pw_gid), "--init-groups"]
                   if owner else [])
        folder = Path(tempfile.mkdtemp(prefix=PREFIX))
        password = secrets.token_urlsafe(16)
        try:
            (folder / "pwfile").write_text(password + "\n")
            if owner:
                os.chown(folder, owner.pw_uid, owner.pw_gid)
                os.chown(folder / "pwfile", owner.pw_uid, owner.pw_gid)
            run = subprocess.run(
                ["setpriv", *as_user, "--", str(programs / "initdb"), "-D", str(folder / "data"),
                 "-U", USER, "--pwfile", str(folder / "pwfile"), "--auth-local=trust",
                 "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                capture_output=True, text=True, env=sealed_env(), cwd=folder, timeout=120)
            if run.returncode != 0:
                raise RuntimeError(f"initdb failed: {run.stderr.strip()[-500:]}")
            port = free_port()
            options = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                       "max_connections": "300", "listen_addresses": "127.0.0.1",
                       "unix_socket_directories": str(folder), **settings}
            command = ["setpriv", *as_user, "--pdeathsig", "INT", "--",
                       str(programs / "postgres"), "-D", str(folder / "data"), "-p", str(port)]
            for name, value in options.items():
                command += ["-c", f"{name}={value}"]
            log = (folder / "server.log").open("ab")
            if owner:
                os.chown(folder / "server.log", owner.pw_uid, owner.pw_gid)
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=sealed_env(), cwd=folder)
            log.close()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        cluster = cls(folder, port, password, process, as_user)
        try:
            cluster._wait_ready()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited while starting ({self.process.returncode})"
                                   f": {self.log_tail()}")
            try:
                psycopg.connect(self.admin_conninfo(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not accept connections within "
                                       f"{START_TIMEOUT_S:g} s: {self.log_tail()}") from None
                time.sleep(0.05)  # a server that is starting: nothing else to wait on

    def stop(self) -> None:
        """A fast shutdown (clients disconnected), then the folder is deleted; idempotent."""
        if self.process.poll() is None:
            subprocess.run(["setpriv", *self.as_user, "--", str(bin_dir() / "pg_ctl"), "stop",
                            "-D", str(self.data), "-m", "fast", "-w", "-t", "30"],
                           capture_output=True, env=sealed_env(), cwd=self.folder, timeout=60)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    # -- databases ---------------------------------------------------------------------------

    def admin_conninfo(self, database: str = "postgres") -> str:
        """Over the unix socket, where this cluster trusts its own user."""
        return f"host={self.folder} port={self.port} user={USER} dbname={database}"

    def url(self, database: str, password: str | None = None) -> str:
        """The SQLAlchemy URL a user would put in DATABASE_URL (TCP, with the password)."""
        return (f"postgresql+psycopg://{USER}:{password or self.password}@127.0.0.1:{self.port}"
                f"/{database}")

    def new_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"db_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop it, closing whatever connections a test left open."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


PREFIX = "streamrace-pg-"
STALE_S = 600


def _remove_stale() -> None:
    """Folders of clusters whose server is gone (its starter was SIGKILLed: the server went
    with it, but nobody was left to delete the folder)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            if time.time() - folder.stat().st_mtime < STALE_S:
                continue  # perhaps another run's cluster, still starting
            pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        try:
            if pid is not None:
                os.kill(pid, 0)
                continue  # its server runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's, running
        shutil.rmtree(folder, ignore_errors=True)

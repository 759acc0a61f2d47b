"""Finding processes a test started, to prove none outlived what it was for (from /proc)."""

from __future__ import annotations

import time
from pathlib import Path

from lib.serving.process import OWNER_VARIABLE


def processes() -> dict[int, tuple[str, int, bytes, bytes]]:
    """Every process alive (not a zombie): pid → (state, process group, environ, cmdline)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (fields[0], int(fields[2]), environ, cmdline)
    return found


def owned_by(pid: int, running: str = "") -> list[int]:
    """Processes alive whose environment says `pid` started them (and whose command line
    holds `running`)."""
    mark = f"{OWNER_VARIABLE}={pid}".encode()
    return [p for p, (_, _, environ, cmdline) in processes().items()
            if mark in environ.split(b"\0") and running.encode() in cmdline]


def group_alive(pgid: int | None, wait_s: float = 5.0) -> list[int]:
    """Processes left in a process group; SIGKILLed ones get `wait_s` to be reaped."""
    deadline = time.monotonic() + wait_s
    while True:
        left = [p for p, (_, group, _, _) in processes().items() if group == pgid]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)  # init reaps what we killed: nothing to wait on but /proc


LOOPBACK = "0100007F"
"""127.0.0.1 as /proc/net/tcp writes it."""


def listening_on(port: int) -> set[str]:
    """Local addresses in LISTEN state on `port` (hex, from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":
                found.add(address)
    return found

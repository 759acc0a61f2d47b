"""Keeping the GIL from every other thread of this process while another process works.

A test that must show a moment is the kernel's, not a late thread's, holds the GIL (a loop
that never lets go: no thread here runs Python meanwhile) while a child process sends. The two
talk through a page of shared memory, which this process reads without letting go of the GIL.
"""

from __future__ import annotations

import mmap
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHILD_PRELUDE = """
import json, mmap, socket, struct, sys, time
with open(sys.argv[1], "r+b") as f:
    shared = mmap.mmap(f.fileno(), 64)
def wait_for_go():
    while shared[0] != 1:
        time.sleep(0.0005)
def timed_send(sock, data):
    sending = time.perf_counter()
    sock.sendall(data)
    struct.pack_into("@dd", shared, 8, sending, time.perf_counter())
"""
"""What a child script starts with: `shared` (the page), `wait_for_go()`, and
`timed_send(sock, data)`, which keeps its perf_counter stamps just before and after the send
(one clock for both processes: CLOCK_MONOTONIC); the child sets `shared[1] = 1` when done."""


class Child:
    def __init__(self, process: subprocess.Popen, shared: mmap.mmap) -> None:
        self.process = process
        self.shared = shared

    def line(self) -> str:
        return self.process.stdout.readline().strip()

    def hold_the_gil_while_it_works(self, limit_s: float = 2.0) -> float:
        """Say go, then keep the GIL until the child says it is done; the moment it was let
        go. Fails the test if the child was not done within `limit_s`."""
        interval = sys.getswitchinterval()
        sys.setswitchinterval(limit_s + 3.0)  # nothing takes the GIL from this thread
        try:
            self.shared[0] = 1
            deadline = time.perf_counter() + limit_s
            while self.shared[1] != 1 and time.perf_counter() < deadline:
                pass  # no other thread of this process runs Python until the child is done
            done = self.shared[1] == 1
            released = time.perf_counter()
        finally:
            sys.setswitchinterval(interval)
        assert done, f"the child was not done within {limit_s} s"
        return released

    @property
    def timed_send(self) -> tuple[float, float]:
        """The stamps just before and just after the child's last timed send."""
        return struct.unpack_from("@dd", self.shared, 8)


@contextmanager
def child(script: str, tmp_path: Path, *args: str) -> Iterator[Child]:
    """A Python child running CHILD_PRELUDE + `script` with the shared page; killed after."""
    page = tmp_path / "shared-page"
    page.write_bytes(bytes(64))
    with open(page, "r+b") as f:
        shared = mmap.mmap(f.fileno(), 64)
    process = subprocess.Popen([sys.executable, "-c", CHILD_PRELUDE + script, str(page), *args],
                               stdout=subprocess.PIPE, text=True)
    try:
        yield Child(process, shared)
    finally:
        process.kill()
        process.wait(5)
        shared.close()

"""When bytes reached this machine: the kernel's receive stamp of a socket's reads (Linux).

A thread can read its bytes long after they came in (a busy process, one GIL); the kernel
stamps each packet as it arrives, and a read asking for ancillary data gets the stamp of its
newest bytes. The client's stream (`lib.core.seams.ArrivalStream`) and the playback server's
request reader both take their moments from here, on the `perf_counter()` clock.
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import threading
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", None) or (
    35 if sys.platform == "linux" and not platform.machine().startswith(
        ("mips", "sparc", "parisc", "alpha")) else None)
"""Linux's socket option for the kernel's receive time of each packet (None elsewhere).
Python's socket module does not name it: 35 is the generic value (asm-generic/socket.h),
which every architecture but those four uses."""
_TIMESPEC = struct.Struct("@ll")  # the struct timespec SO_TIMESTAMPNS delivers
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
"""The ancillary buffer a recvmsg needs for one stamp (0: this system cannot have one)."""
AVAILABLE = SO_TIMESTAMPNS is not None and ANCILLARY_SIZE > 0

_keeper: socket.socket | None = None
_keeper_lock = threading.Lock()


def ask_for_stamps(sock: socket.socket) -> None:
    """Have the kernel stamp what `sock` receives (OSError where it cannot).

    Linux stamps packets only while some socket asks for it, and turns stamping on later,
    from a work queue: each connection alone would toggle it, and its first packets could go
    unstamped. One socket asking for the process's life keeps it on."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            _keeper = keeper
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def _clocks_together() -> tuple[int, float]:
    """The wall clock (ns) and `perf_counter()` at one moment: only a packet's age is taken
    from the wall clock. Read between two perf_counter readings (~0.4 µs apart here), again
    if this thread was preempted in between (a loaded machine): the narrowest of up to ten,
    so the pair is off by a few µs at most (a request's bytes reach a loopback server ~8 µs
    after its send begins, and the stamps must keep that order)."""
    best = (float("inf"), 0, 0.0)
    for _ in range(10):
        before = time.perf_counter()
        wall_ns = time.clock_gettime_ns(time.CLOCK_REALTIME)
        after = time.perf_counter()
        best = min(best, (after - before, wall_ns, (before + after) / 2))
        if after - before < 5e-6:
            break
    return best[1], best[2]


def arrived_at(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The `perf_counter()` moment a recvmsg's newest bytes arrived, from its ancillary data;
    None when the kernel did not stamp them (a read without a stamp says nothing)."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and \
                len(value) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(value)
            wall_ns, now = _clocks_together()
            age_ns = wall_ns - (seconds * 1_000_000_000 + nanoseconds)
            return now - max(age_ns, 0) / 1e9
    return None

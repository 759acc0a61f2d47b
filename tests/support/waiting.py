"""Waiting on something a test cannot be told about (a server's connection count, a row)."""

from __future__ import annotations

import time

import pytest


def wait_until(predicate, timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll a cheap predicate until it holds; fail the test after timeout_s saying what."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.002)

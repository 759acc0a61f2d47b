"""Canary keys, and a scan of every file and text for them (tests/test_key_scan*.py).

The canaries are deliberately not `sk-...`-shaped: the generic `sk-` mask of lib.core.errors.redact
cannot hide them, only real scrubbing of the key in use can. A scan looks for each canary
whole, and for its first 12 and last 10 characters (a key shown half-masked, or cut short by a
length limit, still leaks). Files are read as bytes; SQLite files are also read row by row
(a long value is split across pages, and a byte scan could miss it), Parquet files cell by cell
(their pages may be compressed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

CANARY = "canary-7Q2xKEY-4d9e1f"
"""The right key: the app and the commands get it from the environment or secrets.toml."""
WRONG = "canary-WRONGkey-8b3c5a"
"""A second canary: a wrong key typed in the sidebar, or named with --api-key-env."""
CANARIES = {"CANARY": CANARY, "WRONG": WRONG}

Extra = Mapping[str, Sequence[str]] | None
"""More secrets to scan for, name → needles (tests/browser/test_sharing.py: the sign-in's
cookie and client secrets, the session cookies, the provider's tokens). A token's needles are
its distinctive parts (a JWT's payload and signature), not a prefix every JWT shares."""


def needles(key: str) -> tuple[str, ...]:
    return (key, key[:12], key[-10:])


def _all_needles(extra: Extra) -> list[tuple[str, str]]:
    found = [(name, needle) for name, key in CANARIES.items() for needle in needles(key)]
    return found + [(name, needle) for name, more in (extra or {}).items() for needle in more]


def leaks(text: str, extra: Extra = None) -> list[str]:
    """Which canaries (or recognisable parts of one), and `extra` secrets, `text` contains."""
    return [f"{name} ({needle!r})" for name, needle in _all_needles(extra) if needle in text]


def byte_leaks(data: bytes, extra: Extra = None) -> list[str]:
    return [f"{name} ({needle!r})" for name, needle in _all_needles(extra)
            if needle.encode() in data]


def _sqlite_text(path: Path) -> str:
    """Every value of every table, as text (the WAL's committed rows included)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        parts = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                parts.extend(str(v) for v in row if v is not None)
        return "\n".join(parts)
    finally:
        conn.close()


def _parquet_text(path: Path) -> str:
    import pandas as pd

    frame = pd.read_parquet(path)
    return "\n".join(str(v) for v in [*frame.columns, *frame.to_numpy().ravel()])


def scan_files(folder: Path, extra: Extra = None) -> tuple[list[str], list[Path]]:
    """(problems, files scanned) for every file under `folder`, recursively."""
    problems, scanned = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        scanned.append(path)
        data = path.read_bytes()
        found = byte_leaks(data, extra)
        if data.startswith(b"SQLite format 3\x00"):
            found += [f"{leak} in a row" for leak in leaks(_sqlite_text(path), extra)]
        elif data.startswith(b"PAR1"):
            found += [f"{leak} in a cell" for leak in leaks(_parquet_text(path), extra)]
        if found:
            problems.append(f"{path.relative_to(folder)}: {', '.join(found)}")
    return problems, scanned


def assert_no_key_in_files(folder: Path, expected: tuple[str, ...] = (),
                           extra: Extra = None) -> list[Path]:
    """Fails naming every file that holds a canary; also fails if a file that the test relies
    on (a name in `expected`, matched against the end of the path) is missing from the scan."""
    problems, scanned = scan_files(folder, extra)
    assert not problems, "API key found in files written:\n" + "\n".join(problems)
    names = [str(p.relative_to(folder)) for p in scanned]
    missing = [e for e in expected if not any(n.endswith(e) for n in names)]
    assert not missing, f"expected files were not written (so not scanned): {missing}; {names}"
    return scanned


def assert_no_key_in(text: str, where: str, extra: Extra = None) -> None:
    found = leaks(text, extra)
    assert not found, f"API key found in {where}: {found}"

"""`make bench`: run every bench/ script by its path and insist that each printed a figure.

Each script prints its figure last. A script that fails, or whose last line holds no finite
number (`render_keepup_2000=nan`, a traceback, nothing), fails the run; the others still run.
At the end, one line per script: its figure, or why there is none.

    python bench/_figures.py bench/fidelity.py bench/overhead.py ...
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)


def figure(last_line: str) -> str | None:
    """The line itself if it states a figure: some finite number, and no nan or inf."""
    if re.search(r"\b(nan|inf)\b", last_line, re.IGNORECASE):
        return None
    for match in NUMBER.findall(last_line):
        try:
            value = float(match.replace(",", ""))
        except ValueError:
            continue
        if math.isfinite(value):
            return last_line.strip()
    return None


def run(script: Path) -> tuple[bool, str]:
    """Run one script (its output shown as it comes); (ok, its figure or what went wrong)."""
    print(f"\n=== {script}", flush=True)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    last = ""
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.strip():
            last = line
    code = process.wait()
    found = figure(last)
    if found is None:
        return False, f"no figure (last line: {last.strip()!r}, exit {code})"
    if code != 0:
        return False, f"exit {code}: {found}"
    return True, found


def main(argv: list[str]) -> int:
    results = {path: run(Path(path)) for path in argv}
    print("\n=== figures")
    for path, (ok, text) in results.items():
        print(f"{'ok  ' if ok else 'FAIL'} {Path(path).stem}: {text}")
    return 0 if all(ok for ok, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

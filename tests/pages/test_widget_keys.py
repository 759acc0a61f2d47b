"""Widget keys are page-prefixed: Streamlit keeps widget state by key across pages, so two pages
using one key (a `seed` on the race and the replay page) would hand each other their values."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "app_pages"
APP_WIDE = {"shared.py", "kept.py"}
"""The sidebar and the page-visit protocol: the app's own keys, on every page by design."""
PART_OF = {"history_parts.py": "history.py"}


def literal_keys(path: Path) -> set[str]:
    return set(re.findall(r'key="([A-Za-z0-9_]+)"', path.read_text(encoding="utf-8")))


def test_no_two_pages_share_a_widget_key():
    owners: dict[str, set[str]] = defaultdict(set)
    for path in PAGES.glob("*.py"):
        if path.name in APP_WIDE:
            continue
        for key in literal_keys(path):
            owners[key].add(PART_OF.get(path.name, path.name))
    shared = {key: sorted(pages) for key, pages in owners.items() if len(pages) > 1}
    assert not shared, f"widget keys used by several pages: {shared}"



def test_no_download_reruns_the_page():
    """A download rerunning the page redrew it under its stale copy: two of each button for a
    moment (the key-scan browser test clicked into that, on a loaded machine)."""
    calls = [(path.name, node) for path in PAGES.glob("*.py")
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "download_button"]
    rerunning = [f"{name}:{node.lineno}" for name, node in calls
                 if not any(k.arg == "on_click" and getattr(k.value, "value", None) == "ignore"
                            for k in node.keywords)]
    assert len(calls) >= 8 and not rerunning, rerunning

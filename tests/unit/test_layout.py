"""The layout's promises, read from the source files themselves (nothing is imported).

lib/ never imports Streamlit; lib/ has no import circle; the core imports nothing of the
features; every documented command has its `python -m lib.<name>` entry point."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(LIB.rglob("*.py"))}


def imported(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules a file imports (`from lib import x` counts as lib.x when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
    return names


def test_lib_never_imports_streamlit():
    offenders = {name for name, path in MODULES.items()
                 if any(n == "streamlit" or n.startswith("streamlit.") for n in imported(path))}
    assert not offenders, f"lib/ must stay UI-free; these import streamlit: {sorted(offenders)}"


def test_lib_has_no_import_circle():
    """Module-level imports between lib's modules form no cycle (a package's __init__ counts
    as imported by each of its modules, as Python runs it first)."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {n for n in imported(path, top_level_only=True) if n in MODULES}
        parent = name.rsplit(".", 1)[0] if "." in name else None
        for target in list(targets):  # importing lib.a.b runs lib.a first
            parts = target.split(".")
            targets.update(".".join(parts[:i]) for i in range(2, len(parts)) if
                           ".".join(parts[:i]) in MODULES)
        edges[name] = targets - {name, parent, "lib"}
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " → ".join(cycle))
            if nxt not in seen:
                visit(nxt, stack + [nxt])
        seen[node] = 2

    for name in sorted(edges):
        if name not in seen:
            visit(name, [name])


def test_core_imports_no_feature_and_no_server():
    """lib.core is the measurement core: a call needs only the Endpoint type, never a resolver,
    a server, the store or a feature."""
    allowed = {"lib.endpoints", "lib.endpoints.endpoint",
               "lib.serving.playback"}  # warm_up's throwaway in-process server
    for name, path in MODULES.items():
        if name.startswith("lib.core"):
            outside = {n for n in imported(path) if n in MODULES
                       and not n.startswith("lib.core") and n not in allowed}
            assert not outside, f"{name} imports {sorted(outside)}"


def test_the_command_lines_live_in_lib_cli():
    """No module outside lib/cli parses arguments; each feature's __main__ hands over to it."""
    for name, path in MODULES.items():
        if not name.startswith("lib.cli"):
            assert "argparse" not in imported(path), f"{name} parses arguments: move it to lib/cli"
    for command in ("race", "bench", "guards", "replay", "report"):
        main = LIB / command / "__main__.py"
        assert main.exists(), f"python -m lib.{command} needs {main}"
        assert f"lib.cli.{command}" in imported(main)

"""`make bench` runs each bench/ script by its path: each must at least start that way, and
`make bench` fails when one prints no figure last (bench/_figures.py)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_runs_by_path(script, tmp_path):
    # From another folder, as a path: no reliance on the caller's sys.path or working directory.
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def figures_module():
    spec = importlib.util.spec_from_file_location("_figures", ROOT / "bench" / "_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("line", "is_figure"), [
    ("render_keepup_2000=0.97", True),
    ("ttft_error_p99_ms=2.470", True),
    ("history page with 100,000 runs: ... worst 0.65 s, limit 2.0 s: OK", True),
    ("render_keepup_2000=nan", False),
    ("overhead_ratio=inf", False),
    ("Traceback (most recent call last):", False),
    ("", False),
    ("target: done", False),
])
def test_a_last_line_without_a_finite_number_is_no_figure(line, is_figure):
    assert (figures_module().figure(line) is not None) is is_figure


def test_make_bench_fails_when_a_script_prints_no_figure(tmp_path):
    silent = tmp_path / "silent.py"
    silent.write_text("print('measuring...')\nprint('render_keepup_2000=nan')\n")
    good = tmp_path / "good.py"
    good.write_text("print('ratio=0.97')\n")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "_figures.py"), str(good),
                             str(silent)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout
    assert "ok   good: ratio=0.97" in result.stdout
    assert "FAIL silent: no figure" in result.stdout
    makefile = (ROOT / "Makefile").read_text()
    assert "$(BIN)/python bench/_figures.py" in makefile.split("\nbench:")[1].split("\n\n")[0]


def test_readme_measured_table_lists_every_script_with_its_command():
    readme = (ROOT / "README.md").read_text()
    measured = readme.split("\n## Measured")[1]
    rows = [line for line in measured.splitlines() if line.startswith("| ")]
    for script in SCRIPTS:
        command = f"`.venv/bin/python bench/{script.name}`"
        assert any(command in row for row in rows), f"README's Measured table lacks {command}"

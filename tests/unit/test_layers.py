"""The layering of the package (pyproject.toml [tool.importlinter]) holds, and the check does catch a break."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=src, text=True,
                          capture_output=True, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}, check=False)  # fmt: skip


def test_imports_flow_one_way() -> None:
    out = _lint(ROOT / "src")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "KEPT" in out.stdout


def test_an_import_against_the_layers_fails_the_check(tmp_path: Path) -> None:
    """The stack (bottom) importing the process stage (above it) breaks the contract, naming the import."""
    shutil.copytree(ROOT / "src" / "headwater", tmp_path / "headwater", ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / "headwater" / "stack" / "config.py"
    config.write_text(config.read_text() + "\nfrom headwater.streaming import process  # noqa: E402\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "headwater.stack.config -> headwater.streaming.process" in out.stdout

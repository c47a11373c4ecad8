"""The lint rules in pyproject.toml ([tool.ruff]) hold over the whole tree: library, tests,
benchmarks and notebooks (ruff reads the .ipynb files and their jupytext .py twins); and the
code outside notebooks/ is laid out by `ruff format` ([tool.ruff.format]), so one style holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}\n{result.stderr}"


def test_ruff_format_changes_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"run `ruff format .`:\n{result.stdout}\n{result.stderr}"

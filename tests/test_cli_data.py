"""`podd data NAME`: through podd.cli.main and through the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from podd.cli import main

CONSOLE_SCRIPT = Path(sys.executable).parent / "podd"


def test_data_digits_prints_the_summary(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path))
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "1797" in out and "1437" in out and "360" in out and "1x8x8" in out


def test_data_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "NAME" in out and "--no-download" in out and "imagefolder:PATH" in out


def test_unknown_dataset_is_a_clear_error(capsys, tmp_path):
    assert main(["data", "mnist", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'mnist'" in err and "cifar100" in err and "Traceback" not in err


def test_missing_data_without_download_names_the_folder(capsys, tmp_path):
    assert main(["data", "cub200", "--root", str(tmp_path), "--no-download"]) == 2
    assert str(tmp_path / "CUB_200_2011") in capsys.readouterr().err


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="podd console script not installed beside this Python")
def test_console_script_shows_1797_digits(tmp_path):
    env = {**os.environ, "PODD_DATA": str(tmp_path)}
    done = subprocess.run([str(CONSOLE_SCRIPT), "data", "digits"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1797" in done.stdout
    helped = subprocess.run([str(CONSOLE_SCRIPT), "data", "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "NAME" in helped.stdout

"""Several processes at once: ranks or jobs sharing a fresh data folder build a dataset once (a
lock beside its cache), and under torchrun only rank 0 prints an error line; another rank hands
its line to torchrun's error file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from podd.cli import main

REPO = Path(__file__).resolve().parents[1]

_BUILD = """
import os, sys, time
from pathlib import Path
import torch
from podd.data import cache
from podd.data.dataset import Dataset

folder = Path(sys.argv[1])


def build():            # a download and decode: slow, and not to be done twice at once
    with open(folder / "builds.log", "a") as log:
        log.write(f"start {os.getpid()}\\n")
    time.sleep(1.0)
    with open(folder / "builds.log", "a") as log:
        log.write(f"end {os.getpid()}\\n")
    x = torch.arange(16, dtype=torch.uint8).reshape(4, 1, 2, 2)
    return Dataset("toy", x, torch.tensor([0, 1, 0, 1]), x, torch.tensor([0, 1, 0, 1]), ["a", "b"])


ds = cache.cached(folder / "cache" / "toy.pt", "toy-key", build)
print(int(ds.x_train.sum()))
"""


def test_processes_sharing_a_fresh_data_folder_build_the_dataset_once(tmp_path):
    script = tmp_path / "load.py"
    script.write_text(_BUILD)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [out.split()[-1] for out, _ in outs] == ["120", "120"]  # both have the data
    builds = (tmp_path / "builds.log").read_text().split()
    assert builds[0::2] == ["start", "end"], builds  # built once: the other read the cache


_BAD = ["distill", "--dataset", "digits", "--ipc", "1", "--profile", "smoke", "--set", "bogus=1"]


def test_under_torchrun_only_rank_0_prints_the_error_line(tmp_path, monkeypatch, capsys):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    monkeypatch.setenv("RANK", "1")
    assert main(_BAD + ["--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ""
    message = json.loads(error_file.read_text())["message"]  # torchrun's summary shows it
    assert message.startswith("podd distill: error: unknown setting(s) ['bogus']")
    monkeypatch.setenv("RANK", "0")
    assert main(_BAD + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("podd distill: error: unknown setting(s) ['bogus']") == 1

"""The memory estimate (podd.memory) against measured peaks, and the refusal before a run."""

import json
from pathlib import Path

import pytest
import torch

from podd import memory
from podd.cli import main
from podd.presets import resolve_config

MEASURED = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bench_memory_cpu.json"
SHAPES = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "cub200": (3, 32, 32), "tinyimagenet": (3, 64, 64)}


def _estimates():
    for row in json.loads(MEASURED.read_text())["rows"]:
        config = resolve_config(row["dataset"], "paper", class_order="identity", verbose=False).replace(
            real_chunk=row["real_chunk"], recompute_window=row["recompute_window"]
        )
        estimate = memory.step_bytes(config, SHAPES[row["dataset"]], row["distill_batch"], row["depth"])
        yield row, estimate


def test_estimate_matches_the_measured_paper_presets():
    rows = list(_estimates())
    assert len(rows) == 8
    for row, estimate in rows:
        ratio = estimate / row["step_bytes"]
        if row["recompute_window"]:  # the savers' small per-step states are left out
            assert 0.25 < ratio < 1.2, (row["dataset"], ratio)
        else:
            assert 0.9 < ratio < 1.1, (row["dataset"], ratio)


def test_savers_and_window_change_the_estimate_as_they_should():
    config = resolve_config("cifar10", "paper", class_order="identity", verbose=False)
    plain = memory.step_bytes(config, (3, 32, 32), 96, 3)
    assert memory.step_bytes(config.replace(window=30), (3, 32, 32), 96, 3) < plain
    assert memory.step_bytes(config, (3, 32, 32), 96, 3, recompute_window=True, real_chunk=250) < plain / 10
    assert memory.activation_values((3, 32, 32), 128, 3) == 128 * (1024 + 256 + 64)


def test_a_run_too_big_for_the_machine_is_refused_before_any_step(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 10**9)
    out = tmp_path / "run"
    code = main(
        [
            "distill",
            "--dataset",
            "digits",
            "--ipc",
            "1",
            "--profile",
            "smoke",
            "--quiet",
            "--out",
            str(out),
            "--set",
            "real_batch=5000",
            "--set",
            "width=1024",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "needs about" in err and "available" in err and "recompute_window=true" in err
    assert "Traceback" not in err
    assert not out.exists()  # a refused run leaves no directory
    monkeypatch.setenv(memory.SKIP_ENV, "1")  # the way around it, for those who know better
    big = resolve_config("digits", "smoke", verbose=False).replace(real_batch=5000, width=1024)
    assert memory.check_step_memory(big, (1, 8, 8), 10, 40, 2, torch.device("cpu")) is None
    monkeypatch.delenv(memory.SKIP_ENV)
    with pytest.raises(memory.NotEnoughMemory, match="needs about"):
        memory.check_step_memory(big, (1, 8, 8), 10, 40, 2, torch.device("cpu"))


def test_a_run_that_fits_is_not_refused(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 10**9)
    config = resolve_config("digits", "smoke", verbose=False)
    memory.check_step_memory(config, (1, 8, 8), 1797, 40, 1, torch.device("cpu"))

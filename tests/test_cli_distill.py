"""`podd distill`, `podd evaluate` and `podd show` end to end on a tiny digits run."""

from __future__ import annotations

import json

import pytest
import torch
from cli_support import TINY

from podd.cli import main


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))


def test_distill_evaluate_show(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--dataset", "digits", "--ipc", "0.5", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "test accuracy" in printed
    assert (out / "poster.pt").is_file() and (out / "final.json").is_file()
    final = json.loads((out / "final.json").read_text())
    assert final["provenance"]["hyperparameters"]["ipc"] == 0.5
    assert final["provenance"]["profile"] == "smoke"

    assert main(["evaluate", str(out), "--models", "2", "--steps", "5", "10", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 fresh ConvNets" in printed and "10 steps" in printed
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["result"]["num_models"] == 2 and "git_commit" in evaluation["provenance"]

    (out / "poster.png").unlink()
    assert main(["show", str(out)]) == 0
    assert str((out / "poster.png").resolve()) in capsys.readouterr().out
    assert (out / "poster.png").stat().st_size > 0


def test_distill_resume_and_baseline(tmp_path, capsys):
    out = tmp_path / "base"
    args = ["distill", "--dataset", "digits", "--ipc", "1", "--mode", "baseline", "--out", str(out)]
    assert main([*args, *TINY]) == 0
    assert main(["distill", "--out", str(out), "--resume", "--steps", "3", "--quiet"]) == 0
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert checkpoint["distiller"]["step"] == 3 and checkpoint["config"]["mode"] == "baseline"


def test_resume_with_the_memory_savers(tmp_path, capsys):
    """The advice of the out-of-memory message: resume the same run with the savers switched on."""
    out = tmp_path / "run"
    assert main(["distill", "--dataset", "digits", "--ipc", "1", "--out", str(out), *TINY]) == 0
    assert (
        main(
            [
                "distill",
                "--out",
                str(out),
                "--resume",
                "--steps",
                "4",
                "--quiet",
                "--set",
                "recompute_window=true",
                "--set",
                "real_chunk=16",
            ]
        )
        == 0
    )
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert checkpoint["distiller"]["step"] == 4
    assert checkpoint["config"]["recompute_window"] is True
    assert checkpoint["config"]["real_chunk"] == 16
    # what would change the poster's trajectory is refused, not silently ignored
    assert main(["distill", "--out", str(out), "--resume", "--steps", "5", "--quiet", "--set", "window=3"]) == 2
    assert "--resume cannot change window" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["distill", "--dataset", "digits", "--ipc", "0"], "--ipc"),
        (["distill", "--dataset", "digits", "--ipc", "0.5", "--set", "distill_batch=500"], "distill_batch=500"),
        (["distill", "--dataset", "digits", "--ipc", "0.5", "--set", "nonsense=1"], "nonsense"),
        (["distill", "--dataset", "digits"], "--ipc"),
        (["distill", "--resume"], "--out"),
        (["evaluate", "/nonexistent/run"], "does not exist"),
        (["show", "/nonexistent/run"], "does not exist"),
    ],
)
def test_user_errors_are_messages_not_tracebacks(argv, message, tmp_path, capsys):
    assert main(argv + (["--out", str(tmp_path / "x")] if argv[0] == "distill" and "--resume" not in argv else [])) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda(tmp_path, capsys):
    assert (
        main(
            [
                "distill",
                "--dataset",
                "digits",
                "--ipc",
                "0.5",
                "--out",
                str(tmp_path / "r"),
                *TINY[:4],
                "--device",
                "cuda",
            ]
        )
        == 2
    )
    assert "CUDA" in capsys.readouterr().err


def test_resume_of_a_foreign_directory(tmp_path, capsys):
    (tmp_path / "foreign").mkdir()
    assert main(["distill", "--out", str(tmp_path / "foreign"), "--resume"]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err
    (tmp_path / "foreign" / "poster.pt").write_bytes(b"junk")
    assert main(["evaluate", str(tmp_path / "foreign")]) == 2
    assert "not a podd poster" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["distill", "evaluate", "show"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: podd " + command in capsys.readouterr().out

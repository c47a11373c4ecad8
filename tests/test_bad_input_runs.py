"""Bad input around run directories, resuming and the command line (issue 37, round 2): one test
per mistake, through the real entry point. Each checks the message, that no traceback is printed
and that the run directory is left as it was."""

from __future__ import annotations

import errno
import importlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from cli_support import TINY, cli

from podd.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))


def refused(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("podd ") and ": error: " in err and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished 2-step smoke run on digits (checkpoint at step 2), copied by each test."""
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODD_DATA", str(root / "data"))
        assert main(["distill", "--dataset", "digits", "--ipc", "1", "--out", str(root / "run"), *TINY]) == 0
    return root / "run"


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run", symlinks=True))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def resume(run: Path, *extra):
    return ["distill", "--resume", "--out", run, "--quiet", *extra]


# ------------------------------------------------------------------------------------------
# 1. the checkpoint's checksum is checked before anything in it is unpickled
# ------------------------------------------------------------------------------------------
@pytest.fixture
def marker_module(tmp_path, monkeypatch):
    """A module that, once imported, leaves a file behind: a checkpoint whose pickle imports it
    shows whether loading ran the pickle's code."""
    name = f"podd_import_marker_{os.getpid()}_{tmp_path.name}".replace("-", "_")
    flag = tmp_path / "imported"
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(flag)!r}).write_text('imported')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    yield name, flag
    sys.modules.pop(name, None)


class _ImportsOnLoad:
    def __init__(self, module: str):
        self.module = module

    def __reduce__(self):
        return importlib.import_module, (self.module,)


def replace_pickle(path: Path, data: bytes) -> None:
    """Rewrite ``path`` (a torch.save zip) with its data.pkl replaced and every other record,
    the stored checksum included, kept."""
    with zipfile.ZipFile(path) as source:
        records = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info, payload in records:
            target.writestr(info, data if info.filename.endswith("/data.pkl") else payload)


@pytest.fixture
def torch_loads(monkeypatch):
    """The paths torch.load is called on (it still loads them)."""
    calls, real = [], torch.load

    def load(f, *args, **kwargs):
        calls.append(Path(f).name if isinstance(f, (str, os.PathLike)) else f)
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    return calls


def test_a_tampered_checkpoint_is_refused_by_its_checksum_before_unpickling(run, capsys, marker_module, torch_loads):
    name, flag = marker_module
    replace_pickle(run / "checkpoint.pt", pickle.dumps(_ImportsOnLoad(name), protocol=2))
    before = snapshot(run)
    code, _, err = cli(resume(run, "--steps", "3"), capsys)
    refused(code, err, "checkpoint.pt is damaged", "checksum", "restore it from a copy")
    assert not flag.exists(), "loading the checkpoint imported a module named in its pickle"
    assert "checkpoint.pt" not in torch_loads, "torch.load ran before the checksum was checked"
    assert snapshot(run) == before


def test_a_flipped_byte_in_the_pickle_is_refused_before_unpickling(run, capsys, torch_loads):
    raw = bytearray((run / "checkpoint.pt").read_bytes())
    at = raw.index(b"podd-checkpoint")  # the format marker, inside data.pkl
    raw[at] ^= 0x01
    (run / "checkpoint.pt").write_bytes(bytes(raw))
    code, _, err = cli(resume(run, "--steps", "3"), capsys)
    refused(code, err, "checkpoint.pt is damaged", "checksum")
    assert "checkpoint.pt" not in torch_loads


def test_checkpoints_load_without_running_code_and_a_resume_goes_on(run, capsys):
    code, _, err = cli(resume(run, "--steps", "3"), capsys)
    assert code == 0, err
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)  # plain data only
    assert checkpoint["distiller"]["step"] == 3 and checkpoint["version"] == 3
    from podd.io import check_file_digest

    assert check_file_digest(run / "checkpoint.pt", "") is True
    assert check_file_digest(run / "poster.pt", "") is True


def test_an_older_checkpoint_still_resumes_and_its_pickle_runs_no_code(run, tmp_path, capsys, marker_module):
    """Version 2 (a checksum of the contents, no file digest) resumes; a tampered one is read
    with weights_only=True, which refuses the import instead of running it."""
    from podd.io import with_checksum

    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    old = {k: v for k, v in checkpoint.items() if k != "begun_with"} | {"version": 2}
    torch.save(with_checksum(old), run / "checkpoint.pt")
    older = Path(shutil.copytree(run, tmp_path / "older"))
    code, _, err = cli(resume(run, "--steps", "3"), capsys)
    assert code == 0, err
    assert torch.load(run / "checkpoint.pt", weights_only=True)["distiller"]["step"] == 3

    name, flag = marker_module
    replace_pickle(older / "checkpoint.pt", pickle.dumps(_ImportsOnLoad(name), protocol=2))
    code, _, err = cli(resume(older, "--steps", "3"), capsys)
    refused(code, err, "could not be read as a podd checkpoint", "importlib.import_module")
    assert not flag.exists()


# ------------------------------------------------------------------------------------------
# 2. --steps below the checkpoint's step
# ------------------------------------------------------------------------------------------
def test_resume_with_fewer_steps_than_the_run_has_is_refused(run, capsys):
    before = snapshot(run)
    code, _, err = cli(resume(run, "--steps", "1"), capsys)
    refused(code, err, "already at step 2", "--steps 2 or more", "new run")
    assert snapshot(run) == before
    code, _, err = cli(resume(run, "--steps", "2"), capsys)  # the same step: finishes again
    assert code == 0, err


# ------------------------------------------------------------------------------------------
# 3. a hand-edited config.json
# ------------------------------------------------------------------------------------------
def edit_config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config, indent=2))


def test_a_hand_edited_config_json_is_refused_on_resume(run, capsys):
    window = json.loads((run / "config.json").read_text())["window"]
    edit_config(run, window=window + 1, steps=6)
    before = snapshot(run)
    code, _, err = cli(resume(run), capsys)
    refused(
        code,
        err,
        "config.json was edited",
        f"window: config.json {window + 1}",
        "steps: config.json 6",
        "--set steps=6",
        "window cannot change on resume",
    )
    assert snapshot(run) == before

    (run / "config.json").unlink()  # the way out the message offers
    code, out, err = cli(resume(run, "--steps", "3"), capsys)
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["window"] == window
    assert "config.json was missing" in out
    # settings changed on resume through options are not taken for edits of config.json
    for extra in (["--steps", "4"], [], ["--set", "eval_models=2"]):
        code, _, err = cli(resume(run, *extra), capsys)
        assert code == 0, err


# ------------------------------------------------------------------------------------------
# 4. --out is a dangling symbolic link
# ------------------------------------------------------------------------------------------
def test_out_that_is_a_dangling_symlink(tmp_path, capsys):
    link = tmp_path / "latest"
    link.symlink_to(tmp_path / "gone")
    code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "1", "--out", link, *TINY], capsys)
    refused(code, err, "dangling symbolic link", str(tmp_path / "gone"), "remove the link")
    assert "is a file" not in err
    assert link.is_symlink() and not (tmp_path / "gone").exists()
    for argv in (resume(link), ["show", link]):
        code, _, err = cli(argv, capsys)
        refused(code, err, "dangling symbolic link")


# ------------------------------------------------------------------------------------------
# 5. podd show FILE
# ------------------------------------------------------------------------------------------
def test_show_a_poster_file_or_name_the_run_directory(run, tmp_path, capsys):
    (run / "poster.png").unlink()
    code, out, err = cli(["show", run / "poster.pt"], capsys)
    assert code == 0, err
    assert str((run / "poster.png").resolve()) in out and (run / "poster.png").stat().st_size
    copied = Path(shutil.copy(run / "poster.pt", tmp_path / "mine.pt"))
    code, out, err = cli(["show", copied], capsys)
    assert code == 0 and (tmp_path / "mine.png").is_file(), err
    for name in ("poster.png", "final.json"):
        code, _, err = cli(["show", run / name], capsys)
        refused(code, err, "is a file", f"belongs to the run directory {run}")
        assert "does not exist" not in err
    code, _, err = cli(["evaluate", run / "poster.pt", "--quiet"], capsys)
    refused(code, err, "is a file", f"belongs to the run directory {run}")


# ------------------------------------------------------------------------------------------
# 6. a damaged final.json
# ------------------------------------------------------------------------------------------
def test_a_damaged_final_json_does_not_block_show_and_evaluate(run, capsys):
    text = (run / "final.json").read_text()
    (run / "final.json").write_text(text[: len(text) // 2])  # cut off
    code, out, err = cli(["show", run], capsys)
    assert code == 0, err
    assert "final.json is damaged" in out and "final test accuracy" in out
    code, out, err = cli(["evaluate", run, "--models", "1", "--steps", "5", "--quiet"], capsys)
    assert code == 0, err
    assert (run / "eval.json").is_file()


# ------------------------------------------------------------------------------------------
# 7. a finished run whose checkpoint was removed
# ------------------------------------------------------------------------------------------
def test_a_finished_run_without_its_checkpoint_gives_one_consistent_advice(run, capsys):
    (run / "checkpoint.pt").unlink()
    before = snapshot(run)
    code, _, err = cli(resume(run, "--steps", "4"), capsys)
    refused(code, err, "finished run", "checkpoint.pt was removed", "start a new run in another --out")
    assert "without --resume" not in err
    code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "1", "--out", run, *TINY], capsys)
    refused(code, err, "finished podd run", "checkpoint.pt was removed", "another --out")
    assert "--resume" not in err
    assert snapshot(run) == before


# ------------------------------------------------------------------------------------------
# 8. stdout closed early (podd data digits | head -2)
# ------------------------------------------------------------------------------------------
def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    env = {**os.environ, "PODD_DATA": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "podd.cli", "data", "digits"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before podd writes a line
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err
    assert b"Broken pipe" not in err and b"Traceback" not in err and b"error" not in err, err


def test_a_closed_pipe_in_process(capsys, monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main(["data", "digits"])
    monkeypatch.undo()
    assert code == 141
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------
# 9. podd evaluate on a run directory it cannot write to
# ------------------------------------------------------------------------------------------
def test_evaluate_checks_it_can_write_before_training(run, tmp_path, capsys, monkeypatch):
    """A read-only mount (simulated: what the kernel answers when a file is made there)."""
    import podd.evaluate

    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == run.resolve():
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    real_run = podd.evaluate.EvalProtocol.run
    trained = []

    def run_protocol(self, *args, **kwargs):
        trained.append(True)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(podd.evaluate.EvalProtocol, "run", run_protocol)
    code, _, err = cli(["evaluate", run, "--models", "1", "--steps", "5", "--quiet"], capsys)
    refused(code, err, "read-only file system", "nothing was evaluated", "--out FILE.json")
    assert not trained, "evaluation models were trained before the write was found impossible"
    assert not (run / "eval.json").exists()

    (tmp_path / "results").mkdir()  # --out: a file, or a directory for eval.json
    code, printed, err = cli(
        ["evaluate", run, "--models", "1", "--steps", "5", "--quiet", "--out", tmp_path / "results"], capsys
    )
    assert code == 0, err
    out = tmp_path / "results" / "eval.json"
    assert trained and json.loads(out.read_text())["result"]["num_models"] == 1

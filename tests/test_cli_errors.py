"""Bad input through the real entry points (issue 12): one test per class of mistake a new user
makes. Each checks the message, that no traceback is printed, and that nothing half-written is
left behind (no run directory for a refused run, no ``.tmp`` files anywhere)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import TINY, cli
from PIL import Image

from podd.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))


def tmp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))


def assert_refused(code, err, *fragments, out_dir: Path | None = None):
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    if out_dir is not None:
        assert not out_dir.exists(), f"a refused run left {sorted(out_dir.rglob('*'))}"


def write_npz(path: Path, y_train, y_test=None, shape=(1, 8, 8), **extra) -> Path:
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (len(y_train), *shape), dtype=np.uint8),
        y_train=np.asarray(y_train, dtype=np.int64),
    )
    if y_test is not None:
        arrays.update(
            x_test=rng.integers(0, 256, (len(y_test), *shape), dtype=np.uint8),
            y_test=np.asarray(y_test, dtype=np.int64),
        )
    np.savez(path, **arrays, **extra)
    return path


def write_image_folder(root: Path, classes=("cat", "dog"), per_class=3) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def distill(dataset, out: Path, *extra):
    return ["distill", "--dataset", dataset, "--ipc", "1", "--out", out, *TINY, *extra]


# ------------------------------------------------------------------------------------------
# npz labels: renumbered with a note, or refused
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "y_train, y_test, mapping",
    [
        ([1, 2, 3] * 6, [1, 2, 3], "1→0, 2→1, 3→2"),  # 1-based
        ([0, 10, 20, 30] * 5, [0, 10], "0→0, 10→1, 20→2, 30→3"),  # sparse
    ],
)
def test_npz_labels_that_are_not_0_to_k_are_renumbered_with_a_note(tmp_path, capsys, y_train, y_test, mapping):
    data = write_npz(tmp_path / "d.npz", y_train, y_test)
    out = tmp_path / "run"
    code, printed, err = cli(distill(f"npz:{data}", out), capsys)
    assert code == 0, err
    assert "NOTE:" in printed and "renumbered" in printed and mapping in printed
    artifact = torch.load(out / "poster.pt", weights_only=True)
    assert artifact["class_names"] == [f"class {v}" for v in sorted(set(y_train))]
    assert artifact["geometry"]["num_classes"] == len(set(y_train))  # no empty classes
    # `podd data` says the same
    code, printed, _ = cli(["data", f"npz:{data}"], capsys)
    assert code == 0 and f"classes: {len(set(y_train))}" in printed


@pytest.mark.parametrize(
    "y_train, y_test, names, fragments",
    [
        ([0] * 12, [0] * 3, None, ["only one class", "100 %"]),
        ([0, 1] * 6, [0, 1, 2], None, ["'y_test' has label(s) 2", "never occur in 'y_train'"]),
        ([0, 1] * 6, [0, 1], ["a", "b", "c"], ["3 classes but 1 of them have no training images", "2 ('c')"]),
        ([0, 1, 5] * 4, [0], ["a", "b"], ["label 5, out of range for 2 class_names"]),
    ],
)
def test_npz_labels_that_would_make_empty_or_fake_classes_are_refused(
    tmp_path, capsys, y_train, y_test, names, fragments
):
    extra = {} if names is None else {"class_names": np.array(names)}
    data = write_npz(tmp_path / "d.npz", y_train, y_test, **extra)
    out = tmp_path / "run"
    code, _, err = cli(distill(f"npz:{data}", out), capsys)
    assert_refused(code, err, *fragments, out_dir=out)
    assert not tmp_files(tmp_path)


def test_train_only_npz_distils_without_a_test_evaluation(tmp_path, capsys):
    data = write_npz(tmp_path / "train.npz", [0, 1, 2] * 6)  # no x_test / y_test
    out = tmp_path / "run"
    code, printed, err = cli(distill(f"npz:{data}", out), capsys)
    assert code == 0, err
    assert "no test images" in printed
    assert (out / "poster.pt").is_file()
    assert json.loads((out / "final.json").read_text())["result"]["evaluation"] is None
    code, _, err = cli(["evaluate", out, "--quiet"], capsys)
    assert_refused(code, err, "no test images")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_npz_is_a_message(tmp_path, capsys, damage):
    data = write_npz(tmp_path / "d.npz", [0, 1] * 6, [0, 1])
    raw = bytearray(data.read_bytes())
    if damage == "flip":  # bytes flipped inside the stored x_train array: the zip CRC fails
        start = raw.find(b"x_train.npy") + 200
        raw[start : start + 16] = bytes(b ^ 0xFF for b in raw[start : start + 16])
    else:
        raw = raw[: len(raw) // 2]
    data.write_bytes(bytes(raw))
    code, _, err = cli(distill(f"npz:{data}", tmp_path / "run"), capsys)
    assert_refused(code, err, str(data), out_dir=tmp_path / "run")
    assert "damaged" in err or "cannot be read as .npz" in err


# ------------------------------------------------------------------------------------------
# imagefolder: a stray or cut-off file
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["not_an_image", "truncated"])
def test_unreadable_file_in_an_image_folder_is_named(tmp_path, capsys, bad):
    folder = write_image_folder(tmp_path / "imgs")
    target = folder / "train" / "dog" / "broken.png"
    if bad == "not_an_image":
        target.write_text("this is a text file with a .png name")
    else:
        good = (folder / "train" / "dog" / "0.png").read_bytes()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(target)
        target.write_bytes(good[: len(good) // 2])
    out = tmp_path / "run"
    code, _, err = cli(distill(f"imagefolder:{folder}", out), capsys)
    assert_refused(code, err, str(target), "not a readable image", out_dir=out)
    assert not tmp_files(tmp_path)


def test_one_class_image_folder_is_refused(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "imgs", classes=("cat",))
    code, _, err = cli(["data", f"imagefolder:{folder}"], capsys)
    assert_refused(code, err, "only one class")


# ------------------------------------------------------------------------------------------
# damaged posters and checkpoints
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny digits run, copied by the tests that damage it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["distill", "--dataset", "digits", "--ipc", "0.5", "--out", str(out), *TINY]) == 0
    return out


def copy_run(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


def flip_tensor_bytes(path: Path, tensor: torch.Tensor) -> None:
    """Overwrite the first value of ``tensor`` inside the saved file with a NaN, as a damaged
    copy would: the pickle and the zip directory stay intact, so the file still loads."""
    raw = bytearray(path.read_bytes())
    data = tensor.contiguous().numpy().tobytes()
    at = raw.find(data[:64])
    assert at > 0
    raw[at : at + 4] = np.array([np.nan], dtype=np.float32).tobytes()
    path.write_bytes(bytes(raw))


def test_poster_with_flipped_bytes_is_refused(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    poster = torch.load(run / "poster.pt", weights_only=True)["poster"]
    flip_tensor_bytes(run / "poster.pt", poster)
    assert torch.isnan(torch.load(run / "poster.pt", weights_only=True)["poster"]).any()  # loads!
    (run / "poster.png").unlink()
    for command in (["show", run], ["evaluate", run, "--quiet"]):
        code, _, err = cli(command, capsys)
        assert_refused(code, err, "poster.pt is damaged", "checksum")
    assert not (run / "poster.png").exists() and not (run / "eval.json").exists()


def test_poster_with_nan_pixels_is_refused_even_with_a_valid_checksum(finished_run, tmp_path, capsys):
    from podd.artifacts import load_artifact, save_artifact

    run = copy_run(finished_run, tmp_path / "run")
    artifact = load_artifact(run / "poster.pt")
    artifact.poster[0, 0, 0] = float("nan")
    save_artifact(run / "poster.pt", artifact)
    code, _, err = cli(["show", run], capsys)
    assert_refused(code, err, "NaN/inf")


def test_checkpoint_with_flipped_bytes_is_refused_on_resume(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    before = (run / "metrics.jsonl").read_text()
    state = torch.load(run / "checkpoint.pt", weights_only=False)["distiller"]
    flip_tensor_bytes(run / "checkpoint.pt", state["poster"])
    code, _, err = cli(["distill", "--resume", "--out", run, "--steps", "4", "--quiet"], capsys)
    assert_refused(code, err, "checkpoint.pt is damaged", "restore it from a copy")
    assert (run / "metrics.jsonl").read_text() == before
    assert not tmp_files(run)


# ------------------------------------------------------------------------------------------
# the run directory: a file, under a file, read-only, full, busy, left-over .tmp files
# ------------------------------------------------------------------------------------------
def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("not a directory")
    code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "0.5", "--out", tmp_path / "f", *TINY], capsys)
    assert_refused(code, err, "is a file, not a directory")
    code, _, err = cli(
        ["distill", "--dataset", "digits", "--ipc", "0.5", "--out", tmp_path / "f" / "run", *TINY], capsys
    )
    assert_refused(code, err, f"because {tmp_path / 'f'} is a file")
    assert (tmp_path / "f").read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_in_a_read_only_directory(tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "0.5", "--out", parent / "run", *TINY], capsys)
    finally:
        parent.chmod(0o755)
    assert_refused(code, err, "permission denied", out_dir=parent / "run")


def test_out_on_a_read_only_file_system(tmp_path, capsys, monkeypatch):
    """What the kernel answers on a read-only mount (simulated: mounting needs privileges)."""
    import errno

    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "mnt")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = cli(
        ["distill", "--dataset", "digits", "--ipc", "0.5", "--out", tmp_path / "mnt" / "run", *TINY], capsys
    )
    assert_refused(code, err, "read-only file system", out_dir=tmp_path / "mnt")


def test_full_disk_says_no_space_left(tmp_path, capsys, monkeypatch):
    """torch.save on a full disk raises "enforce fail at inline_container.cc" (simulated: the
    same exception, and no free bytes)."""
    import podd.io

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 partial")  # what a full disk leaves half-written
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4160 vs 4054")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(podd.io, "free_bytes", lambda folder: 0)
    out = tmp_path / "run"
    code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "0.5", "--out", out, *TINY], capsys)
    assert_refused(code, err, f"no space left on {out}", "checkpoint.pt")
    assert "inline_container" not in err
    assert not (out / "checkpoint.pt").exists() and not tmp_files(tmp_path)


def test_two_runs_in_one_directory(tmp_path, capsys):
    """A second `podd distill` with the --out of a live run is refused, not interleaved."""
    from filelock import FileLock

    out = tmp_path / "run"
    out.mkdir()
    with FileLock(str(out / ".podd.lock"), timeout=0):  # what the live run holds
        code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "0.5", "--out", out, *TINY], capsys)
        assert_refused(code, err, "in use by another podd process", "choose another --out")
        assert sorted(p.name for p in out.iterdir()) == [".podd.lock"]
        code, _, err = cli(["distill", "--resume", "--out", out, "--quiet"], capsys)
        assert code == 2
    code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "0.5", "--out", out, *TINY], capsys)
    assert code == 0, err
    assert not (out / ".podd.lock").exists()


def test_orphan_tmp_files_are_removed_on_the_next_start(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    orphan = run / ".checkpoint.pt.abc123.tmp"  # a SIGKILL during torch.save leaves this
    orphan.write_bytes(b"PK\x03\x04 half")
    code, printed, err = cli(["distill", "--resume", "--out", run, "--steps", "3", "--quiet"], capsys)
    assert code == 0, err
    assert not tmp_files(run) and "unfinished temporary file" in printed


# ------------------------------------------------------------------------------------------
# settings: the type of every field, ranges, the poster — all before any data or step
# ------------------------------------------------------------------------------------------
def test_set_values_read_as_json_else_as_the_plain_string():
    """One KEY=VALUE rule for podd distill and the benchmarks' --set (podd.cli.parse_set)."""
    from podd.cli import parse_set

    assert parse_set(
        [
            "labels=learned",
            "label_lr=1e-6",
            "eval_steps=[300, 600]",
            " recompute_window =true",
            "class_order=null",
            "note=a=b",
        ]
    ) == {
        "labels": "learned",
        "label_lr": 1e-6,
        "eval_steps": [300, 600],
        "recompute_window": True,
        "class_order": None,
        "note": "a=b",
    }
    assert parse_set(None) == {}
    for bad in ("labels", "=3"):
        with pytest.raises(ValueError, match="write KEY=VALUE"):
            parse_set([bad])


@pytest.mark.parametrize(
    "setting, message",
    [
        ("augment=maybe", "augment='maybe': must be true or false"),
        ("steps=abc", "steps='abc': must be a whole number"),
        ("real_batch=1.5", "real_batch=1.5: must be a whole number"),
        ("eval_steps=300", "eval_steps=300: must be a list of whole numbers (e.g. eval_steps=[300"),
        ("eval_steps=[0]", "eval_steps=[0]: must be increasing"),
        ("eval_models=abc", "eval_models='abc': must be a whole number"),
        ("eval_models=-1", "eval_models=-1: must be 0 (never) or a positive number"),
        ("checkpoint_every=-5", "checkpoint_every=-5: must be 0"),
        ("eval_every=-1", "eval_every=-1: must be 0"),
        ("best_every=-1", "best_every=-1: must be 0"),
        ("best_every=yes", "best_every='yes': must be a whole number"),
        ("grid=[-2,-5]", "grid=[-2, -5]: both counts (rows, cols) must be at least 1"),
        ("grid=5", "grid=5: must be a list of 2 whole numbers or null (e.g. grid=[2, 5])"),
        ("inner_lr=fast", "inner_lr='fast': must be a finite number"),
        ("ipc=0.3", "--set ipc=0.3: ipc has its own option, use --ipc R"),
        ("mode=baseline", "use --mode MODE"),
    ],
)
def test_every_setting_is_type_checked_before_anything_runs(tmp_path, capsys, setting, message, monkeypatch):
    import podd.data

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the settings were checked")

    monkeypatch.setattr(podd.data, "load_dataset", no_data)
    out = tmp_path / "run"
    argv = [
        "distill",
        "--dataset",
        "digits",
        "--ipc",
        "0.5",
        "--out",
        out,
        "--profile",
        "smoke",
        "--quiet",
        "--set",
        setting,
    ]
    code, _, err = cli(argv, capsys)
    assert_refused(code, err, message, out_dir=out)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ipc", "1e9"], "asks for a 505964×1264911-pixel poster"),
        (["--ipc", "0.01"], "use --ipc 0.1 or more"),
        (["--ipc", "0.5", "--set", "patches=[10,10]"], "use --set patches=[2,2]"),
        (["--ipc", "0.5", "--set", "poster_size=[5,5]"], "poster_size of at least [8,8]"),
        (["--ipc", "0.5", "--set", "grid=[10,1]"], "use --ipc 0.71 or more"),
        (["--ipc", "0.5", "--mode", "per-class"], "1 IPC per class"),
        (["--ipc", "0.5", "--set", "distill_batch=500"], "--set distill_batch=N, N at most 40"),
    ],
)
def test_impossible_posters_name_the_ipc_and_what_to_use(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    code, _, err = cli(["distill", "--dataset", "digits", "--out", out, *TINY, *extra], capsys)
    assert_refused(code, err, message, out_dir=out)
    assert "--distill-batch" not in err


def test_ipc_beyond_the_training_set_is_refused_before_allocating(tmp_path, capsys):
    """Under the allocation cap but more pixels than the data: refused with the poster size."""
    out = tmp_path / "run"
    code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "500", "--out", out, *TINY], capsys)
    assert_refused(code, err, "more pixels than the whole training set (1437 images", out_dir=out)


@pytest.mark.parametrize("ipc", ["1", "2"])
def test_per_class_mode_runs_on_digits_without_extra_settings(tmp_path, capsys, ipc):
    code, _, err = cli(
        ["distill", "--dataset", "digits", "--ipc", ipc, "--mode", "per-class", "--out", tmp_path / "run", *TINY],
        capsys,
    )
    assert code == 0, err


def test_resume_refuses_options_it_would_ignore(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    before = (run / "checkpoint.pt").read_bytes()
    for extra, names in [
        (["--dataset", "cifar10"], "dataset"),
        (["--ipc", "0.9"], "ipc"),
        (["--profile", "paper"], "profile"),
        (["--set", "window=3", "--ipc", "2"], "window, ipc"),
    ]:
        code, _, err = cli(["distill", "--resume", "--out", run, "--quiet", *extra], capsys)
        assert_refused(code, err, f"--resume cannot change {names}", "another --out")
    assert (run / "checkpoint.pt").read_bytes() == before
    # repeating the run's own values is fine
    code, _, err = cli(
        [
            "distill",
            "--resume",
            "--out",
            run,
            "--quiet",
            "--dataset",
            "Digits",
            "--ipc",
            "0.5",
            "--profile",
            "smoke",
            "--steps",
            "3",
        ],
        capsys,
    )
    assert code == 0, err


@pytest.mark.parametrize(
    "extra, message", [(["--models", "0"], "--models 0"), (["--steps", "300", "100"], "--steps 300 100")]
)
def test_evaluate_options_are_checked_first(finished_run, capsys, extra, message):
    code, _, err = cli(["evaluate", finished_run, "--quiet", *extra], capsys)
    assert_refused(code, err, message)
    assert not (finished_run / "eval.json").exists()


# ------------------------------------------------------------------------------------------
# Ctrl-C, long runs, threads
# ------------------------------------------------------------------------------------------
def _default_ctrl_c():
    # A shell runs a background job (`make test &`, nohup) with SIGINT ignored, and a child
    # inherits that: Python then installs no Ctrl-C handler and the signal below would do
    # nothing. The test is about podd's Ctrl-C, so its podd starts with the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _podd(*argv, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "podd.cli", *map(str, argv)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_ctrl_c,
        **kwargs,
    )


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tmp_path, capsys, stop, code):
    out = tmp_path / "run"
    process = _podd(
        "distill",
        "--dataset",
        "digits",
        "--ipc",
        "0.5",
        "--out",
        out,
        "--profile",
        "smoke",
        "--steps",
        "100000",
        "--device",
        "cpu",
        "--quiet",
        "--threads",
        "1",
        "--set",
        "checkpoint_every=2",
        "--set",
        "eval_models=0",
    )
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.pt").exists() and process.poll() is None:
            assert time.time() < deadline, "no checkpoint within two minutes"
            time.sleep(0.2)
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "interrupted at step" in stderr and "the last checkpoint (step" in stderr
    assert f"podd distill --resume --out {out}" in stderr
    assert not tmp_files(out) and not (out / ".podd.lock").exists()
    step = torch.load(out / "checkpoint.pt", weights_only=False)["distiller"]["step"]
    code, _, err = cli(["distill", "--resume", "--out", out, "--steps", step + 2, "--quiet"], capsys)
    assert code == 0, err


def test_long_runs_say_how_long_and_what_to_do_on_a_cpu(tmp_path, capsys, monkeypatch):
    import podd.run_loop

    # the thresholds, not the clock: a few steps of smoke count as "long"
    monkeypatch.setattr(podd.run_loop, "ETA_MIN_S", 0.0)
    monkeypatch.setattr(podd.run_loop, "ETA_LONG_ON_CPU_S", 0.0)
    threads = torch.get_num_threads()
    code, _, err = cli(
        [
            "distill",
            "--dataset",
            "digits",
            "--ipc",
            "0.5",
            "--out",
            tmp_path / "r",
            "--profile",
            "smoke",
            "--steps",
            "6",
            "--device",
            "cpu",
            "--quiet",
            "--set",
            "eval_models=0",
            "--threads",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "estimated time:" in err and "for the remaining 2 steps" in err
    # not the paper profile: no advice to switch to a profile, but to fewer steps or a GPU
    assert "--profile quick" not in err and "fewer --steps" in err and "GPU" in err
    assert torch.get_num_threads() == 1
    code, _, err = cli(
        [
            "distill",
            "--dataset",
            "digits",
            "--ipc",
            "0.5",
            "--out",
            tmp_path / "p",
            "--profile",
            "paper",
            "--steps",
            "8",
            "--device",
            "cpu",
            "--quiet",
            "--set",
            "eval_models=0",
            "--threads",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "--profile quick" in err and "GPU" in err
    torch.set_num_threads(threads)


def test_threads_must_be_positive(tmp_path, capsys):
    code, _, err = cli(
        ["distill", "--dataset", "digits", "--ipc", "0.5", "--out", tmp_path / "r", *TINY, "--threads", "0"], capsys
    )
    assert_refused(code, err, "--threads 0", out_dir=tmp_path / "r")


def test_the_sigterm_handler_is_put_back_after_the_command(capsys):
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "0"], capsys)
    assert code == 2, err
    assert signal.getsignal(signal.SIGTERM) is before

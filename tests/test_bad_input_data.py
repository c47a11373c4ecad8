"""Bad data through the real entry points (issue 37, the data-input items): each mistake is one
line that says what is wrong and what to do, exit code 2, no traceback, no run directory left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import TINY, cli
from PIL import Image


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))


def assert_refused(code, err, *fragments, out_dir: Path | None = None):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    if out_dir is not None:
        assert not out_dir.exists(), f"a refused run left {sorted(out_dir.rglob('*'))}"


def npz_of(path: Path, x_train, y_train, x_test=None, y_test=None, **extra) -> Path:
    arrays = dict(x_train=x_train, y_train=np.asarray(y_train, dtype=np.int64))
    if x_test is not None:
        arrays.update(x_test=x_test, y_test=np.asarray(y_test, dtype=np.int64))
    np.savez(path, **arrays, **extra)
    return path


def random_npz(path: Path, seed=0, n_train=20, n_test=6, dtype=np.uint8, high=256, **extra) -> Path:
    rng = np.random.default_rng(seed)
    return npz_of(
        path,
        rng.integers(0, high, (n_train, 1, 8, 8)).astype(dtype),
        np.arange(n_train) % 2,
        rng.integers(0, high, (n_test, 1, 8, 8)).astype(dtype),
        np.arange(n_test) % 2,
        **extra,
    )


def image_folder(root: Path, make, classes=("cat", "dog"), per_class=2) -> Path:
    """PATH/train/CLASS/*.png and PATH/test/CLASS/*.png, each image ``make(rng)`` (a PIL image)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                make(rng).save(folder / f"{i}.png")
    return root


def distill(dataset, out: Path, *extra):
    return ["distill", "--dataset", dataset, "--ipc", "1", "--out", out, *TINY, *extra]


# 1. an .npy where an .npz is expected ----------------------------------------------------------
def test_npy_file_given_as_npz(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 1, 8, 8), np.uint8))
    code, _, err = cli(["data", f"npz:{path}"], capsys)
    assert_refused(code, err, "single .npy array", "not an .npz archive", "x_train, y_train", "np.savez(")


# 2. 16-bit PNGs are scaled to 8 bits, not clipped at 255 ------------------------------------------
def test_16_bit_png_folder_is_scaled_with_a_note(tmp_path, capsys):
    from podd.data import load_dataset

    folder = image_folder(
        tmp_path / "deep", lambda rng: Image.fromarray(rng.integers(0, 65536, (8, 8)).astype(np.uint16))
    )
    first = tmp_path / "deep" / "train" / "cat" / "0.png"
    with Image.open(first) as img:
        assert img.mode == "I;16"  # the real on-disk 16-bit grayscale format
        raw = np.asarray(img).astype(np.float64)
    code, out, err = cli(["data", f"imagefolder:{folder}"], capsys)
    assert code == 0, err
    assert "16-bit grayscale" in out and "× 255 / 65535" in out and out.count("NOTE:") == 1
    assert "1x8x8" in out  # grayscale stays one channel
    ds = load_dataset(f"imagefolder:{folder}")
    assert torch.equal(ds.x_train[0, 0], torch.from_numpy(np.round(raw * 255 / 65535).astype(np.uint8)))
    assert 0 < int((ds.x_train < 255).sum())  # clipped, nearly every pixel was 255


# 3. duplicate class names ---------------------------------------------------------------------------
def test_duplicate_class_names_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = npz_of(
        tmp_path / "dup.npz",
        rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8),
        [0, 1, 2] * 2,
        rng.integers(0, 256, (3, 1, 8, 8), dtype=np.uint8),
        [0, 1, 2],
        class_names=np.array(["cat", "dog", "cat"]),
    )
    code, _, err = cli(["data", f"npz:{path}"], capsys)
    assert_refused(code, err, "'class_names'", "more than once", "'cat' at 0, 2", "rename them")


# 4. float images: the hint fits the range found -------------------------------------------------------
@pytest.mark.parametrize(
    "high, dtype, hint, wrong",
    [
        (256, np.float32, "look like 0..255 already: cast with x.round().astype(np.uint8), no * 255", "(x * 255)"),
        (256, np.int64, "cast with x.astype(np.uint8)", "(x * 255)"),
        (1, np.float64, "images in 0..1: convert with (x * 255).round().astype(np.uint8)", "look like 0..255"),
        (65536, np.uint16, "(x / 257).round().astype(np.uint8)", "(x * 255)"),
    ],
)
def test_non_uint8_images_get_a_hint_for_their_range(tmp_path, capsys, high, dtype, hint, wrong):
    rng = np.random.default_rng(0)
    make = (
        (lambda n: rng.random((n, 1, 8, 8)).astype(dtype))
        if high == 1
        else (lambda n: rng.integers(0, high, (n, 1, 8, 8)).astype(dtype))
    )
    path = npz_of(tmp_path / "f.npz", make(6), [0, 1] * 3, make(2), [0, 1])
    code, _, err = cli(["data", f"npz:{path}"], capsys)
    assert_refused(code, err, "key 'x_train' has dtype", hint)
    assert wrong not in err


# 5. constant images: the real cause, not "lower outer_lr" ---------------------------------------------
def test_all_zero_training_images_are_refused(tmp_path, capsys):
    path = npz_of(
        tmp_path / "zeros.npz",
        np.zeros((20, 1, 8, 8), np.uint8),
        np.arange(20) % 2,
        np.zeros((4, 1, 8, 8), np.uint8),
        np.arange(4) % 2,
    )
    out = tmp_path / "run"
    for zca in ("true", "false"):
        code, _, err = cli(distill(f"npz:{path}", out, "--set", f"zca={zca}"), capsys)
        assert_refused(code, err, "every pixel of all 20 training images is 0", "nothing to distil", out_dir=out)
        assert "NaN" not in err and "outer_lr" not in err


def test_flat_images_under_zca_are_refused(tmp_path, capsys):
    # each image one grey level, different per image: per-image centring makes them all zero
    levels = np.arange(20, dtype=np.uint8) * 10
    x = np.broadcast_to(levels[:, None, None, None], (20, 1, 8, 8)).copy()
    path = npz_of(tmp_path / "flat.npz", x, np.arange(20) % 2, x[:4], np.arange(4) % 2)
    out = tmp_path / "run"
    code, _, err = cli(distill(f"npz:{path}", out, "--set", "zca=true"), capsys)
    assert_refused(
        code, err, "ZCA whitening: each of the 20 training images is a single value", "--set zca=false", out_dir=out
    )
    assert "outer_lr" not in err


# 6. ZCA of large images: its memory, said before allocating it -----------------------------------------
def test_zca_of_512px_images_says_its_memory(tmp_path, capsys):
    folder = image_folder(
        tmp_path / "big", lambda rng: Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)), per_class=1
    )
    out = tmp_path / "run"
    code, _, err = cli(distill(f"imagefolder:{folder}", out, "--set", "zca=true"), capsys)
    assert_refused(
        code,
        err,
        "ZCA whitening of 3×512×512 images",
        "786432×786432",
        "4.5 TiB",
        "--set zca=false",
        "resize the images",
        out_dir=out,
    )
    assert "DefaultCPUAllocator" not in err


def test_zca_memory_check_uses_the_machines_memory(tmp_path, capsys, monkeypatch):
    import podd.data.preprocess as pre

    monkeypatch.setattr(pre, "_physical_memory", lambda: 1 << 16)  # a 64 KiB machine
    path = random_npz(tmp_path / "small.npz")
    code, _, err = cli(distill(f"npz:{path}", tmp_path / "run", "--set", "zca=true"), capsys)
    assert_refused(code, err, "ZCA whitening of 1×8×8 images", "more than this machine's memory (64.0 KiB)")


# 7. a run's data replaced after distillation ------------------------------------------------------------
def test_evaluate_and_resume_refuse_data_replaced_after_distillation(tmp_path, capsys):
    path = random_npz(tmp_path / "d.npz", seed=0)
    out = tmp_path / "run"
    code, _, err = cli(distill(f"npz:{path}", out), capsys)
    assert code == 0, err
    evaluate = ["evaluate", out, "--models", "1", "--steps", "5", "--device", "cpu", "--quiet"]
    code, _, err = cli(evaluate, capsys)
    assert code == 0, err  # the same data: evaluated
    random_npz(path, seed=1)  # the file replaced
    code, _, err = cli(evaluate, capsys)
    assert_refused(
        code,
        err,
        "now holds other data than the run was distilled on",
        "training split and test split changed",
        "--allow-changed-data",
    )
    code, _, err = cli([*evaluate, "--allow-changed-data"], capsys)
    assert code == 0, err
    code, _, err = cli(["distill", "--resume", "--out", out, "--steps", "3", "--quiet"], capsys)
    assert_refused(code, err, f"--resume {out}", "training split and test split changed", "another --out")
    random_npz(path, seed=0)  # restored: the run goes on
    code, _, err = cli(["distill", "--resume", "--out", out, "--steps", "3", "--quiet"], capsys)
    assert code == 0, err


def test_a_changed_test_split_alone_is_named(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x, xt = rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8), rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8)
    path = npz_of(tmp_path / "d.npz", x, np.arange(20) % 2, xt, np.arange(6) % 2)
    out = tmp_path / "run"
    assert cli(distill(f"npz:{path}", out), capsys)[0] == 0
    npz_of(path, x, np.arange(20) % 2, xt, (np.arange(6) + 1) % 2)  # test labels swapped
    code, _, err = cli(["evaluate", out, "--models", "1", "--steps", "5", "--device", "cpu"], capsys)
    assert_refused(code, err, "(its test split changed)")

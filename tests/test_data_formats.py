"""podd.data.load_dataset on tiny datasets written in the exact official on-disk formats.

Nothing here reaches the network: every dataset is generated in tmp_path and loaded through the
real code path with downloads off (or with a file:// URL standing in for the official one).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from podd.data import DATASET_NAMES, ChecksumError, builtin, data_root, images, load_dataset


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cache_files(root: Path) -> list[Path]:
    return sorted((root / "cache").glob("*")) if (root / "cache").exists() else []


# ------------------------------------------------------------------------------------------
# writers for the official formats
# ------------------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Writes byte strings as Python 2 ``str`` opcodes, as in the real CIFAR python pickles
    (which torchvision reads with ``encoding="latin1"``)."""

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def _py2_pickle(path: Path, obj) -> None:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue())


def write_cifar10(root: Path, per_batch: int = 2, n_test: int = 3, seed: int = 0):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    batches = {}
    for i, file in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        n = n_test if file == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        _py2_pickle(
            folder / file,
            {
                b"batch_label": file.encode(),
                b"labels": labels,
                b"data": data,
                b"filenames": [f"img_{i}_{k}.png".encode() for k in range(n)],
            },
        )
        batches[file] = (data, labels)
    _py2_pickle(folder / "batches.meta", {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072})
    return folder, batches


def write_cifar100(root: Path, n_train: int = 5, n_test: int = 3, seed: int = 1):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    fine = [b"apple", b"aquarium_fish", b"maple_tree"]
    batches = {}
    for file, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, len(fine), n)]
        _py2_pickle(
            folder / file,
            {
                b"filenames": [b"x.png"] * n,
                b"batch_label": file.encode(),
                b"fine_labels": labels,
                b"coarse_labels": [0] * n,
                b"data": data,
            },
        )
        batches[file] = (data, labels)
    _py2_pickle(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"fruit"]})
    return folder, batches


def patch_cifar_md5s(monkeypatch, cls, folder: Path) -> None:
    """Point torchvision's expected md5s at the generated files: its real integrity check still runs."""
    monkeypatch.setattr(cls, "train_list", [[f, md5(folder / f)] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5(folder / f)] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})


CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
# (id, class index 0-based, is_train, size (W, H), colour)
CUB_IMAGES = [
    (1, 0, 1, (40, 30), (200, 30, 30)),
    (2, 0, 0, (50, 70), (190, 40, 40)),
    (3, 1, 1, (64, 48), (30, 200, 30)),
    (4, 1, 0, (33, 33), (40, 190, 40)),
    (5, 2, 1, (20, 50), (30, 30, 200)),
    (6, 2, 1, (100, 60), (40, 40, 190)),
    (7, 2, 0, (32, 32), (120, 120, 120)),
]


def write_cub(root: Path) -> Path:
    folder = root / "CUB_200_2011"
    (folder / "images").mkdir(parents=True)
    images, labels, split = [], [], []
    for i, c, train, size, colour in CUB_IMAGES:
        rel = f"{CUB_CLASSES[c]}/{CUB_CLASSES[c].split('.')[1]}_{i:04d}.jpg"
        (folder / "images" / CUB_CLASSES[c]).mkdir(exist_ok=True)
        Image.new("RGB", size, colour).save(folder / "images" / rel, quality=95)
        images.append(f"{i} {rel}")
        labels.append(f"{i} {c + 1}")
        split.append(f"{i} {train}")
    (folder / "images.txt").write_text("\n".join(images) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (folder / "classes.txt").write_text("".join(f"{k + 1} {n}\n" for k, n in enumerate(CUB_CLASSES)))
    (folder / "README").write_text("tiny stand-in of CUB-200-2011\n")
    return folder


TINY_WNIDS = ["n01443537", "n01629819", "n01641577"]
TINY_WORDS = {
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander, Salamandra salamandra",
    "n01641577": "bullfrog, Rana catesbeiana",
    "n00001740": "entity",
}
TINY_COLOURS = [(220, 120, 20), (20, 220, 120), (120, 20, 220)]


def write_tiny(root: Path, size: int = 16, per_class: int = 3) -> Path:
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in TINY_WNIDS))
    (folder / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in sorted(TINY_WORDS.items())))
    for c, w in enumerate(TINY_WNIDS):
        d = folder / "train" / w / "images"
        d.mkdir(parents=True)
        for k in range(per_class):
            img = Image.new("RGB", (size, size), TINY_COLOURS[c])
            if c == 2 and k == 0:
                img = img.convert("L")  # Tiny-ImageNet has a few grayscale JPEGs
            img.save(d / f"{w}_{k}.JPEG", quality=95)
        (folder / "train" / w / f"{w}_boxes.txt").write_text("")
    (folder / "val" / "images").mkdir(parents=True)
    rows = []
    for k, c in enumerate([2, 0, 1, 1, 0]):
        Image.new("RGB", (size, size), TINY_COLOURS[c]).save(folder / "val" / "images" / f"val_{k}.JPEG", quality=95)
        rows.append(f"val_{k}.JPEG\t{TINY_WNIDS[c]}\t0\t0\t{size - 1}\t{size - 1}")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    (folder / "test" / "images").mkdir(parents=True)
    return folder


def tar_folder(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


# ------------------------------------------------------------------------------------------
# names, root, digits
# ------------------------------------------------------------------------------------------


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(ValueError) as info:
        load_dataset("mnist", root=tmp_path)
    for name in DATASET_NAMES + ("imagefolder:PATH", "npz:PATH"):
        assert name in str(info.value)
    assert "mnist" in str(info.value)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("PODD_DATA")
    assert data_root() == Path.home() / ".cache" / "podd"


def test_digits_seeded_stratified_split():
    ds = load_dataset("digits")
    assert (len(ds.y_train), len(ds.y_test)) == (1437, 360)
    assert ds.image_shape == (1, 8, 8) and ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.class_names == [str(i) for i in range(10)] and ds.source == "full"
    assert int(ds.x_train.max()) == 255 and int(ds.x_train.min()) == 0
    # stratified: every class's test share is within one image of 20%
    train_counts = torch.bincount(ds.y_train, minlength=10)
    test_counts = torch.bincount(ds.y_test, minlength=10)
    assert ((test_counts - 0.2 * (train_counts + test_counts)).abs() <= 1).all()
    again = load_dataset("digits")
    assert torch.equal(ds.x_test, again.x_test) and torch.equal(ds.y_train, again.y_train)


# ------------------------------------------------------------------------------------------
# CIFAR through torchvision
# ------------------------------------------------------------------------------------------


def test_cifar10_through_torchvision_and_cache(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    folder, batches = write_cifar10(tmp_path)
    patch_cifar_md5s(monkeypatch, CIFAR10, folder)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert (len(ds.y_train), len(ds.y_test)) == (10, 3)
    assert ds.image_shape == (3, 32, 32) and ds.x_train.dtype == torch.uint8
    assert ds.class_names[0] == "airplane" and len(ds.class_names) == 10
    data, labels = batches["data_batch_2"]
    # the CIFAR row layout is 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    assert torch.equal(ds.x_train[2:4], torch.from_numpy(data.reshape(-1, 3, 32, 32)))
    assert ds.y_train[2:4].tolist() == labels
    assert ds.y_test.tolist() == batches["test_batch"][1]
    assert (tmp_path / "cache" / "cifar10.pt").is_file()

    # the second load reads the cache only: the raw files can be gone
    import shutil

    shutil.rmtree(folder)
    again = load_dataset("cifar10", root=tmp_path, download=False)
    assert torch.equal(again.x_train, ds.x_train) and again.class_names == ds.class_names


def test_cifar100_fine_labels_and_readable_names(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR100

    folder, batches = write_cifar100(tmp_path)
    patch_cifar_md5s(monkeypatch, CIFAR100, folder)
    ds = load_dataset("cifar100", root=tmp_path, download=False)
    assert ds.class_names == ["apple", "aquarium fish", "maple tree"]
    assert ds.y_train.tolist() == batches["train"][1] and ds.y_test.tolist() == batches["test"][1]
    assert torch.equal(ds.x_test, torch.from_numpy(batches["test"][0].reshape(-1, 3, 32, 32)))


def test_cifar_missing_names_folder_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cifar10", root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "cifar-10-python.tar.gz" in message


def test_cifar_corrupted_file_fails_integrity_check_without_cache(tmp_path):
    write_cifar10(tmp_path)  # md5s differ from torchvision's published ones
    with pytest.raises(ChecksumError, match="md5"):
        load_dataset("cifar10", root=tmp_path, download=False)
    assert cache_files(tmp_path) == []


# ------------------------------------------------------------------------------------------
# CUB-200-2011
# ------------------------------------------------------------------------------------------


def test_cub200_official_split_resized_readable_names(tmp_path):
    write_cub(tmp_path)
    ds = load_dataset("cub200", root=tmp_path, download=False)
    assert ds.class_names == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    assert ds.image_shape == (3, 32, 32)
    train = [(c, colour) for _, c, t, _, colour in CUB_IMAGES if t]
    test = [(c, colour) for _, c, t, _, colour in CUB_IMAGES if not t]
    assert ds.y_train.tolist() == [c for c, _ in train] and ds.y_test.tolist() == [c for c, _ in test]
    # every resized image keeps its colour (uniform images; JPEG error only)
    expected = torch.tensor([colour for _, colour in train], dtype=torch.float32)
    assert (ds.x_train.float().mean(dim=(2, 3)) - expected).abs().max() < 6


def test_cub200_from_local_archive_with_checked_md5(tmp_path, monkeypatch):
    import shutil

    folder = write_cub(tmp_path / "src")
    archive = tar_folder(folder, tmp_path / "CUB_200_2011.tgz")
    shutil.rmtree(tmp_path / "src")
    monkeypatch.setattr(builtin, "CUB_MD5", md5(archive))
    ds = load_dataset("cub200", root=tmp_path, download=False)
    assert len(ds.y_train) == 4 and (tmp_path / "CUB_200_2011" / "classes.txt").is_file()
    assert not list(tmp_path.glob(".extract-*"))


def test_cub200_corrupted_archive_checksum_error_and_no_cache(tmp_path):
    (tmp_path / "CUB_200_2011.tgz").write_bytes(b"not really a gzip archive")
    with pytest.raises(ChecksumError) as info:
        load_dataset("cub200", root=tmp_path, download=False)
    assert "checksum" in str(info.value) and str(tmp_path / "CUB_200_2011.tgz") in str(info.value)
    assert cache_files(tmp_path) == []
    assert not (tmp_path / "CUB_200_2011").exists() and not list(tmp_path.glob(".extract-*"))


def test_cub200_corrupted_download_keeps_nothing(tmp_path, monkeypatch):
    bad = tmp_path / "elsewhere" / "CUB_200_2011.tgz"
    bad.parent.mkdir()
    bad.write_bytes(b"truncated download")
    monkeypatch.setattr(builtin, "CUB_URL", bad.as_uri())  # the real download code, no network
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="checksum"):
        load_dataset("cub200", root=root, download=True)
    assert not (root / "CUB_200_2011.tgz").exists()
    assert [p.name for p in root.iterdir()] == []  # no temp file, no folder, no cache


def test_cub200_download_failure_names_url(tmp_path, monkeypatch):
    monkeypatch.setattr(builtin, "CUB_URL", (tmp_path / "missing.tgz").as_uri())
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cub200", root=tmp_path / "data", download=True)
    assert "missing.tgz" in str(info.value) and str(tmp_path / "data" / "CUB_200_2011.tgz") in str(info.value)


def test_cub200_missing_names_folder_layout_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cub200", root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "CUB_200_2011") in message and "images.txt" in message and builtin.CUB_URL in message


# ------------------------------------------------------------------------------------------
# Tiny-ImageNet-200
# ------------------------------------------------------------------------------------------


def test_tinyimagenet_val_annotations_words_and_cache(tmp_path, monkeypatch):
    write_tiny(tmp_path)
    ds = load_dataset("tinyimagenet", root=tmp_path, download=False)
    assert ds.class_names == ["goldfish", "European fire salamander", "bullfrog"]
    assert ds.image_shape == (3, 16, 16)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.y_test.tolist() == [2, 0, 1, 1, 0]
    colours = torch.tensor(TINY_COLOURS, dtype=torch.float32)
    assert (ds.x_test.float().mean(dim=(2, 3)) - colours[ds.y_test]).abs().max() < 6
    gray = ds.x_train[6].float().mean(dim=(1, 2))  # the grayscale JPEG became 3 equal channels
    assert (gray - gray.mean()).abs().max() < 1

    # second load: nothing is decoded again
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image although the cache is valid")

    monkeypatch.setattr(images, "_decode", no_decoding)
    again = load_dataset("tinyimagenet", root=tmp_path, download=False)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)


def test_tinyimagenet_missing_names_folder_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("tinyimagenet", root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "tiny-imagenet-200") in message and "val_annotations.txt" in message
    assert builtin.TINY_URL in message


def test_tinyimagenet_corrupted_archive(tmp_path):
    (tmp_path / "tiny-imagenet-200.zip").write_bytes(b"PK broken")
    with pytest.raises(ChecksumError, match="checksum"):
        load_dataset("tinyimagenet", root=tmp_path, download=False)
    assert cache_files(tmp_path) == [] and not (tmp_path / "tiny-imagenet-200").exists()


# ------------------------------------------------------------------------------------------
# imagefolder:PATH
# ------------------------------------------------------------------------------------------


def write_image_folder(path: Path, size=(8, 6), mode="RGB") -> dict:
    rng = np.random.default_rng(3)
    pixels = {}
    for split, per_class in (("train", 3), ("test", 2)):
        for cls in ("zebra", "cat"):  # not sorted on purpose
            d = path / split / cls
            d.mkdir(parents=True)
            for k in range(per_class):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                arr = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(arr, mode).save(d / f"{k}.png")
                pixels[(split, cls, k)] = arr
    return pixels


def test_imagefolder_sorted_classes_exact_pixels(tmp_path):
    pixels = write_image_folder(tmp_path / "mine")
    ds = load_dataset(f"imagefolder:{tmp_path / 'mine'}", root=tmp_path / "data")
    assert ds.class_names == ["cat", "zebra"] and ds.image_shape == (3, 6, 8)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1] and ds.y_test.tolist() == [0, 0, 1, 1]
    assert torch.equal(ds.x_train[3], torch.from_numpy(pixels[("train", "zebra", 0)]).permute(2, 0, 1))


def test_imagefolder_grayscale_gives_one_channel(tmp_path):
    write_image_folder(tmp_path / "g", mode="L")
    ds = load_dataset(f"imagefolder:{tmp_path / 'g'}", root=tmp_path / "data")
    assert ds.image_shape == (1, 6, 8)


def test_imagefolder_cache_follows_file_changes(tmp_path):
    path = tmp_path / "mine"
    write_image_folder(path)
    root = tmp_path / "data"
    first = load_dataset(f"imagefolder:{path}", root=root)
    target = path / "train" / "cat" / "0.png"
    Image.new("RGB", (8, 6), (1, 2, 3)).save(target)
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))  # a distinct modification time
    second = load_dataset(f"imagefolder:{path}", root=root)
    assert not torch.equal(first.x_train[0], second.x_train[0])
    assert second.x_train[0, :, 0, 0].tolist() == [1, 2, 3]


def test_imagefolder_mixed_sizes_is_a_clear_error(tmp_path):
    path = tmp_path / "mixed"
    write_image_folder(path)
    Image.new("RGB", (5, 5)).save(path / "test" / "cat" / "odd.png")
    with pytest.raises(ValueError, match="differ in size") as info:
        load_dataset(f"imagefolder:{path}", root=tmp_path / "data")
    assert "odd.png" in str(info.value)
    assert cache_files(tmp_path / "data") == []


def test_imagefolder_missing_test_folder(tmp_path):
    (tmp_path / "mine" / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="test"):
        load_dataset(f"imagefolder:{tmp_path / 'mine'}", root=tmp_path / "data")


# ------------------------------------------------------------------------------------------
# npz:PATH
# ------------------------------------------------------------------------------------------


def npz_arrays(layout="NCHW", n_train=6, n_test=4, channels=3):
    rng = np.random.default_rng(5)
    x_train = rng.integers(0, 256, (n_train, channels, 5, 7), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, channels, 5, 7), dtype=np.uint8)
    if layout == "NHWC":
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return {
        "x_train": x_train,
        "y_train": np.array([0, 1, 2, 0, 1, 2][:n_train]),
        "x_test": x_test,
        "y_test": np.array([2, 1, 0, 1][:n_test], dtype=np.int32),
    }


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_npz_layouts_give_the_same_nchw_data(tmp_path, layout):
    np.savez(tmp_path / "d.npz", **npz_arrays(layout), class_names=np.array(["ant", "bee", "cow"]))
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}", root=tmp_path / "data")
    reference = npz_arrays("NCHW")
    assert torch.equal(ds.x_train, torch.from_numpy(reference["x_train"]))
    assert ds.y_test.dtype == torch.int64 and ds.y_test.tolist() == [2, 1, 0, 1]
    assert ds.class_names == ["ant", "bee", "cow"] and ds.image_shape == (3, 5, 7)


def test_npz_without_class_names_and_cache_staleness(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **npz_arrays(channels=1))
    root = tmp_path / "data"
    ds = load_dataset(f"npz:{path}", root=root)
    assert ds.class_names == ["class 0", "class 1", "class 2"] and ds.image_shape == (1, 5, 7)
    arrays = npz_arrays(channels=1)
    arrays["x_train"] = np.zeros_like(arrays["x_train"])
    np.savez(path, **arrays)
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    assert int(load_dataset(f"npz:{path}", root=root).x_train.max()) == 0


def _with(**changes):
    arrays = npz_arrays()
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize(
    "arrays, key, problem",
    [
        (_with(y_test=None), "y_test", "missing key"),
        (_with(y_train=np.array([0, 1, 2])), "y_train", "lengths must match"),
        (_with(y_train=np.array([0, 1, 2, 0, 1, -1])), "y_train", "negative"),
        (_with(y_test=np.array([2, 1, 0, 7]), class_names=np.array(["a", "b", "c"])), "y_test", "out of range"),
        (_with(x_train=np.zeros((6, 3, 5, 7), dtype=np.float32)), "x_train", "dtype float32"),
        (_with(x_test=np.zeros((4, 5, 7), dtype=np.uint8)), "x_test", "rank 3"),
        (_with(y_train=np.zeros((6, 1), dtype=np.int64)), "y_train", "rank 2"),
        (_with(y_train=np.zeros(6)), "y_train", "integer"),
        (_with(x_test=np.zeros((4, 5, 5, 5), dtype=np.uint8)), "x_test", "channel"),
        (_with(x_test=np.zeros((4, 3, 6, 6), dtype=np.uint8)), "x_test", "one image shape"),
    ],
)
def test_npz_bad_input_names_key_and_problem(tmp_path, arrays, key, problem):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as info:
        load_dataset(f"npz:{path}", root=tmp_path / "data")
    assert key in str(info.value) and problem in str(info.value) and str(path) in str(info.value)
    assert cache_files(tmp_path / "data") == []


def test_npz_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="x_train"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}", root=tmp_path)


def test_npz_with_training_data_only_has_an_empty_test_split(tmp_path):
    arrays = npz_arrays()
    np.savez(tmp_path / "train.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    ds = load_dataset(f"npz:{tmp_path / 'train.npz'}", root=tmp_path / "data")
    assert len(ds.y_train) == 6 and ds.x_test.shape == (0, 3, 5, 7) and ds.num_classes == 3


def test_cifar10_from_local_archive(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    folder, batches = write_cifar10(tmp_path / "src")
    patch_cifar_md5s(monkeypatch, CIFAR10, folder)
    archive = tar_folder(folder, tmp_path / "cifar-10-python.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/unreachable.tar.gz")  # must not be needed
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert ds.y_test.tolist() == batches["test_batch"][1]


def test_cifar10_corrupted_local_archive(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"broken")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        load_dataset("cifar10", root=tmp_path, download=True)
    assert cache_files(tmp_path) == []


def test_imagefolder_test_class_without_training_images(tmp_path):
    path = tmp_path / "mine"
    write_image_folder(path)
    (path / "test" / "yak").mkdir()
    Image.new("RGB", (8, 6)).save(path / "test" / "yak" / "0.png")
    with pytest.raises(ValueError, match="yak"):
        load_dataset(f"imagefolder:{path}", root=tmp_path / "data")

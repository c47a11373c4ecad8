"""The paper's built-in datasets: their names and shapes, their official archives, and a reader
for each that turns the official on-disk format into a :class:`Dataset` of uint8 NCHW tensors.

Layout under ``data_root()`` (``root`` > ``$PODD_DATA`` > ``~/.cache/podd``)::

    cifar-10-batches-py/  cifar-100-python/     torchvision's folders (its download and md5 checks)
    CUB_200_2011/         tiny-imagenet-200/    the official archives, extracted as they come
    CUB_200_2011.tgz      tiny-imagenet-200.zip the archives themselves (checked by md5)
    cache/<name>.pt                             decoded uint8 tensors (podd.data.cache)

``digits`` comes with scikit-learn: nothing to download or cache. The other readers take the data
folder and whether they may download; :data:`READERS` lists them by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from podd.data.dataset import Dataset
from podd.data.download import ChecksumError, ensure_extracted
from podd.data.images import IMAGE_SUFFIXES, decode_all

DATASET_NAMES = ("digits", "cifar10", "cifar100", "cub200", "tinyimagenet")
#: Class count and image shape (c, h, w) of each built-in dataset, known without loading it
#: (CUB200 is resized to 32×32 as in the paper).
DATASET_SHAPES: dict[str, tuple[int, tuple[int, int, int]]] = {
    "digits": (10, (1, 8, 8)),
    "cifar10": (10, (3, 32, 32)),
    "cifar100": (100, (3, 32, 32)),
    "cub200": (200, (3, 32, 32)),
    "tinyimagenet": (200, (3, 64, 64)),
}

# Official archives (URL and md5 of the file as published by its authors).
CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_ARCHIVE = "CUB_200_2011.tgz"
CUB_FOLDER = "CUB_200_2011"
CUB_IMAGE_SIZE = 32  # the paper resizes CUB to 32x32 (aspect ratio not kept)
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_ARCHIVE = "tiny-imagenet-200.zip"
TINY_FOLDER = "tiny-imagenet-200"

DIGITS_TEST_SIZE = 360  # 1437 train / 360 test, stratified
DIGITS_SPLIT_SEED = 0


def _readable(name: str) -> str:
    return " ".join(name.replace("_", " ").split())


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# digits (scikit-learn)
# --------------------------------------------------------------------------------------------


def read_digits() -> Dataset:
    """scikit-learn's 1797 8x8 handwritten digits (values 0..16 scaled to 0..255), 1 channel."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train, test = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    train, test = np.sort(train), np.sort(test)
    return Dataset(
        "digits",
        torch.from_numpy(x[train]),
        torch.from_numpy(y[train]),
        torch.from_numpy(x[test]),
        torch.from_numpy(y[test]),
        [str(i) for i in range(10)],
    )


# --------------------------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100 (torchvision)
# --------------------------------------------------------------------------------------------


def _check_local_cifar_archive(cls, name: str, archive: Path) -> None:
    """A local archive is checked here, so that a bad one is reported rather than re-downloaded,
    and a good one is extracted by torchvision without touching the network."""
    from torchvision.datasets.utils import calculate_md5

    actual = calculate_md5(archive)
    if actual != cls.tgz_md5:
        raise ChecksumError(
            f"{name}: checksum mismatch for {archive}: md5 {actual}, expected {cls.tgz_md5}; "
            f"delete it and load again to download it from {cls.url}."
        )


def _read_cifar(cls, name: str, root: Path, download: bool) -> Dataset:
    """CIFAR through torchvision (its download and md5 checks), converted to uint8 NCHW."""
    folder = root / cls.base_folder
    archive = root / cls.filename
    if not folder.is_dir() and archive.is_file():
        _check_local_cifar_archive(cls, name, archive)
        download = True
    if not download and not folder.is_dir():
        raise FileNotFoundError(
            f"{name} not found: looked in {folder}. Expected torchvision's layout ({cls.base_folder}/ with "
            f"{', '.join(f for f, _ in cls.train_list + cls.test_list)}, {cls.meta['filename']}); allow "
            f"downloading, or download {cls.url} and extract it into {root}."
        )
    try:
        splits = [cls(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as error:
        raise ChecksumError(
            f"{name}: the files in {folder} are missing or failed torchvision's md5 check ({error}). Delete "
            f"{folder} (and {root / cls.filename}) and load again with downloading allowed "
            f"({cls.url})."
        ) from error
    except OSError as error:
        raise FileNotFoundError(
            f"{name}: downloading {cls.url} into {root} failed ({error}); download it "
            f"yourself and extract it into {root}."
        ) from error
    xs = [torch.from_numpy(np.ascontiguousarray(s.data)).permute(0, 3, 1, 2).contiguous() for s in splits]
    ys = [torch.as_tensor(s.targets, dtype=torch.int64) for s in splits]
    return Dataset(name, xs[0], ys[0], xs[1], ys[1], [_readable(c) for c in splits[0].classes])


def read_cifar10(root: Path, download: bool) -> Dataset:
    from torchvision.datasets import CIFAR10

    return _read_cifar(CIFAR10, "cifar10", root, download)


def read_cifar100(root: Path, download: bool) -> Dataset:
    from torchvision.datasets import CIFAR100

    return _read_cifar(CIFAR100, "cifar100", root, download)


# --------------------------------------------------------------------------------------------
# CUB-200-2011
# --------------------------------------------------------------------------------------------


def read_cub200(root: Path, download: bool) -> Dataset:
    """CUB-200-2011: the official train/test split, every image resized to 32x32 (as the paper)."""
    required = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "images")
    layout = (
        f"  {root / CUB_FOLDER}/images.txt, image_class_labels.txt, train_test_split.txt, classes.txt,\n"
        f"  {root / CUB_FOLDER}/images/001.Black_footed_Albatross/*.jpg, ..."
    )
    folder = ensure_extracted(
        root, CUB_FOLDER, required, CUB_ARCHIVE, CUB_URL, CUB_MD5, download, "CUB-200-2011", layout
    )
    images = {int(i): p for i, p in _lines(folder / "images.txt")}
    labels = {int(i): int(c) - 1 for i, c in _lines(folder / "image_class_labels.txt")}  # 1-based
    is_train = {int(i): t == "1" for i, t in _lines(folder / "train_test_split.txt")}
    classes = sorted((int(i), n) for i, n in _lines(folder / "classes.txt"))
    # "001.Black_footed_Albatross" -> "Black footed Albatross"
    class_names = [_readable(n.split(".", 1)[-1]) for _, n in classes]
    ids = sorted(images)
    if set(ids) != set(labels) or set(ids) != set(is_train):
        raise ValueError(
            f"CUB-200-2011 in {folder}: images.txt, image_class_labels.txt and "
            f"train_test_split.txt list different image ids; re-extract the archive"
        )
    x = decode_all([folder / "images" / images[i] for i in ids], "CUB-200-2011", size=(CUB_IMAGE_SIZE, CUB_IMAGE_SIZE))
    y = torch.tensor([labels[i] for i in ids], dtype=torch.int64)
    train = torch.tensor([is_train[i] for i in ids])
    return Dataset("cub200", x[train], y[train], x[~train], y[~train], class_names)


# --------------------------------------------------------------------------------------------
# Tiny ImageNet
# --------------------------------------------------------------------------------------------


def read_tinyimagenet(root: Path, download: bool) -> Dataset:
    """Tiny-ImageNet-200: 64x64; test = the official validation split (labels in val_annotations.txt).

    Class order is wnids.txt; class names are the first synonym in words.txt ("goldfish,
    Carassius auratus" -> "goldfish").
    """
    required = ("wnids.txt", "words.txt", "train", "val/val_annotations.txt", "val/images")
    layout = (
        f"  {root / TINY_FOLDER}/wnids.txt, words.txt, train/<wnid>/images/*.JPEG,\n"
        f"  {root / TINY_FOLDER}/val/val_annotations.txt, val/images/*.JPEG"
    )
    folder = ensure_extracted(
        root, TINY_FOLDER, required, TINY_ARCHIVE, TINY_URL, TINY_MD5, download, "Tiny-ImageNet-200", layout
    )
    wnids = [line[0] for line in _lines(folder / "wnids.txt")]
    index = {w: i for i, w in enumerate(wnids)}
    words = {}
    for line in (folder / "words.txt").read_text().splitlines():
        wnid, _, text = line.partition("\t")
        words[wnid.strip()] = text.split(",")[0].strip()
    class_names = [words.get(w) or w for w in wnids]
    train_paths, train_labels = _tiny_train_files(folder, wnids, index)
    val_paths, val_labels = _tiny_val_files(folder, index)
    x_train = decode_all(train_paths, "Tiny-ImageNet-200 train")
    x_test = decode_all(val_paths, "Tiny-ImageNet-200 val")
    return Dataset(
        "tinyimagenet",
        x_train,
        torch.tensor(train_labels, dtype=torch.int64),
        x_test,
        torch.tensor(val_labels, dtype=torch.int64),
        class_names,
    )


def _tiny_train_files(folder: Path, wnids: list[str], index: dict[str, int]) -> tuple[list[Path], list[int]]:
    """The training images (train/<wnid>/images/*) and their labels, class by class."""
    train_paths, train_labels = [], []
    for w in wnids:
        files = sorted(p for p in (folder / "train" / w / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"Tiny-ImageNet-200: no training images in {folder / 'train' / w / 'images'}")
        train_paths += files
        train_labels += [index[w]] * len(files)
    return train_paths, train_labels


def _tiny_val_files(folder: Path, index: dict[str, int]) -> tuple[list[Path], list[int]]:
    """The validation images and their labels, in the order of val_annotations.txt."""
    val_paths, val_labels = [], []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        if parts[1] not in index:
            raise ValueError(
                f"Tiny-ImageNet-200: {folder / 'val' / 'val_annotations.txt'} names class "
                f"{parts[1]!r}, which is not in wnids.txt"
            )
        val_paths.append(folder / "val" / "images" / parts[0])
        val_labels.append(index[parts[1]])
    return val_paths, val_labels


#: The readers of the built-in datasets that are downloaded, decoded once and cached, by name.
READERS = {"cifar10": read_cifar10, "cifar100": read_cifar100, "cub200": read_cub200, "tinyimagenet": read_tinyimagenet}

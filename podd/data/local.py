"""Users' own data: ``npz:PATH`` (an .npz of uint8 arrays) and ``imagefolder:PATH``
(PATH/train/CLASS/*.png and PATH/test/CLASS/*), with the checks that turn a bad file into one line
saying what is wrong and how to fix it.

Both are decoded once and cached (podd.data.cache) under a key made of the files' sizes and times
and :data:`LOCAL_READER`, so that an edited file is read again. What a reader changed in the data
(labels renumbered, 16-bit images scaled) is kept with the dataset as notes, said every session.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from podd.data.cache import cached, file_signature
from podd.data.dataset import Dataset
from podd.data.images import GRAY16_MODES, IMAGE_SUFFIXES, UnreadableImageError, decode_all, open_image
from podd.notes import note_once

PATH_SCHEMES = ("imagefolder", "npz")
# Part of the cache key of npz and image-folder data: bumped when reading the same files gives
# other arrays or refuses them, so that a cache written by an older reader is not reused
# (r2: 16-bit PNGs scaled to 8 bits instead of clipped, duplicate class_names refused).
LOCAL_READER = "r2"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


# --------------------------------------------------------------------------------------------
# loading and caching
# --------------------------------------------------------------------------------------------


def load_local(scheme: str, path: Path, name: str, root: Path) -> Dataset:
    """``npz:PATH`` or ``imagefolder:PATH`` (``scheme``), cached under ``root/cache``."""
    dataset = _read_local(scheme, path, name, root)
    for note in dataset.notes:  # cached or not: what the reader changed is said every session
        note_once(note)
    return dataset


def _safe_stem(path: Path) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.resolve().name)
    return stem[:40] or "data"


def _read_local(scheme: str, path: Path, name: str, root: Path) -> Dataset:
    if scheme == "npz":
        if not path.is_file():
            raise FileNotFoundError(
                f"npz dataset not found: {path} is not a file. Expected a .npz with keys "
                f"x_train, y_train, x_test, y_test (optional class_names)"
            )
        key = file_signature([path], path.parent) + LOCAL_READER
        return cached(root / "cache" / f"npz-{_safe_stem(path)}-{key}.pt", key, lambda: read_npz(path, name), name)
    files = _image_folder_files(path)
    key = file_signature(files["train"] + files["test"], path) + LOCAL_READER
    return cached(
        root / "cache" / f"imagefolder-{_safe_stem(path)}-{key}.pt",
        key,
        lambda: read_image_folder(path, name, files),
        name,
    )


def _require_two_classes(where: str, class_names: Sequence[str], how: str) -> None:
    """A one-class dataset is refused: any poster "reaches 100 %" on a one-class test set."""
    if len(class_names) < 2:
        raise ValueError(
            f"{where}: only one class ({', '.join(map(repr, class_names))}); "
            f"distillation needs at least two (with one class every test image is "
            f"trivially right, so the accuracy would read 100 %); add {how}"
        )


# --------------------------------------------------------------------------------------------
# image folder
# --------------------------------------------------------------------------------------------


def _image_folder_files(path: Path) -> dict[str, list[Path]]:
    layout = (
        f"expected {path}/train/CLASS/*.png|jpg|jpeg and {path}/test/CLASS/*.png|jpg|jpeg "
        f"(one sub-folder per class, same class names in train and test)"
    )
    files: dict[str, list[Path]] = {}
    for split in ("train", "test"):
        d = path / split
        if not d.is_dir():
            raise FileNotFoundError(f"image folder dataset: {d} is missing; {layout}")
        files[split] = sorted(p for p in d.glob("*/*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files[split]:
            raise FileNotFoundError(f"image folder dataset: no images in {d}/CLASS/; {layout}")
    return files


def read_image_folder(path: Path, name: str, files: dict[str, list[Path]] | None = None) -> Dataset:
    """PATH/train/CLASS/*.png|jpg|jpeg and PATH/test/CLASS/*: classes sorted by folder name.

    Images must all share one size. Grayscale-only folders give 1 channel, anything else RGB.
    """
    files = files or _image_folder_files(path)
    classes = sorted({p.parent.name for p in files["train"]})
    unknown = sorted({p.parent.name for p in files["test"]} - set(classes))
    if unknown:
        raise ValueError(
            f"image folder dataset {path}: test classes {unknown} have no training images in {path / 'train'}"
        )
    every = files["train"] + files["test"]
    _require_two_classes(f"image folder dataset {path}", classes, f"one sub-folder of {path / 'train'} per class")
    file_modes = _image_modes(path, every)
    modes = set(file_modes)
    mode = "L" if modes <= {"L", "1", *GRAY16_MODES} else "RGB"
    notes = []
    deep = sum(m in GRAY16_MODES for m in file_modes)
    if deep:
        notes.append(
            f"imagefolder:{path}: {deep} of {len(every)} images are 16-bit grayscale; scaled to "
            f"the 8 bits podd works with (value × 255 / 65535, rounded)"
        )
    index = {c: i for i, c in enumerate(classes)}
    x = decode_all(every, f"image folder dataset {path}", mode=mode)
    y = torch.tensor([index[p.parent.name] for p in every], dtype=torch.int64)
    n = len(files["train"])
    return Dataset(name, x[:n], y[:n], x[n:], y[n:], classes, notes=notes)


def _image_modes(path: Path, every: list[Path]) -> list[str]:
    """PIL's mode of each image, from its header only (read in parallel threads)."""

    def mode_of(p: Path) -> str:
        with open_image(p) as img:  # reads the header only
            return img.mode

    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            return list(pool.map(mode_of, every))
    except UnreadableImageError as error:
        raise ValueError(f"image folder dataset {path}: {error}") from None


# --------------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------------


def read_npz(path: Path, name: str) -> Dataset:
    """An .npz with x_train, y_train, x_test, y_test (uint8 NCHW or NHWC) and optional class_names.

    A file with neither x_test nor y_test is accepted as training data only: its test split is
    empty (hold out a validation split with ``train_val_split``).

    The layout is read from the channel axis: axis 1 of size 1 or 3 means NCHW, else axis 3 of size
    1 or 3 means NHWC. Every problem is reported with the key it concerns.
    """
    where = f"npz dataset {path}"
    arrays = _npz_arrays(path, where)
    xs = _npz_images(where, arrays)
    ys = _npz_labels(where, arrays, xs)
    notes: list[str] = []
    class_names, ys = _npz_classes(where, arrays.get("class_names"), ys, notes)
    return Dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(xs["train"])),
        torch.from_numpy(ys["train"]),
        torch.from_numpy(np.ascontiguousarray(xs["test"])),
        torch.from_numpy(ys["test"]),
        class_names,
        notes=notes,
    )


def _npz_arrays(path: Path, where: str) -> dict[str, np.ndarray]:
    """The arrays of the .npz at ``path`` (the four of :data:`NPZ_KEYS`, and class_names if
    stored); a train-only file gets empty test arrays."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise ValueError(f"{where}: cannot be read as .npz ({type(error).__name__}: {error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):  # np.load reads a .npy as one bare array
        raise ValueError(
            f"{where} is a single .npy array (shape {archive.shape}, dtype {archive.dtype}), "
            f"not an .npz archive; expected an .npz with keys x_train, y_train (and x_test, "
            f"y_test): make one with np.savez('data.npz', x_train=x, y_train=y, x_test=xt, "
            f"y_test=yt)"
        )
    with archive:
        needed = NPZ_KEYS
        train_only = "x_test" not in archive.files and "y_test" not in archive.files
        if train_only:  # e.g. a subset of a training set: the caller holds out a validation split
            needed = ("x_train", "y_train")
        missing = [k for k in needed if k not in archive.files]
        if missing:
            raise ValueError(
                f"{where}: missing key {', '.join(repr(k) for k in missing)} (found keys "
                f"{sorted(archive.files)}); expected x_train, y_train, x_test, y_test (the test pair may "
                f"be left out together) and optional class_names"
            )
        arrays = {
            k: _npz_key(archive, k, where)
            for k in needed + (("class_names",) if "class_names" in archive.files else ())
        }
    if train_only:
        arrays["x_test"] = arrays["x_train"][:0]
        arrays["y_test"] = arrays["y_train"][:0]
    return arrays


def _npz_key(archive, k: str, where: str) -> np.ndarray:
    """``archive[k]``, its failures (pickled objects, a damaged file) said with the key."""
    try:
        return archive[k]
    except ValueError as error:  # object arrays need pickle, which is refused for safety
        if "pickle" not in str(error):
            raise ValueError(
                f"{where}: key {k!r} could not be read ({error}); the file is damaged: write it again"
            ) from error
        raise ValueError(
            f"{where}: an array is stored as Python objects ({error}); save "
            f"plain numeric arrays, and class_names as a string array"
        ) from error
    except Exception as error:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError
        raise ValueError(
            f"{where}: key {k!r} could not be read ({type(error).__name__}: "
            f"{error}); the file is damaged (cut off, or corrupted in a copy): "
            f"write it again"
        ) from error


def _npz_images(where: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """x_train and x_test as uint8 NCHW, by split: dtype, rank and channel axis checked."""
    xs = {}
    for split in ("train", "test"):
        k = f"x_{split}"
        x = arrays[k]
        if x.dtype != np.uint8:
            raise ValueError(
                f"{where}: key {k!r} has dtype {x.dtype}; expected uint8 images with values 0..255 "
                f"({_to_uint8_hint(x)})"
            )
        if x.ndim != 4:
            raise ValueError(
                f"{where}: key {k!r} has shape {x.shape} (rank {x.ndim}); expected rank 4, "
                f"(N, C, H, W) or (N, H, W, C) with C = 1 or 3"
            )
        if x.shape[1] in (1, 3):
            pass
        elif x.shape[3] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        else:
            raise ValueError(
                f"{where}: key {k!r} has shape {x.shape}: neither axis 1 nor axis 3 is a channel "
                f"axis of size 1 or 3; expected (N, C, H, W) or (N, H, W, C)"
            )
        xs[split] = x
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise ValueError(
            f"{where}: key 'x_train' holds images of shape {xs['train'].shape[1:]} (C, H, W) but "
            f"'x_test' holds {xs['test'].shape[1:]}; both splits must share one image shape"
        )
    return xs


def _npz_labels(where: str, arrays: dict[str, np.ndarray], xs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """y_train and y_test as int64, by split: dtype, rank, length and sign checked."""
    ys = {}
    for split in ("train", "test"):
        k = f"y_{split}"
        y = arrays[k]
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{where}: key {k!r} has dtype {y.dtype}; expected integer class labels")
        if y.ndim != 1:
            raise ValueError(f"{where}: key {k!r} has shape {y.shape} (rank {y.ndim}); expected rank 1 (N,)")
        if len(y) != len(xs[split]):
            raise ValueError(
                f"{where}: key {k!r} has {len(y)} labels but 'x_{split}' has {len(xs[split])} "
                f"images; lengths must match"
            )
        if len(y) and y.min() < 0:
            raise ValueError(f"{where}: key {k!r} has negative labels (min {y.min()}); labels must be 0..K-1")
        ys[split] = y.astype(np.int64)
    if not len(ys["train"]):
        raise ValueError(f"{where}: key 'y_train' is empty; a dataset needs training images")
    return ys


def _to_uint8_hint(x: np.ndarray) -> str:
    """How to turn images that are not uint8 into uint8 0..255, for the range the array holds
    (scaling by 255 is right for 0..1 floats only: 0..255 floats would overflow)."""
    if x.dtype.kind not in "biuf" or not x.size:
        return "store the images as numbers 0..255 with x.astype(np.uint8)"
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return "the array holds NaN or inf values: replace them, then convert to uint8 0..255"
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1 and x.dtype.kind in "bf":
        return f"values lie in {lo:.4g}..{hi:.4g}, images in 0..1: convert with (x * 255).round().astype(np.uint8)"
    if lo >= 0 and hi <= 255:
        cast = "x.round().astype(np.uint8)" if x.dtype.kind == "f" else "x.astype(np.uint8)"
        return f"values lie in {lo:.4g}..{hi:.4g}, they look like 0..255 already: cast with {cast}, no * 255"
    if x.dtype == np.uint16:
        return (
            f"values reach {hi:.6g}: for 16-bit images convert with (x / 257).round().astype(np.uint8) "
            f"(or scale by your images' own bit depth)"
        )
    return (
        f"values span {lo:.4g}..{hi:.4g}, outside 0..255 (normalised images?): undo the normalisation, or "
        f"rescale with ((x - x.min()) / (x.max() - x.min()) * 255).round().astype(np.uint8)"
    )


def _label_list(labels, limit: int = 8) -> str:
    labels = [int(v) for v in labels]
    shown = ", ".join(map(str, labels[:limit]))
    return shown + (f", … ({len(labels)} labels)" if len(labels) > limit else "")


def _train_labels_covering_test(where: str, ys: dict[str, np.ndarray]) -> np.ndarray:
    """The distinct training labels; a label found only in ``y_test`` is refused."""
    train = np.unique(ys["train"])
    only_test = np.setdiff1d(np.unique(ys["test"]), train)
    if len(only_test):
        count = int(np.isin(ys["test"], only_test).sum())
        raise ValueError(
            f"{where}: key 'y_test' has label(s) {_label_list(only_test)} that never occur "
            f"in 'y_train' ({count} test images): a class without training images cannot "
            f"be distilled; drop those test images or add training images of that class"
        )
    return train


def _npz_classes(where: str, names, ys: dict[str, np.ndarray], notes: list[str]):
    """The class names and (possibly renumbered) labels of an npz file, per case:

    * a label only in ``y_test``: refused (a class without training images cannot be distilled);
    * with ``class_names``: labels must be 0..K-1 and every class needs training images, else
      refused (an empty class would still get a poster area);
    * without ``class_names``: labels that are not exactly 0..K-1 (1-based, sparse such as
      {0, 10, 20, 30}, or with a gap) are renumbered 0..K-1 in sorted order, with a note; the
      class names keep the file's labels ("class 10");
    * fewer than two classes: refused.
    """
    if names is not None:
        class_names = _named_classes(where, names, ys)
    else:
        class_names, ys = _numbered_classes(where, ys, notes)
    _require_two_classes(where, class_names, "images of at least two classes to the file")
    return class_names, ys


def _named_classes(where: str, names: np.ndarray, ys: dict[str, np.ndarray]) -> list[str]:
    """The file's ``class_names``, checked: a string array without repeats, covering every label,
    every class with training images."""
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise ValueError(
            f"{where}: key 'class_names' must be a 1-D string array, got dtype {names.dtype} and shape {names.shape}"
        )
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    seen: dict[str, list[int]] = {}
    for k, n in enumerate(class_names):
        seen.setdefault(n, []).append(k)
    twice = {n: ks for n, ks in seen.items() if len(ks) > 1}
    if twice:
        listed = "; ".join(f"{n!r} at {', '.join(map(str, ks))}" for n, ks in list(twice.items())[:8])
        raise ValueError(
            f"{where}: key 'class_names' names {len(twice)} class(es) more than once ({listed}"
            f"{'; …' if len(twice) > 8 else ''}); each class needs its own name: rename "
            f"them, or merge their labels into one class and drop the extra names"
        )
    for split, y in ys.items():
        if len(y) and y.max() >= len(class_names):
            raise ValueError(
                f"{where}: key 'y_{split}' has label {int(y.max())}, out of range for "
                f"{len(class_names)} class_names (labels must be 0..{len(class_names) - 1})"
            )
    train = _train_labels_covering_test(where, ys)
    empty = [k for k in range(len(class_names)) if k not in set(train.tolist())]
    if empty:
        listed = ", ".join(f"{k} ({class_names[k]!r})" for k in empty[:8])
        raise ValueError(
            f"{where}: class_names lists {len(class_names)} classes but {len(empty)} of "
            f"them have no training images: {listed}{', …' if len(empty) > 8 else ''}; "
            f"each would get an empty poster area. Remove them from class_names and "
            f"renumber the labels 0..K-1, or add their images"
        )
    return class_names


def _numbered_classes(where: str, ys: dict[str, np.ndarray], notes: list[str]):
    """Class names from the file's own labels ("class 10"); labels that are not 0..K-1 are
    renumbered in sorted order, with a note."""
    train = _train_labels_covering_test(where, ys)
    class_names = [f"class {int(v)}" for v in train]  # the file's own labels
    if not np.array_equal(train, np.arange(len(train))):
        kind = "1-based" if np.array_equal(train, np.arange(1, len(train) + 1)) else "not consecutive"
        mapping = ", ".join(f"{int(v)}→{k}" for k, v in enumerate(train[:8]))
        notes.append(
            f"{where.replace('npz dataset ', 'npz:')}: labels {_label_list(train)} are "
            f"{kind}; renumbered 0..{len(train) - 1} in sorted order ({mapping}"
            f"{', …' if len(train) > 8 else ''}); the class names keep the file's "
            f"labels ({class_names[-1]!r} is class {len(train) - 1}). Store "
            f"class_names in the file to name the classes."
        )
        ys = {split: np.searchsorted(train, y).astype(np.int64) for split, y in ys.items()}
    return class_names, ys

"""The ``Dataset`` record, where data lives, summaries, synthetic stand-ins and splits.

Everything downstream (distillation, evaluation, notebooks) sees a dataset as four uint8/int64
tensors plus class names, so that the same code runs on digits, CIFAR, CUB, Tiny-ImageNet, a
user's own folder of images or a synthetic stand-in. ``source`` travels with the data into every
result's provenance so that a number measured on a subset or a stand-in is never mistaken for
a full-data result.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

SOURCES = ("full", "subset", "stand-in")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets are downloaded and cached: ``root`` if given, else ``$PODD_DATA``, else
    ``~/.cache/podd``. The folder is not created here (reading never needs to create it)."""
    if root is None or str(root) == "":
        root = os.environ.get("PODD_DATA") or Path.home() / ".cache" / "podd"
    return Path(root).expanduser()


@dataclass
class Dataset:
    """A labelled image dataset held in memory: uint8 NCHW images, int64 labels, class names.

    ``source`` says what the data is: ``"full"`` (the whole real dataset), ``"subset"`` (a part
    of a real dataset) or ``"stand-in"`` (synthetic data with the real dataset's shape).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str] = field(default_factory=list)
    source: str = "full"
    #: What the reader changed and the user should know (e.g. labels renumbered); printed once
    #: per session by :func:`podd.data.load_dataset` on every load, cached or not.
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Catch a malformed dataset where it is made, not deep inside a training loop.
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(
                    f"dataset {self.name!r}: x_{split} must be uint8 (N, C, H, W), "
                    f"got {x.dtype} with shape {tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
                raise ValueError(
                    f"dataset {self.name!r}: y_{split} must be int64 (N,) with N = "
                    f"{len(x)}, got {y.dtype} with shape {tuple(y.shape)}"
                )
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.class_names)):
                raise ValueError(
                    f"dataset {self.name!r}: y_{split} has labels outside "
                    f"0..{len(self.class_names) - 1} ({len(self.class_names)} class names)"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"dataset {self.name!r}: train images {tuple(self.x_train.shape[1:])} and "
                f"test images {tuple(self.x_test.shape[1:])} differ in shape"
            )
        if self.source not in SOURCES:
            raise ValueError(f"dataset {self.name!r}: source must be one of {SOURCES}, got {self.source!r}")
        self.class_names = [str(n) for n in self.class_names]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def __repr__(self) -> str:  # the default repr would print whole tensors
        c, h, w = self.image_shape
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"classes={self.num_classes}, image_shape=({c}, {h}, {w}), source={self.source!r})"
        )


def fingerprint(ds: Dataset) -> dict[str, str]:
    """A short content hash of each split, recorded in a run to tell whether its data changed.

    ``{"train": …, "test": …, "source": …}``: SHA-256 of each split's images, labels and shape
    (the class names go with "train"). A hash of the arrays rather than of the files' size and
    modification time: data copied to another machine, downloaded again or saved again keeps its
    fingerprint, a built-in dataset is fingerprinted the same way as a file, and any changed
    pixel or label changes it. SHA-256 makes one pass over the bytes at hardware speed on
    current CPUs, a small part of what loading the same data costs.
    """

    def digest(*parts) -> str:
        h = hashlib.sha256()
        for part in parts:
            h.update(part.contiguous().numpy().tobytes() if isinstance(part, torch.Tensor) else repr(part).encode())
            h.update(b"\0")
        return h.hexdigest()[:16]

    return {
        "train": digest(tuple(ds.x_train.shape), ds.x_train, ds.y_train, list(ds.class_names)),
        "test": digest(tuple(ds.x_test.shape), ds.x_test, ds.y_test),
        "source": ds.source,
    }


def check_fingerprint(recorded, ds: Dataset, what: str, todo: str) -> None:
    """Refuse ``ds`` when it differs from the data whose ``recorded`` :func:`fingerprint` a run
    keeps. Nothing is checked for runs older than fingerprints, nor for a run distilled on data
    of another source (a subset or a stand-in passed in by code, evaluated on the full data)."""
    if not isinstance(recorded, dict) or recorded.get("source") != ds.source:
        return
    now = fingerprint(ds)
    changed = [split for split in ("train", "test") if recorded.get(split) != now[split]]
    if changed:
        parts = " and ".join(f"{split}{'ing' if split == 'train' else ''} split" for split in changed)
        raise ValueError(
            f"{what}: {ds.name} now holds other data than the run was distilled on (its {parts} changed); {todo}"
        )


def summary(ds: Dataset) -> str:
    """A human-readable summary: images per split, classes, image shape, per-class counts."""
    c, h, w = ds.image_shape
    k = ds.num_classes
    train_counts = torch.bincount(ds.y_train, minlength=k).tolist()
    test_counts = torch.bincount(ds.y_test, minlength=k).tolist()
    lines = [
        f"dataset: {ds.name}  (source: {ds.source})",
        f"images: {len(ds.y_train) + len(ds.y_test)}  (train {len(ds.y_train)}, test {len(ds.y_test)})",
        f"classes: {k}",
        f"image shape: {c}x{h}x{w} (channels x height x width), uint8",
        f"images per class (train / test): min {min(train_counts, default=0)} / "
        f"{min(test_counts, default=0)}, max {max(train_counts, default=0)} / {max(test_counts, default=0)}",
    ]
    # One cell per class, several cells per line so that 200 classes stay readable.
    width = min(24, max((len(n) for n in ds.class_names), default=1))
    cells = [
        f"{i:>3} {name[:width]:<{width}} {tr:>6} / {te:<6}"
        for i, (name, tr, te) in enumerate(zip(ds.class_names, train_counts, test_counts))
    ]
    per_line = 1 if k <= 20 else max(1, 110 // (len(cells[0]) + 2))
    header = f"{'#':>3} {'class':<{width}} {'train':>6} / {'test':<6}"
    lines.append("  " + "  ".join([header] * min(per_line, k)).rstrip())
    for start in range(0, k, per_line):
        lines.append("  " + "  ".join(cells[start : start + per_line]).rstrip())
    return "\n".join(lines)


# Class names for stand-ins of the datasets whose names are short enough to keep in code.
# CIFAR-100's fine labels are listed in the dataset's own order (alphabetical), underscores as spaces.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple(
    """
apple|aquarium fish|baby|bear|beaver|bed|bee|beetle|bicycle|bottle|bowl|boy|bridge|bus|butterfly|
camel|can|castle|caterpillar|cattle|chair|chimpanzee|clock|cloud|cockroach|couch|crab|crocodile|cup|
dinosaur|dolphin|elephant|flatfish|forest|fox|girl|hamster|house|kangaroo|keyboard|lamp|lawn mower|
leopard|lion|lizard|lobster|man|maple tree|motorcycle|mountain|mouse|mushroom|oak tree|orange|orchid|
otter|palm tree|pear|pickup truck|pine tree|plain|plate|poppy|porcupine|possum|rabbit|raccoon|ray|
road|rocket|rose|sea|seal|shark|shrew|skunk|skyscraper|snail|snake|spider|squirrel|streetcar|
sunflower|sweet pepper|table|tank|telephone|television|tiger|tractor|train|trout|tulip|turtle|
wardrobe|whale|willow tree|wolf|woman|worm""".replace("\n", "").split("|")
)
DIGITS_CLASSES = tuple(str(i) for i in range(10))
KNOWN_CLASS_NAMES = {"cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES, "digits": DIGITS_CLASSES}


def stand_in(
    name: str, num_classes: int, image_shape, n_train_per_class: int, n_test_per_class: int, seed: int
) -> Dataset:
    """Synthetic, learnable, class-structured images with a real dataset's shape (source="stand-in").

    Each class has a smooth random prototype (random low-resolution colour blobs, upsampled);
    each image is its class prototype, shifted by a few pixels, with a random brightness change
    and pixel noise. A small ConvNet learns it well above chance within a few hundred steps,
    so notebooks' smoke profiles exercise every code path in seconds without any download.
    Class names are the real dataset's where podd knows them, else ``"class 0"``, ...
    """
    c, h, w = (int(v) for v in image_shape)
    if num_classes < 1 or min(c, h, w) < 1 or n_train_per_class < 1 or n_test_per_class < 0:
        raise ValueError(
            f"stand_in: need num_classes >= 1, a positive image shape, n_train_per_class >= 1 "
            f"and n_test_per_class >= 0; got {num_classes}, {tuple(image_shape)}, "
            f"{n_train_per_class}, {n_test_per_class}"
        )
    g = torch.Generator().manual_seed(int(seed))
    low = (max(2, h // 4), max(2, w // 4))
    prototypes = torch.rand(num_classes, c, *low, generator=g) * 2 - 1
    prototypes = torch.nn.functional.interpolate(prototypes, size=(h, w), mode="bicubic", align_corners=False)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(num_classes).repeat_interleave(per_class)
        n = len(y)
        x = prototypes[y]
        # Small random translations (whole-tensor roll per sample via gather on a shifted index grid).
        shift_y = torch.randint(-1, 2, (n,), generator=g)
        shift_x = torch.randint(-1, 2, (n,), generator=g)
        rows = (torch.arange(h)[None, :] - shift_y[:, None]).clamp(0, h - 1)  # (n, h)
        cols = (torch.arange(w)[None, :] - shift_x[:, None]).clamp(0, w - 1)  # (n, w)
        x = x.gather(2, rows[:, None, :, None].expand(n, c, h, w))
        x = x.gather(3, cols[:, None, None, :].expand(n, c, h, w))
        brightness = 1 + 0.2 * torch.randn(n, 1, 1, 1, generator=g)
        noise = 0.25 * torch.randn(n, c, h, w, generator=g)
        x = 128 + 70 * (x * brightness + noise)
        order = torch.randperm(n, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8)[order], y[order]

    x_train, y_train = draw(n_train_per_class)
    x_test, y_test = draw(n_test_per_class)
    known = KNOWN_CLASS_NAMES.get(name)
    names = (
        list(known) if known is not None and len(known) == num_classes else [f"class {i}" for i in range(num_classes)]
    )
    return Dataset(name, x_train, y_train, x_test, y_test, names, source="stand-in")


def _stratified_indices(y: torch.Tensor, n_held: int, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = len(y)
    k = int(torch.unique(y).numel())
    if not k <= n_held <= n - k:
        raise ValueError(
            f"{what}: {n_held} must be between the number of classes ({k}) and the number "
            f"of images minus the number of classes ({n - k}) so that every class is on both sides"
        )
    keep, held = train_test_split(np.arange(n), test_size=n_held, stratify=y.numpy(), random_state=int(seed))
    return np.sort(keep), np.sort(held)


def train_val_split(ds: Dataset, n_val: int, seed: int) -> Dataset:
    """Hold out a stratified validation set of ``n_val`` training images.

    Returns a Dataset whose training split is the rest of the training set and whose *test*
    split is the validation part (the real test set is not touched). Its source is ``"subset"``
    (a stand-in stays ``"stand-in"``).
    """
    keep, held = _stratified_indices(ds.y_train, int(n_val), seed, f"train_val_split(n_val={n_val})")
    keep, held = torch.from_numpy(keep), torch.from_numpy(held)
    return Dataset(
        ds.name,
        ds.x_train[keep],
        ds.y_train[keep],
        ds.x_train[held],
        ds.y_train[held],
        list(ds.class_names),
        source="stand-in" if ds.source == "stand-in" else "subset",
    )


def subset(
    ds: Dataset, train_per_class: int | None = None, test_per_class: int | None = None, seed: int = 0
) -> Dataset:
    """A class-balanced random part of ``ds`` (e.g. 10% of CIFAR-10: 500 train and 100 test per class).

    ``None`` keeps a split whole. Classes with fewer images keep all of them. Source ``"subset"``
    (a stand-in stays ``"stand-in"``).
    """
    g = torch.Generator().manual_seed(int(seed))

    def pick(y: torch.Tensor, per_class: int | None) -> torch.Tensor:
        if per_class is None:
            return torch.arange(len(y))
        if per_class < 1:
            raise ValueError(f"subset: images per class must be >= 1, got {per_class}")
        # Rank images within their class by a random key; keep the first `per_class` of each class.
        key = torch.rand(len(y), generator=g)
        order = torch.argsort(y.double() * 2 + key.double(), stable=True)  # grouped by class, shuffled
        sorted_y = y[order]
        first = torch.searchsorted(sorted_y, sorted_y, right=False)
        rank = torch.arange(len(y)) - first
        return torch.sort(order[rank < per_class]).values

    tr, te = pick(ds.y_train, train_per_class), pick(ds.y_test, test_per_class)
    return Dataset(
        ds.name,
        ds.x_train[tr],
        ds.y_train[tr],
        ds.x_test[te],
        ds.y_test[te],
        list(ds.class_names),
        source="stand-in" if ds.source == "stand-in" else "subset",
    )

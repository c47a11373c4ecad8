"""Reading every dataset podd knows from its official on-disk format, with download and caching.

Layout under ``data_root()`` (``root`` > ``$PODD_DATA`` > ``~/.cache/podd``)::

    cifar-10-batches-py/  cifar-100-python/     torchvision's folders (its download and md5 checks)
    CUB_200_2011/         tiny-imagenet-200/    the official archives, extracted as they come
    CUB_200_2011.tgz      tiny-imagenet-200.zip the archives themselves (checked by md5)
    cache/<name>.pt                             decoded uint8 tensors, so the second load is fast

Downloads and extractions go to temporary names first and are renamed into place only once
complete and verified, and the decoded cache is written atomically, so an interrupted or
corrupted download never leaves something that a later run would mistake for good data.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from podd.data.dataset import Dataset, data_root
from podd.io import atomic_path, remove_orphan_tmp, torch_save, verify_checksum, with_checksum
from podd.notes import note_once

DATASET_NAMES = ("digits", "cifar10", "cifar100", "cub200", "tinyimagenet")
PATH_SCHEMES = ("imagefolder", "npz")
#: Class count and image shape (c, h, w) of each built-in dataset, known without loading it
#: (CUB200 is resized to 32×32 as in the paper).
DATASET_SHAPES: dict[str, tuple[int, tuple[int, int, int]]] = {
    "digits": (10, (1, 8, 8)),
    "cifar10": (10, (3, 32, 32)),
    "cifar100": (100, (3, 32, 32)),
    "cub200": (200, (3, 32, 32)),
    "tinyimagenet": (200, (3, 64, 64)),
}
# Other spellings of the built-in names, after case and separators are dropped.
_ALIASES = {"cub2002011": "cub200", "tinyimagenet200": "tinyimagenet"}

# Official archives (URL and md5 of the file as published by its authors).
CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_ARCHIVE = "CUB_200_2011.tgz"
CUB_FOLDER = "CUB_200_2011"
CUB_IMAGE_SIZE = 32                     # the paper resizes CUB to 32x32 (aspect ratio not kept)
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_ARCHIVE = "tiny-imagenet-200.zip"
TINY_FOLDER = "tiny-imagenet-200"

DIGITS_TEST_SIZE = 360                  # 1437 train / 360 test, stratified
DIGITS_SPLIT_SEED = 0
ORPHAN_TMP_AGE_S = 3600                # see _cached
CACHE_FORMAT = 1                        # bump when the cache layout changes: old files are rebuilt
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Part of the cache key of npz and image-folder data: bumped when reading the same files gives
# other arrays or refuses them, so that a cache written by an older reader is not reused
# (r2: 16-bit PNGs scaled to 8 bits instead of clipped, duplicate class_names refused).
LOCAL_READER = "r2"


class ChecksumError(ValueError):
    """A file's checksum differs from the published one (corrupted or incomplete download)."""


def valid_names_text() -> str:
    return ", ".join(DATASET_NAMES) + ", imagefolder:PATH, npz:PATH"


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------

def canonical_name(name: str) -> str:
    """The one spelling of a dataset name that podd uses everywhere (data, presets, run names).

    Built-in names ignore case, ``-``, ``_`` and spaces: ``CIFAR10``, ``cifar-10`` and
    ``CIFAR_10`` are ``cifar10``; ``Digits`` is ``digits``; ``CUB-200`` and ``CUB_200_2011`` are
    ``cub200``; ``Tiny-ImageNet`` and ``tiny-imagenet-200`` are ``tinyimagenet``. Local data keeps
    its path exactly as given (``npz:PATH``, ``imagefolder:PATH``; only the scheme is lower-cased).
    Anything else is a ValueError listing the valid names.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}; valid: {valid_names_text()}")
    scheme, sep, path = name.strip().partition(":")
    if sep and scheme.strip().lower() in PATH_SCHEMES:
        scheme = scheme.strip().lower()
        if not path:
            raise ValueError(f"dataset {name!r}: give a path after '{scheme}:', e.g. {scheme}:/data/my_images")
        return f"{scheme}:{path}"
    key = "".join(ch for ch in name.lower() if ch not in "-_ \t")
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {valid_names_text()}")
    return key


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Load a dataset as uint8 NCHW tensors with int64 labels and class names.

    ``name``: one of ``digits``, ``cifar10``, ``cifar100``, ``cub200``, ``tinyimagenet`` (any
    spelling :func:`canonical_name` accepts), ``imagefolder:PATH`` or ``npz:PATH``. Files are
    looked for (and downloaded to, when ``download`` is true) under ``data_root(root)``;
    decoded tensors are cached under ``data_root(root)/cache`` so that the second load does not decode images again.
    """
    key = canonical_name(name)
    scheme, sep, path = key.partition(":")
    if sep:
        return _load_path_dataset(scheme, Path(path).expanduser(), key, data_root(root))
    if key == "digits":
        return _load_digits()   # bundled with scikit-learn: nothing to download or cache
    root_dir = data_root(root)
    reader = {"cifar10": _read_cifar10, "cifar100": _read_cifar100,
              "cub200": _read_cub200, "tinyimagenet": _read_tinyimagenet}[key]
    return _cached(root_dir / "cache" / f"{key}.pt", key, lambda: reader(root_dir, download))


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------

def _cached(path: Path, key: str, build: Callable[[], Dataset], name: str | None = None) -> Dataset:
    """Return the dataset cached at ``path`` if it is valid for ``key``, else build and cache it.

    ``name`` overrides the cached name (the same file may be spelt differently on each load).
    The build (download, extraction, decoding) holds a lock file in the data folder, so that the
    ranks or jobs sharing a fresh data folder build it once: the others wait, then read the cache.
    """
    ds = _read_cache(path, key, name)
    if ds is not None:
        return ds
    with _build_lock(path, name or key):
        ds = _read_cache(path, key, name)   # built by the process this one waited for
        if ds is None:
            ds = _build_and_cache(path, key, build)
    return ds


def _read_cache(path: Path, key: str, name: str | None) -> Dataset | None:
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("format") == CACHE_FORMAT and blob.get("key") == key and \
                    verify_checksum(blob, path, ""):    # a damaged cache is rebuilt
                return Dataset(name or blob["name"], blob["x_train"], blob["y_train"], blob["x_test"],
                               blob["y_test"], list(blob["class_names"]), blob["source"],
                               notes=list(blob.get("notes") or []))
        except Exception:   # unreadable, damaged or foreign file: rebuild it rather than fail
            pass
    return None


@contextlib.contextmanager
def _build_lock(path: Path, what: str):
    """Hold ``ROOT/.NAME.lock`` for the cache file ``ROOT/cache/NAME.pt`` (waiting, with a note,
    while another process holds it). A data folder this user cannot write to is read unlocked."""
    from filelock import FileLock, Timeout

    root = path.parent.parent
    lock_path = root / f".{path.stem}.lock"
    lock: FileLock | None = FileLock(str(lock_path))
    try:
        root.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            note_once(f"waiting for another process that is preparing {what} in {root} (it "
                      f"holds {lock_path})")
            lock.acquire()
    except OSError:
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
            # nothing left behind (as RunDir.locked). A process still waiting holds the old
            # file and finds the cache when it gets it; only after a failed build could it
            # and a newcomer build at the same time, as every process did before this lock.
            with contextlib.suppress(OSError):
                lock_path.unlink()


def _build_and_cache(path: Path, key: str, build: Callable[[], Dataset]) -> Dataset:
    ds = build()
    # Temporary files of a process killed while writing a cache (an hour old: another process
    # may be writing its own right now).
    remove_orphan_tmp(path.parent, older_than_s=ORPHAN_TMP_AGE_S)
    try:
        torch_save(path, with_checksum({
            "format": CACHE_FORMAT, "key": key, "name": ds.name, "x_train": ds.x_train,
            "y_train": ds.y_train, "x_test": ds.x_test, "y_test": ds.y_test,
            "class_names": list(ds.class_names), "source": ds.source, "notes": list(ds.notes)}))
    except OSError as error:    # a read-only data folder still lets the user load the data
        import warnings
        warnings.warn(f"could not write the dataset cache {path}: {error}", stacklevel=4)
    return ds


def _file_signature(paths: Sequence[Path], base: Path) -> str:
    """A key that changes when any file is added, removed, resized or modified."""
    h = hashlib.sha256(str(base.resolve()).encode())
    for p in paths:
        st = p.stat()
        h.update(f"\0{p.relative_to(base)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# download and extraction
# --------------------------------------------------------------------------------------------

def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _ensure_extracted(root: Path, folder: str, required: Sequence[str], archive: str, url: str, md5: str,
                      download: bool, title: str, layout: str) -> Path:
    """Make sure ``root/folder`` holds ``required`` files: extract a local archive or download it.

    The archive is checked by md5 before it is extracted; extraction goes to a temporary folder
    that is renamed into place only when complete.
    """
    target = root / folder
    missing = [r for r in required if not (target / r).exists()]
    if not missing:
        return target
    archive_path = root / archive
    if not archive_path.is_file():
        if not download:
            raise FileNotFoundError(
                f"{title} not found: looked in {target} (missing: {', '.join(missing)}). Expected layout:\n"
                f"{layout}\nEither allow downloading (drop --no-download / use download=True), or download "
                f"{url} yourself and put it at {archive_path} (or extract it into {root}).")
        _download(url, archive_path, md5, title)
    actual = md5sum(archive_path)
    if actual != md5:
        raise ChecksumError(
            f"{title}: checksum mismatch for {archive_path}: md5 {actual}, expected {md5}. The file is "
            f"corrupted or incomplete; delete it and load again to download it from {url}.")
    from torchvision.datasets.utils import extract_archive

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{folder}-", dir=root))
    try:
        extract_archive(str(archive_path), str(tmp))
        if not (tmp / folder).is_dir():
            raise FileNotFoundError(f"{title}: archive {archive_path} does not contain the folder {folder}/")
        still_missing = [r for r in required if not (tmp / folder / r).exists()]
        if still_missing:
            raise FileNotFoundError(f"{title}: archive {archive_path} lacks {', '.join(still_missing)} "
                                    f"inside {folder}/")
        if target.exists():     # an incomplete earlier folder: replace it
            shutil.rmtree(target)
        os.replace(tmp / folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download(url: str, dest: Path, md5: str, title: str) -> None:
    """Download ``url`` to ``dest`` through a temporary file; verify the md5 before renaming.

    Plain urllib (http, https and file URLs), streamed in blocks with a progress bar.
    """
    import urllib.request

    from tqdm import tqdm

    with atomic_path(dest) as tmp:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "podd"})
            with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as out:
                total = response.headers.get("Content-Length")
                with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                          desc=f"downloading {dest.name}", disable=None, leave=False) as bar:
                    while block := response.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
        except OSError as error:    # URLError, HTTPError, timeouts, disk full
            raise FileNotFoundError(
                f"{title}: downloading {url} failed ({type(error).__name__}: {error}). Download it "
                f"yourself and put it at {dest}, or check the network.") from error
        actual = md5sum(tmp)
        if actual != md5:
            raise ChecksumError(f"{title}: checksum mismatch for the download from {url}: md5 {actual}, "
                                f"expected {md5} (corrupted or incomplete); nothing was kept, try again.")


# --------------------------------------------------------------------------------------------
# image decoding
# --------------------------------------------------------------------------------------------

class UnreadableImageError(ValueError):
    """An image file that PIL cannot decode (not an image, truncated, corrupted)."""

    def __init__(self, path: Path, error: BaseException):
        super().__init__(f"{path} is not a readable image ({type(error).__name__}: {error}); "
                         f"remove or replace it (a cut-off download or a stray file)")


def _open_image(path: Path):
    """PIL's Image.open, with its failures (not an image, truncated) as UnreadableImageError."""
    from PIL import Image

    try:
        return Image.open(path)
    except (OSError, SyntaxError, ValueError) as error:   # UnidentifiedImageError is an OSError
        raise UnreadableImageError(path, error) from error


# PIL's modes of 16-bit grayscale (a 16-bit grayscale PNG opens as "I;16"; older Pillows gave "I").
# PIL's convert to "L" or "RGB" clips these at 255 instead of scaling: _decode scales them itself.
# (16-bit colour PNGs open as "RGB"/"RGBA", already scaled to 8 bits by PIL.)
GRAY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _gray16_to_8(img):
    """A 16-bit grayscale image → 8-bit "L", scaled by the 16-bit range (v · 255 / 65535, rounded)."""
    from PIL import Image

    values = np.clip(np.asarray(img).astype(np.int64), 0, 65535)    # decodes
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))


def _decode(path: Path, size: tuple[int, int] | None = None, mode: str = "RGB") -> np.ndarray:
    """One image file → uint8 (H, W, C). ``size`` (W, H) resizes with antialiased bilinear.
    16-bit grayscale is scaled to 8 bits (:data:`GRAY16_MODES`), not clipped."""
    from PIL import Image

    with _open_image(path) as img:
        try:
            if img.mode in GRAY16_MODES:
                img = _gray16_to_8(img)
            img = img.convert(mode)     # decodes: a truncated file fails here
            if size is not None and img.size != size:
                img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
            array = np.asarray(img, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as error:
            raise UnreadableImageError(path, error) from error
    return array[:, :, None] if array.ndim == 2 else array


def _decode_all(paths: Sequence[Path], desc: str, size: tuple[int, int] | None = None,
                mode: str = "RGB") -> torch.Tensor:
    """Decode many image files in parallel threads (PIL releases the GIL) → uint8 (N, C, H, W)."""
    from tqdm import tqdm

    if not paths:
        raise FileNotFoundError(f"{desc}: no images found")
    workers = min(8, os.cpu_count() or 1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            arrays = list(tqdm(pool.map(lambda p: _decode(p, size, mode), paths), total=len(paths),
                               desc=f"decoding {desc}", unit="img", disable=None, leave=False))
    except UnreadableImageError as error:
        raise ValueError(f"{desc}: {error}") from None
    first = arrays[0].shape
    odd = next((i for i, a in enumerate(arrays) if a.shape != first), None)
    if odd is not None:
        raise ValueError(f"{desc}: images differ in size: {paths[0]} is {first[1]}x{first[0]} but {paths[odd]} "
                         f"is {arrays[odd].shape[1]}x{arrays[odd].shape[0]} (width x height); all images must "
                         f"share one size (resize them first)")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _readable(name: str) -> str:
    return " ".join(name.replace("_", " ").split())


# --------------------------------------------------------------------------------------------
# the datasets
# --------------------------------------------------------------------------------------------

def _load_digits() -> Dataset:
    """scikit-learn's 1797 8x8 handwritten digits (values 0..16 scaled to 0..255), 1 channel."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]      # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_SIZE, stratify=y,
                                   random_state=DIGITS_SPLIT_SEED)
    train, test = np.sort(train), np.sort(test)
    return Dataset("digits", torch.from_numpy(x[train]), torch.from_numpy(y[train]),
                   torch.from_numpy(x[test]), torch.from_numpy(y[test]), [str(i) for i in range(10)])


def _read_cifar(cls, name: str, root: Path, download: bool) -> Dataset:
    """CIFAR through torchvision (its download and md5 checks), converted to uint8 NCHW."""
    folder = root / cls.base_folder
    archive = root / cls.filename
    if not folder.is_dir() and archive.is_file():
        # A local archive: check it here, so that a bad one is reported rather than re-downloaded,
        # and a good one is extracted by torchvision without touching the network.
        actual = md5sum(archive)
        if actual != cls.tgz_md5:
            raise ChecksumError(f"{name}: checksum mismatch for {archive}: md5 {actual}, expected {cls.tgz_md5}; "
                                f"delete it and load again to download it from {cls.url}.")
        download = True
    if not download and not folder.is_dir():
        raise FileNotFoundError(
            f"{name} not found: looked in {folder}. Expected torchvision's layout ({cls.base_folder}/ with "
            f"{', '.join(f for f, _ in cls.train_list + cls.test_list)}, {cls.meta['filename']}); allow "
            f"downloading, or download {cls.url} and extract it into {root}.")
    try:
        splits = [cls(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as error:
        raise ChecksumError(
            f"{name}: the files in {folder} are missing or failed torchvision's md5 check ({error}). Delete "
            f"{folder} (and {root / cls.filename}) and load again with downloading allowed "
            f"({cls.url}).") from error
    except OSError as error:
        raise FileNotFoundError(f"{name}: downloading {cls.url} into {root} failed ({error}); download it "
                                f"yourself and extract it into {root}.") from error
    xs = [torch.from_numpy(np.ascontiguousarray(s.data)).permute(0, 3, 1, 2).contiguous() for s in splits]
    ys = [torch.as_tensor(s.targets, dtype=torch.int64) for s in splits]
    return Dataset(name, xs[0], ys[0], xs[1], ys[1], [_readable(c) for c in splits[0].classes])


def _read_cifar10(root: Path, download: bool) -> Dataset:
    from torchvision.datasets import CIFAR10
    return _read_cifar(CIFAR10, "cifar10", root, download)


def _read_cifar100(root: Path, download: bool) -> Dataset:
    from torchvision.datasets import CIFAR100
    return _read_cifar(CIFAR100, "cifar100", root, download)


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _read_cub200(root: Path, download: bool) -> Dataset:
    """CUB-200-2011: the official train/test split, every image resized to 32x32 (as the paper)."""
    required = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "images")
    layout = (f"  {root / CUB_FOLDER}/images.txt, image_class_labels.txt, train_test_split.txt, classes.txt,\n"
              f"  {root / CUB_FOLDER}/images/001.Black_footed_Albatross/*.jpg, ...")
    folder = _ensure_extracted(root, CUB_FOLDER, required, CUB_ARCHIVE, CUB_URL, CUB_MD5, download,
                               "CUB-200-2011", layout)
    images = {int(i): p for i, p in _lines(folder / "images.txt")}
    labels = {int(i): int(c) - 1 for i, c in _lines(folder / "image_class_labels.txt")}   # 1-based
    is_train = {int(i): t == "1" for i, t in _lines(folder / "train_test_split.txt")}
    classes = sorted((int(i), n) for i, n in _lines(folder / "classes.txt"))
    # "001.Black_footed_Albatross" -> "Black footed Albatross"
    class_names = [_readable(n.split(".", 1)[-1]) for _, n in classes]
    ids = sorted(images)
    if set(ids) != set(labels) or set(ids) != set(is_train):
        raise ValueError(f"CUB-200-2011 in {folder}: images.txt, image_class_labels.txt and "
                         f"train_test_split.txt list different image ids; re-extract the archive")
    x = _decode_all([folder / "images" / images[i] for i in ids], "CUB-200-2011",
                    size=(CUB_IMAGE_SIZE, CUB_IMAGE_SIZE))
    y = torch.tensor([labels[i] for i in ids], dtype=torch.int64)
    train = torch.tensor([is_train[i] for i in ids])
    return Dataset("cub200", x[train], y[train], x[~train], y[~train], class_names)


def _read_tinyimagenet(root: Path, download: bool) -> Dataset:
    """Tiny-ImageNet-200: 64x64; test = the official validation split (labels in val_annotations.txt).

    Class order is wnids.txt; class names are the first synonym in words.txt ("goldfish,
    Carassius auratus" -> "goldfish").
    """
    required = ("wnids.txt", "words.txt", "train", "val/val_annotations.txt", "val/images")
    layout = (f"  {root / TINY_FOLDER}/wnids.txt, words.txt, train/<wnid>/images/*.JPEG,\n"
              f"  {root / TINY_FOLDER}/val/val_annotations.txt, val/images/*.JPEG")
    folder = _ensure_extracted(root, TINY_FOLDER, required, TINY_ARCHIVE, TINY_URL, TINY_MD5, download,
                               "Tiny-ImageNet-200", layout)
    wnids = [line[0] for line in _lines(folder / "wnids.txt")]
    index = {w: i for i, w in enumerate(wnids)}
    words = {}
    for line in (folder / "words.txt").read_text().splitlines():
        wnid, _, text = line.partition("\t")
        words[wnid.strip()] = text.split(",")[0].strip()
    class_names = [words.get(w) or w for w in wnids]
    train_paths, train_labels = [], []
    for w in wnids:
        files = sorted(p for p in (folder / "train" / w / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"Tiny-ImageNet-200: no training images in {folder / 'train' / w / 'images'}")
        train_paths += files
        train_labels += [index[w]] * len(files)
    val_paths, val_labels = [], []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        if parts[1] not in index:
            raise ValueError(f"Tiny-ImageNet-200: {folder / 'val' / 'val_annotations.txt'} names class "
                             f"{parts[1]!r}, which is not in wnids.txt")
        val_paths.append(folder / "val" / "images" / parts[0])
        val_labels.append(index[parts[1]])
    x_train = _decode_all(train_paths, "Tiny-ImageNet-200 train")
    x_test = _decode_all(val_paths, "Tiny-ImageNet-200 val")
    return Dataset("tinyimagenet", x_train, torch.tensor(train_labels, dtype=torch.int64),
                   x_test, torch.tensor(val_labels, dtype=torch.int64), class_names)


# --------------------------------------------------------------------------------------------
# users' own data
# --------------------------------------------------------------------------------------------

def _safe_stem(path: Path) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.resolve().name)
    return stem[:40] or "data"


def _load_path_dataset(scheme: str, path: Path, name: str, root: Path) -> Dataset:
    dataset = _read_path_dataset(scheme, path, name, root)
    for note in dataset.notes:      # cached or not: what the reader changed is said every session
        note_once(note)
    return dataset


def _read_path_dataset(scheme: str, path: Path, name: str, root: Path) -> Dataset:
    if scheme == "npz":
        if not path.is_file():
            raise FileNotFoundError(f"npz dataset not found: {path} is not a file. Expected a .npz with keys "
                                    f"x_train, y_train, x_test, y_test (optional class_names)")
        key = _file_signature([path], path.parent) + LOCAL_READER
        return _cached(root / "cache" / f"npz-{_safe_stem(path)}-{key}.pt", key, lambda: read_npz(path, name),
                       name)
    files = _image_folder_files(path)
    key = _file_signature(files["train"] + files["test"], path) + LOCAL_READER
    return _cached(root / "cache" / f"imagefolder-{_safe_stem(path)}-{key}.pt", key,
                   lambda: read_image_folder(path, name, files), name)


def _image_folder_files(path: Path) -> dict[str, list[Path]]:
    layout = (f"expected {path}/train/CLASS/*.png|jpg|jpeg and {path}/test/CLASS/*.png|jpg|jpeg "
              f"(one sub-folder per class, same class names in train and test)")
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
        raise ValueError(f"image folder dataset {path}: test classes {unknown} have no training images in "
                         f"{path / 'train'}")
    every = files["train"] + files["test"]
    _require_two_classes(f"image folder dataset {path}", classes,
                         f"one sub-folder of {path / 'train'} per class")

    def mode_of(p: Path) -> str:
        with _open_image(p) as img:     # reads the header only
            return img.mode

    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            file_modes = list(pool.map(mode_of, every))
    except UnreadableImageError as error:
        raise ValueError(f"image folder dataset {path}: {error}") from None
    modes = set(file_modes)
    mode = "L" if modes <= {"L", "1", *GRAY16_MODES} else "RGB"
    notes = []
    deep = sum(m in GRAY16_MODES for m in file_modes)
    if deep:
        notes.append(f"imagefolder:{path}: {deep} of {len(every)} images are 16-bit grayscale; scaled to "
                     f"the 8 bits podd works with (value × 255 / 65535, rounded)")
    index = {c: i for i, c in enumerate(classes)}
    x = _decode_all(every, f"image folder dataset {path}", mode=mode)
    y = torch.tensor([index[p.parent.name] for p in every], dtype=torch.int64)
    n = len(files["train"])
    return Dataset(name, x[:n], y[:n], x[n:], y[n:], classes, notes=notes)


def _require_two_classes(where: str, class_names: Sequence[str], how: str) -> None:
    """A one-class dataset is refused: any poster "reaches 100 %" on a one-class test set."""
    if len(class_names) < 2:
        raise ValueError(f"{where}: only one class ({', '.join(map(repr, class_names))}); "
                         f"distillation needs at least two (with one class every test image is "
                         f"trivially right, so the accuracy would read 100 %); add {how}")


def read_npz(path: Path, name: str) -> Dataset:
    """An .npz with x_train, y_train, x_test, y_test (uint8 NCHW or NHWC) and optional class_names.

    A file with neither x_test nor y_test is accepted as training data only: its test split is
    empty (hold out a validation split with ``train_val_split``).

    The layout is read from the channel axis: axis 1 of size 1 or 3 means NCHW, else axis 3 of size
    1 or 3 means NHWC. Every problem is reported with the key it concerns.
    """
    where = f"npz dataset {path}"
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise ValueError(f"{where}: cannot be read as .npz ({type(error).__name__}: {error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):   # np.load reads a .npy as one bare array
        raise ValueError(f"{where} is a single .npy array (shape {archive.shape}, dtype {archive.dtype}), "
                         f"not an .npz archive; expected an .npz with keys x_train, y_train (and x_test, "
                         f"y_test): make one with np.savez('data.npz', x_train=x, y_train=y, x_test=xt, "
                         f"y_test=yt)")
    with archive:
        needed = ("x_train", "y_train", "x_test", "y_test")
        train_only = "x_test" not in archive.files and "y_test" not in archive.files
        if train_only:      # e.g. a subset of a training set: the caller holds out a validation split
            needed = ("x_train", "y_train")
        missing = [k for k in needed if k not in archive.files]
        if missing:
            raise ValueError(f"{where}: missing key {', '.join(repr(k) for k in missing)} (found keys "
                             f"{sorted(archive.files)}); expected x_train, y_train, x_test, y_test (the test pair may "
                             f"be left out together) and optional class_names")
        arrays = {}
        for k in needed + (("class_names",) if "class_names" in archive.files else ()):
            try:
                arrays[k] = archive[k]
            except ValueError as error:   # object arrays need pickle, which is refused for safety
                if "pickle" not in str(error):
                    raise ValueError(f"{where}: key {k!r} could not be read ({error}); the file "
                                     f"is damaged: write it again") from error
                raise ValueError(f"{where}: an array is stored as Python objects ({error}); save "
                                 f"plain numeric arrays, and class_names as a string array") from error
            except Exception as error:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError
                raise ValueError(f"{where}: key {k!r} could not be read ({type(error).__name__}: "
                                 f"{error}); the file is damaged (cut off, or corrupted in a copy): "
                                 f"write it again") from error
        if train_only:
            arrays["x_test"] = arrays["x_train"][:0]
            arrays["y_test"] = arrays["y_train"][:0]
        names = arrays.get("class_names")
    xs = {}
    for split in ("train", "test"):
        k = f"x_{split}"
        x = arrays[k]
        if x.dtype != np.uint8:
            raise ValueError(f"{where}: key {k!r} has dtype {x.dtype}; expected uint8 images with values 0..255 "
                             f"({_to_uint8_hint(x)})")
        if x.ndim != 4:
            raise ValueError(f"{where}: key {k!r} has shape {x.shape} (rank {x.ndim}); expected rank 4, "
                             f"(N, C, H, W) or (N, H, W, C) with C = 1 or 3")
        if x.shape[1] in (1, 3):
            pass
        elif x.shape[3] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"{where}: key {k!r} has shape {x.shape}: neither axis 1 nor axis 3 is a channel "
                             f"axis of size 1 or 3; expected (N, C, H, W) or (N, H, W, C)")
        xs[split] = x
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise ValueError(f"{where}: key 'x_train' holds images of shape {xs['train'].shape[1:]} (C, H, W) but "
                         f"'x_test' holds {xs['test'].shape[1:]}; both splits must share one image shape")
    ys = {}
    for split in ("train", "test"):
        k = f"y_{split}"
        y = arrays[k]
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{where}: key {k!r} has dtype {y.dtype}; expected integer class labels")
        if y.ndim != 1:
            raise ValueError(f"{where}: key {k!r} has shape {y.shape} (rank {y.ndim}); expected rank 1 (N,)")
        if len(y) != len(xs[split]):
            raise ValueError(f"{where}: key {k!r} has {len(y)} labels but 'x_{split}' has {len(xs[split])} "
                             f"images; lengths must match")
        if len(y) and y.min() < 0:
            raise ValueError(f"{where}: key {k!r} has negative labels (min {y.min()}); labels must be 0..K-1")
        ys[split] = y.astype(np.int64)
    if not len(ys["train"]):
        raise ValueError(f"{where}: key 'y_train' is empty; a dataset needs training images")
    notes: list[str] = []
    class_names, ys = _npz_classes(where, names, ys, notes)
    return Dataset(name, torch.from_numpy(np.ascontiguousarray(xs["train"])), torch.from_numpy(ys["train"]),
                   torch.from_numpy(np.ascontiguousarray(xs["test"])), torch.from_numpy(ys["test"]), class_names,
                   notes=notes)


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
        return (f"values reach {hi:.6g}: for 16-bit images convert with (x / 257).round().astype(np.uint8) "
                f"(or scale by your images' own bit depth)")
    return (f"values span {lo:.4g}..{hi:.4g}, outside 0..255 (normalised images?): undo the normalisation, or "
            f"rescale with ((x - x.min()) / (x.max() - x.min()) * 255).round().astype(np.uint8)")


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
        raise ValueError(f"{where}: key 'y_test' has label(s) {_label_list(only_test)} that never occur "
                         f"in 'y_train' ({count} test images): a class without training images cannot "
                         f"be distilled; drop those test images or add training images of that class")
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
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise ValueError(f"{where}: key 'class_names' must be a 1-D string array, got dtype {names.dtype} "
                             f"and shape {names.shape}")
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
        seen: dict[str, list[int]] = {}
        for k, n in enumerate(class_names):
            seen.setdefault(n, []).append(k)
        twice = {n: ks for n, ks in seen.items() if len(ks) > 1}
        if twice:
            listed = "; ".join(f"{n!r} at {', '.join(map(str, ks))}" for n, ks in list(twice.items())[:8])
            raise ValueError(f"{where}: key 'class_names' names {len(twice)} class(es) more than once ({listed}"
                             f"{'; …' if len(twice) > 8 else ''}); each class needs its own name: rename "
                             f"them, or merge their labels into one class and drop the extra names")
        for split, y in ys.items():
            if len(y) and y.max() >= len(class_names):
                raise ValueError(f"{where}: key 'y_{split}' has label {int(y.max())}, out of range for "
                                 f"{len(class_names)} class_names (labels must be 0..{len(class_names) - 1})")
        train = _train_labels_covering_test(where, ys)
        empty = [k for k in range(len(class_names)) if k not in set(train.tolist())]
        if empty:
            listed = ", ".join(f"{k} ({class_names[k]!r})" for k in empty[:8])
            raise ValueError(f"{where}: class_names lists {len(class_names)} classes but {len(empty)} of "
                             f"them have no training images: {listed}{', …' if len(empty) > 8 else ''}; "
                             f"each would get an empty poster area. Remove them from class_names and "
                             f"renumber the labels 0..K-1, or add their images")
    else:
        train = _train_labels_covering_test(where, ys)
        class_names = [f"class {int(v)}" for v in train]   # the file's own labels
        if not np.array_equal(train, np.arange(len(train))):
            kind = ("1-based" if np.array_equal(train, np.arange(1, len(train) + 1)) else
                    "not consecutive")
            mapping = ", ".join(f"{int(v)}→{k}" for k, v in enumerate(train[:8]))
            notes.append(f"{where.replace('npz dataset ', 'npz:')}: labels {_label_list(train)} are "
                         f"{kind}; renumbered 0..{len(train) - 1} in sorted order ({mapping}"
                         f"{', …' if len(train) > 8 else ''}); the class names keep the file's "
                         f"labels ({class_names[-1]!r} is class {len(train) - 1}). Store "
                         f"class_names in the file to name the classes.")
            ys = {split: np.searchsorted(train, y).astype(np.int64) for split, y in ys.items()}
    _require_two_classes(where, class_names, "images of at least two classes to the file")
    return class_names, ys

"""The one entry point to every dataset: a name, in any spelling podd accepts, is made canonical
(:func:`canonical_name`) and handed to its reader (:func:`load_dataset`).

The built-in names are podd.data.builtin's, the local schemes (``npz:PATH``, ``imagefolder:PATH``)
podd.data.local's; this module only spells and dispatches.
"""

from __future__ import annotations

import os
from pathlib import Path

from podd.data.builtin import DATASET_NAMES, READERS, read_digits
from podd.data.cache import cached
from podd.data.dataset import Dataset, data_root
from podd.data.local import PATH_SCHEMES, load_local

# Other spellings of the built-in names, after case and separators are dropped.
_ALIASES = {"cub2002011": "cub200", "tinyimagenet200": "tinyimagenet"}


def valid_names_text() -> str:
    return ", ".join(DATASET_NAMES) + ", imagefolder:PATH, npz:PATH"


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
        return load_local(scheme, Path(path).expanduser(), key, data_root(root))
    if key == "digits":
        return read_digits()  # bundled with scikit-learn: nothing to download or cache
    root_dir = data_root(root)
    reader = READERS[key]
    return cached(root_dir / "cache" / f"{key}.pt", key, lambda: reader(root_dir, download))

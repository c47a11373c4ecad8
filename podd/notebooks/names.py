"""How a notebook names a dataset: for people (titles, tables) and in output file names."""

from __future__ import annotations

import os
import re

PRETTY_NAMES = {
    "digits": "digits (scikit-learn 8×8)",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "cub200": "CUB200",
    "tinyimagenet": "Tiny-ImageNet",
}


def pretty(dataset: str) -> str:
    return PRETTY_NAMES.get(dataset, dataset)


# Not podd.io.safe_filename: that keeps a spec's whole path ("npz:/data/x.npz" ->
# "npz__data_x.npz") where slug keeps scheme and file stem ("npz_x"), and it neither merges runs
# of odd characters nor strips "_" at the ends. The notebooks' output files (paper_figures/) are
# named with slug, so switching would rename them for any dataset given as a path.
def slug(dataset: str) -> str:
    """A file-name-safe short name for a dataset spec (``npz:/data/x.npz`` → ``npz_x``)."""
    if ":" in dataset:
        scheme, path = dataset.split(":", 1)
        dataset = f"{scheme}_{os.path.splitext(os.path.basename(path.rstrip('/')))[0]}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset).strip("_") or "dataset"

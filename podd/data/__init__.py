"""podd's data layer: every dataset the paper uses, users' own data, and the ZCA preprocessing.

>>> from podd.data import load_dataset, make_preprocessor, summary
>>> ds = load_dataset("digits")            # or cifar10, cifar100, cub200, tinyimagenet,
>>> print(summary(ds))                     #    imagefolder:PATH, npz:PATH
>>> pre = make_preprocessor(ds, zca=True)  # fitted on ds.x_train, cached on disk
>>> x = pre(ds.x_train[:16])               # float32 network input; pre.inverse(x) is in [0, 1]

Modules, as torchvision.datasets: ``dataset`` (the Dataset record, data_root, summary, stand-ins,
splits), ``registry`` (dataset names and the load_dataset entry point), ``builtin`` (the paper's
datasets: names, shapes, readers), ``local`` (npz and image folders, with their checks),
``download`` (download, md5 and extraction), ``images`` (image decoding), ``cache`` (the decoded
cache and its build lock), ``preprocess`` (ZCA and standardisation).
"""

from podd.data.builtin import DATASET_NAMES, DATASET_SHAPES
from podd.data.dataset import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    Dataset,
    data_root,
    stand_in,
    subset,
    summary,
    train_val_split,
)
from podd.data.download import ChecksumError
from podd.data.preprocess import Preprocessor, fit_standardize, fit_zca, make_preprocessor
from podd.data.registry import canonical_name, load_dataset

__all__ = [
    "DATASET_NAMES",
    "DATASET_SHAPES",
    "canonical_name",
    "Dataset",
    "load_dataset",
    "data_root",
    "summary",
    "stand_in",
    "train_val_split",
    "subset",
    "Preprocessor",
    "make_preprocessor",
    "fit_zca",
    "fit_standardize",
    "ChecksumError",
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
]

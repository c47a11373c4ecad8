"""podd's data layer: every dataset the paper uses, users' own data, and the ZCA preprocessing.

>>> from podd.data import load_dataset, make_preprocessor, summary
>>> ds = load_dataset("digits")            # or cifar10, cifar100, cub200, tinyimagenet,
>>> print(summary(ds))                     #    imagefolder:PATH, npz:PATH
>>> pre = make_preprocessor(ds, zca=True)  # fitted on ds.x_train, cached on disk
>>> x = pre(ds.x_train[:16])               # float32 network input; pre.inverse(x) is in [0, 1]

Modules: ``dataset`` (the Dataset record, data_root, summary, stand-ins, splits), ``sources``
(reading, downloading and caching each format), ``preprocess`` (ZCA and standardisation).
"""

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
from podd.data.preprocess import Preprocessor, fit_standardize, fit_zca, make_preprocessor
from podd.data.sources import DATASET_NAMES, DATASET_SHAPES, ChecksumError, canonical_name, load_dataset

__all__ = [
    "DATASET_NAMES", "DATASET_SHAPES", "canonical_name", "Dataset", "load_dataset", "data_root",
    "summary", "stand_in", "train_val_split", "subset", "Preprocessor", "make_preprocessor",
    "fit_zca", "fit_standardize", "ChecksumError",
    "CIFAR10_CLASSES", "CIFAR100_CLASSES",
]

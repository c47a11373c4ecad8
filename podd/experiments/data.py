"""The data of an experiment under each profile, and the request that loads it again elsewhere.

``smoke`` uses digits when asked for digits and otherwise a synthetic stand-in
(:func:`podd.data.stand_in`) with the requested dataset's image shape and class count; ``quick``
and ``paper`` use the real dataset. A job that runs on another machine (Slurm) is sent the
:class:`DataRequest` that made the data, not the images, and loads them itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from podd import data
from podd.experiments.cache import SessionCache
from podd.presets import PROFILES

#: id(ds) -> (ds, its DataRequest) for every dataset load_data made; the dataset is kept so its id
#: cannot be reused by another object while the entry exists.
REQUESTS = SessionCache("data requests")
#: DataRequest -> dataset, for jobs that load their data themselves (once per process).
LOADED = SessionCache("loaded data")


def _stand_in_sizes(num_classes: int) -> tuple[int, int]:
    """Images per class (train, test) for a smoke stand-in: small, but enough per class."""
    if num_classes <= 10:
        return 60, 20
    return 12, 4


def load_data(dataset: str, profile: str, *, root=None, seed: int = 0, n_val: int | None = None):
    """The dataset an experiment uses under ``profile`` (one of :data:`podd.presets.PROFILES`).

    smoke: digits (real, bundled with scikit-learn) when ``dataset == "digits"``; for the paper's
    datasets a synthetic stand-in with their class count and image shape; local data
    (``npz:PATH``, ``imagefolder:PATH``) is read as it is, never downloaded. quick / paper: the
    real dataset (downloaded and cached by :func:`podd.data.load_dataset`). ``n_val``: hold out a
    stratified validation split of the training set and use it as the test set (for data with no
    test split, e.g. ``npz:`` files); the result is labelled a subset. The request is remembered
    (:func:`request_for`).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    dataset = data.canonical_name(dataset)
    if profile == "smoke" and dataset in data.DATASET_SHAPES and dataset != "digits":
        num_classes, shape = data.DATASET_SHAPES[dataset]
        n_train, n_test = _stand_in_sizes(num_classes)
        ds = data.stand_in(dataset, num_classes, shape, n_train, n_test, seed)
    else:
        ds = data.load_dataset(dataset, root=root, download=(profile != "smoke"))
    if n_val:
        ds = data.train_val_split(ds, n_val=n_val, seed=seed)
    REQUESTS.put(id(ds), (ds, DataRequest(dataset, profile, None if root is None else str(root), seed, n_val)))
    return ds


@dataclass(frozen=True)
class DataRequest:
    """How :func:`load_data` made a dataset: what a job on another machine receives instead of
    the images (a Slurm job loads them itself, from the same cache or download)."""

    dataset: str
    profile: str
    root: str | None
    seed: int
    n_val: int | None

    def load(self):
        """The dataset, loaded once per process."""
        return LOADED.get(
            self, lambda: load_data(self.dataset, self.profile, root=self.root, seed=self.seed, n_val=self.n_val)
        )


def request_for(ds) -> DataRequest | None:
    """The :class:`DataRequest` that made ``ds`` (this very object), or None."""
    known = REQUESTS.peek(id(ds))
    return None if known is None or known[0] is not ds else known[1]


def data_of(payload):
    """What a job was sent, as a dataset: a :class:`DataRequest` is loaded (once per process)."""
    return payload.load() if isinstance(payload, DataRequest) else payload

"""The data a notebook uses under each profile, and the honest words that go with it.

``smoke`` uses digits when asked for digits and otherwise a synthetic stand-in
(:func:`podd.data.stand_in`) with the requested dataset's image shape and class count; numbers on
a stand-in are NOT results on that dataset, and :func:`data_note` / :func:`measured_on` say so.
``quick`` and ``paper`` use the real dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

# DATASET_SHAPES: the paper's datasets (and digits), class count and image shape (c, h, w) — what
# a smoke stand-in must imitate.
from podd.data.builtin import DATASET_SHAPES
from podd.notebooks.cache import SessionCache
from podd.notebooks.names import pretty
from podd.notebooks.profiles import resolve_profile

#: id(ds) -> (ds, its DataRequest) for every dataset load_for_profile made; the dataset is kept so
#: its id cannot be reused by another object while the entry exists.
REQUESTS = SessionCache("data requests")
#: DataRequest -> dataset, for jobs that load their data themselves (once per process).
LOADED = SessionCache("loaded data")


def _stand_in_sizes(num_classes: int) -> tuple[int, int]:
    """Images per class (train, test) for a smoke stand-in: small, but enough per class."""
    if num_classes <= 10:
        return 60, 20
    return 12, 4


def load_for_profile(dataset: str, profile: str, *, root=None, seed: int = 0,
                     n_val: int | None = None, verbose: bool = True):
    """The dataset a notebook should use under ``profile``, with a printed note saying what it is.

    smoke: digits (real, bundled with scikit-learn) when ``dataset == "digits"``; for the paper's
    datasets a synthetic stand-in with their class count and image shape; local data
    (``npz:PATH``, ``imagefolder:PATH``) is read as it is, never downloaded. quick / paper: the real dataset
    (downloaded and cached by :func:`podd.data.load_dataset`). ``n_val``: hold out a stratified
    validation split of the training set and use it as the test set (for data with no test split,
    e.g. ``npz:`` files); the result is labelled a subset.
    """
    from podd import data

    profile = resolve_profile(profile)
    dataset = data.canonical_name(dataset)
    if profile == "smoke" and dataset in DATASET_SHAPES and dataset != "digits":
        num_classes, shape = DATASET_SHAPES[dataset]
        n_train, n_test = _stand_in_sizes(num_classes)
        ds = data.stand_in(dataset, num_classes, shape, n_train, n_test, seed)
    else:
        ds = data.load_dataset(dataset, root=root, download=(profile != "smoke"))
    if n_val:
        ds = data.train_val_split(ds, n_val=n_val, seed=seed)
    if verbose:
        print(data_note(ds, dataset, profile))
    REQUESTS.put(id(ds), (ds, DataRequest(dataset, profile, None if root is None else str(root),
                                          seed, n_val)))
    return ds


@dataclass(frozen=True)
class DataRequest:
    """How :func:`load_for_profile` made a dataset: what a job on another machine sends instead
    of the images (a Slurm job loads them itself, from the same cache or download)."""

    dataset: str
    profile: str
    root: str | None
    seed: int
    n_val: int | None

    def load(self):
        """The dataset, loaded once per process."""
        return LOADED.get(self, lambda: load_for_profile(
            self.dataset, self.profile, root=self.root, seed=self.seed, n_val=self.n_val,
            verbose=False))


def request_for(ds) -> DataRequest | None:
    """The :class:`DataRequest` that made ``ds`` (this very object), or None."""
    known = REQUESTS.peek(id(ds))
    return None if known is None or known[0] is not ds else known[1]


def data_note(ds, requested: str, profile: str) -> str:
    """One honest sentence about the data behind the numbers that follow."""
    c, h, w = ds.image_shape
    size = (f"{ds.num_classes} classes, {c}×{h}×{w} images, {len(ds.y_train)} train / "
            f"{len(ds.y_test)} test")
    if ds.source == "stand-in":
        return (f"NOTE (profile {profile}): the data is a SYNTHETIC STAND-IN with "
                f"{pretty(requested)}'s shape ({size}), not {pretty(requested)} itself — the code "
                f"path is the real one, the numbers are not results on {pretty(requested)}.")
    if ds.source == "subset":
        return (f"NOTE (profile {profile}): a SUBSET of {pretty(requested)} ({size}); numbers are "
                f"results on this subset, not on the paper's full setting.")
    return f"Data (profile {profile}): {pretty(requested)}, full dataset ({size})."


def measured_on(ds, profile: str, requested: str | None = None) -> str:
    """Short text for the "measured on" column of a table."""
    name = pretty(requested or ds.name)
    kind = {"stand-in": f"synthetic stand-in with {name}'s shape",
            "subset": f"subset of {name}", "full": name}.get(ds.source, ds.source)
    return f"podd, profile {profile}, {kind}"


def class_names_for(dataset: str, profile: str, *, root=None) -> list[str]:
    """The dataset's class names without loading its images where podd knows them (CIFAR, digits);
    otherwise from the dataset (smoke: the stand-in's names, "class 0", ...)."""
    from podd.data import canonical_name
    from podd.data.dataset import KNOWN_CLASS_NAMES

    dataset = canonical_name(dataset)
    if dataset in KNOWN_CLASS_NAMES:
        return list(KNOWN_CLASS_NAMES[dataset])
    return list(load_for_profile(dataset, profile, root=root, verbose=False).class_names)

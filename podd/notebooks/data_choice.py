"""The data a notebook uses under each profile, and the honest words that go with it.

``smoke`` uses digits when asked for digits and otherwise a synthetic stand-in
(:func:`podd.data.stand_in`) with the requested dataset's image shape and class count; numbers on
a stand-in are NOT results on that dataset, and :func:`data_note` / :func:`measured_on` say so.
``quick`` and ``paper`` use the real dataset (:mod:`podd.experiments.data` loads it).
"""

from __future__ import annotations

from podd.experiments.data import load_data
from podd.notebooks.names import pretty
from podd.notebooks.profiles import resolve_profile


def load_for_profile(
    dataset: str, profile: str, *, root=None, seed: int = 0, n_val: int | None = None, verbose: bool = True
):
    """The dataset a notebook should use under ``profile``, with a printed note saying what it is.

    :func:`podd.experiments.data.load_data` (smoke: digits, or a synthetic stand-in with the
    paper's dataset's class count and image shape; quick / paper: the real dataset; ``n_val``: a
    stratified validation split used as the test set), after :func:`resolve_profile`; the
    dataset's request is remembered, so a sweep sends it to jobs elsewhere instead of the images.
    """
    from podd.data import canonical_name

    profile = resolve_profile(profile)
    ds = load_data(dataset, profile, root=root, seed=seed, n_val=n_val)
    if verbose:
        print(data_note(ds, canonical_name(dataset), profile))
    return ds


def data_note(ds, requested: str, profile: str) -> str:
    """One honest sentence about the data behind the numbers that follow."""
    c, h, w = ds.image_shape
    size = f"{ds.num_classes} classes, {c}×{h}×{w} images, {len(ds.y_train)} train / {len(ds.y_test)} test"
    if ds.source == "stand-in":
        return (
            f"NOTE (profile {profile}): the data is a SYNTHETIC STAND-IN with "
            f"{pretty(requested)}'s shape ({size}), not {pretty(requested)} itself — the code "
            f"path is the real one, the numbers are not results on {pretty(requested)}."
        )
    if ds.source == "subset":
        return (
            f"NOTE (profile {profile}): a SUBSET of {pretty(requested)} ({size}); numbers are "
            f"results on this subset, not on the paper's full setting."
        )
    return f"Data (profile {profile}): {pretty(requested)}, full dataset ({size})."


def measured_on(ds, profile: str, requested: str | None = None) -> str:
    """Short text for the "measured on" column of a table."""
    name = pretty(requested or ds.name)
    kind = {"stand-in": f"synthetic stand-in with {name}'s shape", "subset": f"subset of {name}", "full": name}.get(
        ds.source, ds.source
    )
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

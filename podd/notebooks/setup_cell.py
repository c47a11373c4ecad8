"""The setup cell the experiment notebooks share (Tables 1 and 2, the §5.3 ablations).

Each of them, right after its papermill ``parameters`` cell, resolves the profile, names its
outputs after the paper dataset the data stands for, sets the plotting and table style, prints
one line saying what it runs, and loads the data for the profile. :func:`setup` is that cell;
what is particular to a notebook (its list parameters, per-profile defaults) stays in it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pandas as pd

from podd import figures
from podd.notebooks.data_choice import load_for_profile
from podd.notebooks.profiles import resolve_profile


class Setup(NamedTuple):
    """What a notebook's setup gives back: ``profile, data, paper_name = nbs.setup(...)``."""

    profile: str  # smoke | quick | paper, resolved ($PODD_PROFILE when the parameter is None)
    data: Any  # the dataset for that profile (podd.experiments.data.load_data)
    paper_name: str  # ``like or dataset``: outputs are named and titled after it


def setup(
    dataset: str,
    profile: str | None,
    *,
    seed: int = 0,
    n_val: int | None = None,
    like: str | None = None,
    about: str | None = "",
) -> Setup:
    """Resolve ``profile``, style figures and tables, print the run's header, load the data.

    The header reads ``profile: P, dataset: D`` followed by ``, {about}`` when ``about`` is given;
    ``about=None`` prints none (for a notebook whose header needs the data). Loading prints the
    note on what the data is (:func:`~podd.notebooks.data_choice.load_for_profile`; ``n_val``:
    a stratified validation split used as the test set). ``paper_name`` is ``like or dataset``,
    so an npz of CIFAR-10 loaded with ``like="cifar10"`` gives outputs named ``…_cifar10``.
    """
    profile = resolve_profile(profile)
    figures.use_style()
    pd.set_option("display.width", 160)
    if about is not None:
        print(f"profile: {profile}, dataset: {dataset}" + (f", {about}" if about else ""))
    data = load_for_profile(dataset, profile, seed=seed, n_val=n_val)
    return Setup(profile, data, like or dataset)

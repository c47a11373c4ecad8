"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import pytest

from podd.data import load_dataset, make_preprocessor


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's digits (shipped with the package, no download) and its preprocessor;
    one copy per test module, so a module cannot disturb another's data."""
    ds = load_dataset("digits", root=tmp_path_factory.mktemp("data"), download=False)
    return ds, make_preprocessor(ds, zca=False)

"""The session caches (podd.experiments.cache): explicit objects that tests can reset."""

from __future__ import annotations

import pytest

from podd import notebooks as nbs
from podd.data import stand_in
from podd.experiments import data, run
from podd.experiments.cache import SessionCache


def test_same_key_gives_the_same_object_until_cleared():
    cache = SessionCache("test")
    made = []

    def make():
        made.append(object())
        return made[-1]

    first = cache.get("k", make)
    assert cache.get("k", make) is first and len(made) == 1
    assert "k" in cache and len(cache) == 1
    cache.clear()
    assert "k" not in cache and cache.peek("k") is None
    again = cache.get("k", make)
    assert again is not first and len(made) == 2


def test_put_and_peek_do_not_make_anything():
    cache = SessionCache("test")
    cache.put(1, "one")
    assert cache.peek(1) == "one" and cache.peek(2, "none") == "none"
    assert cache.get(1, lambda: pytest.fail("made although present")) == "one"
    assert repr(cache) == "SessionCache('test', 1 entries)"


@pytest.fixture
def clean_caches():
    nbs.reset_caches()
    yield
    nbs.reset_caches()


def test_preprocessor_is_fitted_once_per_dataset_and_again_after_reset(clean_caches):
    ds = stand_in("cifar10", 10, (3, 8, 8), 4, 2, seed=0)
    first = nbs.preprocessor_for(ds, zca=False)  # standardisation: never written to disk
    assert nbs.preprocessor_for(ds, zca=False) is first
    assert len(run.PREPROCESSORS) == 1
    other = stand_in("cifar10", 10, (3, 8, 8), 4, 2, seed=0)
    assert nbs.preprocessor_for(other, zca=False) is not first  # keyed by the object, not equality
    nbs.reset_caches()
    assert len(run.PREPROCESSORS) == 0
    assert nbs.preprocessor_for(ds, zca=False) is not first


def test_reset_clears_loaded_data_and_requests(clean_caches):
    ds = nbs.load_for_profile("cifar10", "smoke", verbose=False)
    request = data.request_for(ds)
    assert request == nbs.DataRequest("cifar10", "smoke", None, 0, None)
    loaded = request.load()
    assert request.load() is loaded and loaded is not ds
    nbs.reset_caches()
    assert data.request_for(ds) is None and len(data.LOADED) == 0
    assert request.load() is not loaded

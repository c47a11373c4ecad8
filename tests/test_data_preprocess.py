"""ZCA and standardisation preprocessors, stand-ins, splits, summaries and the Dataset record."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from podd.data import (
    Dataset,
    Preprocessor,
    load_dataset,
    make_preprocessor,
    preprocess,
    stand_in,
    subset,
    summary,
    train_val_split,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def normalised(x_uint8: torch.Tensor) -> torch.Tensor:
    """The paper's per-image steps, written independently in float64: x/255, minus mean, unit norm."""
    x = x_uint8.reshape(len(x_uint8), -1).double() / 255
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True)


# ------------------------------------------------------------------------------------------
# ZCA
# ------------------------------------------------------------------------------------------


def test_zca_whitened_second_moment_is_the_regularised_identity(digits, tmp_path):
    pre = make_preprocessor(digits, zca=True, root=tmp_path)
    assert pre.zca
    x = normalised(digits.x_train)
    cov = x.T @ x / len(x)
    lam, u = torch.linalg.eigh(cov)
    lam = lam.clamp_min(0)
    eps = 0.1 * lam.mean()  # regularisation: 0.1 x mean eigenvalue
    assert pre.eps == pytest.approx(float(eps), rel=1e-9)
    z = pre(digits.x_train).reshape(len(x), -1).double()
    whitened = z.T @ z / len(z)
    # W C W = U diag(lambda / (lambda + eps)) U^T: identity where lambda >> eps, damped below
    expected = (u * (lam / (lam + eps))) @ u.T
    assert torch.allclose(whitened, expected, atol=1e-5)
    got = torch.linalg.eigvalsh(whitened)
    assert torch.allclose(got, (lam / (lam + eps)).sort().values, atol=1e-5)
    assert got.max() < 1 and got.max() > 0.9  # the strongest direction is nearly white


def test_zca_inverse_undoes_the_zca_part(digits, tmp_path):
    pre = make_preprocessor(digits, zca=True, root=tmp_path)
    x = digits.x_test[:50]
    z = pre(x)
    assert z.dtype == torch.float32 and z.shape == x.shape
    unwhitened = z.reshape(len(x), -1).double() @ pre.inverse_matrix.double()
    assert torch.allclose(unwhitened, normalised(x), atol=1e-5)
    # for display: the per-image mean and norm are lost, so each image is min-max stretched to [0, 1]
    shown = pre.inverse(z)
    target = normalised(x)
    target = (target - target.min(1, keepdim=True).values) / (
        target.max(1, keepdim=True).values - target.min(1, keepdim=True).values
    )
    assert torch.allclose(shown.reshape(len(x), -1).double(), target, atol=1e-4)
    assert torch.allclose(pre.inverse(z[0]), shown[0], atol=1e-6)  # a single (C, H, W) image works too


def test_zca_inverse_of_a_poster_uses_the_centre_row_as_a_convolution(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 2, 6, 6, generator=g) * 255).to(torch.uint8)
    ds = Dataset("toy", x, torch.zeros(300, dtype=torch.long), x[:5], torch.zeros(5, dtype=torch.long), ["a"])
    pre = make_preprocessor(ds, zca=True, root=tmp_path)
    z = torch.randn(3, 2, 6, 6, generator=g)
    exact = (z.reshape(3, -1) @ pre.inverse_matrix).reshape(z.shape)
    conv = pre._inverse_convolution(z, pre.inverse_matrix)
    assert torch.allclose(conv[:, :, 3, 3], exact[:, :, 3, 3], atol=1e-5)  # aligned at the centre pixel
    poster = torch.randn(2, 15, 22, generator=g, requires_grad=True)
    shown = pre.inverse(poster)
    assert shown.shape == (2, 15, 22) and float(shown.min()) == 0 and float(shown.max()) == pytest.approx(1)


def test_zca_is_cached_per_training_data(digits, tmp_path, monkeypatch):
    first = make_preprocessor(digits, zca=True, root=tmp_path)
    cached = sorted((tmp_path / "cache").glob("zca-digits-*-reg0.1.pt"))
    assert len(cached) == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted again although the cache is valid")

    monkeypatch.setattr(preprocess, "fit_zca", no_fit)
    second = make_preprocessor(digits, zca=True, root=tmp_path)
    x = digits.x_test[:8]
    assert torch.equal(first(x), second(x))  # bit-identical: fresh and cached agree
    monkeypatch.undo()
    other = train_val_split(digits, 100, seed=0)  # different training data -> different key
    make_preprocessor(other, zca=True, root=tmp_path)
    assert len(list((tmp_path / "cache").glob("zca-digits-*"))) == 2


def test_state_dict_round_trip(digits, tmp_path):
    for zca in (True, False):
        pre = make_preprocessor(digits, zca=zca, root=tmp_path)
        again = Preprocessor.from_state_dict(pre.state_dict())
        x = digits.x_test[:4]
        assert again.zca == zca and torch.equal(pre(x), again(x))
        assert torch.equal(pre.inverse(pre(x)), again.inverse(again(x)))
    with pytest.raises(ValueError, match="preprocessor"):
        Preprocessor.from_state_dict({"kind": "something"})


def test_preprocessor_rejects_bad_input(digits, tmp_path):
    pre = make_preprocessor(digits, zca=True, root=tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        pre(digits.x_train[:2].float())
    with pytest.raises(ValueError, match="fitted"):
        pre(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------
# standardisation
# ------------------------------------------------------------------------------------------


def test_standardize_per_channel_and_exact_inverse():
    ds = stand_in("cifar10", 10, (3, 8, 8), 20, 2, seed=1)
    pre = make_preprocessor(ds, zca=False)
    z = pre(ds.x_train)
    assert not pre.zca and z.dtype == torch.float32
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.allclose(pre.inverse(z), ds.x_train.float() / 255, atol=1e-5)


# ------------------------------------------------------------------------------------------
# stand-ins, splits, summary, Dataset
# ------------------------------------------------------------------------------------------


def test_stand_in_shape_names_determinism():
    ds = stand_in("cifar10", 10, (3, 16, 16), 4, 2, seed=3)
    assert ds.source == "stand-in" and ds.image_shape == (3, 16, 16) and ds.x_train.dtype == torch.uint8
    assert ds.class_names[0] == "airplane" and (torch.bincount(ds.y_train) == 4).all()
    assert len(ds.y_test) == 20
    assert torch.equal(ds.x_train, stand_in("cifar10", 10, (3, 16, 16), 4, 2, seed=3).x_train)
    assert not torch.equal(ds.x_train, stand_in("cifar10", 10, (3, 16, 16), 4, 2, seed=4).x_train)
    assert stand_in("cifar100", 100, (3, 8, 8), 1, 1, 0).class_names[1] == "aquarium fish"
    assert stand_in("cub200", 7, (3, 8, 8), 1, 1, 0).class_names == [f"class {i}" for i in range(7)]
    assert stand_in("cifar10", 4, (1, 8, 8), 1, 1, 0).class_names[0] == "class 0"  # count differs


def test_stand_in_is_learnable():
    ds = stand_in("x", 10, (3, 8, 8), 20, 10, seed=0)
    means = torch.stack([ds.x_train[ds.y_train == k].float().mean(0) for k in range(10)])
    distances = torch.cdist(ds.x_test.float().flatten(1), means.flatten(1))
    accuracy = (distances.argmin(1) == ds.y_test).float().mean()
    assert accuracy > 0.8  # nearest class mean: far above chance (0.1)


def _indexed_dataset(n=60, k=3) -> Dataset:
    """Every training image holds its own index, so splits can be traced back."""
    idx = torch.arange(n)
    x = torch.stack([idx % 256, idx // 256], 1).to(torch.uint8).view(n, 1, 1, 2)
    y = idx % k
    return Dataset("toy", x, y, x[:k], y[:k], [f"c{i}" for i in range(k)])


def test_train_val_split_stratified_disjoint(tmp_path):
    ds = _indexed_dataset()
    split = train_val_split(ds, 15, seed=0)
    assert split.source == "subset" and (len(split.y_train), len(split.y_test)) == (45, 15)
    assert (torch.bincount(split.y_test) == 5).all()

    def ids(x):
        return set(x[:, 0, 0, 0].long().tolist())

    assert ids(split.x_train).isdisjoint(ids(split.x_test)) and ids(split.x_train) | ids(split.x_test) == set(range(60))
    assert torch.equal(split.x_test, train_val_split(ds, 15, seed=0).x_test)
    assert train_val_split(stand_in("s", 3, (1, 4, 4), 10, 1, 0), 6, 0).source == "stand-in"
    with pytest.raises(ValueError, match="n_val"):
        train_val_split(ds, 2, seed=0)


def test_subset_per_class():
    ds = _indexed_dataset()
    part = subset(ds, train_per_class=4, test_per_class=1, seed=1)
    assert part.source == "subset" and (torch.bincount(part.y_train) == 4).all() and len(part.y_test) == 3
    assert not torch.equal(part.x_train, subset(ds, 4, 1, seed=2).x_train)


def test_summary_counts_and_compact_table(digits):
    text = summary(digits)
    assert "1797" in text and "1437" in text and "360" in text and "1x8x8" in text and "full" in text
    big = stand_in("tinyimagenet", 200, (3, 4, 4), 1, 1, 0)
    lines = summary(big).splitlines()
    assert len(lines) < 80 and max(len(line) for line in lines) < 130 and "class 199" in summary(big)


def test_dataset_validates_itself():
    x = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="uint8"):
        Dataset("bad", x.float(), y, x, y, ["a", "b"])
    with pytest.raises(ValueError, match="labels outside"):
        Dataset("bad", x, y, x, y, ["a"])
    with pytest.raises(ValueError, match="source"):
        Dataset("bad", x, y, x, y, ["a", "b"], source="made-up")
    ds = Dataset("ok", x, y, x, y, ["a", "b"])
    assert ds.num_classes == 2 and ds.image_shape == (1, 2, 2) and "train=4" in repr(ds)
    assert np.array_equal(ds.x_train.numpy(), x.numpy())

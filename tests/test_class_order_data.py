"""class_order="data": PoCO's placement on class similarities measured on the training images
(podd.data_embeddings), offline and on small synthetic data made here."""

from __future__ import annotations

import json

import pytest
import torch
from cli_support import TINY

from podd.artifacts import load_artifact
from podd.cli import main
from podd.data import load_dataset
from podd.data_embeddings import DATA_ORDER_SOURCE, class_distances, class_mean_embeddings
from podd.layout import validate_class_order
from podd.modes import check_class_order
from podd.notebooks.embeddings import class_embeddings
from podd.ordering import resolve_class_order
from podd.presets import resolve_config


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))


def paired_images(partner: list[int], per_class: int = 20, seed: int = 0):
    """uint8 (N, 3, 8, 8) images of K = len(partner) classes in pairs (k, partner[k]): each pair
    has its own bright block in its own colour channel, each class a faint mark of its own, and
    every image noise; so a pair's classes look alike and unlike every other pair's."""
    k = len(partner)
    pair_of, pairs = {}, 0
    for c in range(k):
        if c not in pair_of:
            pair_of[c] = pair_of[partner[c]] = pairs
            pairs += 1
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(40, 90, (k * per_class, 3, 8, 8), generator=gen).float()
    y = torch.arange(k).repeat_interleave(per_class)
    for c in range(k):
        p = pair_of[c]
        rows = y == c
        x[rows, p % 3, 2 * (p // 3) : 2 * (p // 3) + 4, :] += 150  # the pair's block
        x[rows, :, 7, c % 8] += 30  # the class's faint mark
    return x.clamp(0, 255).to(torch.uint8), y


def adjacent(order: torch.Tensor, a: int, b: int) -> bool:
    (ra, ca), (rb, cb) = ((order == a).nonzero()[0].tolist(), (order == b).nonzero()[0].tolist())
    return abs(ra - rb) + abs(ca - cb) == 1


@pytest.mark.parametrize(
    "partner, grid",
    [
        ([1, 0, 3, 2, 5, 4], (2, 3)),  # classes 2k and 2k+1 share a pattern
        ([1, 0, 3, 2, 5, 4], (1, 6)),
        ([3, 4, 5, 0, 1, 2], (1, 6)),  # k and k+3: the dataset order puts no pair side by side
        ([3, 4, 5, 0, 1, 2], (2, 3)),
        ([1, 0, 3, 2, 5, 4, 7, 6], (2, 4)),
    ],
)
def test_classes_that_look_alike_are_placed_side_by_side(partner, grid):
    x, y = paired_images(partner)
    names = [f"code-{c}" for c in range(len(partner))]  # names that mean nothing
    order = resolve_class_order("data", names, *grid, data=(x, y))
    validate_class_order(order, len(partner), grid)
    for c, p in enumerate(partner):
        assert adjacent(order, c, p), (c, p, order.tolist())


def test_the_distance_matrix_is_symmetric_with_a_zero_diagonal_and_finite():
    x, y = paired_images([1, 0, 3, 2, 5, 4])
    dist = class_distances(x, y, 6)
    assert dist.shape == (6, 6) and torch.isfinite(dist).all()
    assert torch.equal(dist, dist.T) and torch.equal(dist.diagonal(), torch.zeros(6))
    assert dist.min() >= 0 and dist.max() <= 2
    assert dist[0, 1] < dist[0, 2] and dist[2, 3] < dist[2, 4]  # pairs are closer
    # float images give the same distances as their uint8 originals (any scale)
    assert torch.allclose(class_distances(x.float() / 255, y, 6), dist, atol=1e-5)
    # classes alike on average: zero embeddings, still finite (distance 1), zero diagonal
    same = torch.full((12, 3, 4, 4), 7, dtype=torch.uint8)
    flat = class_distances(same, torch.arange(3).repeat(4), 3)
    assert torch.equal(flat, 1 - torch.eye(3))


def test_deterministic_a_valid_permutation_and_blind_to_the_images_order():
    x, y = paired_images([1, 0, 3, 2, 5, 4, 7, 6, 9, 8], per_class=7, seed=3)
    names = [str(c) for c in range(10)]
    torch.manual_seed(1)
    first = resolve_class_order("data", names, 2, 5, data=(x, y))
    torch.manual_seed(2)  # the global RNG plays no part
    assert torch.equal(resolve_class_order("data", names, 2, 5, data=(x, y)), first)
    assert sorted(first.flatten().tolist()) == list(range(10))
    shuffle = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    assert torch.equal(class_mean_embeddings(x[shuffle], y[shuffle], 10), class_mean_embeddings(x, y, 10))
    assert torch.equal(resolve_class_order("data", names, 2, 5, data=(x[shuffle], y[shuffle])), first)
    # a grid with an empty cell: the empty cell is -1 and every class is placed once
    order = resolve_class_order("data", names[:7], 2, 4, data=(x[y < 7], y[y < 7]))
    assert (order == -1).sum() == 1 and sorted(order[order >= 0].tolist()) == list(range(7))


def test_what_the_data_order_refuses():
    x, y = paired_images([1, 0, 3, 2])
    with pytest.raises(ValueError, match="pass data="):
        resolve_class_order("data", list("abcd"), 2, 2)
    with pytest.raises(ValueError, match=r"class 4 \('e'\) has no training images"):
        resolve_class_order("data", list("abcde"), 2, 3, data=(x, y))


def test_check_class_order_needs_no_weights_and_no_data():
    ds = load_dataset("digits")
    config = resolve_config("digits", "smoke", ipc=1.0, class_order="data")
    check_class_order(config, ds.class_names, ds.image_shape)  # a sweep's check
    check_class_order(config, ds.class_names, ds.image_shape, data=(ds.x_train, ds.y_train))


def test_the_notebooks_data_embeddings_are_labelled():
    ds = load_dataset("digits")
    emb, source = class_embeddings(ds.class_names, "smoke", embeddings="data", data=ds, verbose=False)
    assert source == DATA_ORDER_SOURCE and "data-derived" in source
    assert torch.equal(emb, class_mean_embeddings(ds.x_train, ds.y_train, 10))


@pytest.mark.parametrize("option", [["--class-order", "data"], ["--set", "class_order=data"]])
def test_podd_distill_with_the_data_order(option, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["distill", "--dataset", "digits", "--ipc", "1", "--out", str(out), *option, *TINY])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["class_order"] == "data"
    ds = load_dataset("digits")
    expected = resolve_class_order("data", ds.class_names, 2, 5, data=(ds.x_train, ds.y_train))
    assert torch.equal(load_artifact(out / "poster.pt").class_order, expected)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--class-order", "data", "--set", "class_order=identity"], "disagree"),
        (["--class-order", "data", "--embeddings", "EMB"], "both choose the class order"),
    ],
)
def test_conflicting_class_orders_are_refused_in_one_line(extra, message, tmp_path, capsys):
    embeddings = tmp_path / "emb.pt"
    torch.save(torch.randn(10, 4), embeddings)
    extra = [str(embeddings) if a == "EMB" else a for a in extra]
    target = tmp_path / "refused"
    assert main(["distill", "--dataset", "digits", "--ipc", "1", "--out", str(target), *TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not target.exists()

"""Tests for podd.labels (§4.3, PoDDL): class map, cell weights, fixed and learned labels."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from podd.labels import area_labels, fixed_labels, init_label_params, learned_labels, majority_share, patch_cell_weights
from podd.layout import class_map, validate_class_order
from podd.poster import PAPER_POSTERS, baseline_geometry, make_geometry


def window_histograms(order, geometry):
    """Reference: per patch, pixel counts per class read off the class map by slicing."""
    cmap = class_map(order, geometry.size)
    h, w = geometry.patch_hw
    hist = torch.zeros(geometry.num_patches, geometry.num_classes)
    for n, (y, x) in enumerate(geometry.positions().tolist()):
        window = cmap[y : y + h, x : x + w].flatten()
        window = window[window >= 0]
        hist[n] = torch.bincount(window, minlength=geometry.num_classes).float()
    return hist


def test_class_map_nearest_upsample():
    order = torch.tensor([[0, 1, 2], [3, 4, -1]])
    cmap = class_map(order, (5, 7))
    # Cell of pixel y is floor(y·rows/H): rows 0..2 → 0, 3..4 → 1; columns 0..2, 3..4, 5..6.
    expected = torch.tensor([[0, 0, 0, 1, 1, 2, 2]] * 3 + [[3, 3, 3, 4, 4, -1, -1]] * 2)
    assert torch.equal(cmap, expected)
    assert torch.equal(class_map(order, (4, 6)), order.repeat_interleave(2, 0).repeat_interleave(2, 1))


@pytest.mark.parametrize(
    "K,shape,size,patches",
    [(10, (3, 32, 32), (60, 153), (6, 16)), (10, (1, 8, 8), (13, 29), (4, 9)), (7, (1, 5, 4), (9, 11), (5, 8))],
)
def test_cell_weights_match_slicing(K, shape, size, patches):
    geometry = make_geometry(K, shape, size=size, patches=patches)
    rows, cols = geometry.grid
    cells = torch.arange(rows * cols).view(rows, cols)
    weights = patch_cell_weights(geometry)
    assert weights.shape == (geometry.num_patches, rows * cols)
    assert_close(weights.sum(1), torch.full((geometry.num_patches,), float(shape[1] * shape[2])))
    # Weights against the cell-index map are exactly per-cell histograms of the window.
    cell_geometry = make_geometry(rows * cols, shape, grid=(rows, cols), size=size, patches=patches)
    assert_close(weights, window_histograms(cells, cell_geometry))


def test_fixed_labels_majority_one_hot():
    geometry = make_geometry(10, (3, 32, 32), size=(60, 153), patches=(6, 16))
    order = torch.tensor([[3, 1, 4, 0, 5], [9, 2, 6, 8, 7]])
    labels = fixed_labels(order, geometry)
    hist = window_histograms(order, geometry)
    assert labels.shape == (96, 10)
    assert_close(labels.sum(1), torch.ones(96))
    winners = hist == hist.max(1, keepdim=True).values
    assert_close(labels, winners.float() / winners.sum(1, keepdim=True))
    assert labels[0].argmax() == 3 and labels[-1].argmax() == 7


def test_fixed_labels_constructed_tie():
    # 2×2 poster of 4 classes in 2×2-pixel cells; a 2×2 patch at (1, 1) covers one pixel of each
    # cell → a four-way tie; a patch at (0, 1) covers two pixels of classes 0 and 1 → a two-way tie.
    geometry = make_geometry(4, (1, 2, 2), grid=(2, 2), size=(4, 4), patches=(3, 3))
    order = torch.tensor([[0, 1], [2, 3]])
    labels = fixed_labels(order, geometry).view(3, 3, 4)
    assert_close(labels[1, 1], torch.full((4,), 0.25))
    assert_close(labels[0, 1], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    assert_close(labels[0, 0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert_close(labels[2, 2], torch.tensor([0.0, 0.0, 0.0, 1.0]))


def test_fixed_labels_ignore_empty_cells():
    # 3 classes on a 2×2 grid: the empty cell counts for nobody; a patch inside it is uniform.
    geometry = make_geometry(3, (1, 2, 2), grid=(2, 2), size=(4, 4), patches=(3, 3))
    order = torch.tensor([[0, 1], [2, -1]])
    labels = fixed_labels(order, geometry).view(3, 3, 3)
    assert_close(labels[2, 2], torch.full((3,), 1 / 3))
    assert_close(labels[1, 1], torch.full((3,), 1 / 3))  # one pixel each of 0, 1, 2
    assert_close(labels[2, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_area_labels_are_pixel_shares_and_the_learned_labels_start():
    # 0.5 IPC on CIFAR-10's shape: shares read off the class map; the learned labels at their
    # initialisation are exactly these; the fixed label is their majority (no ties here)
    geometry = make_geometry(10, (3, 32, 32), size=(45, 113), patches=(6, 16))
    order = torch.tensor([[3, 1, 4, 0, 5], [9, 2, 6, 8, 7]])
    labels = area_labels(order, geometry)
    hist = window_histograms(order, geometry)
    assert_close(labels, hist / 1024)
    assert_close(labels, learned_labels(init_label_params(order, 10), patch_cell_weights(geometry)))
    assert torch.equal(fixed_labels(order, geometry).argmax(1), labels.argmax(1))
    assert (labels.max(1).values < 1).any()  # below one IPC most patches are mixed
    # empty cells count for nobody; a window over empty cells only is uniform
    geometry = make_geometry(3, (1, 2, 2), grid=(2, 2), size=(4, 4), patches=(3, 3))
    labels = area_labels(torch.tensor([[0, 1], [2, -1]]), geometry).view(3, 3, 3)
    assert_close(labels[2, 2], torch.full((3,), 1 / 3))
    assert_close(labels[2, 1], torch.tensor([0.0, 0.0, 1.0]))
    assert_close(labels[1, 2], torch.tensor([0.0, 1.0, 0.0]))


def test_baseline_fixed_labels_are_the_cell_classes():
    geometry = baseline_geometry(10, (3, 32, 32))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).view(2, 5)
    assert torch.equal(fixed_labels(order, geometry), torch.eye(10)[order.flatten()])


def test_majority_share_by_hand_and_by_slicing():
    # the constructed-tie poster: corner patches lie in one cell (share 1), edge-middle patches
    # straddle two cells half and half, the centre patch holds one pixel of each of the four
    geometry = make_geometry(4, (1, 2, 2), grid=(2, 2), size=(4, 4), patches=(3, 3))
    share = majority_share(torch.tensor([[0, 1], [2, 3]]), geometry).view(3, 3)
    assert_close(share, torch.tensor([[1.0, 0.5, 1.0], [0.5, 0.25, 0.5], [1.0, 0.5, 1.0]]))
    # a CIFAR-10 poster below one IPC: the majority's pixels read off the class map
    geometry = make_geometry(10, (3, 32, 32), size=(45, 113), patches=(6, 16))
    order = torch.arange(10).view(2, 5)
    hist = window_histograms(order, geometry)
    assert_close(majority_share(order, geometry), hist.max(1).values / 1024)


def test_majority_share_falls_below_one_ipc():
    # the baseline's images each lie in one class; PoDD's patches at 0.9 IPC mostly have a
    # majority above half, at 0.5 IPC almost none do (the class areas are ~22 pixels a side)
    order = torch.arange(10).view(2, 5)
    assert torch.equal(majority_share(order, baseline_geometry(10, (3, 32, 32))), torch.ones(10))
    at_09 = majority_share(order, make_geometry(10, (3, 32, 32), size=(60, 153), patches=(6, 16)))
    at_05 = majority_share(order, make_geometry(10, (3, 32, 32), size=(45, 113), patches=(6, 16)))
    assert at_05.mean() < at_09.mean() < 1.0
    assert (at_05 < 0.5).float().mean() > 0.9 > (at_09 < 0.5).float().mean()


@pytest.mark.parametrize("name,K", [("cifar10", 10), ("cifar100", 100), ("cub200", 200)])
def test_learned_labels_paper_geometries(name, K):
    paper = PAPER_POSTERS[name]
    geometry = make_geometry(K, (3, 32, 32), size=paper["size"], patches=paper["patches"])
    order = torch.randperm(K, generator=torch.Generator().manual_seed(1)).view(*paper["grid"])
    params = init_label_params(order, K).requires_grad_()
    assert params.shape == (K, *paper["grid"]) and params.numel() == K * K
    assert torch.equal(params.detach().sum(0), torch.ones(paper["grid"]))
    weights = patch_cell_weights(geometry)
    labels = learned_labels(params, weights)
    assert labels.shape == (geometry.num_patches, K)
    assert (labels >= 0).all()
    assert_close(labels.sum(1), torch.ones(geometry.num_patches))
    # With one-hot parameters the label is the window's class-pixel fraction.
    hist = weights @ torch.eye(K)[order.flatten()]
    assert_close(labels, hist / hist.sum(1, keepdim=True))
    # Gradient reaches the parameters.
    (labels * torch.randn_like(labels)).sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0 and params.grad.isfinite().all()


def test_learned_labels_equals_average_pool_of_upsampled_map():
    geometry = make_geometry(6, (1, 4, 4), grid=(2, 3), size=(7, 10), patches=(3, 4))
    params = torch.rand(6, 2, 3, generator=torch.Generator().manual_seed(2))
    labels = learned_labels(params, patch_cell_weights(geometry))
    H, W = geometry.size
    iy = torch.arange(H) * 2 // H
    ix = torch.arange(W) * 3 // W
    upsampled = params[:, iy[:, None], ix[None, :]]  # (K, H, W)
    expected = torch.stack([upsampled[:, y : y + 4, x : x + 4].mean((1, 2)) for y, x in geometry.positions().tolist()])
    assert_close(labels, expected / expected.sum(1, keepdim=True))


def test_learned_labels_zero_row_is_uniform_without_nan():
    geometry = baseline_geometry(4, (1, 2, 2))
    params = init_label_params(torch.tensor([[0, 1], [2, 3]]), 4)
    params[:, 1, 1] = 0  # patch 3 sees only zeros
    params.requires_grad_()
    labels = learned_labels(params, patch_cell_weights(geometry))
    assert_close(labels[3], torch.full((4,), 0.25))
    labels.sum().backward()
    assert params.grad.isfinite().all()


def test_empty_cells_init_to_zero():
    params = init_label_params(torch.tensor([[1, 0, -1], [2, -1, 3]]), 4)
    assert params.shape == (4, 2, 3)
    assert params[:, 0, 2].sum() == 0 and params[:, 1, 1].sum() == 0
    assert params[1, 0, 0] == 1 and params[3, 1, 2] == 1


@pytest.mark.parametrize(
    "order,match",
    [
        (torch.tensor([[0, 1], [1, 2]]), r"exactly once; missing \[3\], repeated \[1\]"),
        (torch.tensor([[0, 1], [2, -1]]), r"missing \[3\]"),
        (torch.tensor([[0, 1], [2, 7]]), r"\[7\], outside 0..3"),
        (torch.tensor([[0.0, 1], [2, 3]]), "integer"),
        (torch.tensor([0, 1, 2, 3]), "matrix"),
    ],
)
def test_bad_class_orders(order, match):
    with pytest.raises(ValueError, match=match):
        validate_class_order(order, 4)
    with pytest.raises(ValueError, match=match):
        init_label_params(order, 4)


def test_class_order_must_match_grid():
    geometry = make_geometry(4, (1, 2, 2), grid=(2, 2), size=(4, 4), patches=(3, 3))
    with pytest.raises(ValueError, match=r"shape \(1, 4\) but the poster's class grid is \(2, 2\)"):
        fixed_labels(torch.arange(4).view(1, 4), geometry)


def test_learned_labels_bad_shapes():
    with pytest.raises(ValueError, match="label_params must be"):
        learned_labels(torch.rand(4, 4), torch.rand(3, 4))
    with pytest.raises(ValueError, match="weights must be"):
        learned_labels(torch.rand(4, 2, 2), torch.rand(3, 5))

"""Tests for podd.poster (§4.1): geometry, positions, extraction, initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from podd.layout import default_class_grid
from podd.poster import (
    PAPER_POSTERS,
    PosterGeometry,
    _blend_cell_areas,
    axis_positions,
    baseline_geometry,
    default_patch_counts,
    extract_patches,
    extract_per_class_patches,
    init_poster,
    make_geometry,
    overlap_count,
    patch_index,
    patch_positions,
    per_class_geometry,
    poster_size,
)

PAPER_IMAGES = {
    "cifar10": (10, (3, 32, 32)),
    "cifar100": (100, (3, 32, 32)),
    "cub200": (200, (3, 32, 32)),
    "tinyimagenet": (200, (3, 64, 64)),
}


def manual_patches(poster, positions, h, w):
    return torch.stack([poster[..., y : y + h, x : x + w] for y, x in positions.tolist()], dim=-4)


# ---------------------------------------------------------------- geometry


def test_cifar10_positions_match_reference():
    geometry = make_geometry(10, (3, 32, 32), size=(60, 153), patches=(6, 16))
    positions = geometry.positions()
    assert positions.shape == (96, 2) and positions.dtype == torch.long
    xs = [0, 8, 16, 24, 32, 40, 48, 56, 65, 73, 81, 89, 97, 105, 113, 121]
    ys = [0, 6, 11, 17, 22, 28]
    expected = torch.tensor([(y, x) for y in ys for x in xs])  # row-major
    assert torch.equal(positions, expected)


def test_axis_positions_round_half_to_even_like_numpy():
    # linspace(0, 5, 3) = 0, 2.5, 5 and linspace(0, 9, 5) = 0, 2.25, 4.5, 6.75, 9: halves go to even.
    assert axis_positions(37, 32, 3).tolist() == [0, 2, 5]
    assert axis_positions(41, 32, 5).tolist() == [0, 2, 4, 7, 9]
    for length, patch, count in [(37, 32, 3), (35, 32, 3), (41, 32, 5), (153, 32, 16), (610, 32, 60), (1211, 64, 40)]:
        expected = np.linspace(0, length - patch, count).round().astype(int).tolist()
        assert axis_positions(length, patch, count).tolist() == expected


@pytest.mark.parametrize("name", sorted(PAPER_POSTERS))
def test_paper_poster_sizes(name):
    K, shape = PAPER_IMAGES[name]
    paper = PAPER_POSTERS[name]
    assert default_class_grid(K) == paper["grid"]
    # The authors' hand-typed sizes, given explicitly, are ≈ 0.9 IPC with their patch counts.
    geometry = make_geometry(K, shape, size=paper["size"], patches=paper["patches"])
    assert geometry.size == paper["size"] and geometry.grid == paper["grid"]
    assert abs(geometry.ipc - 0.9) < 0.005
    assert geometry.num_patches == paper["patches"][0] * paper["patches"][1]
    # The √IPC rule lands within 3 pixels per side of them.
    H, W = poster_size(K, shape, 0.9)
    assert abs(H - paper["size"][0]) <= 3 and abs(W - paper["size"][1]) <= 3
    assert abs(make_geometry(K, shape, 0.9).ipc - 0.9) < 0.01


def test_poster_size_rule():
    assert poster_size(10, (3, 32, 32), 1.0) == (64, 160)
    assert poster_size(10, (3, 32, 32), 4.0) == (128, 320)
    assert poster_size(10, (3, 32, 32), 0.5) == (45, 113)  # 45.25, 113.1
    assert poster_size(10, (3, 32, 32), 0.01) == (32, 32)  # never below one image
    assert poster_size(100, (3, 32, 32), 1.0, grid=(5, 20)) == (160, 640)
    g = make_geometry(10, (1, 8, 8), ipc=0.48, patches=(4, 10))
    assert g.size == (11, 28) and abs(g.ipc - 0.48) < 0.01


def test_stride_and_default_counts():
    g = make_geometry(10, (3, 32, 32), size=(60, 153), stride=8)
    assert g.patches == ((60 - 32) // 8 + 1, (153 - 32) // 8 + 1)
    g = make_geometry(10, (3, 32, 32), size=(60, 153), stride=(4, 16))
    assert g.patches == (8, 8)
    # Default: the paper's overlap, a stride of 6×8 pixels on 32×32 images (3/16 and 1/4 of a
    # side, the authors' CIFAR-10 poster), at least one pixel.
    assert default_patch_counts((64, 160), (32, 32)) == ((64 - 32) // 6 + 1, (160 - 32) // 8 + 1)
    assert make_geometry(10, (3, 32, 32)).patches == (6, 17)
    assert default_patch_counts((16, 40), (8, 8)) == ((16 - 8) // 2 + 1, (40 - 8) // 2 + 1)
    assert default_patch_counts((3, 3), (2, 2)) == (2, 2)


def test_geometry_roundtrip_and_properties():
    g = make_geometry(100, (3, 32, 32), size=(303, 303), patches=(20, 20))
    assert g.num_patches == 400 and g.pixels == 303 * 303
    assert_close(g.ipc, 303 * 303 / (100 * 32 * 32))
    assert PosterGeometry.from_dict(g.to_dict()) == g


# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "c,H,W,h,w,counts", [(3, 60, 153, 32, 32, (6, 16)), (1, 20, 23, 8, 8, (4, 5)), (2, 17, 9, 5, 3, (13, 7))]
)
def test_extract_equals_manual_slicing(c, H, W, h, w, counts):
    gen = torch.Generator().manual_seed(0)
    poster = torch.randn(c, H, W, generator=gen)
    positions = patch_positions((H, W), (h, w), counts)
    patches = extract_patches(poster, positions, (h, w))
    assert patches.shape == (counts[0] * counts[1], c, h, w)
    assert torch.equal(patches, manual_patches(poster, positions, h, w))
    # A precomputed index gives the same.
    index = patch_index(positions, (h, w), W)
    assert torch.equal(extract_patches(poster, positions, (h, w), index=index), patches)


def test_extract_batch_of_posters():
    posters = torch.randn(4, 3, 40, 50, generator=torch.Generator().manual_seed(1))
    positions = patch_positions((40, 50), (16, 16), (3, 4))
    patches = extract_patches(posters, positions, (16, 16))
    assert patches.shape == (4, 12, 3, 16, 16)
    for k in range(4):
        assert torch.equal(patches[k], manual_patches(posters[k], positions, 16, 16))


def test_gradient_is_overlap_count():
    geometry = make_geometry(10, (3, 32, 32), size=(60, 153), patches=(6, 16))
    poster = torch.randn(3, 60, 153, requires_grad=True)
    extract_patches(poster, geometry.positions(), geometry.patch_hw).sum().backward()
    # Manual overlap count: +1 on each patch window.
    count = torch.zeros(60, 153)
    for y, x in geometry.positions().tolist():
        count[y : y + 32, x : x + 32] += 1
    assert_close(poster.grad, count.expand(3, -1, -1))
    assert_close(overlap_count(geometry), count)


@pytest.mark.parametrize("K,shape", [(10, (3, 32, 32)), (100, (3, 32, 32)), (10, (1, 8, 8))])
def test_baseline_is_k_independent_images(K, shape):
    geometry = baseline_geometry(K, shape)
    assert abs(geometry.ipc - 1.0) < 1e-12 and geometry.num_patches == K
    assert torch.equal(overlap_count(geometry), torch.ones(geometry.size))
    poster = torch.randn(shape[0], *geometry.size)
    patches = extract_patches(poster, geometry.positions(), geometry.patch_hw)
    rows, cols = geometry.grid
    _, h, w = shape
    # The patches tile the poster: putting them back in grid order rebuilds it exactly.
    tiled = patches.view(rows, cols, shape[0], h, w).permute(2, 0, 3, 1, 4).reshape_as(poster)
    assert torch.equal(tiled, poster)


def test_per_class_mode():
    geometry = per_class_geometry(10, (3, 32, 32), ipc=2.0, patches=(3, 3))
    assert geometry.num_classes == 1 and geometry.grid == (1, 1)
    assert geometry.size == (45, 45) and abs(geometry.ipc - 2.0) < 0.03
    posters = torch.randn(10, 3, *geometry.size, requires_grad=True)
    patches, labels = extract_per_class_patches(posters, geometry.positions(), geometry.patch_hw)
    assert patches.shape == (90, 3, 32, 32)
    assert labels.tolist() == [k for k in range(10) for _ in range(9)]
    assert torch.equal(patches[9 * 4 + 2], posters[4, :, 0:32, 13:45].detach())
    patches.sum().backward()
    assert posters.grad.shape == posters.shape


# ---------------------------------------------------------------- initialisation


def test_init_gaussian_seeded_at_the_class_area_scale():
    # The paper text's standard Gaussian, at the per-pixel scale of a unit-norm class area.
    geometry = make_geometry(10, (3, 32, 32), 0.9)
    a = init_poster(geometry, torch.Generator().manual_seed(3), "gaussian")
    b = init_poster(geometry, torch.Generator().manual_seed(3), "gaussian")
    assert a.shape == (3, *geometry.size) and a.dtype == torch.float32
    assert torch.equal(a, b)
    rms = a.pow(2).mean().sqrt().item()
    assert abs(rms * math.sqrt(3 * 32 * 32) - 1) < 0.05 and abs(a.mean().item()) < 0.002


def test_init_class_areas_have_unit_norm_and_follow_the_class_order():
    # At 1 IPC on an exact grid the class areas tile the poster: each has unit L2 norm.
    K, shape = 10, (3, 8, 8)
    geometry = make_geometry(K, shape, size=(16, 40), patches=(3, 9))  # 2×5 cells of 8×8
    order = torch.tensor([[3, 1, 4, 0, 2], [9, 5, 8, 6, 7]])
    poster = init_poster(geometry, torch.Generator().manual_seed(0), class_order=order)
    assert poster.shape == (3, 16, 40) and poster.dtype == torch.float32
    blocks = poster.view(3, 2, 8, 5, 8).permute(1, 3, 0, 2, 4).reshape(10, -1)
    assert_close(blocks.norm(dim=1), torch.ones(10))
    # Without noise a class area is its (normalised) class mean: permuting the order moves the
    # areas with their classes, so class k's block is the same wherever k sits.
    flipped = order.flip(1)
    a = init_poster(geometry, torch.Generator().manual_seed(0), class_order=order, noise=0.0)
    b = init_poster(geometry, torch.Generator().manual_seed(0), class_order=flipped, noise=0.0)
    blocks_a = a.view(3, 2, 8, 5, 8).permute(1, 3, 0, 2, 4).reshape(10, -1)
    blocks_b = b.view(3, 2, 8, 5, 8).permute(1, 3, 0, 2, 4).reshape(10, -1)
    assert_close(blocks_a[order.reshape(-1).argsort()], blocks_b[flipped.reshape(-1).argsort()])
    assert not torch.equal(a, b)
    # Seeded; the default method is the authors' class areas.
    again = init_poster(geometry, torch.Generator().manual_seed(0), class_order=order)
    assert torch.equal(poster, again)


def test_init_class_areas_blend_where_areas_overlap():
    # The paper's CIFAR-10 poster (60×153 at 0.9 IPC): the ten 32×32 class areas overlap.
    geometry = make_geometry(10, (3, 32, 32), size=(60, 153), patches=(6, 16))
    poster = init_poster(geometry, torch.Generator().manual_seed(1))
    # ys = 0, 28 and xs = 0, 30, 60, 91, 121: the top-left 28×30 pixels belong to area 0 alone,
    # so they are exactly a part of a unit-norm vector; rows 28..31 are the average of two areas.
    rms_alone = poster[:, :28, :30].pow(2).mean().sqrt().item()
    assert abs(rms_alone * math.sqrt(3 * 32 * 32) - 1) < 0.1
    overlap = poster[:, 28:32, :30]
    assert overlap.pow(2).mean().sqrt().item() < 0.85 * rms_alone  # ≈ 1/√2 of it
    # The whole poster is about 1/√(c·h·w) per pixel: 56× smaller than a standard normal.
    assert 0.012 < poster.pow(2).mean().sqrt().item() < 0.02
    # The blending itself: constant areas (value = cell index) average where they overlap.
    cells = torch.arange(10.0)[:, None].expand(10, 3 * 32 * 32)
    blended = _blend_cell_areas(geometry, cells)
    assert_close(blended[:, 0, 0], torch.zeros(3))
    assert_close(blended[:, 30, 0], torch.full((3,), (0 + 5) / 2))  # rows 28..31
    assert_close(blended[:, 30, 30], torch.full((3,), (0 + 1 + 5 + 6) / 4))  # both axes
    assert_close(blended[:, 59, 152], torch.full((3,), 9.0))


def test_init_real_class_means():
    # Each class's images are constant = class index; noise 0 shows the placed means.
    K, shape = 4, (1, 8, 8)
    real_y = torch.arange(K).repeat(5)
    real_x = real_y.float()[:, None, None, None].expand(-1, *shape).clone()
    order = torch.tensor([[2, 0], [3, 1]])
    geometry = baseline_geometry(K, shape)  # 16×16, no overlap
    poster = init_poster(
        geometry, torch.Generator().manual_seed(0), "real", class_order=order, real_x=real_x, real_y=real_y, noise=0.0
    )
    assert_close(poster[0, :8, :8], torch.full((8, 8), 2.0))
    assert_close(poster[0, 8:, 8:], torch.full((8, 8), 1.0))
    # Below 1 IPC the class areas overlap and are blended (averaged).
    small = make_geometry(K, shape, size=(12, 12), patches=(2, 2))
    poster = init_poster(
        small, torch.Generator().manual_seed(0), "real", class_order=order, real_x=real_x, real_y=real_y, noise=0.0
    )
    assert_close(poster[0, 0, 0], torch.tensor(2.0))
    assert_close(poster[0, 6, 6], torch.tensor((2 + 0 + 3 + 1) / 4))
    noisy = init_poster(
        small, torch.Generator().manual_seed(0), "real", class_order=order, real_x=real_x, real_y=real_y
    )
    again = init_poster(
        small, torch.Generator().manual_seed(0), "real", class_order=order, real_x=real_x, real_y=real_y
    )
    assert torch.equal(noisy, again) and not torch.equal(noisy, poster)


def test_init_real_fills_gaps_and_per_class_posters():
    # Above 1 IPC the class mean repeats over its area; a per-class poster names its class.
    real_x = torch.arange(16.0).view(1, 1, 4, 4).repeat(3, 1, 1, 1)
    real_x[0] = -1
    real_y = torch.tensor([0, 3, 3])
    geometry = per_class_geometry(10, (1, 4, 4), ipc=2.0, patches=(2, 2))
    assert geometry.size == (6, 6)
    poster = init_poster(
        geometry, torch.Generator(), "real", class_order=[[3]], real_x=real_x, real_y=real_y, noise=0.0
    )
    mean = torch.arange(16.0).view(4, 4)
    assert_close(poster[0, :4, :4], mean)
    assert_close(poster[0, 4:, 4:], mean[:2, :2])
    with pytest.raises(ValueError, match=r"none for classes \[5\]"):
        init_poster(geometry, torch.Generator(), "real", class_order=[[5]], real_x=real_x, real_y=real_y)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("ipc", [0, -0.5, float("nan")])
def test_bad_ipc(ipc):
    with pytest.raises(ValueError, match="ipc"):
        make_geometry(10, (3, 32, 32), ipc=ipc)


def test_bad_geometries():
    with pytest.raises(ValueError, match="smaller than one image"):
        make_geometry(10, (3, 32, 32), size=(31, 100))
    with pytest.raises(ValueError, match="patch count 0"):
        make_geometry(10, (3, 32, 32), size=(60, 153), patches=(0, 16))
    with pytest.raises(ValueError, match="patch count 30 along y"):
        make_geometry(10, (3, 32, 32), size=(60, 153), patches=(30, 16))  # 29 distinct rows
    with pytest.raises(ValueError, match="too few for 10 classes"):
        make_geometry(10, (3, 32, 32), grid=(3, 3))
    with pytest.raises(ValueError, match="stride"):
        make_geometry(10, (3, 32, 32), stride=0)
    with pytest.raises(ValueError, match="not both"):
        make_geometry(10, (3, 32, 32), patches=(2, 2), stride=4)
    with pytest.raises(ValueError, match="unknown poster initialisation 'zeros'"):
        init_poster(make_geometry(10, (3, 32, 32)), torch.Generator(), "zeros")

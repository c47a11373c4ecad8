"""The poster (§4.1): one image shared by all classes, cut into overlapping patches.

A poster is a single ``(c, H, W)`` tensor. A fixed procedure turns it into a distilled dataset:
``ny × nx`` patches, each the size of one dataset image ``(c, h, w)``, whose top-left corners lie
on an evenly spread grid. Neighbouring patches share pixels, so a poster with fewer pixels than
``K`` images can still yield many training images: that is how PoDD goes below one image per
class (IPC).

Conventions used throughout (all sizes are ``(height, width)`` pairs, rows before columns):

* **class grid** ``(rows, cols)``: where the classes live on the poster (see :mod:`podd.layout`).
* **size** ``(H, W)``: the poster in pixels. Its budget is ``IPC = H·W / (K·h·w)``.
* **patches** ``(ny, nx)``: patch counts along y and x; patch ``n = iy·nx + ix`` (row-major).
* **positions**: ``(N, 2)`` long tensor of top-left ``(y, x)`` corners,
  ``round(linspace(0, H−h, ny)) × round(linspace(0, W−w, nx))``.

The authors' code lists patches x-major; this package lists them row-major (reading order). Only
the order of the list differs, never the set of patches.

Where the classes sit is :mod:`podd.layout`; saving a poster is :mod:`podd.artifacts`, showing
one :mod:`podd.display` and :func:`podd.figures.plot_patch_grid`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from podd.choices import INITS  # the poster initialisations a user chooses from
from podd.layout import check_fits, check_grid, default_class_grid, identity_order, pixel_cells, validate_class_order

__all__ = [
    "PAPER_POSTERS",
    "as_pair",
    "PosterGeometry",
    "poster_size",
    "PAPER_STRIDE_FRACTION",
    "default_patch_counts",
    "patch_counts_from_stride",
    "patch_counts_for_ipc",
    "geometry_stride",
    "make_geometry",
    "baseline_geometry",
    "axis_positions",
    "patch_positions",
    "patch_index",
    "extract_patches",
    "overlap_count",
    "INITS",
    "init_poster",
    "per_class_geometry",
    "extract_per_class_patches",
]

# The authors' published commands at IPC ≈ 0.9. Their poster sizes are typed into
# each command by hand: no single rounding of (rows·h·√0.9, cols·w·√0.9) reproduces all four
# (CIFAR-10's width 153 lies *above* 160·√0.9 = 151.8 while CUB's height 302 lies *below*
# 320·√0.9 = 303.6), so the paper settings pass them explicitly through ``make_geometry(size=...)``.
PAPER_POSTERS: dict[str, dict[str, tuple[int, int]]] = {
    "cifar10": {"grid": (2, 5), "size": (60, 153), "patches": (6, 16)},
    "cifar100": {"grid": (10, 10), "size": (303, 303), "patches": (20, 20)},
    "cub200": {"grid": (10, 20), "size": (302, 610), "patches": (30, 60)},
    "tinyimagenet": {"grid": (10, 20), "size": (608, 1211), "patches": (20, 40)},
}

# The pixel step between neighbouring patch corners of the authors' CIFAR-10 poster (60×153 with
# 6×16 patches of 32×32: 5.6 px down, 8.07 px across, rounded to 6 and 8), as fractions of the
# image side. Data without a paper preset gets patches at this stride, i.e. the paper's overlap.
PAPER_STRIDE_FRACTION: tuple[float, float] = (6 / 32, 8 / 32)


def _round_half_up(x: float) -> int:
    """Round a poster side to the nearest integer, halves up (sides are never ties in practice)."""
    return int(math.floor(x + 0.5))


def as_pair(value, name: str) -> tuple[int, int]:
    """Accept an int or a 2-sequence and return a pair of Python ints (``name`` for the error)."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair (y, x); got {value!r}") from None
    return int(a), int(b)


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PosterGeometry:
    """Everything that fixes how a poster becomes patches; plain data, saved with every poster.

    Attributes:
        num_classes: ``K``.
        image_shape: ``(c, h, w)`` of one dataset image, which is also one patch.
        grid: class grid ``(rows, cols)`` with ``rows·cols ≥ K`` (extra cells stay empty).
        size: poster ``(H, W)`` in pixels, each side at least one image.
        patches: patch counts ``(ny, nx)``; each between 1 and the number of distinct positions
            (``H − h + 1`` along y, ``W − w + 1`` along x).

    Derived: ``num_patches = ny·nx``, ``pixels = H·W`` and ``ipc = H·W / (K·h·w)``, the pixel
    budget in images per class (the paper's measure of a distilled dataset's size).
    """

    num_classes: int
    image_shape: tuple[int, int, int]
    grid: tuple[int, int]
    size: tuple[int, int]
    patches: tuple[int, int]

    def __post_init__(self):
        # Normalise to tuples of Python ints (from_dict may hand in lists) before validating.
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "image_shape", tuple(int(v) for v in self.image_shape))
        object.__setattr__(self, "grid", as_pair(self.grid, "grid"))
        object.__setattr__(self, "size", as_pair(self.size, "size"))
        object.__setattr__(self, "patches", as_pair(self.patches, "patches"))
        _validate_geometry(self.num_classes, self.image_shape, self.grid, self.size, self.patches)

    @property
    def num_patches(self) -> int:
        """Number of patches ``N = ny·nx``."""
        return self.patches[0] * self.patches[1]

    @property
    def pixels(self) -> int:
        """Poster pixels per channel, ``H·W``."""
        return self.size[0] * self.size[1]

    @property
    def ipc(self) -> float:
        """Effective images per class: ``H·W / (K·h·w)``."""
        _, h, w = self.image_shape
        return self.pixels / (self.num_classes * h * w)

    @property
    def patch_hw(self) -> tuple[int, int]:
        """``(h, w)`` of one patch."""
        return self.image_shape[1], self.image_shape[2]

    def positions(self) -> torch.Tensor:
        """Top-left ``(y, x)`` corners of all patches, ``(N, 2)`` long, row-major."""
        return patch_positions(self.size, self.patch_hw, self.patches)

    def to_dict(self) -> dict:
        """Plain-data form (lists and ints), for JSON and checkpoints."""
        return {
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "grid": list(self.grid),
            "size": list(self.size),
            "patches": list(self.patches),
        }

    @classmethod
    def from_dict(cls, d: dict) -> PosterGeometry:
        """Inverse of :meth:`to_dict` (extra keys are ignored)."""
        try:
            return cls(
                num_classes=d["num_classes"],
                image_shape=tuple(d["image_shape"]),
                grid=tuple(d["grid"]),
                size=tuple(d["size"]),
                patches=tuple(d["patches"]),
            )
        except KeyError as e:
            raise ValueError(f"poster geometry dict lacks the key {e}; got keys {sorted(d)}") from None


def _validate_geometry(num_classes, image_shape, grid, size, patches) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1; got {num_classes}")
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (c, h, w) with positive entries; got {image_shape}")
    _, h, w = image_shape
    check_fits(num_classes, *check_grid(*grid))
    H, W = size
    if H < h or W < w:
        raise ValueError(
            f"poster size {H}×{W} (H×W) is smaller than one image {h}×{w}; a poster must hold at least one patch"
        )
    ny, nx = patches
    for count, length, patch, axis in ((ny, H, h, "y"), (nx, W, w, "x")):
        distinct = length - patch + 1
        if count < 1 or count > distinct:
            raise ValueError(
                f"patch count {count} along {axis} is out of range: a poster side of "
                f"{length} with patch side {patch} has 1 to {distinct} distinct "
                f"positions"
            )


def poster_size(
    num_classes: int, image_shape: Sequence[int], ipc: float, grid: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Poster ``(H, W)`` for a budget of ``ipc`` images per class.

    The 1-IPC poster is the class grid of images, ``(rows·h) × (cols·w)``; for IPC ``r`` each
    side is scaled by ``√r`` and rounded to the nearest integer (halves up), never below one
    image ``(h, w)``. When the grid has empty cells (``rows·cols > K``) the scale is
    ``√(r·K / (rows·cols))`` instead, so that empty cells do not get pixels for free and the
    effective IPC ``H·W / (K·h·w)`` stays close to ``r``; for the paper's grids (exact
    factorisations) this is exactly ``√r``.

    Rounding makes the effective IPC differ slightly from ``r``; read it from
    :attr:`PosterGeometry.ipc`. The authors typed their sizes by hand (see :data:`PAPER_POSTERS`);
    this rule lands within 3 pixels of each of them.
    """
    ipc = float(ipc)
    if not ipc > 0 or not math.isfinite(ipc):
        raise ValueError(f"ipc must be a positive number of images per class; got {ipc}")
    c, h, w = (int(v) for v in image_shape)
    rows, cols = default_class_grid(num_classes) if grid is None else as_pair(grid, "grid")
    check_fits(num_classes, rows, cols)
    scale = math.sqrt(ipc * num_classes / (rows * cols))
    return max(h, _round_half_up(rows * h * scale)), max(w, _round_half_up(cols * w * scale))


def default_patch_counts(size: tuple[int, int], patch_hw: tuple[int, int]) -> tuple[int, int]:
    """Patch counts used when neither ``patches`` nor ``stride`` is given.

    The rule: the paper's overlap. The stride is :data:`PAPER_STRIDE_FRACTION` of the image side
    (``round(3h/16)`` down, ``round(w/4)`` across, at least 1 pixel: 6×8 pixels on 32×32 images,
    the stride of the authors' CIFAR-10 poster), i.e. ``floor((H − h) / sy) + 1`` patches along
    y and ``floor((W − w) / sx) + 1`` along x. A 10-class 32×32 poster at 0.5 IPC (45×113) gets
    3×11 patches; the paper's own settings pass their ``patches`` explicitly.
    """
    h, w = patch_hw
    fy, fx = PAPER_STRIDE_FRACTION
    return patch_counts_from_stride(size, patch_hw, (max(1, round(h * fy)), max(1, round(w * fx))))


def patch_counts_from_stride(size: tuple[int, int], patch_hw: tuple[int, int], stride) -> tuple[int, int]:
    """Patch counts ``floor((H − h) / sy) + 1`` × ``floor((W − w) / sx) + 1`` for a stride.

    ``stride`` is an int (the same along both axes, as in the paper) or ``(sy, sx)``. The
    positions themselves are still spread by :func:`patch_positions` from the first to the last
    possible corner, so the actual step is the stride or slightly more when it does not divide.
    """
    sy, sx = as_pair(stride, "stride")
    if sy < 1 or sx < 1:
        raise ValueError(f"stride must be at least 1 pixel; got {stride!r}")
    (H, W), (h, w) = size, patch_hw
    if H < h or W < w:
        raise ValueError(f"poster size {H}×{W} is smaller than one image {h}×{w}")
    return (H - h) // sy + 1, (W - w) // sx + 1


def patch_counts_for_ipc(
    num_classes: int, image_shape: Sequence[int], ipc: float, grid: tuple[int, int] | None = None, stride=None
) -> tuple[int, int]:
    """Patch counts of the poster for ``ipc`` when the patches keep a fixed pixel ``stride``.

    The paper keeps the stride (the patches' overlap) fixed and lets the patch count follow the
    poster's size; this is that rule: :func:`patch_counts_from_stride` on the poster of
    :func:`poster_size`. ``stride``: an int or ``(sy, sx)`` in pixels (e.g. the stride of a
    preset's geometry, :func:`geometry_stride`); ``None`` uses :func:`default_patch_counts`.
    """
    image_shape = tuple(int(v) for v in image_shape)
    size = poster_size(num_classes, image_shape, ipc, grid)
    if stride is None:
        return default_patch_counts(size, image_shape[1:])
    return patch_counts_from_stride(size, image_shape[1:], stride)


def geometry_stride(geometry: PosterGeometry) -> tuple[int, int]:
    """The ``(sy, sx)`` pixel step between neighbouring patch corners of ``geometry``, rounded
    (at least 1; one image side along an axis with a single patch)."""
    (H, W), (h, w), (ny, nx) = geometry.size, geometry.patch_hw, geometry.patches
    sy = (H - h) / (ny - 1) if ny > 1 else h
    sx = (W - w) / (nx - 1) if nx > 1 else w
    return max(1, round(sy)), max(1, round(sx))


def make_geometry(
    num_classes: int,
    image_shape: Sequence[int],
    ipc: float = 1.0,
    grid: tuple[int, int] | None = None,
    patches=None,
    stride=None,
    size: tuple[int, int] | None = None,
) -> PosterGeometry:
    """Build and validate a :class:`PosterGeometry`.

    Args:
        num_classes: ``K``.
        image_shape: ``(c, h, w)`` of one image / patch.
        ipc: pixel budget in images per class (> 0); ignored when ``size`` is given.
        grid: class grid ``(rows, cols)``; default :func:`podd.layout.default_class_grid`.
        patches: patch counts ``(ny, nx)`` (or one int for both). Give at most one of
            ``patches`` and ``stride``; with neither, :func:`default_patch_counts`.
        stride: pixels between neighbouring corners (int or ``(sy, sx)``); see
            :func:`patch_counts_from_stride`.
        size: explicit poster ``(H, W)``, overriding ``ipc`` (the authors' hand-typed sizes).

    Example: the paper's CIFAR-10 at 0.9 IPC is
    ``make_geometry(10, (3, 32, 32), size=(60, 153), patches=(6, 16))``.
    """
    if len(tuple(image_shape)) != 3:
        raise ValueError(f"image_shape must be (c, h, w); got {tuple(image_shape)}")
    image_shape = tuple(int(v) for v in image_shape)
    grid = default_class_grid(num_classes) if grid is None else as_pair(grid, "grid")
    if size is None:
        size = poster_size(num_classes, image_shape, ipc, grid)
    else:
        size = as_pair(size, "size")
    if patches is not None and stride is not None:
        raise ValueError(f"give patches or stride, not both; got patches={patches!r}, stride={stride!r}")
    patch_hw = image_shape[1:]
    if size[0] < patch_hw[0] or size[1] < patch_hw[1]:
        raise ValueError(
            f"poster size {size[0]}×{size[1]} (H×W) is smaller than one image "
            f"{patch_hw[0]}×{patch_hw[1]}; a poster must hold at least one patch"
        )
    if patches is not None:
        patches = as_pair(patches, "patches")
    elif stride is not None:
        patches = patch_counts_from_stride(size, patch_hw, stride)
    else:
        patches = default_patch_counts(size, patch_hw)
    return PosterGeometry(num_classes, image_shape, grid, size, patches)


def baseline_geometry(
    num_classes: int, image_shape: Sequence[int], grid: tuple[int, int] | None = None
) -> PosterGeometry:
    """The RaT-BPTT baseline as a poster: IPC 1, one non-overlapping patch per grid cell.

    The poster is exactly the class grid of images, ``(rows·h) × (cols·w)``, and the patches are
    the grid cells, so they tile it without overlap: with an exact grid (``rows·cols = K``) these
    are ``K`` independent images, one per class, which is the baseline of paper §5.3.
    """
    _, h, w = (int(v) for v in image_shape)
    rows, cols = default_class_grid(num_classes) if grid is None else as_pair(grid, "grid")
    return PosterGeometry(num_classes, tuple(image_shape), (rows, cols), (rows * h, cols * w), (rows, cols))


# --------------------------------------------------------------------------------------------
# Patch positions and extraction
# --------------------------------------------------------------------------------------------


def axis_positions(length: int, patch: int, count: int) -> torch.Tensor:
    """Patch starts along one axis: ``round(linspace(0, length − patch, count))``, long.

    Rounding is half-to-even (``torch.round`` and ``numpy.round`` agree; the authors use
    ``numpy.round``), computed in float64 so that near-halves round as in numpy. For CIFAR-10's
    153-wide poster with 16 patches this gives 0, 8, 16, …, 56, 65, 73, …, 121. ``count = 1``
    gives the single start 0.
    """
    length, patch, count = int(length), int(patch), int(count)
    distinct = length - patch + 1
    if distinct < 1:
        raise ValueError(f"poster side {length} is smaller than the patch side {patch}")
    if count < 1 or count > distinct:
        raise ValueError(
            f"patch count {count} is out of range: a side of {length} with patch "
            f"side {patch} has 1 to {distinct} distinct positions"
        )
    starts = torch.linspace(0, length - patch, count, dtype=torch.float64)
    return torch.round(starts).long()


def patch_positions(size, patch_hw, counts) -> torch.Tensor:
    """Top-left corners ``(N, 2)`` (columns ``y, x``) of ``ny × nx`` patches, row-major.

    Patch ``n = iy·nx + ix`` has corner ``(ys[iy], xs[ix])`` with ``ys``, ``xs`` from
    :func:`axis_positions`.
    """
    (H, W), (h, w), (ny, nx) = as_pair(size, "size"), as_pair(patch_hw, "patch_hw"), as_pair(counts, "counts")
    ys = axis_positions(H, h, ny)
    xs = axis_positions(W, w, nx)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def patch_index(positions: torch.Tensor, patch_hw, width: int) -> torch.Tensor:
    """Flat pixel indices ``(N, h, w)`` of every patch in a poster of the given width.

    ``index[n, i, j] = (y_n + i)·W + (x_n + j)``: one gather with it extracts all patches.
    Precompute it once when extracting many times from the same geometry.
    """
    h, w = as_pair(patch_hw, "patch_hw")
    positions = torch.as_tensor(positions, dtype=torch.long)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions must be an (N, 2) tensor of (y, x); got {tuple(positions.shape)}")
    rows = positions[:, 0, None, None] + torch.arange(h, device=positions.device)[None, :, None]
    cols = positions[:, 1, None, None] + torch.arange(w, device=positions.device)[None, None, :]
    return rows * int(width) + cols


def extract_patches(
    poster: torch.Tensor, positions: torch.Tensor, patch_hw, index: torch.Tensor | None = None
) -> torch.Tensor:
    """All patches of a poster in one differentiable gather.

    Args:
        poster: ``(c, H, W)``, or a batch of posters ``(P, c, H, W)`` (per-class mode).
        positions: ``(N, 2)`` top-left ``(y, x)`` corners (e.g. ``geometry.positions()``).
        patch_hw: ``(h, w)``.
        index: optional precomputed :func:`patch_index` for this poster width, on the poster's
            device (saves rebuilding the ``N·h·w`` index on every call; ``positions`` is then
            not read).

    Returns:
        ``(N, c, h, w)`` for one poster, ``(P, N, c, h, w)`` for a batch. The gather is an
        ``index_select`` on the flattened poster, so in the backward pass the gradients of
        overlapping patches are summed into the shared poster pixels.
    """
    if poster.ndim not in (3, 4):
        raise ValueError(f"poster must be (c, H, W) or (P, c, H, W); got shape {tuple(poster.shape)}")
    h, w = as_pair(patch_hw, "patch_hw")
    H, W = poster.shape[-2:]
    if index is None:
        positions = torch.as_tensor(positions, dtype=torch.long)
        # Checked only on the CPU: on an accelerator the comparison would force a host sync on
        # every call. Positions from PosterGeometry.positions() are always inside.
        if (
            positions.device.type == "cpu"
            and positions.numel()
            and (positions.min() < 0 or positions[:, 0].max() + h > H or positions[:, 1].max() + w > W)
        ):
            raise ValueError(f"patch positions reach outside the {H}×{W} poster for patches of {h}×{w}")
        index = patch_index(positions.to(poster.device), (h, w), W)
    index = index.to(poster.device)
    n = index.shape[0]
    flat = poster.flatten(-2)  # (..., c, H·W)
    gathered = flat.index_select(-1, index.reshape(-1))  # (..., c, N·h·w)
    gathered = gathered.unflatten(-1, (n, h, w))  # (..., c, N, h, w)
    return gathered.movedim(-4, -3)  # (..., N, c, h, w)


def overlap_count(geometry: PosterGeometry) -> torch.Tensor:
    """``(H, W)`` float: how many patches cover each poster pixel (0 = pixel never used).

    Equals the poster gradient of ``extract_patches(...).sum()`` for one channel.
    """
    H, W = geometry.size
    count = torch.zeros(H * W)
    index = patch_index(geometry.positions(), geometry.patch_hw, W).reshape(-1)
    count.index_add_(0, index, torch.ones(index.numel()))
    return count.view(H, W)


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


def init_poster(
    geometry: PosterGeometry,
    generator: torch.Generator,
    method: str = "class_areas",
    *,
    class_order: torch.Tensor | None = None,
    real_x: torch.Tensor | None = None,
    real_y: torch.Tensor | None = None,
    noise: float | None = None,
) -> torch.Tensor:
    """A fresh ``(c, H, W)`` float32 poster, on the generator's device. Same generator state,
    same poster.

    ``class_areas`` and ``real`` build one ``(c, h, w)`` *class area* per cell of the class grid
    and place the areas on the poster at evenly spread corners (:func:`_blend_cell_areas`: averaged where they
    overlap below 1 IPC, repeated periodically into the gaps above 1 IPC) — so each pixel starts
    from the class that the class map gives it.

    Methods:
        ``"class_areas"`` (the authors' code, and the presets' default): each class area is a
            standard-normal class mean plus Gaussian noise (standard deviation ``noise``,
            default 1), then projected to unit L2 norm over its ``c·h·w`` values, then blended.
            That is about ``1/√(c·h·w)`` per pixel (0.018 for 3×32×32). The scale matters even
            though the ConvNet's instance norm ignores it: Adam moves every pixel by about the
            outer learning rate per step whatever the poster's scale, so at lr 1e-3 a poster of
            RMS 0.018 changes ~5 % per step and a standard-normal one ~0.1 % — 56× slower.
        ``"gaussian"``: the paper text's "standard Gaussian noise" (§4.1), i.i.d. per pixel,
            scaled to the same per-pixel RMS ``1/√(c·h·w)`` as ``class_areas`` for the reason
            above (``class_order`` is not used).
        ``"real"``: each class area is the class's mean real image (``real_x`` are
            *preprocessed* float images ``(n, c, h, w)``, ``real_y`` their labels), then Gaussian
            noise with standard deviation ``noise × std(real_x)`` (default 0.2) is added to the
            blended poster. Every class on the poster must have real images. Its scale is the
            data's.

    ``class_order`` is the ``(rows, cols)`` grid of class indices (``-1`` = empty cell; empty
    cells get noise only under ``class_areas`` and zeros under ``real``). For one poster of the
    poster-per-class mode (``geometry.num_classes == 1``) it is ``[[k]]``, the dataset class
    ``k`` that poster holds. ``class_areas`` without a ``class_order`` uses the identity order.
    """
    c, h, w = geometry.image_shape
    H, W = geometry.size
    device = generator.device
    area_rms = 1.0 / math.sqrt(c * h * w)  # a unit-L2-norm class area, per pixel
    if method == "gaussian":
        return area_rms * torch.randn((c, H, W), generator=generator, device=device)
    if method not in INITS:
        raise ValueError(f"unknown poster initialisation {method!r}; use one of {', '.join(INITS)}")
    order = _cell_classes(geometry, class_order, device, required=(method == "real"))
    if method == "class_areas":
        return _class_area_init(geometry, order, generator, 1.0 if noise is None else noise)
    return _real_mean_init(geometry, order, generator, real_x, real_y, 0.2 if noise is None else noise)


def _cell_classes(geometry: PosterGeometry, class_order, device, required: bool) -> torch.Tensor:
    """The validated ``(rows, cols)`` class of every grid cell (``-1`` = empty), on ``device``."""
    if class_order is None:
        if required:
            raise ValueError(
                "init method 'real' needs class_order, real_x (preprocessed float images) and real_y (their labels)"
            )
        return identity_order(geometry.num_classes, *geometry.grid).to(device)
    if geometry.num_classes == 1:
        # One poster of the poster-per-class mode: its 1×1 order names the dataset class it holds.
        order = torch.as_tensor(class_order).long().reshape(1, 1).to(device)
        if int(order) < 0:
            raise ValueError(f"a per-class poster's class_order must name its class; got {int(order)}")
        return order
    return validate_class_order(class_order, geometry.num_classes, geometry.grid).to(device)


def _class_area_init(
    geometry: PosterGeometry, order: torch.Tensor, generator: torch.Generator, noise: float
) -> torch.Tensor:
    """The authors' init: (class mean + noise) per class area, unit L2 norm, blended."""
    c, h, w = geometry.image_shape
    device = generator.device
    cells = order.reshape(-1)
    num_means = max(int(cells.max()) + 1, 1)
    means = torch.randn((num_means, c * h * w), generator=generator, device=device)
    areas = noise * torch.randn((cells.numel(), c * h * w), generator=generator, device=device)
    areas = areas + means[cells.clamp_min(0)] * (cells >= 0)[:, None]
    areas = torch.nn.functional.normalize(areas, dim=1)  # unit norm per class area
    return _blend_cell_areas(geometry, areas)


def _real_mean_init(
    geometry: PosterGeometry, order: torch.Tensor, generator: torch.Generator, real_x, real_y, noise: float
) -> torch.Tensor:
    """Each class area is its class's mean real image; blended, then Gaussian noise added."""
    c, h, w = geometry.image_shape
    device = generator.device
    if real_x is None or real_y is None:
        raise ValueError(
            "init method 'real' needs class_order, real_x (preprocessed float images) and real_y (their labels)"
        )
    real_x = torch.as_tensor(real_x).to(device=device, dtype=torch.float32)
    real_y = torch.as_tensor(real_y).to(device=device, dtype=torch.long)
    if tuple(real_x.shape[1:]) != (c, h, w) or real_x.shape[0] != real_y.shape[0]:
        raise ValueError(
            f"real_x must be (n, {c}, {h}, {w}) with one label per image in real_y; "
            f"got {tuple(real_x.shape)} and {tuple(real_y.shape)}"
        )
    needed = order[order >= 0]
    num_means = max(int(needed.max()) + 1, int(real_y.max()) + 1)
    counts = torch.bincount(real_y, minlength=num_means)
    missing = [k for k in needed.tolist() if counts[k] == 0]
    if missing:
        raise ValueError(f"init 'real' needs real images of every class on the poster; none for classes {missing}")
    # Class means for all classes in one scatter-add (no loop over classes).
    means = torch.zeros(num_means, c * h * w, device=device).index_add_(0, real_y, real_x.flatten(1))
    means = means / counts.clamp_min(1)[:, None]
    cells = order.reshape(-1)
    areas = means[cells.clamp_min(0)] * (cells >= 0)[:, None]
    blended = _blend_cell_areas(geometry, areas)
    scale = float(noise) * real_x.std().item()
    return blended + scale * torch.randn(blended.shape, generator=generator, device=device)


def _blend_cell_areas(geometry: PosterGeometry, areas: torch.Tensor) -> torch.Tensor:
    """Lay one ``c·h·w`` area per grid cell (``areas``: ``(rows·cols, c·h·w)``, row-major) on the
    poster and return it as ``(c, H, W)``.

    Cell ``(r, q)`` is placed at corner ``(ys[r], xs[q])``, with ``ys, xs`` the
    :func:`axis_positions` of a ``rows × cols`` grid of images over the poster. Below 1 IPC the
    placements overlap and are averaged; above 1 IPC the gaps between them are filled by
    repeating each cell's area periodically from its corner over the pixels of that cell in the
    class map, so every pixel starts near its class.
    """
    c, h, w = geometry.image_shape
    H, W = geometry.size
    rows, cols = geometry.grid
    device = areas.device
    # A poster smaller than the grid of images along an axis cannot give each row/column of cells
    # its own start; repeat the last start (those cells then share it and are averaged).
    ys = axis_positions(H, h, min(rows, H - h + 1))
    xs = axis_positions(W, w, min(cols, W - w + 1))
    ys = torch.cat([ys, ys[-1:].repeat(rows - len(ys))])
    xs = torch.cat([xs, xs[-1:].repeat(cols - len(xs))])
    corners = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2).to(device)
    index = patch_index(corners, (h, w), W).reshape(-1)  # (cells·h·w,)
    values = areas.view(-1, c, h * w).permute(1, 0, 2).reshape(c, -1)  # (c, cells·h·w)
    total = torch.zeros(c, H * W, device=device).index_add_(1, index, values)
    cover = torch.zeros(H * W, device=device).index_add_(0, index, torch.ones(index.numel(), device=device))
    blended = total / cover.clamp_min(1)
    gaps = cover == 0
    if gaps.any():
        y = torch.arange(H, device=device)
        x = torch.arange(W, device=device)
        cell_y, cell_x = pixel_cells(H, rows, device), pixel_cells(W, cols, device)
        local_y = (y - ys.to(device)[cell_y]) % h  # offset from the corner
        local_x = (x - xs.to(device)[cell_x]) % w
        cell = (cell_y[:, None] * cols + cell_x[None, :]).reshape(-1)  # (H·W,)
        local = (local_y[:, None] * w + local_x[None, :]).reshape(-1)  # (H·W,)
        blended[:, gaps] = areas.view(-1, c, h * w)[cell[gaps], :, local[gaps]].T
    return blended.view(c, H, W)


# --------------------------------------------------------------------------------------------
# One poster per class (§6, fig 9)
# --------------------------------------------------------------------------------------------


def per_class_geometry(num_classes: int, image_shape: Sequence[int], ipc: float, patches=None) -> PosterGeometry:
    """Geometry of ONE class's poster in the poster-per-class mode (§6, fig 9).

    Each of the ``K`` classes gets its own poster of ``ipc`` images' worth of pixels:
    side ``h·√ipc`` × ``w·√ipc`` (rounded, never below one image), cut into ``patches``
    (default :func:`default_patch_counts`); every patch of class ``k``'s poster is labelled
    ``k``. The returned geometry describes one such poster, so it has ``num_classes = 1`` and a
    ``1×1`` grid, and its :attr:`~PosterGeometry.ipc` is the per-class budget. The whole
    distilled set is ``K`` posters of this geometry (``(K, c, H, W)``).
    """
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1; got {num_classes}")
    return make_geometry(1, image_shape, ipc=ipc, grid=(1, 1), patches=patches)


def extract_per_class_patches(
    posters: torch.Tensor, positions: torch.Tensor, patch_hw
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches of ``K`` class posters ``(K, c, H, W)`` and their hard labels.

    Returns ``(patches (K·N, c, h, w), labels (K·N,) long)``; the patches of poster ``k`` come
    in one block, labelled ``k``.
    """
    if posters.ndim != 4:
        raise ValueError(f"per-class posters must be (K, c, H, W); got {tuple(posters.shape)}")
    patches = extract_patches(posters, positions, patch_hw)  # (K, N, c, h, w)
    K, N = patches.shape[:2]
    labels = torch.arange(K, device=posters.device).repeat_interleave(N)
    return patches.reshape(K * N, *patches.shape[2:]), labels

"""The class grid: where each class lives on a poster (§4.1–§4.3).

PoDD lays the ``K`` classes out on a ``rows × cols`` grid of cells; the poster (§4.1), PoCO's
placement (§4.2) and the labels (§4.3) all read the same grid, so its rules live here once:

* **grid geometry** — the default grid for ``K`` classes (:func:`default_class_grid`) and the
  checks that a grid is well formed and holds ``K`` classes (:func:`check_grid`,
  :func:`check_fits`);
* **class order** — a ``(rows, cols)`` long matrix of class indices, ``-1`` in empty cells;
  :func:`validate_class_order` checks one, :func:`identity_order` is the one without PoCO;
* **class map** — the order upsampled to the poster: pixel ``(y, x)`` of an ``H × W`` poster
  belongs to cell ``(⌊y·rows/H⌋, ⌊x·cols/W⌋)`` (:func:`pixel_cells`, :func:`class_map`).

This module imports nothing from podd, so every other module may depend on it.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "default_class_grid",
    "check_grid",
    "check_fits",
    "identity_order",
    "validate_class_order",
    "pixel_cells",
    "class_map",
]


def default_class_grid(num_classes: int) -> tuple[int, int]:
    """The class grid ``(rows, cols)`` for ``K`` classes.

    The rule: the most square exact factorisation ``rows × cols = K`` with ``rows ≤ cols``
    (``rows`` = the largest divisor of K not above √K), kept if it is at most 3 times wider than
    tall. Otherwise (K prime or nearly so, e.g. 7 → 1×7) the near-square grid
    ``rows = ⌊√K⌋, cols = ⌈K / rows⌉`` with a few empty cells (7 → 2×4).
    This gives the paper's grids: 2×5 for 10 classes (CIFAR-10, digits), 10×10 for 100
    (CIFAR-100), 10×20 for 200 (CUB200, Tiny-ImageNet).
    """
    K = int(num_classes)
    if K < 1:
        raise ValueError(f"num_classes must be at least 1; got {num_classes}")
    rows = max(r for r in range(1, math.isqrt(K) + 1) if K % r == 0)
    cols = K // rows
    if cols <= 3 * rows:
        return rows, cols
    rows = math.isqrt(K)
    return rows, -(-K // rows)


def check_grid(rows, cols) -> tuple[int, int]:
    """``(rows, cols)`` as Python ints; ValueError unless both are positive integers."""
    if int(rows) != rows or int(cols) != cols or rows < 1 or cols < 1:
        raise ValueError(f"class grid must be positive integers, got rows={rows!r}, cols={cols!r}.")
    return int(rows), int(cols)


def check_fits(num_classes: int, rows: int, cols: int) -> None:
    """ValueError unless a ``rows × cols`` grid has a cell for each of ``num_classes`` classes."""
    if rows * cols < num_classes:
        raise ValueError(
            f"class grid {rows}x{cols} has {rows * cols} cells, too few for {num_classes} classes; "
            "choose rows*cols >= K (e.g. podd.layout.default_class_grid(K))."
        )


def identity_order(num_classes: int, rows: int, cols: int) -> torch.LongTensor:
    """Classes in dataset order, row-major: cell (r, c) gets class r·cols + c; −1 past K.

    This is the order a plain poster would use without PoCO (the ablation's baseline).
    """
    rows, cols = check_grid(rows, cols)
    check_fits(num_classes, rows, cols)
    order = torch.arange(rows * cols)
    order[num_classes:] = -1
    return order.reshape(rows, cols)


def validate_class_order(class_order, num_classes: int, grid=None) -> torch.Tensor:
    """Check a class order matrix and return it as a ``(rows, cols)`` long tensor.

    It must contain every class ``0..K−1`` exactly once and ``-1`` in all other cells, so that
    every class owns a label cell (a class with no cell could never be predicted by a label).
    ``grid``, when given, is the expected ``(rows, cols)``.
    """
    order = torch.as_tensor(class_order)
    if order.dtype.is_floating_point or order.dtype == torch.bool:
        raise ValueError(f"class_order must hold integer class indices; got dtype {order.dtype}")
    order = order.long()
    if order.ndim != 2:
        raise ValueError(f"class_order must be a (rows, cols) matrix; got shape {tuple(order.shape)}")
    if grid is not None and tuple(order.shape) != tuple(int(g) for g in grid):
        raise ValueError(f"class_order has shape {tuple(order.shape)} but the poster's class grid is {tuple(grid)}")
    K = int(num_classes)
    flat = order.flatten().cpu()
    bad = flat[(flat < -1) | (flat >= K)]
    if bad.numel():
        raise ValueError(f"class_order holds {bad.unique().tolist()}, outside 0..{K - 1} (use -1 for empty cells)")
    counts = torch.bincount(flat[flat >= 0], minlength=K)
    missing = torch.nonzero(counts == 0).flatten().tolist()
    repeated = torch.nonzero(counts > 1).flatten().tolist()
    if missing or repeated:
        raise ValueError(
            f"class_order must contain each of the {K} classes exactly once; missing {missing}, repeated {repeated}"
        )
    return order


def pixel_cells(length: int, cells: int, device=None) -> torch.Tensor:
    """The class map along one axis: pixel ``t`` of a side of ``length`` lies in cell
    ``⌊t·cells/length⌋``; ``(length,)`` long."""
    return torch.arange(length, device=device) * cells // length


def class_map(class_order: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour upsampling of the class order to the poster: ``(H, W)`` long.

    Pixel ``(y, x)`` gets the class of cell ``(⌊y·rows/H⌋, ⌊x·cols/W⌋)``; ``-1`` stays ``-1``.
    """
    order = torch.as_tensor(class_order).long()
    if order.ndim != 2:
        raise ValueError(f"class_order must be a (rows, cols) matrix; got shape {tuple(order.shape)}")
    H, W = (int(s) for s in size)
    rows, cols = order.shape
    if H < rows or W < cols:
        raise ValueError(f"poster size {H}×{W} is smaller than the {rows}×{cols} class grid")
    iy = pixel_cells(H, rows, order.device)
    ix = pixel_cells(W, cols, order.device)
    return order[iy[:, None], ix[None, :]]

"""PoDDL (§4.3): a soft label for every patch of the poster.

The class order matrix ``(rows, cols)`` (from :mod:`podd.ordering`; ``-1`` marks an empty cell)
says which class owns which part of the poster. Upsampled with nearest-neighbour interpolation to
the poster's ``H × W`` it becomes the *class map* (:mod:`podd.layout`): pixel ``(y, x)`` belongs
to cell ``(⌊y·rows/H⌋, ⌊x·cols/W⌋)``.

Every patch window covers parts of a few cells. Those overlap areas are fixed by the geometry, so
they are computed once as a ``(N, rows·cols)`` weight matrix (:func:`patch_cell_weights`), and
both label kinds are then one matrix product:

* **fixed labels** — the class histogram of each window, one-hot of the majority class, ties
  shared equally (:func:`fixed_labels`);
* **learned labels** — a non-negative ``(K, rows, cols)`` parameter tensor (``K·rows·cols``
  parameters: ``K·K`` for the paper's exact grids, the budget of a 1-IPC learned-label method),
  initialised one-hot at each cell's class; a patch's label is the average of the upsampled
  label map over its window, normalised to sum 1 (:func:`learned_labels`). Clamp the parameters
  at 0 after every optimiser step (``params.data.clamp_(min=0)``).
"""

from __future__ import annotations

import torch

from podd.layout import pixel_cells, validate_class_order
from podd.poster import PosterGeometry, axis_positions

__all__ = [
    "axis_cell_overlap",
    "patch_cell_weights",
    "class_histogram",
    "fixed_labels",
    "area_labels",
    "majority_share",
    "init_label_params",
    "learned_labels",
]


def axis_cell_overlap(length: int, cells: int, starts: torch.Tensor, patch: int) -> torch.Tensor:
    """Along one axis: how many pixels of each window ``[start, start+patch)`` fall in each cell.

    Pixel ``t`` of a side of ``length`` belongs to cell ``⌊t·cells/length⌋``. Returns
    ``(len(starts), cells)`` float, from prefix sums of the per-pixel cell one-hot (no loop).
    """
    cell_of = pixel_cells(length, cells)  # (length,)
    onehot = torch.nn.functional.one_hot(cell_of, cells).float()  # (length, cells)
    prefix = torch.cat([torch.zeros(1, cells), onehot.cumsum(0)])  # (length+1, cells)
    starts = torch.as_tensor(starts, dtype=torch.long).cpu()
    return prefix[starts + patch] - prefix[starts]


def patch_cell_weights(geometry: PosterGeometry) -> torch.Tensor:
    """``(N, rows·cols)`` float: pixels of patch ``n``'s window lying in label cell ``r·cols+q``.

    Because cells and windows are axis-aligned rectangles, the 2-D overlap is the product of the
    1-D overlaps along y and x (:func:`axis_cell_overlap`): an outer product, computed for all
    patches at once. Each row sums to the patch area ``h·w``. Patches are row-major, as in
    :meth:`PosterGeometry.positions`.
    """
    (H, W), (h, w), (ny, nx), (rows, cols) = (geometry.size, geometry.patch_hw, geometry.patches, geometry.grid)
    if H < rows or W < cols:
        raise ValueError(f"poster size {H}×{W} is smaller than the {rows}×{cols} class grid")
    wy = axis_cell_overlap(H, rows, axis_positions(H, h, ny), h)  # (ny, rows)
    wx = axis_cell_overlap(W, cols, axis_positions(W, w, nx), w)  # (nx, cols)
    return torch.einsum("ar,bq->abrq", wy, wx).reshape(ny * nx, rows * cols)


def fixed_labels(class_order: torch.Tensor, geometry: PosterGeometry) -> torch.Tensor:
    """``(N, K)`` fixed soft labels: the majority class of each patch window, ties shared.

    The window's class histogram (:func:`class_histogram`) counts the pixels of each class. The
    label is one-hot at the class with most pixels; when several classes tie exactly, each gets
    ``1 / (number tied)``. A window lying entirely in empty cells gets the uniform label ``1/K``.
    """
    K = geometry.num_classes
    hist = class_histogram(class_order, geometry)  # (N, K) pixel counts
    # Counts are exact integers in float32 (at most h·w), so equality finds the exact ties.
    top = hist.max(dim=1, keepdim=True).values
    tied = (hist == top) & (top > 0)
    labels = tied.float() / tied.sum(dim=1, keepdim=True).clamp_min(1)
    empty = top.squeeze(1) == 0
    labels[empty] = 1.0 / K
    return labels


def class_histogram(class_order: torch.Tensor, geometry: PosterGeometry) -> torch.Tensor:
    """``(N, K)`` float: pixels of each class under each patch window (``weights @
    onehot(class_order)``); empty cells (``-1``) count for no class."""
    K = geometry.num_classes
    order = validate_class_order(class_order, K, geometry.grid).cpu()
    flat = order.flatten()
    cell_onehot = torch.zeros(flat.numel(), K)
    cell_onehot[flat >= 0] = torch.nn.functional.one_hot(flat[flat >= 0], K).float()
    return patch_cell_weights(geometry) @ cell_onehot


def area_labels(class_order: torch.Tensor, geometry: PosterGeometry) -> torch.Tensor:
    """``(N, K)`` soft labels in proportion to each class's pixels under the window.

    Not a label kind of the paper: it is what learned labels are when they start
    (:func:`learned_labels` of :func:`init_label_params` on an exact grid), kept as a diagnostic
    — evaluating a poster with these labels instead of its own shows what the labels' training
    contributed. Fixed labels are their majority class. Windows over empty cells only: ``1/K``.
    """
    K = geometry.num_classes
    order = validate_class_order(class_order, K, geometry.grid).cpu()
    return learned_labels(init_label_params(order, K), patch_cell_weights(geometry))


def majority_share(class_order: torch.Tensor, geometry: PosterGeometry) -> torch.Tensor:
    """``(N,)`` float in (0, 1]: the fraction of each patch's pixels that its majority class owns.

    A fixed label is one-hot at that class, so ``1 − share`` is the part of the patch whose
    pixels belong to other classes but are taught as the label's class. Below one IPC the class
    areas shrink while the patches keep the image size, so the share falls: this is how much a
    fixed label simplifies what the patch shows.
    """
    h, w = geometry.patch_hw
    return class_histogram(class_order, geometry).max(dim=1).values / (h * w)


def init_label_params(class_order: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, rows, cols)`` initial learned-label parameters: one-hot at each cell's class.

    ``params[k, r, q] = 1`` where cell ``(r, q)`` holds class ``k``; empty cells are all 0.
    The result is a plain tensor; make it a leaf with ``requires_grad_()`` to learn it.
    """
    K = int(num_classes)
    order = validate_class_order(class_order, K)
    params = torch.zeros(K, *order.shape, device=order.device)
    filled = order >= 0
    rr, qq = torch.nonzero(filled, as_tuple=True)
    params[order[filled], rr, qq] = 1.0
    return params


def learned_labels(label_params: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` learned soft labels from ``(K, rows, cols)`` parameters; one matmul.

    A patch's label is the average of the nearest-upsampled label map over its window,
    ``weights @ params.reshape(K, −1).T / (h·w)``, normalised to sum 1. Differentiable with
    respect to ``label_params``. A row that sums to 0 (all parameters under the window clamped
    to zero) becomes the uniform label ``1/K`` (with zero gradient), rather than NaN.
    Keep the parameters non-negative (clamp after each step) so the labels are distributions.
    """
    if label_params.ndim != 3:
        raise ValueError(f"label_params must be (K, rows, cols); got {tuple(label_params.shape)}")
    K = label_params.shape[0]
    cells = label_params.shape[1] * label_params.shape[2]
    weights = weights.to(device=label_params.device, dtype=label_params.dtype)
    if weights.ndim != 2 or weights.shape[1] != cells:
        raise ValueError(
            f"weights must be (N, {cells}) for a {tuple(label_params.shape[1:])} label grid; got {tuple(weights.shape)}"
        )
    area = weights.sum(dim=1, keepdim=True).clamp_min(1)
    pooled = weights @ label_params.reshape(K, cells).T / area  # (N, K) window mean
    total = pooled.sum(dim=1, keepdim=True)
    ok = total > 0
    # Divide by a safe denominator so the unused branch of `where` cannot produce NaN gradients.
    normalised = pooled / torch.where(ok, total, torch.ones_like(total))
    return torch.where(ok, normalised, torch.full_like(normalised, 1.0 / K))

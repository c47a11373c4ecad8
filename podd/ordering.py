"""PoCO: Poster Class Ordering (paper §4.2).

On a poster neighbouring classes share pixels, so *which* classes are neighbours matters.
PoCO places semantically related classes next to each other:

1. embed every class name with the CLIP text encoder (:func:`podd.clip_text.text_embeddings`)
   — or, for ``class_order="data"``, every class by its images (:mod:`podd.data_embeddings`);
2. turn the embeddings into pairwise distances, 1 − cosine similarity (:func:`distance_matrix`);
3. walk the class grid in zigzag order (:func:`zigzag`) and greedily give each cell the
   unplaced class closest (summed distance) to its already-placed 4-neighbours (:func:`poco`).

The result is a ``(rows, cols)`` LongTensor of class indices, ``-1`` in empty cells
(:mod:`podd.layout`), which the poster initialisation and the labels (PoDDL, §4.3) read.

Also here: the class-order ablation helpers (§5.3: :func:`ordering_score`,
:func:`random_orderings`) and one entry point that turns a config string into an order
(:func:`resolve_class_order`). The figures of the traversal (fig. 4) and of a class tiling
(fig. 7) are in :mod:`podd.figures`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from podd.clip_text import EMBEDDINGS_SUFFIXES, check_embeddings, load_embeddings, text_embeddings
from podd.data_embeddings import class_distances
from podd.layout import check_fits, check_grid, identity_order, validate_class_order

__all__ = [
    "distance_matrix",
    "zigzag",
    "poco",
    "ordering_score",
    "ordering_scores",
    "random_orderings",
    "resolve_class_order",
    "check_distances",
    "check_traversal",
    "mean_neighbour_distance",
]


def distance_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """Pairwise class distances, 1 − cosine similarity, as a (K, K) float tensor.

    Rows are normalised here, so unnormalised embeddings work. The result is symmetric with a
    zero diagonal (up to rounding) and lies in [0, 2].
    """
    emb = torch.as_tensor(embeddings).detach().float()
    emb = check_embeddings(emb, None)
    norms = emb.norm(dim=1)
    if (norms == 0).any():
        row = int((norms == 0).nonzero()[0])
        raise ValueError(f"embedding row {row} is all zeros; its cosine similarity is undefined.")
    unit = emb / norms[:, None]
    dist = 1.0 - unit @ unit.T
    dist = 0.5 * (dist + dist.T)  # exact symmetry despite rounding
    dist.fill_diagonal_(0.0)
    return dist


def zigzag(rows: int, cols: int, alternate: bool = True) -> torch.LongTensor:
    """Cells of a rows × cols grid in zigzag order, as a (rows·cols, 2) LongTensor of (r, c).

    The walk goes over the anti-diagonals ``r + c = 0, 1, 2, ...``.

    * ``alternate=True`` (default, the paper's zigzag of fig. 4, as in JPEG): the direction
      alternates. Odd diagonals run from the top-right end down-left (r increasing), even ones
      from the bottom-left end up-right (r decreasing); so on a square grid the walk starts
      (0,0), (0,1), (1,0), (2,0), (1,1), (0,2), (0,3), ... exactly as JPEG's coefficient order.
      On a non-square grid each diagonal is cut to the grid and keeps its parity's direction.
    * ``alternate=False`` (the authors' code): every diagonal runs the same way. We chose
      top-right → down-left (r increasing) for all of them, so the walk starts like JPEG's
      ((0,0), (0,1), (1,0), then (0,2), (1,1), (2,0), ...), and every cell after the first
      still has an already-visited 4-neighbour (its upper or left neighbour).

    Example (2 × 5, alternate)::

        0 1 4 5 8
        2 3 6 7 9
    """
    rows, cols = check_grid(rows, cols)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    diag = r + c
    # within a diagonal: r increasing, or r decreasing on even diagonals when alternating
    within = torch.where((diag % 2 == 0) & alternate, rows - 1 - r, r)
    order = torch.argsort(diag * rows + within)
    return torch.stack([r[order], c[order]], dim=1)


def check_distances(distances) -> torch.Tensor:
    """A (K, K) distance matrix as float, checked: square, finite and symmetric."""
    dist = torch.as_tensor(distances).detach().float()
    if dist.dim() != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"distances must be a square (K, K) matrix, got shape {tuple(dist.shape)}.")
    if not torch.isfinite(dist).all():
        bad = (~torch.isfinite(dist)).nonzero()[0].tolist()
        raise ValueError(f"distances contain non-finite values, first at {tuple(bad)}: {dist[tuple(bad)].item()}.")
    asym = (dist - dist.T).abs().max().item() if dist.numel() else 0.0
    if asym > 1e-5 * max(1.0, dist.abs().max().item()):
        raise ValueError(f"distances must be symmetric; max |D - D.T| = {asym:.3g}. Use distance_matrix(embeddings).")
    return dist


def _neighbour_table(rows: int, cols: int) -> torch.LongTensor:
    """(rows·cols, 4) flat indices of each cell's up/down/left/right neighbours, −1 outside."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    cols_out = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nr, nc = r + dr, c + dc
        inside = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
        cols_out.append(torch.where(inside, nr * cols + nc, -1))
    return torch.stack(cols_out, dim=1)


def poco(distances, rows: int, cols: int, traversal=None) -> torch.LongTensor:
    """PoCO's greedy placement of K classes on a rows × cols grid (paper §4.2, algorithm 2).

    The cells are visited in ``traversal`` order (default :func:`zigzag` ``(rows, cols)``).
    The first cell gets class 0 (the first class in dataset order). Every next cell gets the
    unplaced class with the smallest *sum* of distances to the classes already placed in its
    4-neighbourhood; ties go to the lowest class index (a cell with no placed neighbour — only
    possible with a custom traversal — therefore gets the lowest unplaced class).

    When rows·cols > K, the last rows·cols − K cells of the traversal stay empty (−1): with the
    zigzag that is the bottom-right corner, so the classes form one connected block.

    Args:
        distances: (K, K) symmetric matrix, e.g. :func:`distance_matrix` of CLIP embeddings.
        rows, cols: the class grid, rows·cols ≥ K.
        traversal: optional (rows·cols, 2) (r, c) visiting order covering every cell once.

    Returns:
        LongTensor (rows, cols) of class indices, −1 in empty cells.
    """
    dist = check_distances(distances)
    rows, cols = check_grid(rows, cols)
    k = dist.shape[0]
    check_fits(k, rows, cols)
    cells = zigzag(rows, cols) if traversal is None else check_traversal(traversal, rows, cols)
    flat_cells = cells[:, 0] * cols + cells[:, 1]
    neighbours = _neighbour_table(rows, cols)

    order = torch.full((rows * cols,), -1, dtype=torch.long)
    unplaced = torch.ones(k, dtype=torch.bool)
    for step in range(k):  # one small tensor op per placed class; K <= a few hundred
        cell = flat_cells[step]
        nb = neighbours[cell]
        nb_classes = torch.where(nb >= 0, order[nb.clamp(min=0)], -1)
        placed = nb_classes >= 0
        cost = (dist[:, nb_classes.clamp(min=0)] * placed).sum(dim=1)
        cost = torch.where(unplaced, cost, torch.inf)
        choice = int(torch.argmin(cost))  # argmin returns the first minimum: ties -> lowest index
        order[cell] = choice
        unplaced[choice] = False
    return order.reshape(rows, cols)


def check_traversal(traversal, rows: int, cols: int) -> torch.LongTensor:
    """A (rows·cols, 2) visiting order as long, checked: inside the grid, every cell once."""
    cells = torch.as_tensor(traversal, dtype=torch.long)
    if cells.shape != (rows * cols, 2):
        raise ValueError(
            f"traversal must have shape ({rows * cols}, 2) for a {rows}x{cols} grid, got {tuple(cells.shape)}."
        )
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < rows) & (cells[:, 1] >= 0) & (cells[:, 1] < cols)
    if not inside.all():
        raise ValueError(f"traversal cell {cells[~inside][0].tolist()} lies outside the {rows}x{cols} grid.")
    if torch.unique(cells[:, 0] * cols + cells[:, 1]).numel() != rows * cols:
        raise ValueError("traversal must visit every cell of the grid exactly once.")
    return cells


def ordering_score(order, distances) -> float:
    """Score of a class order: 1 / (sum of distances over all 4-neighbour class pairs).

    Each unordered pair of adjacent cells counts once (right and down neighbours); empty cells
    (−1) are skipped. Higher means semantically closer neighbours. This is the score of the
    paper's class-order ablation (§5.3), which correlates with accuracy. Returns ``inf`` when the
    sum is 0 (no neighbouring pairs, or all distances 0). For many orders at once use
    :func:`ordering_scores`.
    """
    order = torch.as_tensor(order, dtype=torch.long)
    if order.dim() != 2:
        raise ValueError(f"order must be a (rows, cols) matrix, got shape {tuple(order.shape)}.")
    return float(ordering_scores(order[None], distances)[0])


def ordering_scores(orders, distances) -> torch.Tensor:
    """:func:`ordering_score` of a batch of orders (N, rows, cols) in one go, as a float64 (N,) tensor.

    The distance matrix is checked once and all neighbour pairs are gathered with one index
    operation, so scoring thousands of random orders (the class-order ablation) is instant.
    """
    dist = check_distances(distances).double()
    orders = torch.as_tensor(orders, dtype=torch.long)
    if orders.dim() != 3:
        raise ValueError(f"orders must be a (N, rows, cols) batch, got shape {tuple(orders.shape)}.")
    k = dist.shape[0]
    if orders.numel() and (orders.max() >= k or orders.min() < -1):
        raise ValueError(
            f"order holds class indices in [{int(orders.min())}, {int(orders.max())}], outside [-1, {k - 1}] "
            f"for a {k}-class distance matrix."
        )
    n = orders.shape[0]
    # every horizontally (right) and vertically (down) adjacent pair of cells, once
    a = torch.cat([orders[:, :, :-1].reshape(n, -1), orders[:, :-1, :].reshape(n, -1)], dim=1)
    b = torch.cat([orders[:, :, 1:].reshape(n, -1), orders[:, 1:, :].reshape(n, -1)], dim=1)
    filled = (a >= 0) & (b >= 0)
    total = (dist[a.clamp(min=0), b.clamp(min=0)] * filled).sum(dim=1)
    return torch.where(total == 0, torch.inf, 1.0 / total)


def random_orderings(num_classes: int, rows: int, cols: int, count: int, seed) -> torch.LongTensor:
    """``count`` random class orders, (count, rows, cols), reproducible from ``seed``.

    Each is a uniformly random permutation of the K classes laid out row-major; as in
    :func:`podd.layout.identity_order` the cells past K (if rows·cols > K) are −1. ``seed`` is an int or a
    ``torch.Generator``; all permutations are drawn in one call (argsort of uniform noise).
    """
    rows, cols = check_grid(rows, cols)
    check_fits(num_classes, rows, cols)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}.")
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    perms = torch.rand(count, num_classes, generator=gen).argsort(dim=1)
    pad = torch.full((count, rows * cols - num_classes), -1, dtype=torch.long)
    return torch.cat([perms, pad], dim=1).reshape(count, rows, cols)


def resolve_class_order(
    spec, class_names: Sequence[str], rows: int, cols: int, *, alternate: bool = True, data=None, **clip_kwargs
) -> torch.LongTensor:
    """Turn a class-order spec (as in a config) into a (rows, cols) LongTensor, −1 in empty cells.

    Specs:
        ``"poco"``: PoCO on CLIP text embeddings of ``class_names`` (``clip_kwargs`` go to
            :func:`podd.clip_text.text_embeddings`, e.g. ``pretrained=...``, ``template=...``, ``cache_dir=...``).
        ``"data"``: PoCO's placement on class distances measured on the training images,
            ``data=(x_train, y_train)`` (:func:`podd.data_embeddings.class_distances`): no CLIP
            weights, no meaningful class names needed.
        ``"identity"``: dataset order, row-major (:func:`podd.layout.identity_order`).
        ``"random:SEED"``: one seeded random order (:func:`random_orderings`).
        a path to an embeddings file (``.pt``/``.pth``/``.npy``, one row per class): PoCO on those,
            with no network or CLIP needed.
        a (rows, cols) tensor/array: used as given after checking it is a valid order.

    ``alternate`` picks the zigzag (True, the paper) or the authors' one-direction walk (False).
    """
    k = len(class_names)
    rows, cols = check_grid(rows, cols)
    check_fits(k, rows, cols)
    if isinstance(spec, (torch.Tensor, np.ndarray, list, tuple)):
        return validate_class_order(torch.as_tensor(spec, dtype=torch.long), k, (rows, cols))
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise ValueError(
            f"class order spec {spec!r} is not understood; use 'poco', 'data', 'identity', 'random:SEED' or a path."
        )
    traversal = zigzag(rows, cols, alternate=alternate)
    if spec == "poco":
        emb = text_embeddings(class_names, **clip_kwargs)
        return poco(distance_matrix(emb), rows, cols, traversal)
    if spec == "data":
        if data is None:
            raise ValueError(
                "class order 'data' measures the classes on the training images: pass data=(x_train, y_train)"
            )
        x, y = data
        return poco(class_distances(x, y, k, class_names), rows, cols, traversal)
    if spec == "identity":
        return identity_order(k, rows, cols)
    if spec.startswith("random:"):
        seed_text = spec.split(":", 1)[1]
        try:
            seed = int(seed_text)
        except ValueError:
            raise ValueError(f"class order {spec!r}: the seed after 'random:' must be an integer.") from None
        return random_orderings(k, rows, cols, 1, seed)[0]
    if Path(spec).is_file() or Path(spec).suffix.lower() in EMBEDDINGS_SUFFIXES:
        emb = load_embeddings(spec, k)  # FileNotFoundError if the path is missing
        return poco(distance_matrix(emb), rows, cols, traversal)
    raise ValueError(
        f"class order spec {spec!r} is not understood; use 'poco', 'data', 'identity', 'random:SEED', "
        "or a path to an embeddings file (.pt/.npy, one row per class)."
    )


def mean_neighbour_distance(order: torch.LongTensor, dist: torch.Tensor) -> torch.Tensor:
    """(rows, cols) mean distance of each placed cell's class to its placed 4-neighbours."""
    rows, cols = order.shape
    flat = order.reshape(-1)
    nb = _neighbour_table(rows, cols)
    nb_classes = torch.where(nb >= 0, flat[nb.clamp(min=0)], -1)
    valid = (nb_classes >= 0) & (flat[:, None] >= 0)
    d = dist[flat.clamp(min=0)[:, None], nb_classes.clamp(min=0)] * valid
    mean = d.sum(1) / valid.sum(1).clamp(min=1)
    return mean.reshape(rows, cols)

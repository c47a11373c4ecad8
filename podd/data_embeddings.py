"""Class embeddings measured on the training images: PoCO without CLIP (``class_order="data"``).

PoCO (paper §4.2) places classes by the distances between CLIP text embeddings of their names
(:mod:`podd.clip_text`). That needs downloadable CLIP weights and class names that mean
something; a machine without a hub connection, or data whose classes are codes, has neither.
:func:`class_mean_embeddings` measures the classes' similarity on the training images instead,
and :func:`podd.ordering.resolve_class_order` feeds it to the same placement (1 − cosine
distances, :func:`podd.ordering.poco`) for the spec ``"data"``.

The measure: each class's mean image, minus the mean of the class means, with every channel
divided by its standard deviation over the training images. Two classes are close when their
average images deviate from the average in the same way: similar colours in similar places. This is the "photometric"
ordering the paper's discussion suggests as an alternative to CLIP's.

Why this measure and not a network's: ``benchmarks/class_order_data.py`` compared it, on the
real CIFAR-10 subset, with uncentred class-mean pixels, with centred class-mean features of an
untrained and of a briefly trained :class:`podd.models.ConvNet`, and with that network's
confusion between classes (results and the reasoning in numbers:
``benchmarks/results/class_order_data/``). By the paper's intuition for CLIP (related classes
adjacent: CIFAR-10's vehicles together, its animals together), centred class-mean pixels and the
trained network's features did equally well where it counts, PoCO's placement (both leave the
fewest vehicle–animal neighbours any placement can), and about equally well pair by pair; the
other three did worse. The pixels need no training and no seed and take a fraction of a second;
the network takes seconds of training and its order changes with its seed. What pixel means
cannot see is shape: on data whose classes share colour statistics, run the benchmark's
candidates on it (``--data``) before trusting this order.

Cost: one pass over the training images, about what reading them costs, so nothing is cached
(CLIP's embeddings are, in :mod:`podd.clip_text`). The result does not depend on the images' order (up to
float rounding) and needs no seed: the same data gives the same class order on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["class_mean_embeddings", "class_distances", "DATA_ORDER_SOURCE"]

#: What the data-derived embeddings are, in words, for result files and notebook labels.
DATA_ORDER_SOURCE = "data-derived embeddings: centred class-mean pixels of the training images (class_order 'data')"


def class_mean_embeddings(
    x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None, class_names: Sequence[str] | None = None
) -> torch.Tensor:
    """(K, C·H·W) float32 class embeddings from training images ``x`` (N, C, H, W) and labels ``y``.

    Row k is class k's mean image minus the mean of the K class means, each channel divided by
    its standard deviation over all of ``x`` (uint8 images are read as /255; any float scale
    works, the cosine distances do not change). Feed the rows to
    :func:`podd.ordering.distance_matrix` and :func:`podd.ordering.poco`, or save them
    (``.npy``) for ``--embeddings``; :func:`class_distances` does the first step for you, and
    also when a row is zero.

    ``num_classes`` defaults to ``max(y) + 1``; ``class_names`` only improve the error message
    for a class without images.
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() != 4:
        raise ValueError(f"class order 'data' needs images (N, C, H, W); got shape {tuple(x.shape)}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(
            f"class order 'data' needs one label per image: {len(x)} images, labels of shape {tuple(y.shape)}"
        )
    if len(y) == 0:
        raise ValueError("class order 'data' needs training images; the training set is empty")
    k = int(num_classes) if num_classes is not None else int(y.max()) + 1
    y = y.long()
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise ValueError(f"labels lie in [{int(y.min())}, {int(y.max())}], outside 0..{k - 1}")
    counts = torch.bincount(y, minlength=k)
    if (counts == 0).any():
        missing = int((counts == 0).nonzero()[0])
        name = f" ({class_names[missing]!r})" if class_names is not None else ""
        raise ValueError(
            f"class {missing}{name} has no training images: class order 'data' measures "
            f"every class on its images; use class_order 'identity' or an embeddings file"
        )
    c = x.shape[1]
    if x.dtype == torch.uint8:
        # exact integer sums: the result does not depend on the images' order, bit for bit
        sums = (
            torch.stack([x.index_select(0, idx).sum(0, dtype=torch.int64) for idx in _class_indices(y, k)]).double()
            / 255
        )
        hist = torch.stack([torch.bincount(x[:, ch].reshape(-1), minlength=256) for ch in range(c)])
        values = torch.arange(256, dtype=torch.float64) / 255
        total = hist.sum(1).double()
        mean = (hist * values).sum(1) / total
        var = (hist * values.square()).sum(1) / total - mean.square()
    else:
        xf = x.to(torch.float64)
        sums = torch.stack([xf.index_select(0, idx).sum(0) for idx in _class_indices(y, k)])
        mean = xf.mean(dim=(0, 2, 3))
        var = xf.var(dim=(0, 2, 3), correction=0)
    std = var.clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel carries nothing
    means = (sums / counts.double().view(k, 1, 1, 1)).view(k, c, -1)
    centred = (means - means.mean(dim=0, keepdim=True)) / std[None, :, None]
    return centred.flatten(1).float()


def class_distances(
    x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None, class_names: Sequence[str] | None = None
) -> torch.Tensor:
    """(K, K) distances 1 − cosine similarity of :func:`class_mean_embeddings`: what PoCO places
    for ``class_order="data"``. Symmetric, zero diagonal, finite, in [0, 2]. A class whose mean
    image is the average one (one class only, or classes alike on average) has a zero embedding;
    its similarity to every other class is taken as 0 (distance 1) instead of being undefined."""
    emb = class_mean_embeddings(x, y, num_classes, class_names).double()
    unit = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-300)
    dist = (1.0 - unit @ unit.T).clamp(0.0, 2.0)
    dist = 0.5 * (dist + dist.T)
    dist.fill_diagonal_(0.0)
    return dist.float()


def _class_indices(y: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The image indices of each class, in one sort (not K passes over the labels)."""
    order = torch.argsort(y, stable=True)
    return list(order.split(torch.bincount(y, minlength=k).tolist()))

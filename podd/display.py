"""The poster as pixels to look at: undo the preprocessing (ZCA too), write a PNG.

ZCA's inverse is defined on whole image-sized inputs only, so a poster larger than one image is
inverted in overlapping image-sized pieces that are averaged (:func:`poster_image` with
``patch_hw``). Plots of posters are in :mod:`podd.figures`; this module needs no matplotlib, so
a run can save its poster PNG without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from podd.io import atomic_path
from podd.poster import as_pair, extract_patches, patch_index, patch_positions

__all__ = ["poster_image", "save_poster_png"]


def _inverse_patchwise(poster: torch.Tensor, preprocessor, patch_hw) -> torch.Tensor:
    """Undo preprocessing image-sized piece by piece, averaging where pieces overlap.

    Needed for ZCA, whose inverse is defined on whole ``h×w`` images only.
    """
    c, H, W = poster.shape
    h, w = patch_hw
    counts = (-(-(H - h) // max(1, h // 2)) + 1 if H > h else 1,
              -(-(W - w) // max(1, w // 2)) + 1 if W > w else 1)
    positions = patch_positions((H, W), (h, w), counts)
    pieces = preprocessor.inverse(extract_patches(poster, positions, (h, w)))  # (N, c, h, w)
    index = patch_index(positions, (h, w), W).reshape(-1)
    values = pieces.permute(1, 0, 2, 3).reshape(c, -1)
    total = torch.zeros(c, H * W).index_add_(1, index, values.float())
    cover = torch.zeros(H * W).index_add_(0, index, torch.ones(index.numel()))
    return (total / cover.clamp_min(1)).view(c, H, W)


def poster_image(poster: torch.Tensor, preprocessor=None, *, patch_hw=None) -> np.ndarray:
    """The poster as a displayable ``uint8`` array ``(H, W, c)``.

    ``preprocessor`` is any object with ``.inverse(x) -> x in [0, 1]`` for ``(N, c, h, w)``
    batches (a :class:`podd.data.Preprocessor`). Give ``patch_hw`` when the inverse only works on
    image-sized inputs (ZCA): the poster is then inverted in overlapping image-sized pieces that
    are averaged. With no preprocessor the poster is min-max scaled to [0, 1]. A per-class batch
    ``(K, c, H, W)`` is shown side by side, one column of pixels apart.
    """
    poster = torch.as_tensor(poster).detach().float().cpu()
    if poster.ndim == 4:
        # One small image per class poster (K of them, not a hot path).
        images = [poster_image(p, preprocessor, patch_hw=patch_hw) for p in poster]
        gap = np.full((poster.shape[2], 1, images[0].shape[2]), 255, dtype=np.uint8)
        return np.concatenate([x for img in images for x in (img, gap)][:-1], axis=1)
    if poster.ndim != 3:
        raise ValueError(f"poster must be (c, H, W) or (K, c, H, W); got {tuple(poster.shape)}")
    if preprocessor is None:
        lo, hi = poster.min(), poster.max()
        shown = (poster - lo) / (hi - lo).clamp_min(1e-12)
    elif patch_hw is not None and tuple(poster.shape[-2:]) != tuple(as_pair(patch_hw, "patch_hw")):
        shown = _inverse_patchwise(poster, preprocessor, as_pair(patch_hw, "patch_hw"))
    else:
        shown = torch.as_tensor(preprocessor.inverse(poster[None])).detach().float().cpu()[0]
    shown = (shown.clamp(0, 1) * 255).round().to(torch.uint8)
    return shown.permute(1, 2, 0).numpy()


def save_poster_png(path: str | os.PathLike, poster: torch.Tensor, preprocessor=None, *,
                    patch_hw=None) -> Path:
    """Write :func:`poster_image` to a PNG file atomically (1-channel posters as greyscale)."""
    from PIL import Image

    image = poster_image(poster, preprocessor, patch_hw=patch_hw)
    if image.shape[2] == 1:
        image = image[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(path)

"""The poster as pixels to look at: undo the preprocessing (ZCA too), write a PNG.

A poster is one picture, not a set of images: under ZCA it is unwhitened as a whole (the inverse
ZCA's centre row as a convolution, :meth:`podd.data.Preprocessor.unwhiten`) and stretched to
[0, 1] once, between its 1st and 99th percentiles. Unwhitening image-sized pieces and stretching
each on its own, as podd once did, left a seam at every piece's edge. Plots of posters are in
:mod:`podd.figures`; this module needs no matplotlib, so a run can save its poster PNG without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from podd.io import atomic_path

__all__ = ["poster_image", "save_poster_png"]

#: The share of a ZCA poster's values clipped at each end of the display range: the few extreme
#: values would otherwise take the whole range and leave the picture grey.
CLIPPED_TAIL = 0.01


def _stretched(values: torch.Tensor) -> torch.Tensor:
    """``values`` mapped to [0, 1] between their CLIPPED_TAIL and 1 − CLIPPED_TAIL quantiles."""
    lo, hi = torch.quantile(values.flatten(), torch.tensor([CLIPPED_TAIL, 1 - CLIPPED_TAIL]))
    return ((values - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)


def poster_image(poster: torch.Tensor, preprocessor=None) -> np.ndarray:
    """The poster as a displayable ``uint8`` array ``(H, W, c)``.

    ``preprocessor`` is any object with ``.inverse(x) -> x in [0, 1]`` for ``(N, c, h, w)``
    batches (a :class:`podd.data.Preprocessor`); a ZCA one is undone with ``unwhiten`` and one
    stretch for the whole poster (see the module's note). With no preprocessor the poster is
    min-max scaled to [0, 1]. A per-class batch ``(K, c, H, W)`` is shown side by side, one
    column of pixels apart.
    """
    poster = torch.as_tensor(poster).detach().float().cpu()
    if poster.ndim == 4:
        # One small image per class poster (K of them, not a hot path).
        images = [poster_image(p, preprocessor) for p in poster]
        gap = np.full((poster.shape[2], 1, images[0].shape[2]), 255, dtype=np.uint8)
        return np.concatenate([x for img in images for x in (img, gap)][:-1], axis=1)
    if poster.ndim != 3:
        raise ValueError(f"poster must be (c, H, W) or (K, c, H, W); got {tuple(poster.shape)}")
    if preprocessor is None:
        lo, hi = poster.min(), poster.max()
        shown = (poster - lo) / (hi - lo).clamp_min(1e-12)
    elif getattr(preprocessor, "zca", False):
        shown = _stretched(preprocessor.unwhiten(poster[None])[0])
    else:
        shown = torch.as_tensor(preprocessor.inverse(poster[None])).detach().float().cpu()[0]
    shown = (shown.clamp(0, 1) * 255).round().to(torch.uint8)
    return shown.permute(1, 2, 0).numpy()


def save_poster_png(path: str | os.PathLike, poster: torch.Tensor, preprocessor=None) -> Path:
    """Write :func:`poster_image` to a PNG file atomically (1-channel posters as greyscale)."""
    from PIL import Image

    image = poster_image(poster, preprocessor)
    if image.shape[2] == 1:
        image = image[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(path)

"""Decoding image files (PNG, JPEG) into uint8 tensors, shared by the readers of CUB-200,
Tiny ImageNet and users' image folders.

Files are decoded with PIL in parallel threads (PIL releases the GIL); a file PIL cannot read is
an :class:`UnreadableImageError` naming it, and 16-bit grayscale is scaled to 8 bits, not clipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# PIL's modes of 16-bit grayscale (a 16-bit grayscale PNG opens as "I;16"; older Pillows gave "I").
# PIL's convert to "L" or "RGB" clips these at 255 instead of scaling: _decode scales them itself.
# (16-bit colour PNGs open as "RGB"/"RGBA", already scaled to 8 bits by PIL.)
GRAY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class UnreadableImageError(ValueError):
    """An image file that PIL cannot decode (not an image, truncated, corrupted)."""

    def __init__(self, path: Path, error: BaseException):
        super().__init__(
            f"{path} is not a readable image ({type(error).__name__}: {error}); "
            f"remove or replace it (a cut-off download or a stray file)"
        )


def open_image(path: Path):
    """PIL's Image.open, with its failures (not an image, truncated) as UnreadableImageError."""
    from PIL import Image

    try:
        return Image.open(path)
    except (OSError, SyntaxError, ValueError) as error:  # UnidentifiedImageError is an OSError
        raise UnreadableImageError(path, error) from error


def _gray16_to_8(img):
    """A 16-bit grayscale image → 8-bit "L", scaled by the 16-bit range (v · 255 / 65535, rounded)."""
    from PIL import Image

    values = np.clip(np.asarray(img).astype(np.int64), 0, 65535)  # decodes
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))


def _decode(path: Path, size: tuple[int, int] | None = None, mode: str = "RGB") -> np.ndarray:
    """One image file → uint8 (H, W, C). ``size`` (W, H) resizes with antialiased bilinear.
    16-bit grayscale is scaled to 8 bits (:data:`GRAY16_MODES`), not clipped."""
    from PIL import Image

    with open_image(path) as img:
        try:
            if img.mode in GRAY16_MODES:
                img = _gray16_to_8(img)
            img = img.convert(mode)  # decodes: a truncated file fails here
            if size is not None and img.size != size:
                img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
            array = np.asarray(img, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as error:
            raise UnreadableImageError(path, error) from error
    return array[:, :, None] if array.ndim == 2 else array


def decode_all(
    paths: Sequence[Path], desc: str, size: tuple[int, int] | None = None, mode: str = "RGB"
) -> torch.Tensor:
    """Decode many image files in parallel threads (PIL releases the GIL) → uint8 (N, C, H, W)."""
    from tqdm import tqdm

    if not paths:
        raise FileNotFoundError(f"{desc}: no images found")
    workers = min(8, os.cpu_count() or 1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            arrays = list(
                tqdm(
                    pool.map(lambda p: _decode(p, size, mode), paths),
                    total=len(paths),
                    desc=f"decoding {desc}",
                    unit="img",
                    disable=None,
                    leave=False,
                )
            )
    except UnreadableImageError as error:
        raise ValueError(f"{desc}: {error}") from None
    first = arrays[0].shape
    odd = next((i for i, a in enumerate(arrays) if a.shape != first), None)
    if odd is not None:
        raise ValueError(
            f"{desc}: images differ in size: {paths[0]} is {first[1]}x{first[0]} but {paths[odd]} "
            f"is {arrays[odd].shape[1]}x{arrays[odd].shape[0]} (width x height); all images must "
            f"share one size (resize them first)"
        )
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

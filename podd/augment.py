"""Differentiable ``flip_rotate`` augmentation (DSA-style), batched and seeded.

Each call picks ONE operation for the whole batch — horizontal flip (each sample flipped with
p = 0.5) or rotation (each sample by an angle uniform in ±15°) — as the authors' RaT-BPTT code
does. Both are differentiable in the pixels, so the meta-gradient flows through augmentation
of the distilled patches. Random numbers come from an explicit CPU generator so that a seed
gives the same augmentation on any device; only a handful of numbers cross to the device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The two operations' parameters (the authors' DSA settings); podd.evaluate draws its batched
# schedules with the same ones.
MAX_DEGREES = 15.0
FLIP_PROBABILITY = 0.5


def horizontal_flip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Flip the samples where ``flip`` (bool, shape (N,)) is true."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each sample about its centre by ``degrees`` (shape (N,)), zero padding, bilinear."""
    theta = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(theta)
    affine = torch.stack([torch.stack([cos, sin, zero], -1), torch.stack([-sin, cos, zero], -1)], 1)
    grid = F.affine_grid(affine.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def draw_flip_rotate(
    n: int,
    generator: torch.Generator | None = None,
    max_degrees: float = MAX_DEGREES,
    flip_probability: float = FLIP_PROBABILITY,
) -> tuple[str, torch.Tensor]:
    """The random part of :func:`flip_rotate` for a batch of ``n``: ``("flip", mask)`` (bool,
    shape (n,)) or ``("rotate", degrees)`` (float64, shape (n,)), on the CPU.

    Kept apart from applying it so that an engine can draw a whole step's augmentations up
    front and hand them to compiled code as plain tensors.
    """
    if torch.randint(2, (1,), generator=generator).item() == 0:
        return "flip", torch.rand(n, generator=generator) < flip_probability
    return "rotate", (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * max_degrees


def apply_flip_rotate(x: torch.Tensor, op: str, values: torch.Tensor) -> torch.Tensor:
    """Apply a drawn augmentation (:func:`draw_flip_rotate`) to the batch ``x``."""
    if op == "flip":
        return horizontal_flip(x, values.to(x.device, non_blocking=True))
    return rotate(x, values.to(x.device, x.dtype, non_blocking=True))


def flip_rotate(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    max_degrees: float = MAX_DEGREES,
    flip_probability: float = FLIP_PROBABILITY,
) -> torch.Tensor:
    """Apply one randomly chosen augmentation (flip or rotate) to the whole batch ``x``."""
    op, values = draw_flip_rotate(x.shape[0], generator, max_degrees, flip_probability)
    return apply_flip_rotate(x, op, values)

"""Where the engine and the evaluation run: one rule for turning a device setting into a device."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a CUDA device without CUDA is a clear error
    (checked before ``torch.device`` parses the name, so ``cuda:N`` gets the same message)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} was requested but CUDA is not available (this "
            f"torch build sees no CUDA GPU: torch.cuda.is_available() is False); "
            f"use device cpu or auto (--device cpu)"
        )
    return torch.device(device)

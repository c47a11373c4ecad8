"""How much memory one outer step needs, said before the run starts rather than by the kernel's
out-of-memory killer (which ends the process with exit code 137 and no message).

The estimate counts the activations autograd keeps, which dominate at every preset:

* the outer loss on the real batch keeps about :data:`REAL_FACTOR` float32 copies of a
  ConvNet's activations per real image (per ``real_chunk`` images with that saver);
* each differentiable inner step of the window keeps about :data:`WINDOW_FACTOR` copies per
  patch of the inner batch (first and second-order graph); with ``recompute_window`` only one
  step's graph is alive at a time;

where one copy of a ConvNet's activations is ``width·h·w`` values after the first block, a
quarter of that after the second, and so on. The factors were fitted to the peak memory that
``benchmarks/bench_memory.py`` measured for the four paper presets (``tests/test_memory.py``
holds the estimate against those measurements). The preprocessed data kept on the device is
added. Left out is what is small beside the graphs of the plain route: parameters, Adam states,
the poster, and the window's per-step states of ``recompute_window`` — so with the memory savers
the estimate is a lower bound, which is what a refusal needs.
"""

from __future__ import annotations

import os

import torch

REAL_FACTOR = 3.2  # activation copies per real image of the outer loss
WINDOW_FACTOR = 4.5  # activation copies per patch per differentiable inner step
SKIP_ENV = "PODD_SKIP_MEMORY_CHECK"


class NotEnoughMemory(RuntimeError):
    """A run that would be killed for memory, refused before it starts."""


def activation_values(image_shape, width: int, depth: int) -> int:
    """Values in one copy of the ConvNet's block outputs for one image (block b at 1/4ᵇ the
    pixels)."""
    _, h, w = image_shape
    return sum(width * (h >> b) * (w >> b) for b in range(depth))


def step_bytes(config, image_shape, distill_batch: int, depth: int, *, recompute_window=None, real_chunk=None) -> int:
    """Estimated peak bytes of one outer step's autograd graphs (module docstring).
    ``recompute_window`` / ``real_chunk``: the config's, unless given (to price the savers)."""
    recompute = config.recompute_window if recompute_window is None else recompute_window
    chunk = config.real_chunk if real_chunk is None else real_chunk
    per_copy = 4 * activation_values(image_shape, config.width, depth)
    real = REAL_FACTOR * min(chunk or config.real_batch, config.real_batch)
    window = WINDOW_FACTOR * distill_batch * (1 if recompute else config.window)
    return int(per_copy * (real + window))


def data_bytes(num_images: int, image_shape) -> int:
    """float32 bytes of the preprocessed images the run keeps (train and test)."""
    c, h, w = image_shape
    return 4 * num_images * c * h * w


def available_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can get now: the GPU's free memory, or the kernel's
    ``MemAvailable`` (RAM not needed by others, without swapping); None where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.1f} GB"


def check_step_memory(
    config, image_shape, num_images: int, distill_batch: int, depth: int, device: torch.device
) -> None:
    """Refuse a run whose first outer step would not fit in the memory available now, with
    what to change; ``$PODD_SKIP_MEMORY_CHECK=1`` skips the check (e.g. where swap is meant to
    be used)."""
    if os.environ.get(SKIP_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return
    available = available_bytes(device)
    if available is None:
        return
    resident = data_bytes(num_images, image_shape)
    need = step_bytes(config, image_shape, distill_batch, depth) + resident
    if need <= available:
        return
    hints = []
    savers = (
        step_bytes(
            config,
            image_shape,
            distill_batch,
            depth,
            recompute_window=True,
            real_chunk=min(config.real_chunk or 250, 250),
        )
        + resident
    )
    if savers < need:
        hints.append(f"--set recompute_window=true --set real_chunk=250 (same gradients, about {_gb(savers)})")
    if config.profile == "paper" and device.type == "cpu":
        hints.append("--profile quick (sized for a CPU)")
    hints.append("a smaller real_batch or window (--set real_batch=N, --set window=N)")
    where = "GPU" if device.type == "cuda" else "machine"
    raise NotEnoughMemory(
        f"this run needs about {_gb(need)} of memory at its first outer step (real batch "
        f"{config.real_batch}, window {config.window}, {distill_batch} patches per inner step, "
        f"width {config.width}, data {_gb(resident)}) but this {where} has {_gb(available)} "
        f"available: it would be killed for memory. Use " + ", or ".join(hints) + f"; or set {SKIP_ENV}=1 to try anyway"
    )

"""The run settings a notebook asks for: the shared resolver's config for the notebook's data,
and the small choices an ablation varies (class order, patch counts)."""

from __future__ import annotations

from typing import Any

from podd.notebooks.profiles import resolve_profile


def run_config(
    ds,
    profile: str,
    *,
    mode: str = "podd",
    ipc: float | None = None,
    embeddings: str | None = None,
    like: str | None = None,
    verbose: bool = True,
    **overrides,
):
    """The distillation settings a notebook uses: :func:`podd.presets.resolve_config` for
    ``ds.name`` (its class count and image shape) under ``profile``, with ``mode``, ``ipc``,
    ``like``, ``embeddings`` and ``overrides`` passed through — the same config ``podd distill``
    and :mod:`podd.experiments` (the demo, the benchmarks) build for the same request. The
    resolver keeps the paper's patch stride at other budgets, caps the distilled batch at the
    patch count, and under ``smoke`` falls back from PoCO to the dataset order without
    ``embeddings`` and switches ZCA off for large images (printing a note for each). ``like``:
    take the preset of this dataset name instead of ``ds.name`` (e.g. ``"cifar10"`` for an
    ``npz:`` file of CIFAR-10 images); the config still records ``ds.name``. The device stays
    ``"auto"``: the engine picks CUDA when there is one.
    """
    from podd.presets import resolve_config

    return resolve_config(
        ds.name,
        resolve_profile(profile),
        like=like,
        mode=mode,
        ipc=ipc,
        num_classes=ds.num_classes,
        image_shape=tuple(ds.image_shape),
        embeddings=embeddings,
        verbose=verbose,
        **overrides,
    )


def class_order_override(class_order: str | None) -> dict[str, Any]:
    """``{"class_order": …}`` for :func:`run_config` unless it is the preset's PoCO (``"poco"`` or
    None): PoCO then keeps its smoke fallback and its ``embeddings`` file."""
    return {} if class_order in (None, "poco") else {"class_order": class_order}


def patch_counts_for_strides(ds, ipc: float, stride_fractions, grid=None) -> list[tuple[int, int]]:
    """Patch counts ``(ny, nx)`` for a poster of ``ipc`` at strides of ``fraction × image side``.

    A fraction of 1 gives non-overlapping patches (at 1 IPC on an exact class grid: exactly K
    patches, the RaT-BPTT baseline); smaller fractions give more, more overlapping patches
    (the x-axis of the paper's fig 6). Duplicates are dropped, order kept.
    """
    from podd import poster

    K, shape = ds.num_classes, ds.image_shape
    size = poster.poster_size(K, shape, ipc, grid)
    counts = []
    for fraction in stride_fractions:
        stride = (max(1, round(shape[1] * fraction)), max(1, round(shape[2] * fraction)))
        pair = poster.patch_counts_from_stride(size, shape[1:], stride)
        if pair not in counts:
            counts.append(pair)
    return counts

"""The paper's distillation settings per dataset, in three profiles (REFERENCE.md's table).

* ``paper``  — the authors' published settings (IPC ≈ 0.9, their patch counts, batch sizes,
  RaT-BPTT windows, learning rates and 10 000 epochs over the real training set). For digits,
  which the paper does not use, ``paper`` is the CPU orientation run of REFERENCE.md.
* ``quick``  — minutes on a CPU for digits (the settings of ``make demo``); a scaled-down run of
  the same algorithm for the other datasets (smaller batches, shorter windows, fewer steps).
* ``smoke``  — seconds, for CI and the notebooks' smoke runs: a tiny network and a few steps.

A profile changes sizes and step counts, never the algorithm. Every value can be overridden:
``get_preset("cifar10", "quick", steps=50, seed=3)``. Names outside the table (``npz:…``,
``imagefolder:…``) get a generic preset whose shape-dependent values (class grid, depth) stay
``None`` and are derived from the dataset when the run starts.
"""

from __future__ import annotations

import dataclasses
import math

from podd.distill import DistillConfig

PROFILES = ("smoke", "quick", "paper")

# Training-set sizes, to turn "10 000 epochs over the real training set" into outer steps.
_TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "cub200": 5_994, "tinyimagenet": 100_000,
                "digits": 1_437}
_PAPER_EPOCHS = 10_000

# CUB-200 and Tiny-ImageNet at the authors' batch sizes need about 40 and 45 GB for one outer
# step with the whole window's graph (benchmarks/bench_memory.py, benchmarks/README.md); with the
# window recomputed step by step and the real batch in chunks of 250 they need about 3 and 9 GB,
# for ~20 % more FLOPs per outer step. Same gradients (tests/test_metagradient.py).
_MEMORY_SAVERS = dict(recompute_window=True, real_chunk=250)

# The authors' commands (REFERENCE.md, "Paper settings per dataset"). patches = (rows, cols).
_PAPER = {
    "cifar10": dict(ipc=0.9, grid=(2, 5), patches=(6, 16), distill_batch=96, real_batch=5000,
                    window=60, total_window=200, inner_lr=1e-3, outer_lr=1e-3, labels="fixed",
                    depth=3),
    "cifar100": dict(ipc=0.9, grid=(10, 10), patches=(20, 20), distill_batch=50, real_batch=2000,
                     window=100, total_window=300, inner_lr=1e-3, outer_lr=1e-3, labels="learned",
                     depth=3),
    "cub200": dict(ipc=0.9, grid=(10, 20), patches=(30, 60), distill_batch=200, real_batch=3000,
                   window=60, total_window=200, inner_lr=1e-3, outer_lr=1e-3, labels="learned",
                   depth=3, **_MEMORY_SAVERS),
    # depth 3 as in the authors' commands; the paper's text says 4 for 64×64 (override depth=4).
    "tinyimagenet": dict(ipc=0.9, grid=(10, 20), patches=(20, 40), distill_batch=30,
                         real_batch=500, window=100, total_window=300, inner_lr=5e-4,
                         outer_lr=5e-4, labels="learned", depth=3, **_MEMORY_SAVERS),
}
_SHARED_PAPER = dict(mode="podd", class_order="poco", init="class_areas", zca=True, width=128,
                     min_start=0, start_schedule="epoch", clip_factor=2.0, clip_ema=0.9,
                     eval_models=8, eval_steps=(300, 600, 1000, 2000))

# Digits (sklearn 8×8, 10 classes, 2×5 class grid, 4×10 patches; all 40 patches per inner step).
# "paper": REFERENCE.md's CPU orientation run (width 64, depth 2, window 10 of 30, Adam lr 1e-2
# inside and outside, real batch 256, learned labels, 400 outer steps, 4 evaluation models × 300
# steps). "quick" (the demo and benchmarks/quality_digits.py) is what we measured to work on two
# CPU cores within minutes: width 32, 300 outer steps at outer lr 2e-2, and FIXED labels — the
# authors' choice for CIFAR-10, the paper's other 10-class, 2×5-grid dataset. On digits the
# learned labels drift towards very soft mixtures (mean top probability ≈ 0.4 at 0.5 IPC), which
# suits the ≤ 30-step inner loop but trains the 300-step evaluation networks poorly.
_DIGITS = dict(ipc=1.0, grid=(2, 5), patches=(4, 10), distill_batch=40, real_batch=256, window=10,
               total_window=30, inner_lr=1e-2, outer_lr=1e-2, labels="learned", zca=False,
               width=64, depth=2, class_order="identity", mode="podd", init="class_areas",
               min_start=0, start_schedule="epoch", clip_factor=2.0, clip_ema=0.9,
               steps=400, eval_models=4, eval_steps=(300,), eval_every=0, checkpoint_every=100)
_DIGITS_QUICK = dict(width=32, steps=300, outer_lr=2e-2, labels="fixed")


def _paper(dataset: str) -> dict:
    values = {**_SHARED_PAPER, **_PAPER[dataset]}
    steps_per_epoch = math.ceil(_TRAIN_SIZES[dataset] / values["real_batch"])
    values.update(steps=_PAPER_EPOCHS * steps_per_epoch, eval_every=1000, checkpoint_every=500)
    return values


def _quick(dataset: str) -> dict:
    """Same algorithm, scaled down: fits minutes on a CPU or seconds on a GPU."""
    values = _paper(dataset)
    values.update(real_batch=256, distill_batch=min(values["distill_batch"], 50), window=10,
                  total_window=30, width=64, steps=200, eval_models=4, eval_steps=(300,),
                  eval_every=0, checkpoint_every=50, inner_lr=1e-3, outer_lr=1e-3,
                  recompute_window=False, real_chunk=None)  # small enough to keep every graph
    return values


def _smoke(values: dict) -> dict:
    """A few outer steps of a tiny network: seconds, for CI."""
    values = dict(values)
    values.update(width=8, depth=1, real_batch=64, distill_batch=min(values["distill_batch"] or 8, 8),
                  window=2, total_window=4, steps=4, eval_models=2, eval_steps=(20,),
                  eval_every=0, checkpoint_every=2)
    return values


def _generic() -> dict:
    """Unknown dataset: the paper's CIFAR-10 choices, with the grid and depth left to the data."""
    values = _paper("cifar10")
    values.update(grid=None, patches=None, depth=None, class_order="identity",
                  distill_batch=None, steps=_PAPER_EPOCHS * 10)
    return values


def get_preset(dataset: str, profile: str = "paper", **overrides) -> DistillConfig:
    """The distillation settings for ``dataset`` in ``profile``, with ``overrides`` applied last.

    ``overrides`` may set any :class:`~podd.distill.DistillConfig` field. ``mode="baseline"``
    is RaT-BPTT at 1 IPC: ipc 1, all K images in every inner step and fixed one-hot labels,
    unless those are overridden too.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid names are {sorted(known)}")
    if dataset == "digits":
        values = dict(_DIGITS)
        if profile == "quick":
            values.update(_DIGITS_QUICK)
    elif dataset in _PAPER:
        values = _quick(dataset) if profile == "quick" else _paper(dataset)
    else:
        values = _generic()
        if profile == "quick":
            values.update(real_batch=256, window=10, total_window=30, width=64,
                          steps=200, eval_models=4, eval_steps=(300,), eval_every=0,
                          checkpoint_every=50)
    if profile == "smoke":
        values = _smoke(values)
    values.update(dataset=dataset, profile=profile)
    mode = overrides.get("mode", values["mode"])
    if mode == "baseline":
        # RaT-BPTT at 1 IPC: K images, each one-hot its class, all of them in every inner step.
        values.update(distill_batch=None, labels="fixed", ipc=1.0)
    values.update(overrides)
    return DistillConfig(**values)

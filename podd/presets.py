"""The paper's distillation settings per dataset, in three profiles (the authors'
published commands, one row per dataset in ``_PAPER`` below).

* ``paper``  — the authors' published settings (IPC ≈ 0.9, their patch counts, batch sizes,
  RaT-BPTT windows, learning rates and 10 000 epochs over the real training set). For digits,
  which the paper does not use, ``paper`` is a small CPU orientation run (``_DIGITS`` below).
* ``quick``  — minutes on a CPU for digits (the settings of ``make demo``); a scaled-down run of
  the same algorithm for the other datasets (smaller batches, shorter windows, fewer steps).
* ``smoke``  — seconds, for CI and the notebooks' smoke runs: a tiny network and a few steps.

A profile changes sizes and step counts, never the algorithm. :func:`resolve_config` is the one
way from a request to a run's settings — ``podd distill``, :mod:`podd.demo` and the notebooks all
call it, so the same request gives the same config: ``resolve_config("CIFAR-10", "quick",
ipc=0.5, steps=50, seed=3)``. It holds the rules that keep the paper's choices meaningful at other
budgets and offline (see its docstring). Names outside the table (``npz:…``,
``imagefolder:…``) get a generic preset (the paper's CIFAR-10 choices) whose shape-dependent
values (class grid, patches, depth) come from the data's class count and image shape, or from
the engine when the run starts; ``like="cifar10"`` gives
such data a built-in dataset's preset instead.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

from podd import poster as P
from podd.choices import PROFILES
from podd.clip_text import load_embeddings
from podd.config import DistillConfig
from podd.data.builtin import DATASET_SHAPES
from podd.data.registry import canonical_name
from podd.layout import default_class_grid
from podd.models import default_depth
from podd.modes import poster_mode
from podd.notes import note_once
from podd.poster import PAPER_POSTERS

#: Largest image dimension (c·h·w) whose ZCA a smoke run fits; 3×32×32 = 3072 takes seconds,
#: Tiny-ImageNet's 3×64×64 = 12288 takes minutes and gigabytes.
SMOKE_ZCA_MAX_DIM = 4096

# Training-set sizes, to turn "10 000 epochs over the real training set" into outer steps.
_TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "cub200": 5_994, "tinyimagenet": 100_000, "digits": 1_437}
_PAPER_EPOCHS = 10_000

# CUB-200 and Tiny-ImageNet at the authors' batch sizes need tens of GB for one outer step with
# the whole window's graph; with the window recomputed step by step and the real batch in chunks
# of 250 they need a few, for some more FLOPs per outer step (measured: benchmarks/bench_memory.py,
# benchmarks/results/LOG.md). Same gradients (tests/test_metagradient.py).
_MEMORY_SAVERS = dict(recompute_window=True, real_chunk=250)

# The authors' published commands, one per dataset. patches = (rows, cols).
_PAPER = {
    "cifar10": dict(
        ipc=0.9,
        grid=(2, 5),
        patches=(6, 16),
        distill_batch=96,
        real_batch=5000,
        window=60,
        total_window=200,
        inner_lr=1e-3,
        outer_lr=1e-3,
        labels="fixed",
        depth=3,
    ),
    "cifar100": dict(
        ipc=0.9,
        grid=(10, 10),
        patches=(20, 20),
        distill_batch=50,
        real_batch=2000,
        window=100,
        total_window=300,
        inner_lr=1e-3,
        outer_lr=1e-3,
        labels="learned",
        depth=3,
    ),
    "cub200": dict(
        ipc=0.9,
        grid=(10, 20),
        patches=(30, 60),
        distill_batch=200,
        real_batch=3000,
        window=60,
        total_window=200,
        inner_lr=1e-3,
        outer_lr=1e-3,
        labels="learned",
        depth=3,
        **_MEMORY_SAVERS,
    ),
    # depth 3 as in the authors' commands; the paper's text says 4 for 64×64 (override depth=4).
    "tinyimagenet": dict(
        ipc=0.9,
        grid=(10, 20),
        patches=(20, 40),
        distill_batch=30,
        real_batch=500,
        window=100,
        total_window=300,
        inner_lr=5e-4,
        outer_lr=5e-4,
        labels="learned",
        depth=3,
        **_MEMORY_SAVERS,
    ),
}
_SHARED_PAPER = dict(
    mode="podd",
    class_order="poco",
    init="class_areas",
    zca=True,
    width=128,
    min_start=0,
    start_schedule="epoch",
    clip_factor=2.0,
    clip_ema=0.9,
    eval_models=8,
    eval_steps=(300, 600, 1000, 2000),
)

# Digits (sklearn 8×8, 10 classes, 2×5 class grid, 4×10 patches; all 40 patches per inner step).
# "paper": a CPU orientation run (width 64, depth 2, window 10 of 30, Adam lr 1e-2
# inside and outside, real batch 256, learned labels, 400 outer steps, 4 evaluation models × 300
# steps). "quick" (the demo and benchmarks/quality_digits.py) is what we measured to work on two
# CPU cores within minutes: width 32, 300 outer steps at outer lr 2e-2, and FIXED labels — the
# authors' choice for CIFAR-10, the paper's other 10-class, 2×5-grid dataset. On digits the
# learned labels drift towards very soft mixtures (mean top probability ≈ 0.4 at 0.5 IPC), which
# suits the ≤ 30-step inner loop but trains the 300-step evaluation networks poorly.
_DIGITS = dict(
    ipc=1.0,
    grid=(2, 5),
    patches=(4, 10),
    distill_batch=40,
    real_batch=256,
    window=10,
    total_window=30,
    inner_lr=1e-2,
    outer_lr=1e-2,
    labels="learned",
    zca=False,
    width=64,
    depth=2,
    class_order="identity",
    mode="podd",
    init="class_areas",
    min_start=0,
    start_schedule="epoch",
    clip_factor=2.0,
    clip_ema=0.9,
    steps=400,
    eval_models=4,
    eval_steps=(300,),
    eval_every=0,
    checkpoint_every=100,
    engine="eager",
)
# engine: digits' 8×8 steps are small; compiling them the first time takes longer than the
# whole demo, for little gain per step afterwards (benchmarks/bench_engine.py, digits section).
# CIFAR-size data gets the compiled engine (the dataclass default, auto).
_DIGITS_QUICK = dict(width=32, steps=300, outer_lr=2e-2, labels="fixed")


def _paper(dataset: str) -> dict:
    # The authors' poster sizes, typed by hand in their commands (podd.poster.PAPER_POSTERS).
    values = {**_SHARED_PAPER, **_PAPER[dataset], "poster_size": PAPER_POSTERS[dataset]["size"]}
    steps_per_epoch = math.ceil(_TRAIN_SIZES[dataset] / values["real_batch"])
    values.update(steps=_PAPER_EPOCHS * steps_per_epoch, eval_every=1000, checkpoint_every=500)
    return values


def _quick(dataset: str) -> dict:
    """Same algorithm, scaled down to a CPU: sized so that one PoDD distillation of CIFAR-10 fits
    a short wait on two CPU cores with the compiled engine (README, Performance).

    Outer steps in the hundreds instead of ~100 000, so the poster must move faster per step than
    the authors' lr 1e-3: outer lr 3e-3 on the class-area init. Width 64 (half the authors' 128)
    is the widest ConvNet that keeps a run within that budget; at width 32 PoDD at 1 IPC only tied
    the RaT-BPTT baseline on real CIFAR-10 pixels, at 64 it leads. The inner lr (also the
    evaluation's) stays the authors' 1e-3.

    Where the authors put every patch into every inner step (CIFAR-10: 96 of 96), quick does
    too (``distill_batch=None``: all patches, at any IPC), which measured better than 50 per step;
    elsewhere it takes at most 50. The measurements behind these choices are in
    ``benchmarks/results/quality_cifar10*`` and ``bench_engine_cpu`` (README, Results).
    """
    values = _paper(dataset)
    rows, cols = values["patches"]
    every_patch = values["distill_batch"] >= rows * cols
    values.update(
        real_batch=256,
        window=10,
        distill_batch=None if every_patch else min(values["distill_batch"], 50),
        total_window=30,
        width=64,
        steps=200,
        eval_models=4,
        eval_steps=(300,),
        eval_every=0,
        checkpoint_every=50,
        inner_lr=1e-3,
        outer_lr=3e-3,
        recompute_window=False,
        real_chunk=None,
    )  # small enough to keep every graph
    return values


def _smoke(values: dict) -> dict:
    """A few outer steps of a tiny network: seconds, for CI."""
    values = dict(values)
    values.update(
        width=8,
        depth=1,
        real_batch=64,
        distill_batch=min(values["distill_batch"] or 8, 8),
        window=2,
        total_window=4,
        steps=4,
        eval_models=2,
        eval_steps=(20,),
        eval_every=0,
        checkpoint_every=2,
        engine="eager",
    )
    # eager: a smoke run lasts seconds, less than compiling its steps would take
    return values


def _generic() -> dict:
    """Unknown dataset: the paper's CIFAR-10 choices, with the grid and depth left to the data."""
    values = _paper("cifar10")
    values.update(
        grid=None,
        patches=None,
        poster_size=None,
        depth=None,
        class_order="identity",
        distill_batch=None,
        steps=_PAPER_EPOCHS * 10,
    )
    return values


def _table(dataset: str, profile: str) -> dict:
    """The preset table's values for a canonical dataset name (generic for local data)."""
    if dataset == "digits":
        values = dict(_DIGITS)
        if profile == "quick":
            values.update(_DIGITS_QUICK)
    elif dataset in _PAPER:
        values = _quick(dataset) if profile == "quick" else _paper(dataset)
    else:
        values = _generic()
        if profile == "quick":
            values.update(
                real_batch=256,
                window=10,
                total_window=30,
                width=64,
                steps=200,
                eval_models=4,
                eval_steps=(300,),
                eval_every=0,
                checkpoint_every=50,
            )
    if profile == "smoke":
        values = _smoke(values)
    values.setdefault("poster_size", None)
    return values


_PAIRS = ("grid", "patches", "poster_size", "eval_steps")  # tuples in a DistillConfig


def resolve_config(
    dataset: str,
    profile: str = "paper",
    *,
    like: str | None = None,
    mode: str = "podd",
    ipc: float | None = None,
    num_classes: int | None = None,
    image_shape=None,
    embeddings: str | None = None,
    verbose: bool = True,
    **overrides,
) -> DistillConfig:
    """THE settings of a run: what ``podd distill``, :mod:`podd.demo` and the notebooks all use.

    ``dataset``: any spelling :func:`podd.data.canonical_name` accepts (``CIFAR-10`` is
    ``cifar10``), or local data ``npz:PATH`` / ``imagefolder:PATH``; the config records the
    canonical name. ``like``: take the preset of this built-in dataset for local data (e.g.
    ``like="cifar10"`` for an ``npz:`` file of CIFAR-10 images). ``num_classes`` and
    ``image_shape`` (c, h, w): the data's, when known; built-in datasets have them in
    :data:`podd.data.DATASET_SHAPES`, local data must pass them (else its grid, patches and depth
    stay ``None`` and the engine derives them with the same rules when the data is loaded).
    ``overrides``: any :class:`~podd.config.DistillConfig` field, applied last and never
    adjusted by the rules below.

    Rules, in order (each only for settings not in ``overrides``):

    1. the profile's preset table (:data:`PROFILES`); ``mode="baseline"`` is RaT-BPTT at 1 IPC:
       ipc 1, all K images in every inner step, fixed one-hot labels;
    2. the poster: at the preset's own IPC (and data shape and grid) the paper presets keep the
       authors' poster size and patch counts (CIFAR-10: 60×153, 6×16). At another IPC the size
       comes from the IPC; per axis, the patch count is the larger of the authors' count (§5
       chooses the number of patches per dataset) and the count at the authors' stride
       (:func:`podd.poster.patch_counts_for_ipc`), as far as the poster has room: CIFAR-10 at
       1 IPC is 64×160 with 6×17 patches, at 0.5 IPC 45×113 with 6×16 (the stride alone would
       give 3×11), at 0.3 IPC 35×88 with 4×16. Digits (not in the paper) keeps its 4×10
       patches at every IPC, as far as the poster has room for them. Data without a preset
       gets the class grid and depth of its shape and patches at the paper's stride relative
       to the image side (:func:`podd.poster.default_patch_counts`);
    3. ``distill_batch`` is capped at the number of patches;
    4. PoCO needs CLIP text embeddings: ``embeddings`` (a ``.pt``/``.npy`` file) makes PoCO use
       them, in any preset (it is checked now, and refused outside podd mode or beside another
       ``class_order``); under ``smoke`` without one the class order falls back to the dataset
       order (with a printed note), since smoke runs offline;
    5. under ``smoke``, ZCA is off for images larger than :data:`SMOKE_ZCA_MAX_DIM` values
       (fitting it takes minutes on a CPU; quick and paper keep it).

    The device stays as the preset (or ``overrides``) says, normally ``"auto"``: the engine
    resolves it. ``verbose``: print the notes of rules 4 and 5 (once per session).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid names are {sorted(known)}")
    for name, value in overrides.items():  # before the rules below compute with them
        DistillConfig.check_value(name, value)
    dataset = canonical_name(dataset)
    preset_name = dataset
    if like is not None:
        preset_name = canonical_name(like)
        if preset_name not in DATASET_SHAPES:
            raise ValueError(
                f"like={like!r}: name a built-in dataset whose preset to use "
                f"({', '.join(DATASET_SHAPES)}), not local data"
            )

    overrides = {k: (tuple(v) if k in _PAIRS and v is not None else v) for k, v in overrides.items()}
    values = _table(preset_name, profile)
    preset = dict(values)
    values.update(dataset=dataset, profile=profile, mode=mode)
    kind = poster_mode(mode)  # what the mode fixes and takes from the preset: its own rules
    kind.preset_defaults(values)  # baseline: RaT-BPTT at 1 IPC, all K images in every inner step
    if ipc is not None:
        values["ipc"] = float(ipc)
    values.update(overrides)

    def free(name: str) -> bool:
        return name not in overrides

    # The data's class count and image shape: given, else known for built-in names.
    preset_K, preset_shape = DATASET_SHAPES.get(preset_name, (None, None))
    known_K, known_shape = DATASET_SHAPES.get(dataset, (preset_K, preset_shape))
    K = int(num_classes) if num_classes is not None else known_K
    shape = tuple(int(v) for v in image_shape) if image_shape is not None else known_shape
    same_data = shape is not None and (K, shape) == (preset_K, preset_shape)
    if K is not None and free("grid") and (values["grid"] is None or K != preset_K):
        values["grid"] = default_class_grid(K)
    if shape is not None and free("depth") and values["depth"] is None:
        values["depth"] = default_depth(shape[1])

    if kind.preset_poster(values, free) and shape is not None and K is not None:
        at_preset = same_data and abs(values["ipc"] - preset["ipc"]) < 1e-9 and values["grid"] == preset["grid"]
        if free("poster_size") and not at_preset:
            values["poster_size"] = None
        if free("patches") and not (at_preset and values["poster_size"] == preset["poster_size"]):
            values["patches"] = _patch_counts(preset_name, preset, same_data, K, shape, values)
    _cap_distill_batch(values, overrides, K, shape)

    if embeddings:
        values["class_order"] = _embeddings_order(embeddings, mode, overrides, K)
    elif kind.orders_classes and free("class_order") and values["class_order"] == "poco":
        if profile == "smoke":
            values["class_order"] = "identity"
            if verbose:
                note_once(
                    "class order = dataset order (PoCO needs CLIP text embeddings, "
                    "and the smoke profile runs offline; pass embeddings=PATH to use PoCO)."
                )
    if (
        profile == "smoke"
        and values["zca"]
        and free("zca")
        and shape is not None
        and math.prod(shape) > SMOKE_ZCA_MAX_DIM
    ):
        values["zca"] = False
        if verbose:
            c, h, w = shape
            note_once(
                f"ZCA whitening off under smoke for {c}×{h}×{w} images (fitting a "
                f"{c * h * w}-dimensional whitening takes minutes on a CPU); quick and "
                f"paper keep it."
            )
    return DistillConfig(**values)


def _embeddings_order(embeddings, mode: str, overrides: dict, K: int | None) -> str:
    """Rule 4 with an embeddings file: PoCO on it, whatever class order the preset has (digits'
    is the dataset order): a file given is never ignored. Checked now (it exists, one row per
    class), not when the run reaches the poster after loading and whitening the data."""
    if not poster_mode(mode).orders_classes:
        raise ValueError(
            f"embeddings={str(embeddings)!r} (--embeddings) orders the classes on "
            f"a shared poster; {mode} mode has none to order: drop it"
        )
    if "class_order" in overrides and overrides["class_order"] != str(embeddings):
        raise ValueError(
            f"embeddings={str(embeddings)!r} (--embeddings) and class_order="
            f"{overrides['class_order']!r} both choose the class order: give one"
        )
    load_embeddings(embeddings, K)  # a missing file or wrong row count is said now
    return str(embeddings)


def _patch_counts(preset_name: str, preset: dict, same_data: bool, K: int, shape, values: dict) -> tuple[int, int]:
    """Rule 2 away from the preset's own poster: the patch counts of the poster ``values`` asks for."""
    size = values["poster_size"] or P.poster_size(K, shape, values["ipc"], values["grid"])
    h, w = shape[1:]
    if not same_data or preset["patches"] is None:
        return P.default_patch_counts(size, (h, w))
    # the preset's own counts, at most one patch per distinct position
    # (at least 1: a poster smaller than one image is the engine's to refuse, with its size)
    own = (max(1, min(preset["patches"][0], size[0] - h + 1)), max(1, min(preset["patches"][1], size[1] - w + 1)))
    if preset_name not in PAPER_POSTERS:
        return own  # digits: the demo's 4×10 patches at every IPC
    # The paper's datasets: the authors' stride, but never fewer patches than their count.
    # Above their IPC the stride gives more patches (CIFAR-10 at 1 IPC: 6×17); below it, the
    # stride alone would thin the overlap out (0.5 IPC: 3×11 = 33 patches), while §5 fixes the
    # number of patches per dataset, not per poster size, and its patch-number ablation (fig 6)
    # finds fewer patches worse. Measured on the CIFAR-10 subset (README): 6×16 patches at 0.5 IPC
    # beat 3×11.
    reference = P.make_geometry(
        K, shape, preset["ipc"], grid=preset["grid"], patches=preset["patches"], size=preset["poster_size"]
    )
    by_stride = P.patch_counts_from_stride(size, (h, w), P.geometry_stride(reference))
    return max(by_stride[0], own[0]), max(by_stride[1], own[1])


def _cap_distill_batch(values: dict, overrides: dict, K, shape) -> None:
    """Rule 3: no more patches per inner step than the poster has."""
    if "distill_batch" in overrides or not values["distill_batch"] or K is None or shape is None:
        return
    kind = poster_mode(values["mode"])
    try:  # the mode's own geometry of these settings (baseline: distill_batch is None already)
        n = kind.posters(K) * kind.geometry(SimpleNamespace(**values), K, shape).num_patches
    except ValueError:
        return  # an impossible poster: the engine says why, with the run's own words
    values["distill_batch"] = min(values["distill_batch"], n)

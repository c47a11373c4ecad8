"""Every setting of a distillation run, as plain data: :class:`DistillConfig`, its type checks
and its validation (paper §3–§5 name the settings; :func:`podd.presets.resolve_config` fills
them per dataset and profile).

No torch here: a config is made, read, written and checked without the engine, so the command
line, the presets and run directories can handle one before anything heavy is imported. What a
mode requires beyond these shared rules (the baseline's 1 IPC) is the mode's own rule,
:func:`podd.modes.validate`; the engine that runs a config is :class:`podd.distiller.Distiller`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from podd.choices import ENGINES, EVAL_ARCHS, INITS, MODES, TRUNCATED_DTYPES

LABEL_MODES = ("fixed", "learned")
START_SCHEDULES = ("epoch", "step", "fixed")


@dataclass
class DistillConfig:
    """Everything that defines a distillation run (:func:`podd.presets.resolve_config` fills it
    per dataset, profile and request).

    ``patches`` is (rows, cols) of patch positions on the poster; ``grid`` the class grid
    (rows, cols); ``None`` means the poster module's default. ``poster_size`` (H, W) fixes the
    poster's pixels exactly (the authors' hand-typed sizes, :data:`podd.poster.PAPER_POSTERS`);
    ``None`` computes them from ``ipc`` (:func:`podd.poster.poster_size`). Only ``podd`` mode
    uses it, and it must agree with ``ipc`` to within 5 %. ``distill_batch=None`` uses all
    patches in every inner step. ``label_lr=None`` uses ``outer_lr`` (as the authors do).
    ``eval_every=0`` evaluates only at the end; ``eval_models=0`` never. ``eval_arch`` is the
    network the evaluation trains (:data:`podd.choices.EVAL_ARCHS`): the ConvNet (default) or,
    for cross-architecture evaluation, ResNet-18, VGG-11 or AlexNet. ``checkpoint_every=0``
    writes no intermediate checkpoints.

    Best-poster selection (the authors' practice; the paper does not describe it):
    ``best_every=N`` scores the poster every N steps and at the end by the TRAINING-set
    accuracy of ``eval_models`` students trained on it (their own seeds, never the test split)
    and ends with the best-scoring poster; ``0`` keeps the last one. Scoring draws nothing from
    the run's generator, so the trajectory is the same either way.

    Memory savers (same gradients, see :func:`podd.ratbptt.outer_loss_and_grads`): ``real_chunk`` forwards
    the real batch that many images at a time; ``recompute_window`` keeps one inner step's graph
    instead of the whole window's, recomputing each step during the backward.

    ``truncated_dtype="bfloat16"`` runs the inner steps before the window under bfloat16
    autocast; they carry no gradient, so only the window's starting point changes. Measured on
    an H200 with the eager engine (benchmarks/results/LOG.md, GPU section) it made the CIFAR-10
    paper step slower (the step was bound by kernel launches, and autocast adds cast kernels) and
    moved the meta-gradient well beyond float32's own error; an option, float32 by default.

    ``engine`` is how a step is executed (:mod:`podd.engine`): ``eager`` (autograd through the
    unrolled window), ``compiled`` (the inner steps compiled with torch.compile, CUDA graphs on
    a GPU) or ``auto`` (compiled wherever torch.compile can run, else eager, saying why). The
    engines compute the same meta-gradient up to float rounding; a run resumes bit-identically
    within one engine on the CPU.
    """

    dataset: str = "digits"
    mode: str = "podd"
    ipc: float = 1.0
    grid: tuple[int, int] | None = None
    patches: tuple[int, int] | None = None
    poster_size: tuple[int, int] | None = None
    class_order: str | list[list[int]] = "identity"  # a spec, or an explicit (rows, cols) grid
    labels: str = "learned"
    init: str = "class_areas"
    zca: bool = False
    width: int = 128
    depth: int | None = None
    distill_batch: int | None = 96
    real_batch: int = 256
    real_chunk: int | None = None
    recompute_window: bool = False
    truncated_dtype: str = "float32"
    engine: str = "auto"
    window: int = 10
    total_window: int = 30
    min_start: int = 0
    start_schedule: str = "epoch"
    fixed_start: int | None = None
    inner_lr: float = 1e-3
    outer_lr: float = 1e-3
    label_lr: float | None = None
    clip_factor: float = 2.0
    clip_ema: float = 0.9
    augment: bool = True
    steps: int = 1000
    eval_every: int = 0
    best_every: int = 0
    eval_models: int = 8
    eval_steps: tuple[int, ...] = (300, 600, 1000, 2000)
    eval_arch: str = "convnet"
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    profile: str = "custom"
    data_root: str | None = None

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep them tuples so configs compare equal.
        # Anything else (a number, strings) is left for validate() to name.
        for f in dataclasses.fields(self):  # numpy scalars (np.int64 steps …) → Python's
            value = getattr(self, f.name)
            if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
                setattr(self, f.name, value.item())
        for name in ("grid", "patches", "poster_size", "eval_steps"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
                setattr(self, name, tuple(int(v) for v in value))

    @classmethod
    def check_value(cls, name: str, value: Any) -> None:
        """Raise ValueError when ``value`` is not of the type the field ``name`` declares (a
        bool for ``augment``, a whole number for ``steps``, a list of whole numbers for
        ``eval_steps`` …), saying what it must be with an example. Driven by the dataclass's
        annotations, so every field is checked, including ones added later."""
        hints = _field_types()
        if name not in hints:
            raise ValueError(f"unknown setting {name!r}; valid names are {sorted(hints)}")
        expected = _type_problem(value, hints[name])
        if expected is not None:
            example = _EXAMPLES.get(name, _field_defaults().get(name))
            example = "" if example is None else f" (e.g. {name}={json.dumps(example)})"
            raise ValueError(f"{name}={value!r}: must be {expected}{example}")

    def validate(self) -> DistillConfig:
        """Raise ValueError naming the first impossible setting: first the type of every field
        (:meth:`check_value`), then the ranges and the combinations. The rules of one mode
        (baseline: 1 IPC) are that mode's: :func:`podd.modes.validate` checks both."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        for f in dataclasses.fields(self):
            self.check_value(f.name, getattr(self, f.name))

        need(self.mode in MODES, f"mode={self.mode!r}: choose one of {', '.join(MODES)}")
        need(self.labels in LABEL_MODES, f"labels={self.labels!r}: choose fixed or learned")
        need(self.init in INITS, f"init={self.init!r}: choose one of {', '.join(INITS)}")
        need(
            self.start_schedule in START_SCHEDULES,
            f"start_schedule={self.start_schedule!r}: choose epoch, step or fixed",
        )
        need(
            isinstance(self.ipc, (int, float)) and math.isfinite(self.ipc) and self.ipc > 0,
            f"ipc={self.ipc!r}: the images-per-class budget must be a positive number",
        )
        need(
            self.poster_size is None or (len(self.poster_size) == 2 and min(self.poster_size) >= 1),
            f"poster_size={self.poster_size}: give (H, W) with both at least 1 pixel, or None to compute it from ipc",
        )
        need(self.window >= 1, f"window={self.window}: needs at least one differentiable step")
        need(self.total_window >= self.window, f"total_window={self.total_window} is smaller than window={self.window}")
        need(
            0 <= self.min_start <= self.total_window - self.window,
            f"min_start={self.min_start} must lie in [0, total_window - window = {self.total_window - self.window}]",
        )
        if self.fixed_start is not None:
            need(
                0 <= self.fixed_start <= self.total_window - self.window,
                f"fixed_start={self.fixed_start} must lie in [0, {self.total_window - self.window}]",
            )
        need(
            self.distill_batch is None or self.distill_batch >= 1,
            f"distill_batch={self.distill_batch}: must be at least 1 (or None for all patches)",
        )
        need(self.real_batch >= 1, f"real_batch={self.real_batch}: must be at least 1")
        need(
            self.truncated_dtype in TRUNCATED_DTYPES,
            f"truncated_dtype={self.truncated_dtype!r}: choose one of {', '.join(TRUNCATED_DTYPES)}",
        )
        need(self.eval_arch in EVAL_ARCHS, f"eval_arch={self.eval_arch!r}: choose one of {', '.join(EVAL_ARCHS)}")
        need(self.engine in ENGINES, f"engine={self.engine!r}: choose one of {', '.join(ENGINES)}")
        need(
            self.real_chunk is None or self.real_chunk >= 1,
            f"real_chunk={self.real_chunk}: must be at least 1 (or None for the whole real batch)",
        )
        need(self.steps >= 0, f"steps={self.steps}: must be >= 0")
        need(self.width >= 1, f"width={self.width}: must be at least 1")
        need(self.depth is None or self.depth >= 1, f"depth={self.depth}: must be at least 1")
        for name in ("inner_lr", "outer_lr"):
            need(getattr(self, name) > 0, f"{name}={getattr(self, name)}: must be positive")
        need(self.label_lr is None or self.label_lr > 0, f"label_lr={self.label_lr}: must be > 0")
        need(0 <= self.clip_ema < 1, f"clip_ema={self.clip_ema}: must lie in [0, 1)")
        need(self.clip_factor > 0, f"clip_factor={self.clip_factor}: must be positive")
        need(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            f"device={self.device!r}: choose auto, cpu or cuda",
        )
        need(self.log_every >= 1, f"log_every={self.log_every}: must be at least 1")
        for name in ("eval_every", "best_every", "checkpoint_every", "eval_models"):
            need(getattr(self, name) >= 0, f"{name}={getattr(self, name)}: must be 0 (never) or a positive number")
        for name in ("grid", "patches"):
            value = getattr(self, name)
            need(
                value is None or min(value) >= 1,
                f"{name}={list(value) if value else value}: both counts (rows, cols) must be at "
                f"least 1, or null for podd's default",
            )
        need(
            min(self.eval_steps) >= 1 and list(self.eval_steps) == sorted(set(self.eval_steps)),
            f"eval_steps={list(self.eval_steps)}: must be increasing training-step counts of at "
            f"least 1, e.g. eval_steps=[300, 1000]",
        )
        need(self.seed >= 0, f"seed={self.seed}: must be 0 or a positive whole number")
        need(
            not self.best_every or self.eval_models >= 1,
            f"best_every={self.best_every} scores each poster with eval_models students, but "
            f"eval_models=0; give eval_models of at least 1 or best_every=0",
        )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DistillConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def replace(self, **changes) -> DistillConfig:
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    """A whole number: int or numpy integer, not bool."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


# Examples for the fields whose default (None) is no example.
_EXAMPLES = {
    "grid": [2, 5],
    "patches": [6, 16],
    "poster_size": [60, 153],
    "depth": 3,
    "real_chunk": 250,
    "fixed_start": 0,
    "label_lr": 0.001,
    "data_root": "/data",
}


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(DistillConfig)


def _field_defaults() -> dict[str, Any]:
    return {
        f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
        for f in dataclasses.fields(DistillConfig)
        if f.default is not dataclasses.MISSING
    }


def _type_problem(value: Any, annotation: Any) -> str | None:
    """None when ``value`` fits ``annotation`` (the types DistillConfig uses: bool, int, float,
    str, tuple[int, int], tuple[int, ...] and X | None), else what it must be, in words."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        problems = [_type_problem(value, a) for a in options]
        if any(p is None for p in problems):
            return None
        return " or ".join(problems) + (" or null" if len(options) < len(args) else "")
    if annotation is bool:
        return None if isinstance(value, bool) else "true or false"
    if annotation is int:
        return None if _is_int(value) else "a whole number"
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a finite number"
    if annotation is str:
        return None if isinstance(value, str) else "a string"
    if origin is list:  # list[X]: a list (or tuple) of X
        if not isinstance(value, (list, tuple)):
            return "a list"
        problems = [_type_problem(item, args[0]) for item in value]
        return None if all(p is None for p in problems) else f"a list of ({_kind(args[0])})"
    if origin is tuple:
        items_ok = isinstance(value, (list, tuple)) and all(_is_int(v) for v in value)
        if len(args) == 2 and args[1] is Ellipsis:
            return None if items_ok and len(value) >= 1 else "a list of whole numbers"
        return None if items_ok and len(value) == len(args) else f"a list of {len(args)} whole numbers"
    return None  # a type this function does not know: not checked


def _kind(annotation: Any) -> str:
    """``annotation`` in words, for nested lists."""
    if typing.get_origin(annotation) is list:
        return f"lists of {_kind(typing.get_args(annotation)[0])}"
    return {int: "whole numbers", float: "numbers", str: "strings", bool: "true/false"}.get(annotation, str(annotation))

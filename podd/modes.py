"""What the three distillation modes do differently, each in one object (paper §4 and §5).

``podd``
    PoDD: one poster of the given IPC, its classes placed on a grid in a PoCO class order
    (§4.2), overlapping patches with fixed or learned PoDDL labels (§4.3).
``baseline``
    RaT-BPTT at 1 IPC: one image-sized cell per class, non-overlapping patches (PoDD with as
    many patches as classes is exactly this).
``per-class``
    One small poster per class (fig. 9's ablation), its overlapping patches one-hot in the class.

:func:`poster_mode` is the only place that turns a mode's name into behaviour: the engine asks
the :class:`PosterMode` it returns for the poster's geometry, class order, initial pixels,
patches and labels, :func:`podd.presets.resolve_config` asks it how a preset's settings fit the
mode, and neither compares mode names itself. :func:`validate` adds each mode's own rules to the
settings' (:meth:`podd.config.DistillConfig.validate`); :func:`plan_geometry` and
:func:`check_budget` refuse impossible posters before anything is allocated.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from podd import labels as L
from podd import poster as P
from podd.architectures import check_image_size
from podd.choices import MODES as MODE_NAMES
from podd.layout import default_class_grid
from podd.ordering import resolve_class_order

# How far a given poster_size may lie from config.ipc (the authors' sizes are within 1 %).
POSTER_SIZE_IPC_TOLERANCE = 0.05

#: The largest poster (with its patches, float32) podd agrees to allocate; a budget beyond it is
#: a typo (``--ipc 1e9``), refused with the poster's size before anything is allocated.
MAX_POSTER_BYTES = 16 * 2**30


class PosterMode:
    """The behaviour shared by the modes: one poster holding all classes, cut into patches by
    one gather, labels fixed (majority) or learned."""

    name = ""
    labels_learnable = True
    #: whether ``class_order`` (PoCO, an embeddings file) places this mode's classes; the other
    #: modes fix which class each poster or cell holds
    orders_classes = False

    def posters(self, num_classes: int) -> int:
        """How many posters the distilled set has."""
        return 1

    def check_config(self, config) -> None:
        """Refuse settings this mode cannot run (called by :func:`validate`)."""

    # -- presets (podd.presets.resolve_config) ------------------------------------------------
    def preset_defaults(self, values: dict) -> None:
        """Set in a preset's ``values`` what this mode fixes, before the request's ipc and
        overrides are applied (which may still change it)."""

    def preset_poster(self, values: dict, free) -> bool:
        """Reset the preset's poster settings this mode has no use for to None (its own default),
        each only where ``free(name)`` (not requested); True when the preset's poster size and
        patch counts are this mode's, to be fitted to the IPC (resolve_config's rule 2)."""
        if free("poster_size"):
            values["poster_size"] = None  # only a shared poster sized by the IPC has one
        return False

    def geometry(self, config, num_classes: int, image_shape):
        raise NotImplementedError

    def check_geometry(self, config, geometry, num_classes: int, image_shape) -> None:
        """Refuse a geometry that does not honour the config's IPC."""

    def advice_size(self, config, num_classes: int, image_shape) -> tuple[int, int] | None:
        """The poster size (H, W) the config asks for, to advise on patches; None: no advice."""
        return None

    def class_order(self, config, class_names, num_classes: int, rows: int, cols: int, data=None) -> torch.Tensor:
        """The (rows, cols) class grid; ``data=(x_train, y_train)`` for ``class_order="data"``."""
        raise NotImplementedError

    def label_mode(self, labels: str) -> str:
        return labels

    def init_poster(
        self,
        geometry,
        generator: torch.Generator,
        init: str,
        class_order,
        real_x: torch.Tensor,
        real_y: torch.Tensor,
        num_classes: int,
    ) -> torch.Tensor:

        return P.init_poster(geometry, generator, init, class_order=class_order, real_x=real_x, real_y=real_y)

    def patches(self, poster: torch.Tensor, positions, patch_hw, index) -> torch.Tensor:

        return P.extract_patches(poster, positions, patch_hw, index=index)

    def fixed_labels(self, class_order, geometry, num_classes: int) -> torch.Tensor:

        return L.fixed_labels(class_order, geometry)


class PoddMode(PosterMode):
    name = "podd"
    orders_classes = True

    def preset_poster(self, values, free):
        return True  # the presets' posters are PoDD's: resolve_config fits them to the IPC

    def geometry(self, config, num_classes, image_shape):

        return P.make_geometry(
            num_classes, image_shape, config.ipc, grid=config.grid, patches=config.patches, size=config.poster_size
        )

    def check_geometry(self, config, geometry, num_classes, image_shape):
        _, h, w = image_shape
        if config.poster_size is not None and abs(geometry.ipc - config.ipc) > POSTER_SIZE_IPC_TOLERANCE * config.ipc:
            raise ValueError(
                f"poster_size={list(config.poster_size)} holds {geometry.ipc:.3g} IPC of "
                f"{num_classes} classes of {h}×{w} images, but ipc={config.ipc:g}; drop "
                f"poster_size (set it to null) to compute the poster from ipc, or make them agree"
            )
        hint = f" (or a class grid with fewer rows, e.g. --set grid=[1,{num_classes}])" if geometry.grid[0] > 1 else ""
        _refuse_too_small(config, geometry, image_shape, hint=hint)

    def advice_size(self, config, num_classes, image_shape):

        return (
            tuple(config.poster_size)
            if config.poster_size
            else P.poster_size(num_classes, image_shape, config.ipc, config.grid)
        )

    def class_order(self, config, class_names, num_classes, rows, cols, data=None):

        return resolve_class_order(config.class_order, class_names, rows, cols, data=data)


class BaselineMode(PosterMode):
    name = "baseline"

    def check_config(self, config):
        if abs(config.ipc - 1.0) >= 1e-9:
            raise ValueError(
                f"ipc={config.ipc}: baseline mode is RaT-BPTT at exactly 1 IPC (one "
                f"non-overlapping patch per class); use --ipc 1 or --mode podd"
            )

    def preset_defaults(self, values):
        # RaT-BPTT at 1 IPC: K images, each one-hot its class, all of them in every inner step.
        values.update(distill_batch=None, labels="fixed", ipc=1.0)

    def geometry(self, config, num_classes, image_shape):

        return P.baseline_geometry(num_classes, image_shape, grid=config.grid)

    def class_order(self, config, class_names, num_classes, rows, cols, data=None):
        # cell k holds class k: each patch is one class
        order = torch.full((rows * cols,), -1, dtype=torch.long)
        order[:num_classes] = torch.arange(num_classes)
        return order.view(rows, cols)


class PerClassMode(PosterMode):
    name = "per-class"
    labels_learnable = False  # each patch belongs to its poster's class

    def posters(self, num_classes):
        return num_classes

    def preset_poster(self, values, free):
        super().preset_poster(values, free)
        if free("patches"):
            values["patches"] = None  # per_class_patches: 2×2 per class
        return False

    def geometry(self, config, num_classes, image_shape):

        return P.per_class_geometry(
            num_classes, image_shape, config.ipc, config.patches or per_class_patches(config.ipc, image_shape)
        )

    def check_geometry(self, config, geometry, num_classes, image_shape):
        _refuse_too_small(config, geometry, image_shape, note=" per class (per-class mode: one poster per class)")

    def advice_size(self, config, num_classes, image_shape):

        return P.per_class_geometry(1, image_shape, config.ipc, patches=(1, 1)).size

    def class_order(self, config, class_names, num_classes, rows, cols, data=None):
        return torch.arange(num_classes).view(1, num_classes)  # poster k holds class k

    def label_mode(self, labels):
        return "per-class"

    def init_poster(self, geometry, generator, init, class_order, real_x, real_y, num_classes):

        # poster k holds class k: its 1×1 class order is [[k]]
        return torch.stack(
            [
                P.init_poster(
                    geometry,
                    generator,
                    init,
                    class_order=torch.full((1, 1), k, dtype=torch.long),
                    real_x=real_x,
                    real_y=real_y,
                )
                for k in range(num_classes)
            ]
        )

    def patches(self, poster, positions, patch_hw, index):

        return P.extract_per_class_patches(poster, positions, patch_hw)[0]

    def fixed_labels(self, class_order, geometry, num_classes):

        c, H, W = geometry.image_shape[0], *geometry.size
        _, hard = P.extract_per_class_patches(
            torch.zeros(num_classes, c, H, W), geometry.positions(), tuple(geometry.image_shape[1:])
        )
        return F.one_hot(hard, num_classes)


_MODES = {mode.name: mode for mode in (PoddMode(), BaselineMode(), PerClassMode())}
MODES = tuple(_MODES)
assert MODES == MODE_NAMES, "podd.choices.MODES names every mode object, in order"


def poster_mode(name: str) -> PosterMode:
    """The :class:`PosterMode` of a mode's name (``podd``, ``baseline`` or ``per-class``)."""
    if name not in _MODES:
        raise ValueError(f"mode={name!r}: choose one of {', '.join(MODES)}")
    return _MODES[name]


def validate(config):
    """``config`` (a :class:`podd.config.DistillConfig`) when its settings are possible
    (:meth:`~podd.config.DistillConfig.validate`) and its mode's own rules hold
    (:meth:`PosterMode.check_config`), else a ValueError naming the first impossible setting."""
    config.validate()
    poster_mode(config.mode).check_config(config)
    return config


def _refuse_too_small(config, geometry, image_shape, note: str = "", hint: str = "") -> None:
    """The poster module never makes a poster smaller than one image: a budget that cannot hold
    one patch is refused, since silently spending more pixels would misreport the IPC."""
    _, h, w = image_shape
    if geometry.ipc > 1.2 * config.ipc:
        raise ValueError(
            f"ipc={config.ipc:g} is too small for this poster: the smallest poster that holds "
            f"one {h}×{w} patch has {geometry.pixels} pixels = {geometry.ipc:.3g} IPC{note}"
            f"; use --ipc {geometry.ipc:.2g} or more{hint}"
        )


def per_class_patches(ipc: float, image_shape=None) -> tuple[int, int]:
    """Default patches of one class poster: 2×2 overlapping patches (fig. 9's per-class setup),
    fewer along a side that has room for fewer (a poster of one image's side holds one)."""
    if image_shape is None:
        return (2, 2)

    H, W = P.per_class_geometry(1, image_shape, ipc, patches=(1, 1)).size
    _, h, w = image_shape
    return min(2, H - h + 1), min(2, W - w + 1)


# --------------------------------------------------------------------------------------------
# refusing impossible posters before anything is allocated
# --------------------------------------------------------------------------------------------
def check_class_order(config, class_names, image_shape, data=None) -> None:
    """Resolve ``config``'s class order now (PoCO needs CLIP weights or an embeddings file), so
    that a sweep fails when it is submitted, not after its other runs; CLIP's embeddings are
    cached on disk, so the run itself reads them again at no cost. ``class_order="data"`` needs
    no weights: without ``data=(x_train, y_train)`` only the geometry is checked here, and each
    run measures its classes on its images when it starts (a pass over them)."""
    rows, cols = plan_geometry(config, len(class_names), image_shape).grid
    if config.class_order == "data" and data is None:
        return
    poster_mode(config.mode).class_order(config, list(class_names), len(class_names), rows, cols, data=data)


def plan_geometry(config, num_classes: int, image_shape) -> Any:
    """The poster geometry ``config`` asks for on data of ``num_classes`` classes of
    ``image_shape`` (c, h, w) — arithmetic only, nothing allocated — or a ValueError that names
    the IPC, the poster and what to change. :class:`podd.distiller.Distiller` builds its poster
    from it, and ``podd distill`` calls it before loading any data."""
    K, shape = int(num_classes), tuple(int(v) for v in image_shape)
    c, h, w = shape
    validate(config)
    mode = poster_mode(config.mode)
    where = (
        f"ipc={config.ipc:g} ({config.mode} mode, {K} classes of {h}×{w} images"
        + (f", grid {list(config.grid)}" if config.grid else "")
        + (f", patches {list(config.patches)}" if config.patches else "")
        + (f", poster_size {list(config.poster_size)}" if config.poster_size else "")
        + ")"
    )
    try:
        geometry = mode.geometry(config, K, shape)
    except ValueError as error:
        raise ValueError(
            f"impossible poster for {where}: {error}. {_geometry_advice(config, mode, K, shape)}"
        ) from None
    mode.check_geometry(config, geometry, K, shape)
    if config.eval_models:  # the evaluation's network takes these images: said now, not at the end
        check_image_size(config.eval_arch, h)
    copies = mode.posters(K)
    if config.distill_batch is not None and config.distill_batch > geometry.num_patches * copies:
        raise ValueError(
            f"distill_batch={config.distill_batch} is larger than the poster's "
            f"{geometry.num_patches * copies} patches at {where}; lower it with --set "
            f"distill_batch=N, N at most {geometry.num_patches * copies}, or use more patches "
            f"(--set patches=[ROWS,COLS])"
        )
    H, W = geometry.size
    nbytes = 4 * c * copies * (H * W + geometry.num_patches * h * w)
    if nbytes > MAX_POSTER_BYTES:
        raise ValueError(
            f"ipc={config.ipc:g} asks for a {H}×{W}-pixel poster"
            + (f" per class ({K} posters)" if copies > 1 else "")
            + f" with {geometry.num_patches * copies} patches: {nbytes / 2**30:.3g} GiB before "
            f"any training, more than podd allocates ({MAX_POSTER_BYTES // 2**30} GiB). The "
            f"paper distils into ipc < 1 (e.g. --ipc 0.9); use an IPC of at most a few tens"
        )
    return geometry


def _geometry_advice(config, mode: PosterMode, K: int, shape) -> str:
    """What to change when the poster module refuses a geometry."""

    c, h, w = shape
    if config.grid is not None and (min(config.grid) < 1 or config.grid[0] * config.grid[1] < K):
        return f"Use --set grid=[ROWS,COLS] with ROWS·COLS ≥ {K}, or --set grid=null for {list(default_class_grid(K))}"
    try:
        size = mode.advice_size(config, K, shape)
    except ValueError:
        return "Use a larger --ipc or --set grid=null"
    if size is None:
        return ""
    if size[0] < h or size[1] < w:
        return (
            f"Use --set poster_size=null to compute the poster from the IPC, or a poster_size of at least [{h},{w}]"
            if config.poster_size
            else "Use a larger --ipc"
        )
    most = (size[0] - h + 1, size[1] - w + 1)
    return (
        f"At this IPC the poster is {size[0]}×{size[1]} pixels, which holds at most "
        f"{most[0]}×{most[1]} distinct {h}×{w} patch positions: use --set "
        f"patches=[{min(most[0], 2)},{min(most[1], 2)}] (rows, cols, each at most "
        f"{most[0]} and {most[1]}), or --set patches=null to let podd choose, or a larger --ipc"
    )


def check_budget(config, geometry, num_classes: int, image_shape, n_train: int) -> None:
    """Refuse a poster with more pixels than the whole training set (a typo such as --ipc 1e9
    that :data:`MAX_POSTER_BYTES` lets through on a small dataset)."""
    c, h, w = image_shape
    copies = poster_mode(config.mode).posters(num_classes)
    pixels = geometry.pixels * copies
    if n_train and pixels > n_train * h * w:
        per_class = n_train / num_classes
        raise ValueError(
            f"ipc={config.ipc:g} asks for a {geometry.size[0]}×{geometry.size[1]}-pixel poster"
            + (" per class" if copies > 1 else "")
            + f": more pixels than the whole training "
            f"set ({n_train} images, {per_class:.4g} per class). Distillation makes the data "
            f"smaller: use --ipc below {per_class:.4g} (the paper uses 0.9 or less)"
        )

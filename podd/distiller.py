"""RaT-BPTT on a poster: the distillation engine's state (paper §3 and §4).

One outer step, as the authors' published code runs RaT-BPTT:

1. draw the step's randomness into a :class:`podd.ratbptt.StepPlan` (a fresh ConvNet's
   parameters, the window start, the inner minibatches, augmentation seeds, the real batch);
2. cut the poster into its overlapping patches (one gather) and compute their soft labels
   (fixed, or learned from the label parameters in one matmul): :class:`PatchSource`;
3. compute the outer loss and its meta-gradient (:func:`podd.ratbptt.outer_loss_and_grads`:
   ``start`` inner Adam steps without a graph, ``window`` steps with one, cross-entropy of the
   adapted net on augmented real images);
4. clip the poster gradient to ``clip_factor`` × an exponential moving average of its norm,
   take an outer Adam step and clamp the label parameters at zero.

All randomness of a step is drawn up front from one CPU generator, so the step is a pure
function of (poster, labels, plan), and a checkpoint that stores the generator state resumes
bit-identically.

Here: :class:`Distiller` (the poster, label parameters, outer optimizer and generator; one outer
step per ``.step()``, for benchmarks and notebooks) and :func:`patches_and_labels` (what a
student trains on). Every setting of a run is a :class:`podd.config.DistillConfig`; the maths of
one step is :mod:`podd.ratbptt`; what the modes (podd, baseline, per-class) do differently is
:mod:`podd.modes`; a whole run (progress, evaluation, run directory, checkpoints, resume) is
:func:`podd.run_loop.distill`.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch

from podd import labels as L
from podd import poster as P
from podd.artifacts import PosterArtifact
from podd.config import DistillConfig
from podd.data import load_dataset, make_preprocessor
from podd.data.dataset import fingerprint
from podd.data.preprocess import check_zca_memory
from podd.devices import resolve_device
from podd.engine import make_engine
from podd.evaluate import EvalProtocol
from podd.memory import check_step_memory
from podd.models import ConvNet, default_depth, init_parameters
from podd.modes import check_budget, plan_geometry, poster_mode, validate
from podd.parallel import SINGLE
from podd.ratbptt import ADAM_BETAS, ADAM_EPS, StepPlan, unrolled_outer_loss

# best_every's students are seeded at seed + this: streams of their own, apart from the final
# evaluation's (a poster chosen with the very students that then test it would flatter itself).
SELECTION_SEED_OFFSET = 1_000_003


# --------------------------------------------------------------------------------------------
# patches and labels of a poster
# --------------------------------------------------------------------------------------------
class PatchSource:
    """Turns poster pixels (and label parameters) into the distilled dataset, differentiably.

    How patches are cut and which labels are fixed is the mode's (:func:`podd.modes.poster_mode`).
    ``podd``/``baseline``: one poster (c, H, W) → its patches by one gather; labels fixed
    (majority one-hot, ties shared) or learned (label parameters averaged under each window).
    ``per-class``: K posters (K, c, H, W) → K·N patches, each one-hot its poster's class.
    """

    def __init__(
        self,
        mode: str,
        geometry,
        class_order: torch.Tensor,
        label_mode: str,
        num_classes: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.mode, self.geometry, self.label_mode = mode, geometry, label_mode
        self.kind = poster_mode(mode)
        self.num_classes = num_classes
        self.patch_hw = tuple(geometry.image_shape[1:])
        self.positions = geometry.positions().to(device)
        # The flat pixel index of every patch is fixed by the geometry: build it once, not per
        # extraction (building it was a large part of the extraction's time on a CPU).
        self._index = P.patch_index(self.positions, self.patch_hw, geometry.size[1])
        self._fixed: torch.Tensor | None = None
        self._weights: torch.Tensor | None = None
        if label_mode == "learned" and self.kind.labels_learnable:
            self._weights = L.patch_cell_weights(geometry).to(device, dtype)
        else:
            self._fixed = self.kind.fixed_labels(class_order, geometry, num_classes).to(device, dtype)
        self.num_patches = int(self._fixed.shape[0] if self._fixed is not None else self._weights.shape[0])

    def patches(self, poster: torch.Tensor) -> torch.Tensor:
        return self.kind.patches(poster, self.positions, self.patch_hw, self._index)

    def labels(self, label_params: torch.Tensor | None) -> torch.Tensor:
        if self._weights is None:
            return self._fixed
        return L.learned_labels(label_params, self._weights)


# --------------------------------------------------------------------------------------------
# the distiller: state + one outer step at a time
# --------------------------------------------------------------------------------------------
class NonFiniteLossError(RuntimeError):
    """The outer loss or the poster gradient became NaN/inf."""

    def __init__(self, step: int, message: str | None = None):
        self.step = step
        super().__init__(message or f"the outer loss or poster gradient became NaN/inf at outer step {step}")


class Distiller:
    """Holds a poster, its label parameters, the outer optimizer and the RNG; ``step()`` = one
    outer RaT-BPTT step. Deterministic on CPU for a given config (seed) and dataset.

    ``dataset``: a podd.data.Dataset (loaded from ``config.dataset`` when None);
    ``preprocessor``: podd.data.Preprocessor (made with ``config.zca`` when None);
    ``parallel``: a :class:`podd.parallel.Parallel` when this process is one of several
    (torchrun); None: one process.
    """

    def __init__(self, config: DistillConfig, dataset=None, preprocessor=None, parallel=None):
        self.config = config = validate(config)  # the settings and the mode's own rules
        self.parallel = parallel or SINGLE
        self.parallel.check(config)
        self.device = resolve_device(config.device)
        # how each step runs (podd.engine); a fallback to eager says why, once
        self.engine = make_engine(config.engine, self.device, on_fallback=_say_engine_fallback)
        self.poster_mode = poster_mode(config.mode)  # what podd/baseline/per-class do differently
        if dataset is None:
            dataset = load_dataset(config.dataset, root=config.data_root)
        self.dataset, self.num_classes = dataset, dataset.num_classes
        self.generator = torch.Generator().manual_seed(config.seed)
        # Memory and the poster's layout (its class order may need CLIP weights) are checked
        # before the preprocessing, which can take minutes (ZCA).
        if preprocessor is None and config.zca:  # the ZCA's D×D matrices first: they can dwarf a step
            check_zca_memory(tuple(dataset.image_shape))
        self.geometry = plan_geometry(config, self.num_classes, tuple(dataset.image_shape))
        self._check_memory(dataset)
        self._plan_poster()
        if preprocessor is None:
            preprocessor = make_preprocessor(dataset, zca=config.zca, root=config.data_root)
        self.preprocessor = preprocessor
        # Real data, preprocessed once and kept on the device.
        self.x_real = preprocessor(dataset.x_train).to(self.device)
        self.y_real = dataset.y_train.to(self.device)
        self.x_test = preprocessor(dataset.x_test).to(self.device)
        self.y_test = dataset.y_test.to(self.device)
        self.n_train = int(self.x_real.shape[0])

        c, h, _ = dataset.image_shape
        self.depth = config.depth if config.depth is not None else default_depth(h)
        self.net = ConvNet(c, self.num_classes, h, width=config.width, depth=self.depth).to(self.device)
        self.net.requires_grad_(False)  # only its structure is used; parameters come from plans
        self._init_leaves()

        self.step_count = 0
        self.grad_ema: torch.Tensor | None = None
        self.epoch_perm: torch.Tensor | None = None
        self.epoch_pos = 0
        self.epoch = 0
        self.start = self._draw_start() if config.start_schedule == "fixed" else 0
        self._pending: list[tuple[int, torch.Tensor]] = []  # (step, finite flag) not yet checked
        self.best: dict[str, Any] | None = None  # best_every: the best-scoring poster so far

    def _check_memory(self, dataset) -> None:
        """Refuse a run whose first step would not fit in memory (:mod:`podd.memory`)."""
        cfg, K, shape = self.config, dataset.num_classes, tuple(dataset.image_shape)
        patches = self.geometry.num_patches * self.poster_mode.posters(K)
        depth = cfg.depth if cfg.depth is not None else default_depth(shape[1])
        check_step_memory(
            cfg, shape, len(dataset.y_train) + len(dataset.y_test), cfg.distill_batch or patches, depth, self.device
        )

    def _plan_poster(self) -> None:
        """Class order, labels and patches of the planned geometry: the poster layout (§4.1–§4.3).
        (:func:`podd.modes.plan_geometry` has refused a distill_batch above the patch count.)"""
        cfg, K, shape = self.config, self.num_classes, tuple(self.dataset.image_shape)
        check_budget(cfg, self.geometry, K, shape, n_train=len(self.dataset.y_train))
        rows, cols = self.geometry.grid
        self.class_order = self.poster_mode.class_order(
            cfg, self.dataset.class_names, K, rows, cols, data=(self.dataset.x_train, self.dataset.y_train)
        )  # class_order="data" reads them
        self.label_mode = self.poster_mode.label_mode(cfg.labels)
        self.source = PatchSource(cfg.mode, self.geometry, self.class_order, self.label_mode, K, self.device)
        self.distill_batch = cfg.distill_batch or self.source.num_patches

    def _init_leaves(self) -> None:
        """The learned leaves — poster pixels (and label parameters) — and their outer Adam."""
        cfg = self.config
        poster = self.poster_mode.init_poster(
            self.geometry,
            self.generator,
            cfg.init,
            self.class_order,
            self.x_real.cpu(),
            self.dataset.y_train,
            self.num_classes,
        )
        self.poster = poster.to(self.device, torch.float32).requires_grad_(True)
        groups = [{"params": [self.poster], "lr": cfg.outer_lr}]
        self.label_params: torch.Tensor | None = None
        if self.label_mode == "learned":
            self.label_params = (
                L.init_label_params(self.class_order, self.num_classes)
                .to(self.device, torch.float32)
                .requires_grad_(True)
            )
            groups.append({"params": [self.label_params], "lr": cfg.label_lr or cfg.outer_lr})
        self.optimizer = torch.optim.Adam(groups, betas=ADAM_BETAS, eps=ADAM_EPS)

    # -- randomness ---------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.config.real_batch)

    def _draw_start(self) -> int:
        cfg = self.config
        if cfg.start_schedule == "fixed":
            return cfg.fixed_start if cfg.fixed_start is not None else cfg.total_window - cfg.window
        high = cfg.total_window - cfg.window
        return int(torch.randint(cfg.min_start, high + 1, (1,), generator=self.generator))

    def plan(self) -> StepPlan:
        """Draw the next step's randomness (advances the generator and the epoch position)."""
        cfg, gen = self.config, self.generator
        if self.epoch_perm is None or self.epoch_pos >= self.n_train:
            # A new epoch over the real data: reshuffle; RaT-BPTT redraws its window start.
            if self.epoch_perm is not None:
                self.epoch += 1
            self.epoch_perm = torch.randperm(self.n_train, generator=gen)
            self.epoch_pos = 0
            if cfg.start_schedule == "epoch":
                self.start = self._draw_start()
        if cfg.start_schedule == "step":
            self.start = self._draw_start()
        real_index = self.epoch_perm[self.epoch_pos : self.epoch_pos + cfg.real_batch]
        self.epoch_pos += cfg.real_batch
        params = init_parameters(self.net, gen, self.device)
        steps = self.start + cfg.window
        # Without replacement within each inner step: the first B of a random permutation.
        batch_index = torch.rand(steps, self.source.num_patches, generator=gen).argsort(1)
        batch_index = batch_index[:, : self.distill_batch]
        seeds = torch.randint(0, 2**62, (steps + 1,), generator=gen).tolist()
        return StepPlan(params, self.start, cfg.window, batch_index.to(self.device), seeds, real_index.to(self.device))

    # -- one outer step ----------------------------------------------------------------------
    def outer_loss(self, plan: StepPlan) -> torch.Tensor:
        """The outer loss of ``plan`` with its full graph (for inspection and tests)."""
        return unrolled_outer_loss(
            self.net,
            self.poster,
            self.label_params,
            plan,
            self.source,
            self.x_real,
            self.y_real,
            self.config.inner_lr,
            self.config.augment,
            self.config.truncated_dtype,
        )

    def outer_gradients(self, plan: StepPlan):
        """(outer loss, gradients w.r.t. [poster, label parameters]) with the configured engine
        and memory savers."""
        cfg = self.config
        return self.engine.outer_loss_and_grads(
            self.net,
            self.poster,
            self.label_params,
            plan,
            self.source,
            self.x_real,
            self.y_real,
            cfg.inner_lr,
            cfg.augment,
            real_chunk=cfg.real_chunk,
            recompute_window=cfg.recompute_window,
            truncated_dtype=cfg.truncated_dtype,
        )

    def step(self) -> torch.Tensor:
        """One outer step. Returns the outer loss (a detached device tensor: no host sync)."""
        cfg = self.config
        plan = self.parallel.plan(self.plan)  # identity in one process
        loss, grads = self.parallel.reduce(*self.outer_gradients(plan), plan)
        norm = grads[0].norm()
        # Clip the poster gradient to clip_factor × EMA of its norm (the EMA includes this step;
        # the first step initialises it, so the first gradient passes unclipped).
        if self.grad_ema is None:
            self.grad_ema = norm.detach().clone()
        else:
            self.grad_ema.mul_(cfg.clip_ema).add_(norm.detach(), alpha=1 - cfg.clip_ema)
        scale = (cfg.clip_factor * self.grad_ema / (norm + 1e-12)).clamp(max=1.0)
        self.poster.grad = grads[0] * scale
        if self.label_params is not None:
            self.label_params.grad = grads[1]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.label_params is not None:
            with torch.no_grad():
                self.label_params.clamp_(min=0)  # labels are probabilities up to normalisation
        self.step_count += 1
        self._pending.append((self.step_count, torch.isfinite(loss) & torch.isfinite(norm)))
        return loss

    def check_finite(self) -> None:
        """Raise NonFiniteLossError for the first step since the last check whose loss or poster
        gradient was NaN/inf (one host sync for all pending steps)."""
        if not self._pending:
            return
        ok = torch.stack([flag for _, flag in self._pending]).cpu()
        steps = [s for s, _ in self._pending]
        self._pending = []
        if not bool(ok.all()):
            first = int((~ok).nonzero()[0])
            raise NonFiniteLossError(steps[first])

    # -- results -------------------------------------------------------------------------------
    def patches_and_labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.source.patches(self.poster).detach(), self.source.labels(self.label_params).detach()

    @property
    def can_evaluate(self) -> bool:
        """False for data without a test split (a train-only npz): nothing to test on."""
        return len(self.y_test) > 0

    def evaluate(self, num_models: int | None = None, steps=None, seed: int | None = None, progress: bool = False):
        """Train fresh ConvNets on the current patches (the §5.1 protocol of the config,
        :meth:`podd.evaluate.EvalProtocol.from_config`) and test them; ``num_models``, ``steps``
        and ``seed`` override the config's."""
        cfg = self.config
        if not self.can_evaluate:
            raise ValueError(
                f"{cfg.dataset} has no test images (a train-only npz), so there is "
                f"nothing to evaluate on; add x_test and y_test to the file, or "
                f"hold out a split with podd.data.train_val_split"
            )
        protocol = EvalProtocol.from_config(
            cfg,
            num_models=num_models or cfg.eval_models,
            steps=tuple(steps or cfg.eval_steps),
            seed=cfg.seed if seed is None else seed,
            device=self.device,
        )
        images, labels = self.patches_and_labels()
        return protocol.run(images, labels, self.x_test, self.y_test, progress=progress)

    # -- best-poster selection (best_every) --------------------------------------------------
    def training_accuracy(self) -> float:
        """Mean accuracy (%) on the TRAINING images of ``eval_models`` students trained on the
        current patches (the evaluation protocol, last of ``eval_steps``), seeded apart from
        the evaluation's students so that selection does not fit them."""
        cfg = self.config
        protocol = EvalProtocol.from_config(
            cfg, seed=cfg.seed + SELECTION_SEED_OFFSET, steps=(cfg.eval_steps[-1],), device=self.device
        )
        images, labels = self.patches_and_labels()
        return protocol.run(images, labels, self.x_real, self.y_real, num_classes=self.num_classes).mean()

    def consider_best(self) -> float:
        """Score the current poster (:meth:`training_accuracy`); keep a copy when it beats the
        best so far (ties keep the earlier one). Returns the score."""
        score = self.training_accuracy()
        if self.best is None or score > self.best["train_accuracy"]:
            self.best = {
                "step": self.step_count,
                "train_accuracy": score,
                "poster": self.poster.detach().cpu().clone(),
                "label_params": None if self.label_params is None else self.label_params.detach().cpu().clone(),
            }
        return score

    def restore_best(self) -> None:
        """Put the best-scoring poster (and its labels) back into the leaves, for the final
        evaluation and the artifact; the optimizer's state is left as it is."""
        if self.best is None:
            raise ValueError("no poster has been scored yet (best_every=0, or no step taken)")
        with torch.no_grad():
            self.poster.copy_(self.best["poster"].to(self.device))
            if self.label_params is not None:
                self.label_params.copy_(self.best["label_params"].to(self.device))

    def artifact(self):
        return PosterArtifact(
            poster=self.poster.detach().cpu().clone(),
            geometry=self.geometry,
            class_order=self.class_order.clone(),
            labels=None if self.label_params is None else self.label_params.detach().cpu().clone(),
            label_mode=self.label_mode,
            mode=self.config.mode,
            class_names=list(self.dataset.class_names),
            preprocessing=_preprocessing_state(self.preprocessor, self.config),
            config={
                **self.config.to_dict(),
                "data_source": getattr(self.dataset, "source", "full"),
                "data_fingerprint": self.data_fingerprint,
            },
        )

    @property
    def data_fingerprint(self) -> dict[str, str]:
        """:func:`podd.data.dataset.fingerprint` of the data, kept in checkpoints and the artifact so
        that ``--resume`` and ``podd evaluate`` notice data replaced after distillation (hashed once)."""
        if getattr(self, "_data_fingerprint", None) is None:
            self._data_fingerprint = fingerprint(self.dataset)
        return self._data_fingerprint

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self.check_finite()
        return {
            "step": self.step_count,
            "poster": self.poster.detach().cpu().clone(),
            "label_params": None if self.label_params is None else self.label_params.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict(),
            "grad_ema": None if self.grad_ema is None else self.grad_ema.cpu().clone(),
            "generator": self.generator.get_state(),
            "epoch_perm": self.epoch_perm,
            "epoch_pos": self.epoch_pos,
            "epoch": self.epoch,
            "start": self.start,
            "best": self.best,
            "data_fingerprint": self.data_fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.poster.copy_(state["poster"])
            if self.label_params is not None:
                self.label_params.copy_(state["label_params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.grad_ema = None if state["grad_ema"] is None else state["grad_ema"].to(self.device)
        self.generator.set_state(state["generator"])
        self.epoch_perm, self.epoch_pos = state["epoch_perm"], state["epoch_pos"]
        self.epoch, self.start, self.step_count = state["epoch"], state["start"], state["step"]
        self.best = state.get("best")  # absent from checkpoints older than best_every


def _say_engine_fallback(reason: str) -> None:
    print(f"note: engine=eager: {reason}", file=sys.stderr)


def _preprocessing_state(preprocessor, config: DistillConfig) -> dict[str, Any]:
    state = {"zca": bool(getattr(preprocessor, "zca", config.zca)), "dataset": config.dataset}
    for attr in ("state_dict", "to_dict"):
        if hasattr(preprocessor, attr):
            state["state"] = getattr(preprocessor, attr)()
            break
    return state


def patches_and_labels(artifact) -> tuple[torch.Tensor, torch.Tensor]:
    """What a student trains on: the artifact's patches (N, c, h, w) and soft labels (N, K)."""
    K = len(artifact.class_names)
    source = PatchSource(
        artifact.mode, artifact.geometry, artifact.class_order, artifact.label_mode, K, dtype=artifact.poster.dtype
    )
    with torch.no_grad():
        return source.patches(artifact.poster), source.labels(artifact.labels)

"""The evaluation protocol of §5.1: how well does a distilled set train a fresh network?

``M`` (default 8) freshly initialised ConvNets are trained on the distilled images and their
(soft or hard) labels with Adam (betas 0.9/0.999, no weight decay) at the inner learning rate,
on minibatches drawn from the distilled set, with ``flip_rotate`` augmentation; their test
accuracy is recorded at a few step counts (300/600/1000/2000 by default) and reported as
mean ± std over the models. These settings are one :class:`EvalProtocol` (``from_config`` gives
a distillation run's); ``protocol.run(images, labels, test_x, test_y)`` evaluates, and
:func:`train_and_test` is the same with the settings as keywords.

Cross-architecture evaluation: ``arch`` (the config's ``eval_arch``) trains ResNet-18, VGG-11
or AlexNet students instead of the ConvNet (:mod:`podd.architectures`), with the same protocol,
streams and batching; ``"convnet"`` is the default and unchanged.

Speed: the ``M`` models are trained TOGETHER as one batched computation — their parameters are
stacked on a leading axis (as for ``torch.func.vmap``) and run as ONE network with ``M`` groups
(:func:`grouped_forward`: grouped convolutions, one group_norm, one batched matmul head; this is
what vmap turns the ConvNet into, minus its transposes and its unfused instance-norm affine, and
was measured faster than vmap on the CPU). The loss is the SUM of the per-model losses, so each
model's gradient is exactly its own, and because Adam is elementwise one ``torch.optim.Adam``
over the stacked tensors is exactly ``M`` independent Adams.

Reproducibility: model ``m`` draws everything random — its initialisation, its batch order, its
augmentation — from its own streams derived from ``(seed, m)``. So ``train_and_test(...,
num_models=M)`` gives model by model the same accuracies (within float tolerance) as running the
models one after another (``sequential=True``, the plain single-model code path, used by the
equality test and the benchmark), and model ``m``'s result does not depend on ``M``. Hence one
evaluation can be split across processes: ``first_model=4, num_models=4`` trains models 4–7 of
an eight-model evaluation, the very same students.

Batches: each pass over the distilled set is a fresh random permutation cut into
``N // batch_size`` full batches (the remainder of a pass is skipped, so every batch has distinct
images and a fixed shape); with ``batch_size >= N`` every step uses all ``N`` images.

Augmentation: per model and step one operation for the whole batch, as ``flip_rotate`` does —
horizontal flip (each image with p = 0.5) or rotation (each image uniform in ±15°). The random
numbers for all steps are drawn up front (vectorised, from the model's augmentation stream). In
the batched path flip and rotation are one ``affine_grid`` + ``grid_sample`` with a per-image
matrix (flip = diag(-1, 1)), so models that picked different operations in the same step need no
Python loop; the sequential path uses :mod:`podd.augment`'s ``horizontal_flip`` / ``rotate``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .architectures import build, check_image_size, grouped_forward
from .augment import FLIP_PROBABILITY, MAX_DEGREES, horizontal_flip, rotate
from .devices import resolve_device
from .models import ConvNet, init_parameters
from .ratbptt import soft_cross_entropy

DEFAULT_STEPS = (300, 600, 1000, 2000)
DEFAULT_BATCH_SIZE = 256  # used when the caller gives none and N is larger


@dataclass
class EvalResult:
    """Test accuracy (percent) of ``num_models`` models at each of ``steps``."""

    steps: list[int]
    accuracy: torch.Tensor  # (num_models, len(steps)), percent, on the CPU
    num_models: int
    wall_time_s: float
    settings: dict[str, Any] = field(default_factory=dict)  # lr, batch size, seed, ... (provenance)

    def _column(self, step: int | None) -> torch.Tensor:
        if step is None:
            return self.accuracy[:, -1]
        if step not in self.steps:
            raise ValueError(f"step {step} was not evaluated; evaluated steps are {self.steps}")
        return self.accuracy[:, self.steps.index(step)]

    def mean(self, step: int | None = None) -> float:
        """Mean accuracy over models at ``step`` (default: the last evaluated step)."""
        return float(self._column(step).double().mean())

    def std(self, step: int | None = None) -> float:
        """Standard deviation over models (population, ddof = 0; 0 for one model)."""
        return float(self._column(step).double().std(unbiased=False))

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "accuracy": self.accuracy.tolist(),
            "mean": [self.mean(s) for s in self.steps],
            "std": [self.std(s) for s in self.steps],
            "num_models": self.num_models,
            "wall_time_s": self.wall_time_s,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        """The result :meth:`to_dict` wrote (e.g. read back from a run's final.json)."""
        return cls(
            steps=list(d["steps"]),
            accuracy=torch.tensor(d["accuracy"], dtype=torch.float64),
            num_models=int(d["num_models"]),
            wall_time_s=float(d["wall_time_s"]),
            settings=dict(d.get("settings") or {}),
        )

    def __str__(self) -> str:
        return (
            ", ".join(f"{s} steps: {self.mean(s):.2f} ± {self.std(s):.2f}" for s in self.steps)
            + f" (% over {self.num_models} models)"
        )


# --------------------------------------------------------------------------------------------
# random streams and schedules


def stream_seed(seed: int, model: int, purpose: str) -> int:
    """A 63-bit seed for one random stream of one evaluation model (``purpose``: init/order/augment).

    A hash rather than ``seed + model`` so that streams of different (seed, model) pairs never
    coincide (seed 0 model 1 ≠ seed 1 model 0).
    """
    digest = hashlib.sha256(f"podd-eval:{int(seed)}:{int(model)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _generator(seed: int, model: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, model, purpose))


_STEP_BLOCK = 128  # schedules are drawn in fixed-size blocks, so that the first s steps of a
_PASS_BLOCK = 16  # model's stream do not depend on how many steps the caller asked for


def _batch_order(n: int, batch: int, num_steps: int, generator: torch.Generator) -> torch.Tensor:
    """(num_steps, batch) indices: passes = random permutations cut into n // batch full batches."""
    per_pass = n // batch
    passes_needed = -(-num_steps // per_pass)
    blocks = []
    for _ in range(-(-passes_needed // _PASS_BLOCK)):
        # one vectorised argsort of uniforms = _PASS_BLOCK independent random permutations
        blocks.append(torch.rand(_PASS_BLOCK, n, generator=generator).argsort(dim=1))
    perms = torch.cat(blocks)
    return perms[:, : per_pass * batch].reshape(-1, batch)[:num_steps]


def _augment_schedule(
    batch: int, num_steps: int, generator: torch.Generator, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per step: rotate? (bool, (T,)) and a per-image value (T, batch).

    The value is the rotation angle in degrees on rotation steps and the flip sign (−1 flip,
    +1 keep) on flip steps — the same distributions as :func:`podd.augment.flip_rotate`.
    """
    ops, us = [], []
    for _ in range(-(-num_steps // _STEP_BLOCK)):
        ops.append(torch.randint(2, (_STEP_BLOCK,), generator=generator) == 1)
        us.append(torch.rand(_STEP_BLOCK, batch, generator=generator, dtype=torch.float64))
    rotate_op, u = torch.cat(ops)[:num_steps], torch.cat(us)[:num_steps]
    degrees = (u * 2 - 1) * MAX_DEGREES
    sign = torch.where(u < FLIP_PROBABILITY, -1.0, 1.0).to(torch.float64)
    value = torch.where(rotate_op[:, None], degrees, sign)
    return rotate_op, value.to(dtype)


def batched_flip_rotate(x: torch.Tensor, rotate_op: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Flip or rotate each image of ``x`` (n, c, h, w) in one ``affine_grid`` + ``grid_sample``.

    ``rotate_op`` (n,) bool: rotate this image (else flip-or-keep); ``value`` (n,): the angle in
    degrees where rotating, the flip sign (−1 flip, +1 keep) elsewhere. Image i gets the matrix
    [[s·cos, s·sin, 0], [−sin, cos, 0]] with s its flip sign (1 when rotating) and angle 0 when
    not rotating: exactly a rotation as :func:`podd.augment.rotate` or a flip (diag(−1, 1)). So
    models that picked different operations in the same step share one call, no Python loop.
    """
    theta = torch.where(rotate_op, value, torch.zeros_like(value)) * (math.pi / 180.0)
    sign = torch.where(rotate_op, torch.ones_like(value), value)
    cos, sin, zero = torch.cos(theta), torch.sin(theta), torch.zeros_like(theta)
    affine = torch.stack([torch.stack([sign * cos, sign * sin, zero], -1), torch.stack([-sin, cos, zero], -1)], -2)
    grid = F.affine_grid(affine.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------------------------
# validation


def _check_inputs(images, labels, test_x, test_y, steps, num_models, lr, batch_size, num_classes):
    if not torch.is_tensor(images) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor (N, c, h, w) of preprocessed images; got "
            f"{getattr(images, 'shape', type(images))} {getattr(images, 'dtype', '')}"
        )
    n, _, h, w = images.shape
    if n == 0:
        raise ValueError("images is empty: there is nothing to train on")
    if h != w:
        raise ValueError(f"the evaluation networks need square images; got {h}×{w}")
    if not torch.is_tensor(test_x) or test_x.dim() != 4 or tuple(test_x.shape[1:]) != tuple(images.shape[1:]):
        raise ValueError(
            f"test_x must be (T, {', '.join(map(str, images.shape[1:]))}) like the images; "
            f"got {tuple(getattr(test_x, 'shape', ()))}"
        )
    if not test_x.is_floating_point():
        raise ValueError(
            "test_x must be preprocessed float images (apply the same Preprocessor as to the training data)"
        )
    if not torch.is_tensor(test_y) or test_y.dim() != 1 or test_y.shape[0] != test_x.shape[0]:
        raise ValueError(
            f"test_y must be (T,) with one label per test image: {test_x.shape[0]} test images, "
            f"test_y of shape {tuple(getattr(test_y, 'shape', ()))}"
        )
    if test_y.numel() == 0:
        raise ValueError("the test set is empty")
    if test_y.dtype != torch.long:
        raise ValueError(f"test_y must be int64 class indices; got {test_y.dtype}")
    if not torch.is_tensor(labels) or labels.dim() == 0 or labels.shape[0] != n:
        raise ValueError(
            f"labels must have one row per image: {n} images but labels of shape {tuple(getattr(labels, 'shape', ()))}"
        )
    if labels.dim() == 2:
        if not labels.is_floating_point():
            raise ValueError("soft labels (N, K) must be float probabilities")
        if not torch.isfinite(labels).all():
            raise ValueError("soft labels contain NaN or inf")
        k = labels.shape[1]
        if num_classes is not None and num_classes != k:
            raise ValueError(f"num_classes={num_classes} but soft labels have {k} columns")
    elif labels.dim() == 1:
        if labels.dtype != torch.long:
            raise ValueError(f"hard labels (N,) must be int64 class indices; got {labels.dtype}")
        k = int(max(labels.max(), test_y.max())) + 1 if num_classes is None else num_classes
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"hard labels must lie in [0, {k}); got [{int(labels.min())}, {int(labels.max())}]")
    else:
        raise ValueError(f"labels must be soft (N, K) or hard (N,); got shape {tuple(labels.shape)}")
    if test_y.min() < 0 or test_y.max() >= k:
        raise ValueError(f"test labels must lie in [0, {k}) (K = {k} classes)")
    steps = list(steps)
    if not steps or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in steps):
        raise ValueError(f"steps must be a non-empty list of positive integers; got {steps}")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be strictly increasing; got {steps}")
    if not isinstance(num_models, int) or num_models < 1:
        raise ValueError(f"num_models must be an integer ≥ 1; got {num_models}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None; got {batch_size}")
    return k, steps


# --------------------------------------------------------------------------------------------
# losses and the models' forward


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft (…, K) or hard (…) targets, mean over the batch."""
    if targets.is_floating_point():
        return soft_cross_entropy(logits, targets)
    return F.cross_entropy(logits, targets)


def _test_batch(num_models: int, test_batch_size: int) -> int:
    return max(1, test_batch_size // num_models)


@torch.no_grad()
def _count_correct(forward: Callable, params, test_x, test_y, chunk: int, device, dtype) -> torch.Tensor:
    """Correct test predictions per model, (M,) on the device — no host synchronisation."""
    correct = None
    for start in range(0, test_x.shape[0], chunk):
        x = test_x[start : start + chunk].to(device, dtype, non_blocking=True)
        y = test_y[start : start + chunk].to(device, non_blocking=True)
        hits = (forward(params, x).argmax(-1) == y[:, None]).sum(0)  # logits (B, M, K)
        correct = hits if correct is None else correct + hits
    return correct


# --------------------------------------------------------------------------------------------
# the protocol


@dataclass(frozen=True)
class EvalProtocol:
    """How a distilled set is evaluated (§5.1): ``num_models`` fresh networks of architecture
    ``arch`` (:data:`podd.choices.EVAL_ARCHS`: the ConvNet of ``width`` and ``depth`` — None:
    :func:`podd.models.default_depth` — or ResNet-18, VGG-11, AlexNet at their standard widths,
    :mod:`podd.architectures`) trained with Adam at ``lr`` on ``batch_size`` images per step
    (None: all of them), with ``flip_rotate`` when ``augment``, tested after each of ``steps``;
    model ``m``'s randomness comes from ``(seed, m)``, for ``m`` = ``first_model`` …
    ``first_model + num_models − 1`` (a slice of a larger evaluation).

    :meth:`from_config` gives the protocol a distillation run evaluates its poster with; build
    one there (or here) and :meth:`run` it on any images, rather than passing the settings by hand.
    """

    num_models: int = 8
    steps: Sequence[int] = DEFAULT_STEPS
    lr: float = 1e-3
    batch_size: int | None = None
    width: int = 128
    depth: int | None = None
    augment: bool = True
    seed: int = 0
    device: str | torch.device = "cpu"
    first_model: int = 0
    arch: str = "convnet"

    @classmethod
    def from_config(cls, config, **changes) -> EvalProtocol:
        """The protocol of a :class:`podd.config.DistillConfig`: its eval_models, eval_steps
        and seed, the inner loop's learning rate, batch size (``distill_batch``), network
        (``eval_arch``; the ConvNet's width and depth) and augmentation, on its device;
        ``changes`` override any of them."""
        protocol = cls(
            num_models=config.eval_models,
            steps=tuple(config.eval_steps),
            lr=config.inner_lr,
            batch_size=config.distill_batch,
            width=config.width,
            depth=config.depth,
            augment=config.augment,
            seed=config.seed,
            device=config.device,
            arch=config.eval_arch,
        )
        return protocol.replace(**changes)

    def replace(self, **changes) -> EvalProtocol:
        return dataclasses.replace(self, **changes)

    def run(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        test_x: torch.Tensor,
        test_y: torch.Tensor,
        *,
        progress: bool = False,
        num_classes: int | None = None,
        test_batch_size: int = 1024,
        sequential: bool = False,
    ) -> EvalResult:
        """Train the models on (``images``, ``labels``) and test them on (``test_x``, ``test_y``).

        images: (N, c, h, w) float, preprocessed like ``test_x``. labels: soft (N, K) float or
        hard (N,) int64. The compute dtype is ``images.dtype`` (float64 works, for exactness
        tests). ``test_batch_size`` bounds memory at test time: images × models per forward.
        ``sequential=True`` trains the same models (same streams) one after another — the
        reference for tests and benchmarks. Returns an :class:`EvalResult` with accuracy
        (num_models, len(steps)) in percent."""
        return _train_and_test(
            images,
            labels,
            test_x,
            test_y,
            self,
            progress=progress,
            num_classes=num_classes,
            test_batch_size=test_batch_size,
            sequential=sequential,
        )[0]


def train_and_test(
    images: torch.Tensor,
    labels: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    num_models: int = 8,
    steps: Sequence[int] = DEFAULT_STEPS,
    lr: float = 1e-3,
    batch_size: int | None = None,
    width: int = 128,
    depth: int | None = None,
    augment: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    num_classes: int | None = None,
    test_batch_size: int = 1024,
    sequential: bool = False,
    arch: str = "convnet",
) -> EvalResult:
    """:meth:`EvalProtocol.run` with the protocol's settings as keywords, for real data and
    scripts: ``batch_size=None`` here means all N images if N ≤ 256, else 256 (≥ N: all N)."""
    if batch_size is None and torch.is_tensor(images) and images.dim() == 4 and images.shape[0] > DEFAULT_BATCH_SIZE:
        batch_size = DEFAULT_BATCH_SIZE
    protocol = EvalProtocol(
        num_models=num_models,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        width=width,
        depth=depth,
        augment=augment,
        seed=seed,
        device=device,
        arch=arch,
    )
    return protocol.run(
        images,
        labels,
        test_x,
        test_y,
        progress=progress,
        num_classes=num_classes,
        test_batch_size=test_batch_size,
        sequential=sequential,
    )


def across_architectures(
    images: torch.Tensor,
    labels: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    protocol: EvalProtocol,
    archs: Sequence[str],
    *,
    progress: bool = False,
) -> tuple[dict[str, EvalResult], dict[str, str]]:
    """Cross-architecture evaluation: ``protocol`` once per architecture in ``archs`` (its
    ``arch`` replaced), the same seeds and steps for each. Returns ``(results, skipped)``:
    ``{arch: EvalResult}`` for those that take these images, ``{arch: why not}`` for the others
    (e.g. ResNet-18 on 8×8 digits), so a notebook can show both."""
    results, skipped = {}, {}
    for arch in archs:  # a handful of architectures, each one batched run of all models
        try:
            check_image_size(arch, int(images.shape[-1]))
        except ValueError as error:
            skipped[arch] = str(error)
            continue
        results[arch] = protocol.replace(arch=arch).run(images, labels, test_x, test_y, progress=progress)
    return results, skipped


def _train_and_test(
    images,
    labels,
    test_x,
    test_y,
    protocol: EvalProtocol,
    *,
    progress=False,
    num_classes=None,
    test_batch_size=1024,
    sequential=False,
):
    """:meth:`EvalProtocol.run`, also returning the trained parameters stacked (M, ...) (for tests)."""
    p = protocol
    k, steps = _check_inputs(images, labels, test_x, test_y, p.steps, p.num_models, p.lr, p.batch_size, num_classes)
    if not isinstance(p.first_model, int) or p.first_model < 0:
        raise ValueError(f"first_model must be an integer ≥ 0; got {p.first_model}")
    device = resolve_device(p.device)
    dtype = images.dtype
    n, c, h, _ = images.shape
    batch = min(p.batch_size or n, n)
    total = steps[-1]
    settings = dict(
        lr=p.lr,
        batch_size=batch,
        width=p.width,
        depth=p.depth,
        augment=p.augment,
        seed=p.seed,
        first_model=p.first_model,
        num_images=n,
        num_classes=k,
        label_kind="soft" if labels.dim() == 2 else "hard",
        dtype=str(dtype).replace("torch.", ""),
        device=str(device),
        mode="sequential" if sequential else "batched",
        arch=p.arch,
    )

    net = build(p.arch, c, k, h, width=p.width, depth=p.depth).to(device=device, dtype=dtype)
    settings["width"], settings["depth"] = net.width, getattr(net, "depth", None)
    streams = _model_streams(net, p, n, batch, total, device, dtype)
    x_all = images.detach().to(device)
    y_all = labels.detach().to(device)
    if y_all.is_floating_point():
        y_all = y_all.to(dtype)
    chunk = _test_batch(p.num_models, test_batch_size)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    sync()
    start_time = time.perf_counter()
    train = _train_sequential if sequential else _train_batched
    accuracy, final = train(net, *streams, x_all, y_all, test_x, test_y, steps, p.lr, chunk, device, dtype, progress)
    accuracy = accuracy.cpu()  # the one host synchronisation
    wall = time.perf_counter() - start_time
    return EvalResult(
        steps=steps, accuracy=accuracy, num_models=p.num_models, wall_time_s=wall, settings=settings
    ), final


def _model_streams(net, protocol: EvalProtocol, n: int, batch: int, total: int, device, dtype):
    """Per model: initial parameters, batch order (when batches are smaller than the set) and
    augmentation schedule, drawn up front on the CPU (a seed gives the same models on any
    device)."""
    inits, orders, rot_ops, values = [], [], [], []
    seed = protocol.seed
    first = protocol.first_model
    for m in range(first, first + protocol.num_models):  # setup only: a few vectorised draws per model
        inits.append(init_parameters(net, _generator(seed, m, "init"), device))
        if batch < n:
            orders.append(_batch_order(n, batch, total, _generator(seed, m, "order")))
        if protocol.augment:
            op, val = _augment_schedule(batch, total, _generator(seed, m, "augment"), dtype)
            rot_ops.append(op)
            values.append(val)
    return inits, orders, rot_ops, values


def _adam(params, lr: float, net) -> torch.optim.Adam:
    # Plain Adam of the protocol; elementwise, so on stacked tensors it is M independent Adams.
    # The cross-architecture networks have ~10M parameters a model, where the per-tensor Adam is a
    # large share of a CPU step and the fused kernel (the same update) is several times faster;
    # the ConvNet keeps the per-tensor Adam, so its evaluations stay bit-for-bit what they were.
    return torch.optim.Adam(
        params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0, fused=None if isinstance(net, ConvNet) else True
    )


def _train_batched(
    net, inits, orders, rot_ops, values, x_all, y_all, test_x, test_y, steps, lr, chunk, device, dtype, progress
):
    num_models, n = len(inits), x_all.shape[0]
    params = {name: torch.stack([p[name] for p in inits]).requires_grad_() for name in inits[0]}
    optimizer = _adam(list(params.values()), lr, net)
    # Schedules laid out (step, image, model) so that one step's slice is already in the
    # (B, M·c, h, w) layout of grouped_forward: no transposes in the loop.
    order = torch.stack(orders, -1).to(device) if orders else None  # (T, B, M)
    rot_op = torch.stack(rot_ops, -1).to(device) if rot_ops else None  # (T, M)
    value = torch.stack(values, -1).to(device) if values else None  # (T, B, M)
    if order is None:  # every step sees all N images
        all_idx = torch.arange(n, device=device)[:, None].expand(n, num_models)
    c, hw = x_all.shape[1], x_all.shape[2:]
    soft = y_all.is_floating_point()

    correct = torch.zeros(num_models, len(steps), dtype=torch.long, device=device)
    total, record = steps[-1], {s: j for j, s in enumerate(steps)}
    bar = _progress_bar(total, progress, f"evaluating {num_models} {_name(net)}models (batched)")
    for t in range(total):
        idx = order[t] if order is not None else all_idx  # (B, M)
        b = idx.shape[0]
        xb, yb = x_all[idx], y_all[idx]  # (B, M, c, h, w), (B, M[, K])
        if rot_op is not None:
            flat = batched_flip_rotate(
                xb.reshape(b * num_models, c, *hw), rot_op[t].expand(b, num_models).reshape(-1), value[t].reshape(-1)
            )
            xb = flat.view(b, num_models, c, *hw)
        logits = grouped_forward(net, params, xb.reshape(b, num_models * c, *hw))  # (B, M, K)
        # Σ_m mean_b loss: each model's gradient is exactly its own.
        if soft:
            loss = -(yb * F.log_softmax(logits, dim=-1)).sum() / b
        else:
            loss = F.cross_entropy(logits.reshape(b * num_models, -1), yb.reshape(-1), reduction="sum") / b
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if t + 1 in record:
            detached = {name: p.detach() for name, p in params.items()}
            forward = lambda p, x: grouped_forward(net, p, x, shared_input=True)  # noqa: E731
            correct[:, record[t + 1]] = _count_correct(forward, detached, test_x, test_y, chunk, device, dtype)
        bar.update(1)
    bar.close()
    final = {name: p.detach() for name, p in params.items()}
    return correct.double() * (100.0 / test_y.shape[0]), final


def _train_sequential(
    net, inits, orders, rot_ops, values, x_all, y_all, test_x, test_y, steps, lr, chunk, device, dtype, progress
) -> torch.Tensor:
    """The same models, same streams, trained one after another with the plain single-model code."""
    num_models = len(inits)
    total, record = steps[-1], {s: j for j, s in enumerate(steps)}
    correct = torch.zeros(num_models, len(steps), dtype=torch.long, device=device)
    logits_of = lambda p, x: functional_call(net, p, (x,))  # noqa: E731
    test_logits = lambda p, x: logits_of(p, x)[:, None]  # noqa: E731  (B, 1, K) for _count_correct
    bar = _progress_bar(total * num_models, progress, f"evaluating {num_models} {_name(net)}models (sequential)")
    finals = []
    for m in range(num_models):
        params = {name: p.clone().requires_grad_() for name, p in inits[m].items()}
        optimizer = _adam(list(params.values()), lr, net)
        order = orders[m].to(device) if orders else None
        ops = rot_ops[m].tolist() if rot_ops else None  # CPU schedule: no device sync
        value = values[m].to(device) if values else None
        for t in range(total):
            if order is not None:
                idx = order[t]
                xb, yb = x_all[idx], y_all[idx]
            else:
                xb, yb = x_all, y_all
            if ops is not None:
                xb = rotate(xb, value[t]) if ops[t] else horizontal_flip(xb, value[t] < 0)
            loss = _loss(logits_of(params, xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if t + 1 in record:
                detached = {name: p.detach() for name, p in params.items()}
                correct[m, record[t + 1]] = _count_correct(
                    test_logits, detached, test_x, test_y, chunk * num_models, device, dtype
                )[0]
            bar.update(1)
        finals.append({name: p.detach() for name, p in params.items()})
    bar.close()
    final = {name: torch.stack([f[name] for f in finals]) for name in finals[0]}
    return correct.double() * (100.0 / test_y.shape[0]), final


def _name(net) -> str:
    """The architecture in a progress bar's text ("" for the ConvNet, the protocol's default)."""
    return "" if isinstance(net, ConvNet) else f"{type(net).__name__} "


def _progress_bar(total: int, enabled: bool, desc: str):
    if not enabled:

        class _Null:
            def update(self, _):
                pass

            def close(self):
                pass

        return _Null()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step")


# --------------------------------------------------------------------------------------------
# reference rows of the tables


def random_real_subset(ds, images_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random, class-stratified subset of ``ds``'s training set: ``images_per_class`` per class.

    Returns (x uint8 (K·k, c, h, w), y int64), ordered by class. Seeded: the same seed gives the
    same subset. One vectorised draw: shuffle, stable-sort by class, keep the first k of each class.
    """
    if not isinstance(images_per_class, int) or isinstance(images_per_class, bool) or images_per_class < 1:
        raise ValueError(f"images_per_class must be a positive integer; got {images_per_class!r}")
    y = ds.y_train
    k = ds.num_classes
    counts = torch.bincount(y, minlength=k)
    short = (counts < images_per_class).nonzero().flatten()
    if short.numel():
        c = int(short[0])
        raise ValueError(
            f"class {c} ({ds.class_names[c]!r}) has only {int(counts[c])} training images, "
            f"fewer than images_per_class={images_per_class}; lower it"
        )
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(y.shape[0], generator=generator)
    by_class = perm[torch.argsort(y[perm], stable=True)]  # random order within each class
    class_start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(y.shape[0]) - class_start[y[by_class]]
    chosen = by_class[rank < images_per_class]
    return ds.x_train[chosen], y[chosen]


def real_subset_reference(
    ds,
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    images_per_class: int,
    protocol: EvalProtocol,
    *,
    subset_seed: int = 0,
) -> EvalResult:
    """The "random real k IPC" row: ``protocol`` run on a random stratified real subset (hard
    labels). A protocol without a batch size trains on all of the subset in every step."""
    x, y = random_real_subset(ds, images_per_class, subset_seed)
    result = protocol.run(preprocess(x), y, preprocess(ds.x_test), ds.y_test, num_classes=ds.num_classes)
    result.settings.update(
        reference=f"random real {images_per_class} IPC",
        subset_seed=subset_seed,
        data_source=getattr(ds, "source", "full"),
    )
    return result


def full_dataset_reference(
    ds, preprocess: Callable[[torch.Tensor], torch.Tensor], protocol: EvalProtocol
) -> EvalResult:
    """The "full dataset" row: ``protocol`` run on all real training images with hard labels.

    The paper trains far longer for this row; callers choose the protocol's ``num_models``,
    ``steps`` and ``batch_size`` to fit their budget, and the settings travel with the result.
    """
    result = protocol.run(
        preprocess(ds.x_train), ds.y_train, preprocess(ds.x_test), ds.y_test, num_classes=ds.num_classes
    )
    result.settings.update(reference="full training set", data_source=getattr(ds, "source", "full"))
    return result

"""RaT-BPTT, the distillation algorithm of paper §3, as pure functions of (poster, labels, plan).

One outer step, given the distilled set (patches of the poster and their soft labels):

1. a freshly initialised network (its parameters drawn into the :class:`StepPlan`) is trained
   with Adam at the inner learning rate on minibatches of the distilled set;
2. the first ``plan.start`` inner steps are *truncated*: they run without a graph, so no
   gradient flows through them (:func:`_truncated_steps`);
3. the next ``plan.window`` steps keep their graph (:func:`_differentiable_window`), through a
   differentiable Adam (:func:`_adam`);
4. the outer loss is the adapted network's cross-entropy on a batch of real images
   (:func:`real_batch`), and its gradient w.r.t. the poster and the label parameters is the
   meta-gradient (:func:`unrolled_outer_loss`, :func:`outer_loss_and_grads`).

All randomness of a step lives in its :class:`StepPlan`, so these functions are deterministic:
the tests compare the meta-gradient with finite differences, and a recomputed inner step equals
the original bit for bit (which :func:`outer_loss_and_grads`'s ``recompute_window`` relies on).

``source`` is anything with ``patches(poster)`` and ``labels(label_params)`` (in the engine a
:class:`podd.distiller.PatchSource`): this module does not know how patches are cut.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from podd import choices
from podd.augment import flip_rotate
from podd.models import forward_with

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# Precisions the truncated (no-graph) inner steps may run in: ``truncated_dtype`` of the config.
TRUNCATED_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
assert tuple(TRUNCATED_DTYPES) == choices.TRUNCATED_DTYPES, "podd.choices names every precision, in order"


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (rows summing to one), averaged over the batch."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()


@dataclass
class StepPlan:
    """All randomness of one outer step: the inner loop is a pure function of it.

    ``batch_index`` (start + window, distill_batch): patch indices of each inner step, each row
    drawn without replacement; ``aug_seeds``: one seed per inner step plus one for the real
    batch; ``real_index``: the real images of the outer loss. ``real_part`` (start, stop, n):
    the share of the (augmented) real batch this process computes when the batch is split across
    processes (:mod:`podd.parallel`, ``real-batch``); None: all of it.
    """

    params: dict[str, torch.Tensor]
    start: int
    window: int
    batch_index: torch.Tensor
    aug_seeds: list[int]
    real_index: torch.Tensor
    real_part: tuple[int, int, int] | None = None


# --------------------------------------------------------------------------------------------
# the inner loop: Adam on a fresh network, trained on the distilled set
# --------------------------------------------------------------------------------------------
def _adam(
    p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, lr: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step (betas 0.9/0.999) on the flat parameter vector, as differentiable tensor ops.

    The denominator is sqrt(v̂ + eps²) rather than sqrt(v̂) + eps: the same size near zero, but
    its derivative stays finite where v̂ = 0 (conv biases before instance norm get exactly zero
    gradients), which would otherwise turn the meta-gradient into NaN (0 · ∞).
    """
    b1, b2 = ADAM_BETAS
    m = torch.lerp(m, g, 1 - b1)  # b1·m + (1 − b1)·g
    v = torch.lerp(v, g * g, 1 - b2)  # b2·v + (1 − b2)·g²
    denom = torch.sqrt(v * (1 / (1 - b2**t)) + ADAM_EPS**2)
    return torch.addcdiv(p, m, denom, value=-lr / (1 - b1**t)), m, v


class _FlatNet:
    """The inner network with all its parameters in ONE flat vector (per-layer tensors are views
    of it), so an inner Adam step is a handful of tensor ops instead of a handful per layer."""

    def __init__(self, net: torch.nn.Module, params: dict[str, torch.Tensor]):
        self.net, self.names = net, list(params)
        self.shapes = [p.shape for p in params.values()]
        self.sizes = [p.numel() for p in params.values()]
        self.initial = torch.cat([p.detach().reshape(-1) for p in params.values()])

    def __call__(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        pieces = flat.split(self.sizes)
        return forward_with(
            self.net, {n: piece.view(shape) for n, piece, shape in zip(self.names, pieces, self.shapes)}, x
        )


def _inner_loss(
    net: _FlatNet, plan: StepPlan, t: int, w: torch.Tensor, patches: torch.Tensor, labels: torch.Tensor, augment: bool
) -> torch.Tensor:
    """Soft cross-entropy of inner step ``t``: its patches (from the plan), augmented with its
    own seed, so recomputing a step reproduces it exactly."""
    index = plan.batch_index[t]
    x = patches[index]
    if augment:
        x = flip_rotate(x, torch.Generator().manual_seed(plan.aug_seeds[t]))
    return soft_cross_entropy(net(w, x), labels[index])


def _inner_step(
    net: _FlatNet, plan: StepPlan, t: int, w, m, v, patches, labels, inner_lr: float, augment: bool, create_graph: bool
):
    """One inner Adam step. ``create_graph`` keeps the path back to the poster (the window);
    without it the step is plain training (the truncated part, and the recompute forward)."""
    if create_graph:
        (grad,) = torch.autograd.grad(_inner_loss(net, plan, t, w, patches, labels, augment), w, create_graph=True)
        return _adam(w, grad, m, v, t + 1, inner_lr)
    with torch.enable_grad():
        leaf = w.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(_inner_loss(net, plan, t, leaf, patches.detach(), labels.detach(), augment), leaf)
    with torch.no_grad():
        return _adam(w.detach(), grad, m, v, t + 1, inner_lr)


def _truncated_steps(
    net: _FlatNet, plan: StepPlan, patches, labels, inner_lr: float, augment: bool, dtype: str = "float32"
):
    """The ``plan.start`` steps before the window: plain training, no graph to the poster.

    ``dtype="bfloat16"`` runs their forward and backward under autocast (the weights and the
    Adam update stay float32). Nothing is differentiated through these steps, so lower precision
    here only perturbs where the window starts; the window and the outer loss keep float32.
    """
    w = net.initial
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    precision = (
        contextlib.nullcontext() if dtype == "float32" else torch.autocast(w.device.type, dtype=TRUNCATED_DTYPES[dtype])
    )
    with precision:
        for t in range(plan.start):
            w, m, v = _inner_step(net, plan, t, w, m, v, patches, labels, inner_lr, augment, False)
    return w, m, v


def _differentiable_window(
    net: _FlatNet, plan: StepPlan, w, m, v, patches, labels, inner_lr: float, augment: bool
) -> torch.Tensor:
    """The window's inner steps with their graphs kept; returns the adapted weights."""
    w = w.detach().requires_grad_(True)
    for t in range(plan.start, plan.start + plan.window):
        w, m, v = _inner_step(net, plan, t, w, m, v, patches, labels, inner_lr, augment, True)
    return w


# --------------------------------------------------------------------------------------------
# the outer loss on real data, and its meta-gradient
# --------------------------------------------------------------------------------------------
def real_batch(plan: StepPlan, x_real: torch.Tensor, y_real: torch.Tensor, augment: bool):
    """The outer loss's real images (augmented with the plan's last seed) and their labels;
    this process's share of them when the plan has a ``real_part`` (augmented as a whole batch
    first, so every image gets the augmentation it gets in one process)."""
    x, y = x_real[plan.real_index], y_real[plan.real_index]
    if augment:
        x = flip_rotate(x, torch.Generator().manual_seed(plan.aug_seeds[-1]))
    if plan.real_part is not None:
        start, stop, _ = plan.real_part
        x, y = x[start:stop], y[start:stop]
    return x, y


def unrolled_outer_loss(
    net: torch.nn.Module,
    poster: torch.Tensor,
    label_params: torch.Tensor | None,
    plan: StepPlan,
    source,
    x_real: torch.Tensor,
    y_real: torch.Tensor,
    inner_lr: float,
    augment: bool = True,
    truncated_dtype: str = "float32",
) -> torch.Tensor:
    """The RaT-BPTT outer loss of one step, differentiable in ``poster`` and ``label_params``.

    ``plan.start`` inner Adam steps run without a graph (in ``truncated_dtype``), then
    ``plan.window`` steps keep theirs; the adapted net's cross-entropy on the (augmented) real
    batch is returned.
    """
    flat_net = _FlatNet(net, plan.params)
    patches, labels = source.patches(poster), source.labels(label_params)
    w, m, v = _truncated_steps(flat_net, plan, patches, labels, inner_lr, augment, truncated_dtype)
    w = _differentiable_window(flat_net, plan, w, m, v, patches, labels, inner_lr, augment)
    x, y = real_batch(plan, x_real, y_real, augment)
    return F.cross_entropy(flat_net(w, x), y)


def outer_loss_and_grads(
    net: torch.nn.Module,
    poster: torch.Tensor,
    label_params: torch.Tensor | None,
    plan: StepPlan,
    source,
    x_real: torch.Tensor,
    y_real: torch.Tensor,
    inner_lr: float,
    augment: bool = True,
    real_chunk: int | None = None,
    recompute_window: bool = False,
    truncated_dtype: str = "float32",
):
    """(outer loss, its gradients w.r.t. the poster [and the label parameters]) of one step.

    The same numbers as ``autograd.grad(unrolled_outer_loss(...))`` (up to float summation
    order), with two memory savers that the paper-size presets need:

    * ``real_chunk``: the real batch goes through the adapted net ``real_chunk`` images at a
      time; dL/dw of the adapted weights is accumulated over the chunks (the loss is a mean over
      images) and then backpropagated through the window once. Peak memory holds one chunk's
      activations instead of the whole real batch's.
    * ``recompute_window``: the window's steps run forward WITHOUT a graph, keeping only each
      step's (weights, Adam moments) — three flat vectors; the backward then walks the window
      in reverse, recomputing one step's graph at a time and pulling the gradient through it
      (reverse-mode with per-step recomputation). Peak memory holds one inner step's graph
      instead of ``window`` of them, for about one extra forward+backward per window step.

    ``truncated_dtype`` is the precision of the steps before the window (see
    :func:`_truncated_steps`), float32 by default; bfloat16 was tried for speed on a GPU and
    measured slower there (see :class:`podd.config.DistillConfig`).
    """
    leaves = [poster] + ([label_params] if label_params is not None else [])
    if real_chunk is None and not recompute_window:
        loss = unrolled_outer_loss(
            net, poster, label_params, plan, source, x_real, y_real, inner_lr, augment, truncated_dtype
        )
        return loss.detach(), torch.autograd.grad(loss, leaves)

    flat_net = _FlatNet(net, plan.params)
    patches, labels = source.patches(poster), source.labels(label_params)
    w, m, v = _truncated_steps(flat_net, plan, patches, labels, inner_lr, augment, truncated_dtype)
    x, y = real_batch(plan, x_real, y_real, augment)
    if not recompute_window:
        w = _differentiable_window(flat_net, plan, w, m, v, patches, labels, inner_lr, augment)
        loss, grad_w = _real_loss_and_grad(flat_net, w, x, y, real_chunk)
        return loss, torch.autograd.grad(w, leaves, grad_outputs=grad_w)

    states = []
    for t in range(plan.start, plan.start + plan.window):
        states.append((w, m, v))
        w, m, v = _inner_step(flat_net, plan, t, w, m, v, patches, labels, inner_lr, augment, False)
    loss, grad_w = _real_loss_and_grad(flat_net, w, x, y, real_chunk)
    grad_patches, grad_labels = _recomputed_window_backward(
        flat_net, plan, states, grad_w, patches, labels, inner_lr, augment
    )
    outputs, upstream = [patches], [grad_patches]
    if labels.requires_grad:
        outputs, upstream = [patches, labels], [grad_patches, grad_labels]
    return loss, torch.autograd.grad(outputs, leaves, upstream, allow_unused=True, materialize_grads=True)


def _recomputed_window_backward(
    net: _FlatNet, plan: StepPlan, states, grad_w, patches, labels, inner_lr: float, augment: bool
):
    """Pull dL/dw (of the adapted weights) back through the window, one recomputed step at a
    time from its saved (w, m, v); returns dL/d(patches) and dL/d(labels) summed over steps."""
    patch_leaf = patches.detach().requires_grad_(True)
    label_leaf = labels.detach().requires_grad_(labels.requires_grad)
    grad_patches, grad_labels = torch.zeros_like(patch_leaf), torch.zeros_like(label_leaf)
    grad_m = grad_v = None  # the outer loss does not depend on the final Adam moments
    window = range(plan.start, plan.start + plan.window)
    for t, (w_t, m_t, v_t) in zip(reversed(window), reversed(states)):
        w_t, m_t, v_t = (s.detach().requires_grad_(True) for s in (w_t, m_t, v_t))
        w1, m1, v1 = _inner_step(net, plan, t, w_t, m_t, v_t, patch_leaf, label_leaf, inner_lr, augment, True)
        outputs, upstream = [w1], [grad_w]
        if grad_m is not None:
            outputs, upstream = [w1, m1, v1], [grad_w, grad_m, grad_v]
        inputs = [w_t, m_t, v_t, patch_leaf] + ([label_leaf] if label_leaf.requires_grad else [])
        grads = torch.autograd.grad(outputs, inputs, upstream, allow_unused=True, materialize_grads=True)
        grad_w, grad_m, grad_v = grads[:3]
        grad_patches += grads[3]
        if label_leaf.requires_grad:
            grad_labels += grads[4]
    return grad_patches, grad_labels


def _real_loss_and_grad(net: _FlatNet, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, chunk: int | None):
    """The outer loss (mean cross-entropy over the real batch) and dL/dw, accumulated over
    chunks of ``chunk`` images so only one chunk's activations are alive at a time."""
    leaf = w.detach().requires_grad_(True)
    n = x.shape[0]
    chunk = n if chunk is None else chunk
    loss, grad = torch.zeros((), dtype=w.dtype, device=w.device), torch.zeros_like(leaf)
    for xs, ys in zip(x.split(chunk), y.split(chunk)):
        part = F.cross_entropy(net(leaf, xs), ys, reduction="sum") / n
        grad += torch.autograd.grad(part, leaf)[0]
        loss += part.detach()
    return loss, grad

"""The meta-gradient of the unrolled inner loop equals finite differences (float64, tiny net).

The outer loss of one RaT-BPTT step is a pure function of (poster, label parameters, plan),
so central differences of it must match autograd through the differentiable inner Adam steps,
the patch gather, the learned labels and the augmentation. Augmentation stays ON: with a fixed
seed a flip is a fixed permutation and a rotation is a fixed bilinear resampling (grid_sample is
linear in its input), so the loss remains smooth in the pixels. Only ``start = 0`` is checked
against differences: with ``start > 0`` RaT-BPTT deliberately truncates the gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from podd import ratbptt
from podd.distiller import PatchSource
from podd.labels import init_label_params
from podd.models import ConvNet, init_parameters
from podd.poster import make_geometry
from podd.ratbptt import StepPlan, outer_loss_and_grads, unrolled_outer_loss

K, SHAPE = 4, (1, 8, 8)


def _step(label_mode: str, window: int, start: int = 0, depth: int = 1, seed: int = 0):
    """A float64 RaT-BPTT step on a tiny net: (net, source, poster, labels, plan, x_real, y_real)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    geometry = make_geometry(K, SHAPE, ipc=1.0, grid=(2, 2), patches=(3, 3))  # 9 overlapping
    order = torch.tensor([[2, 0], [3, 1]])
    source = PatchSource("podd", geometry, order, label_mode, K, dtype=torch.float64)
    net = ConvNet(1, K, 8, width=6, depth=depth).double()
    poster = torch.randn((1, *geometry.size), generator=gen, dtype=torch.float64)
    labels = None
    if label_mode == "learned":
        # one-hot start plus positive noise, so every parameter matters
        labels = init_label_params(order, K).double() + 0.3 * torch.rand((K, 2, 2), generator=gen, dtype=torch.float64)
    x_real = torch.randn((12, *SHAPE), generator=gen, dtype=torch.float64)
    y_real = torch.randint(0, K, (12,), generator=gen)
    steps = start + window
    batch_index = torch.rand(steps, source.num_patches, generator=gen).argsort(1)[:, :5]
    plan = StepPlan(
        params=init_parameters(net, gen),
        start=start,
        window=window,
        batch_index=batch_index,
        aug_seeds=[11 + t for t in range(steps + 1)],
        real_index=torch.arange(12),
    )
    return net, source, poster, labels, plan, x_real, y_real


def _setup(label_mode: str, window: int, seed: int = 0):
    net, source, poster, labels, plan, x_real, y_real = _step(label_mode, window, seed=seed)

    # a large inner lr makes the inner steps matter for the outer loss
    def loss_fn(p, lab):
        return unrolled_outer_loss(net, p, lab, plan, source, x_real, y_real, inner_lr=0.05, augment=True)

    return poster, labels, loss_fn


def _central_difference(loss_fn, poster, labels, which: str, index, eps=1e-6) -> float:
    def shifted(delta):
        p, lab = poster.clone(), None if labels is None else labels.clone()
        target = p if which == "poster" else lab
        target.view(-1)[index] += delta
        return loss_fn(p, lab).item()

    return (shifted(eps) - shifted(-eps)) / (2 * eps)


@pytest.mark.parametrize("window", [1, 2])
@pytest.mark.parametrize("label_mode", ["learned", "fixed"])
def test_meta_gradient_matches_finite_differences(window, label_mode):
    poster, labels, loss_fn = _setup(label_mode, window)
    p = poster.clone().requires_grad_(True)
    leaves = [p]
    lab = None
    if labels is not None:
        lab = labels.clone().requires_grad_(True)
        leaves.append(lab)
    grads = torch.autograd.grad(loss_fn(p, lab), leaves)
    assert all(torch.isfinite(g).all() for g in grads)

    # a few poster pixels: where patches overlap most, a corner, and a random one
    for index in (0, 7 * 16 + 8, 5 * 16 + 3, 255):
        fd = _central_difference(loss_fn, poster, labels, "poster", index)
        assert grads[0].view(-1)[index].item() == pytest.approx(fd, rel=1e-5, abs=1e-9)
    assert grads[0].abs().sum() > 0
    if labels is not None:
        for index in (0, 5, 9, 15):
            fd = _central_difference(loss_fn, poster, labels, "labels", index)
            assert grads[1].view(-1)[index].item() == pytest.approx(fd, rel=1e-5, abs=1e-9)
        assert grads[1].abs().sum() > 0


def test_meta_gradient_is_finite_where_adam_second_moment_is_zero():
    """Conv biases before instance norm get exactly zero inner gradients (v = 0): the safe
    square root keeps the meta-gradient finite there instead of 0·∞ = NaN."""
    poster, labels, loss_fn = _setup("learned", window=2)
    p = poster.clone().requires_grad_(True)
    lab = labels.clone().requires_grad_(True)
    gp, gl = torch.autograd.grad(loss_fn(p, lab), [p, lab])
    assert torch.isfinite(gp).all() and torch.isfinite(gl).all()


def _loss_by_hand(net, source, poster, truncated_poster, plan, x_real, y_real, inner_lr):
    """The outer loss with EVERY inner step differentiable; the first ``plan.start`` steps train
    on the patches of ``truncated_poster``, the window's on those of ``poster``."""
    flat = ratbptt._FlatNet(net, plan.params)
    window_patches, early_patches = source.patches(poster), source.patches(truncated_poster)
    labels = source.labels(None)
    w = flat.initial.clone().requires_grad_(True)
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t in range(plan.start + plan.window):
        patches = early_patches if t < plan.start else window_patches
        w, m, v = ratbptt._inner_step(
            flat, plan, t, w, m, v, patches, labels, inner_lr, augment=True, create_graph=True
        )
    x, y = ratbptt.real_batch(plan, x_real, y_real, augment=True)
    return F.cross_entropy(flat(w, x), y)


def test_truncated_steps_do_not_reach_the_poster():
    """With start > 0 the first steps train the network but carry no gradient to the poster:
    the engine's gradient equals the one computed with those steps run on a DETACHED copy of
    the poster, and differs from the gradient through all steps (whose loss is the same)."""
    net, source, poster, _, plan, x_real, y_real = _step("fixed", window=1, start=2, seed=3)
    p = poster.clone().requires_grad_(True)
    loss = unrolled_outer_loss(net, p, None, plan, source, x_real, y_real, 0.05)
    (g,) = torch.autograd.grad(loss, [p])

    truncated = _loss_by_hand(net, source, p, p.detach(), plan, x_real, y_real, 0.05)
    (g_truncated,) = torch.autograd.grad(truncated, [p])
    full = _loss_by_hand(net, source, p, p, plan, x_real, y_real, 0.05)
    (g_full,) = torch.autograd.grad(full, [p])

    assert loss.item() == pytest.approx(truncated.item(), rel=1e-12)
    assert loss.item() == pytest.approx(full.item(), rel=1e-12)  # the early steps do run
    assert torch.allclose(g, g_truncated, rtol=1e-9, atol=1e-12)
    assert (g - g_full).abs().max() > 1e-2 * g_full.abs().max()  # ...but are not differentiated


@pytest.mark.parametrize("real_chunk, recompute_window", [(5, False), (None, True), (4, True), (12, True)])
@pytest.mark.parametrize("label_mode", ["learned", "fixed"])
@pytest.mark.parametrize("start, window", [(0, 1), (2, 3)])
def test_memory_savers_give_the_same_gradients(real_chunk, recompute_window, label_mode, start, window):
    """Chunking the real batch and recomputing the window change memory, not the gradient."""
    net, source, poster, labels, plan, x_real, y_real = _step(label_mode, window, start, depth=2, seed=1)
    leaves = [poster.clone().requires_grad_(True)]
    if labels is not None:
        leaves.append(labels.clone().requires_grad_(True))
    args = (net, leaves[0], leaves[1] if labels is not None else None, plan, source, x_real, y_real, 0.05)
    reference_loss = unrolled_outer_loss(*args)
    reference = torch.autograd.grad(reference_loss, leaves)
    loss, grads = outer_loss_and_grads(*args, real_chunk=real_chunk, recompute_window=recompute_window)
    assert loss.item() == pytest.approx(reference_loss.item(), rel=1e-12)
    assert len(grads) == len(reference)
    for got, want in zip(grads, reference):
        assert want.abs().sum() > 0
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def _float32_step(start: int, window: int):
    """``_step`` in float32, the precision autocast lowers from."""
    net, source, poster, labels, plan, x_real, y_real = _step("learned", window, start, depth=2, seed=1)
    source.dtype = torch.float32
    plan.params = {name: p.float() for name, p in plan.params.items()}
    return (
        net.float(),
        source,
        poster.float().requires_grad_(True),
        labels.float().requires_grad_(True),
        plan,
        x_real.float(),
        y_real,
    )


@pytest.mark.parametrize("recompute_window", [False, True])
def test_bfloat16_truncated_steps_only_move_where_the_window_starts(recompute_window):
    """truncated_dtype='bfloat16' lowers the precision of the steps before the window alone:
    with no such steps the gradient is float32's bit for bit; with some it moves (autocast did
    run) but keeps its direction, and the memory savers still give the plain step's numbers."""

    def grads(start, dtype, recompute=False):
        net, source, poster, labels, plan, x_real, y_real = _float32_step(start, 2)
        return outer_loss_and_grads(
            net, poster, labels, plan, source, x_real, y_real, 0.05, recompute_window=recompute, truncated_dtype=dtype
        )

    no_truncation = grads(0, "float32", recompute_window), grads(0, "bfloat16", recompute_window)
    for got, want in zip(no_truncation[1][1], no_truncation[0][1]):
        assert torch.equal(got, want)
    (loss32, grads32), (loss16, grads16) = grads(3, "float32"), grads(3, "bfloat16", recompute_window)
    assert not torch.equal(grads16[0], grads32[0])
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.02)
    assert F.cosine_similarity(grads16[0].flatten(), grads32[0].flatten(), dim=0) > 0.8
    if recompute_window:
        plain = grads(3, "bfloat16")[1][0]
        torch.testing.assert_close(grads16[0], plain, rtol=1e-5, atol=1e-7)

"""The distillation engine on real digits with tiny settings: it learns, it is deterministic,
the baseline is RaT-BPTT, and bad settings fail with clear messages."""

from __future__ import annotations

import pytest
import torch

from podd.distiller import Distiller, NonFiniteLossError, patches_and_labels
from podd.presets import PROFILES, resolve_config
from podd.run_loop import distill


def tiny(**overrides):
    values = dict(
        width=8,
        depth=1,
        window=2,
        total_window=4,
        real_batch=64,
        distill_batch=8,
        steps=4,
        eval_models=0,
        device="cpu",
        checkpoint_every=0,
    )
    values.update(overrides)
    return resolve_config("digits", "smoke", **values)


def test_short_run_lowers_the_outer_loss(digits):
    ds, pre = digits
    settings = dict(
        width=16, window=3, total_window=6, real_batch=128, distill_batch=20, ipc=1.0, inner_lr=0.03, outer_lr=0.03
    )
    d = Distiller(tiny(**settings), ds, pre)
    # the same held-out randomness (fresh nets, batches, augmentation) before and after
    probe = Distiller(tiny(**settings, seed=123), ds, pre)
    plans = [probe.plan() for _ in range(4)]

    def probe_loss():
        return sum(float(d.outer_loss(p).detach()) for p in plans) / len(plans)

    before = probe_loss()
    for _ in range(15):
        d.step()
    d.check_finite()
    after = probe_loss()
    assert after < before - 0.1, (before, after)


def test_poster_and_label_gradients_are_nonzero(digits):
    ds, pre = digits
    d = Distiller(tiny(), ds, pre)
    loss = d.outer_loss(d.plan())
    gp, gl = torch.autograd.grad(loss, [d.poster, d.label_params])
    assert torch.isfinite(gp).all() and torch.isfinite(gl).all()
    assert gp.abs().sum() > 0 and gl.abs().sum() > 0
    poster_before = d.poster.detach().clone()
    d.step()
    assert not torch.equal(poster_before, d.poster.detach())
    assert (d.label_params >= 0).all()


def test_same_seed_same_poster(digits):
    ds, pre = digits
    a, b = Distiller(tiny(seed=5), ds, pre), Distiller(tiny(seed=5), ds, pre)
    c = Distiller(tiny(seed=6), ds, pre)
    for _ in range(3):
        a.step(), b.step(), c.step()
    assert torch.equal(a.poster, b.poster)
    assert torch.equal(a.label_params, b.label_params)
    assert not torch.equal(a.poster, c.poster)


def test_baseline_trains_on_exactly_k_non_overlapping_images(digits):
    ds, pre = digits
    d = Distiller(tiny(mode="baseline", ipc=1.0, distill_batch=None), ds, pre)
    K, (c, h, w) = ds.num_classes, ds.image_shape
    assert d.source.num_patches == K and d.distill_batch == K
    patches = d.source.patches(d.poster.detach())
    assert patches.shape == (K, c, h, w)
    # the patches tile the poster exactly: every pixel in exactly one patch
    H, W = d.geometry.size
    assert H * W == K * h * w
    cover = torch.zeros(H, W)
    for y, x in d.geometry.positions().tolist():
        cover[y : y + h, x : x + w] += 1
    assert torch.equal(cover, torch.ones(H, W))
    # each patch one-hot its own class (learned labels start there), all K classes present
    labels = d.source.labels(d.label_params)
    assert torch.equal(labels, torch.eye(K)[labels.argmax(1)])
    assert sorted(labels.argmax(1).tolist()) == list(range(K))
    # each inner step trains on all K images
    plan = d.plan()
    assert plan.batch_index.shape[1] == K
    assert all(sorted(row.tolist()) == list(range(K)) for row in plan.batch_index)


def test_inner_batches_are_drawn_without_replacement(digits):
    ds, pre = digits
    d = Distiller(tiny(distill_batch=30), ds, pre)
    plan = d.plan()
    assert plan.batch_index.shape == (plan.start + plan.window, 30)
    assert all(len(set(row.tolist())) == 30 for row in plan.batch_index)


def test_start_is_redrawn_once_per_epoch(digits):
    ds, pre = digits
    d = Distiller(tiny(window=1, total_window=40, real_batch=500), ds, pre)  # 3 steps per epoch
    starts = [d.plan().start for _ in range(9)]
    for e in range(3):
        assert len(set(starts[3 * e : 3 * e + 3])) == 1
    assert all(0 <= s <= 39 for s in starts)
    fixed = Distiller(tiny(start_schedule="fixed", fixed_start=1), ds, pre)
    assert [fixed.plan().start for _ in range(3)] == [1, 1, 1]


def test_per_class_mode_runs(digits):
    ds, pre = digits
    d = Distiller(tiny(mode="per-class", ipc=2.0, patches=(2, 2), distill_batch=10), ds, pre)
    assert d.poster.shape[0] == ds.num_classes and d.source.num_patches == 4 * ds.num_classes
    d.step()
    d.check_finite()
    images, labels = d.patches_and_labels()
    assert labels.sum(1).allclose(torch.ones(len(labels)))


def test_distill_returns_artifact_whose_patches_match(digits):
    ds, pre = digits
    result = distill(tiny(steps=2, eval_models=1, eval_steps=(5,)), ds, progress=False, preprocessor=pre)
    images, labels = patches_and_labels(result.artifact)
    assert images.shape == (40, 1, 8, 8) and labels.shape == (40, 10)
    assert torch.allclose(labels.sum(1), torch.ones(40))
    assert result.evaluation is not None and result.history[-1]["final"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(ipc=0.0), "ipc"),
        (dict(ipc=-1.0), "ipc"),
        (dict(distill_batch=41), "distill_batch=41"),
        (dict(mode="baseline", ipc=0.5), "baseline"),
        (dict(mode="nope"), "mode"),
        (dict(window=5, total_window=4), "total_window"),
        (dict(patches=(40, 40)), "patch"),
        (dict(truncated_dtype="float16"), "truncated_dtype='float16': choose one of float32, bfloat16"),
    ],
)
def test_bad_settings_fail_clearly(digits, overrides, message):
    ds, pre = digits
    with pytest.raises(ValueError, match=message):
        Distiller(tiny(**overrides), ds, pre)


def test_too_small_ipc_fails_clearly(digits):
    ds, pre = digits
    with pytest.raises(ValueError, match="ipc=0.01 is too small"):
        Distiller(tiny(ipc=0.01, patches=None), ds, pre)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_fails_clearly(digits):
    ds, pre = digits
    with pytest.raises(ValueError, match="cuda"):
        Distiller(tiny(device="cuda"), ds, pre)


def test_nan_loss_stops_with_step_and_keeps_checkpoint(digits, tmp_path, monkeypatch):
    ds, pre = digits
    real = Distiller.outer_gradients

    def poisoned(self, plan):
        loss, grads = real(self, plan)
        return (loss * float("nan") if self.step_count == 2 else loss), grads  # the 3rd step

    monkeypatch.setattr(Distiller, "outer_gradients", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 3") as info:
        distill(
            tiny(steps=6, checkpoint_every=2, log_every=1),
            ds,
            out_dir=tmp_path / "run",
            progress=False,
            preprocessor=pre,
        )
    assert "checkpoint (step 2)" in str(info.value)
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert checkpoint["distiller"]["step"] == 2
    assert torch.isfinite(checkpoint["distiller"]["poster"]).all()


def test_out_of_memory_names_the_batch_sizes(digits, monkeypatch):
    ds, pre = digits

    def oom(self):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(Distiller, "step", oom)
    with pytest.raises(RuntimeError, match="distill_batch=8.*real_batch=64.*window=2") as info:
        distill(tiny(), ds, progress=False, preprocessor=pre)
    assert "--set recompute_window=true" in str(info.value)  # the savers come first
    assert "real_chunk" not in str(info.value)  # 64 real images: chunking would not help
    with pytest.raises(RuntimeError) as info:
        distill(tiny(real_batch=1000, recompute_window=True), ds, progress=False, preprocessor=pre)
    assert "--set real_chunk=250" in str(info.value) and "recompute_window" not in str(info.value)


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "cifar100", "cub200", "tinyimagenet", "npz:/somewhere/x.npz"])
@pytest.mark.parametrize("profile", PROFILES)
def test_presets_are_valid(dataset, profile):
    config = resolve_config(dataset, profile).validate()
    assert config.dataset == dataset and config.profile == profile
    assert resolve_config(dataset, profile, seed=7, steps=3).steps == 3


def test_paper_presets_match_the_authors_table():
    c10 = resolve_config("cifar10", "paper")
    assert (c10.ipc, c10.grid, c10.patches, c10.distill_batch, c10.real_batch) == (0.9, (2, 5), (6, 16), 96, 5000)
    assert (c10.window, c10.total_window, c10.inner_lr, c10.labels, c10.zca) == (60, 200, 1e-3, "fixed", True)
    assert c10.steps == 10_000 * 10
    tin = resolve_config("tinyimagenet", "paper")
    assert (tin.patches, tin.distill_batch, tin.real_batch, tin.inner_lr, tin.labels) == (
        (20, 40),
        30,
        500,
        5e-4,
        "learned",
    )
    assert resolve_config("cifar10", "paper", mode="baseline", ipc=1.0).distill_batch is None
    # At the authors' batch sizes only CUB and Tiny-ImageNet need the memory savers (the
    # real batch stays the authors'; only how it is pushed through the net changes).
    for name in ("cub200", "tinyimagenet"):
        paper = resolve_config(name, "paper")
        assert (paper.recompute_window, paper.real_chunk) == (True, 250)
        assert not resolve_config(name, "quick").recompute_window
    assert (c10.recompute_window, c10.real_chunk) == (False, None)
    assert resolve_config("cub200", "paper").real_batch == 3000


def test_unknown_override_fails_clearly():
    with pytest.raises(ValueError, match="real_batchh"):
        resolve_config("digits", "smoke", real_batchh=3)
    with pytest.raises(ValueError, match="profile"):
        resolve_config("digits", "huge")


@pytest.mark.parametrize("labels", ["fixed", "learned"])
def test_memory_savers_follow_the_same_trajectory(digits, labels):
    """real_chunk + recompute_window change memory, not the run: after a few outer steps the
    poster and labels match the plain run to float32 rounding."""
    ds, pre = digits
    plain = Distiller(tiny(labels=labels, seed=3), ds, pre)
    saving = Distiller(tiny(labels=labels, seed=3, real_chunk=10, recompute_window=True), ds, pre)
    for _ in range(3):
        loss_plain, loss_saving = plain.step(), saving.step()
        assert float(loss_saving) == pytest.approx(float(loss_plain), rel=1e-4)
    torch.testing.assert_close(saving.poster, plain.poster, rtol=1e-4, atol=1e-5)
    if labels == "learned":
        torch.testing.assert_close(saving.label_params, plain.label_params, rtol=1e-4, atol=1e-5)
    assert not torch.equal(saving.poster, Distiller(tiny(labels=labels, seed=3), ds, pre).poster)


def test_real_chunk_must_be_positive(digits):
    ds, pre = digits
    with pytest.raises(ValueError, match="real_chunk=0"):
        Distiller(tiny(real_chunk=0), ds, pre)


def test_the_engine_does_not_import_the_run_loop():
    """podd.run_loop depends on the engine (distill, ratbptt, modes), never the other way."""
    import subprocess
    import sys

    code = (
        "import sys, podd.distiller, podd.ratbptt, podd.modes; "
        "print(sorted(m for m in sys.modules if m in ('podd.rundir', 'podd.run_loop')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_mode_is_one_object():
    from podd.modes import MODES, poster_mode

    assert MODES == ("podd", "baseline", "per-class")
    assert [poster_mode(m).posters(10) for m in MODES] == [1, 1, 10]
    assert [poster_mode(m).label_mode("learned") for m in MODES] == ["learned", "learned", "per-class"]
    with pytest.raises(ValueError, match="choose one of podd, baseline, per-class"):
        poster_mode("posters")


def test_bfloat16_truncated_steps_train(digits):
    """The GPU speed option runs end to end on the CPU too, and differs from float32 only after
    a step that had truncated inner steps to lower."""
    ds, pre = digits
    posters = {}
    for dtype in ("float32", "bfloat16"):
        distiller = Distiller(
            tiny(truncated_dtype=dtype, start_schedule="fixed", fixed_start=3, window=2, total_window=5), ds, pre
        )
        for _ in range(3):
            distiller.step()
        distiller.check_finite()
        posters[dtype] = distiller.poster.detach()
    assert not torch.equal(posters["float32"], posters["bfloat16"])
    assert torch.isfinite(posters["bfloat16"]).all()

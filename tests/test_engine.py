"""The compiled engine (podd.engine) computes the eager engine's meta-gradient.

In float64 the two engines must agree to rounding (the compiled one walks the window backwards
with per-step vector-Jacobian products instead of one unrolled graph, so this also checks that
route against the finite-difference-tested eager one). In float32 both carry float32's own
error, amplified by the inner Adam steps; the compiled one must stay within the same distance of
the float64 result as the eager one. Shapes are tiny so the compiler takes seconds.
"""

from __future__ import annotations

import json

import pytest
import torch

from podd import engine as E
from podd.config import DistillConfig
from podd.distiller import Distiller, PatchSource
from podd.labels import init_label_params
from podd.models import ConvNet, init_parameters
from podd.poster import make_geometry
from podd.presets import resolve_config
from podd.ratbptt import StepPlan, outer_loss_and_grads
from podd.run_loop import distill

K, SHAPE = 4, (1, 8, 8)
CPU = torch.device("cpu")


def _case(label_mode: str, start: int, window: int, dtype=torch.float64, seed: int = 0):
    """One RaT-BPTT step on a tiny net: the positional arguments of outer_loss_and_grads."""
    gen = torch.Generator().manual_seed(seed)
    geometry = make_geometry(K, SHAPE, ipc=1.0, grid=(2, 2), patches=(3, 3))
    order = torch.tensor([[2, 0], [3, 1]])
    source = PatchSource("podd", geometry, order, label_mode, K, dtype=dtype)
    net = ConvNet(1, K, 8, width=6, depth=2).to(dtype)
    poster = torch.randn((1, *geometry.size), generator=gen, dtype=dtype).requires_grad_(True)
    labels = None
    if label_mode == "learned":
        labels = (
            init_label_params(order, K).to(dtype) + 0.3 * torch.rand((K, 2, 2), generator=gen, dtype=dtype)
        ).requires_grad_(True)
    x_real = torch.randn((12, *SHAPE), generator=gen, dtype=dtype)
    y_real = torch.randint(0, K, (12,), generator=gen)
    steps = start + window
    plan = StepPlan(
        params={n: p.to(dtype) for n, p in init_parameters(net, gen).items()},
        start=start,
        window=window,
        batch_index=torch.rand(steps, source.num_patches, generator=gen).argsort(1)[:, :5],
        aug_seeds=[11 + t for t in range(steps + 1)],
        real_index=torch.arange(12),
    )
    # seeds 11.. give both augmentations (flip and rotation) within the first steps
    return net, poster, labels, plan, source, x_real, y_real, 0.05


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("label_mode,start,window,chunk", [("fixed", 0, 3, None), ("learned", 2, 2, 6)])
def test_compiled_equals_eager_in_float64(label_mode, start, window, chunk):
    args = _case(label_mode, start, window)
    eager_loss, eager_grads = outer_loss_and_grads(*args, real_chunk=chunk)
    loss, grads = E.CompiledSteps(CPU).outer_loss_and_grads(*args, real_chunk=chunk)
    assert len(grads) == len(eager_grads) == (2 if label_mode == "learned" else 1)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, eager_grads):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


def test_compiled_float32_is_as_close_to_float64_as_eager():
    # without augmentation: one graph to compile (the float64 test above covers both)
    exact = outer_loss_and_grads(*_case("learned", 1, 3), augment=False)[1]
    args32 = _case("learned", 1, 3, dtype=torch.float32)
    eager = outer_loss_and_grads(*args32, augment=False)[1]
    compiled = E.CompiledSteps(CPU).outer_loss_and_grads(*args32, augment=False)[1]
    for e, c, x in zip(eager, compiled, exact):
        eager_error, compiled_error = _relative(e, x), _relative(c, x)
        assert compiled_error <= max(3 * eager_error, 1e-5), (compiled_error, eager_error)


def test_bfloat16_truncated_steps_move_only_the_window_start():
    args = _case("fixed", 0, 2, dtype=torch.float32)
    compiled = E.CompiledSteps(CPU)
    plain = compiled.outer_loss_and_grads(*args, augment=False)[1][0]
    # no truncated steps: nothing runs in bfloat16, the result is the same bit for bit
    low = compiled.outer_loss_and_grads(*args, augment=False, truncated_dtype="bfloat16")[1][0]
    assert torch.equal(low, plain)
    args = _case("fixed", 3, 2, dtype=torch.float32)
    loss, (plain,) = compiled.outer_loss_and_grads(*args, augment=False)
    low_loss, (low,) = compiled.outer_loss_and_grads(*args, augment=False, truncated_dtype="bfloat16")
    assert torch.isfinite(low).all() and not torch.equal(low, plain)
    # the eager engine's test of the same option (tests/test_metagradient.py) asks the same
    assert low_loss.item() == pytest.approx(loss.item(), rel=0.02)
    assert torch.nn.functional.cosine_similarity(low.flatten(), plain.flatten(), dim=0) > 0.8


# -- choosing the engine, and falling back ------------------------------------------------------
def test_auto_is_compiled_where_it_can_run_and_eager_says_why_where_not(monkeypatch):
    assert E.resolve_engine("eager", CPU) == ("eager", None)
    monkeypatch.setattr(E, "compile_unavailable", lambda device: None)
    assert E.resolve_engine("auto", CPU) == ("compiled", None)
    monkeypatch.setattr(E, "compile_unavailable", lambda device: "no C++ compiler found")
    said = []
    engine = E.make_engine("auto", CPU, on_fallback=said.append)
    assert engine.name == "eager" and said == ["no C++ compiler found"]
    with pytest.raises(ValueError, match="engine='fast': choose one of auto, eager, compiled"):
        E.resolve_engine("fast", CPU)


def test_no_cpp_compiler_means_eager(monkeypatch):
    monkeypatch.setattr(E, "_cpp_compiler", lambda: None)
    assert "no C++ compiler" in E.compile_unavailable(CPU)


def test_a_compiler_failure_at_the_first_step_falls_back_to_eager(monkeypatch):
    def broken_compile(fn, **options):
        def run(*args, **kwargs):
            raise RuntimeError("inductor exploded\nsecond line")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(E, "_COMPILED", {})  # no pieces compiled by earlier tests
    said = []
    engine = E.FallbackSteps(E.CompiledSteps(CPU), on_fallback=said.append)
    args = _case("fixed", 1, 2)
    loss, grads = engine.outer_loss_and_grads(*args)
    eager_loss, eager_grads = outer_loss_and_grads(*args)
    assert engine.name == "eager"
    assert said == ["torch.compile failed (RuntimeError: inductor exploded)"]
    assert torch.equal(loss, eager_loss) and torch.equal(grads[0], eager_grads[0])


def test_engine_is_a_checked_setting():
    with pytest.raises(ValueError, match="engine='fast'"):
        DistillConfig(engine="fast").validate()
    assert resolve_config("digits", "smoke").engine == "eager"
    assert resolve_config("cifar10", "quick").engine == "auto"


def test_distiller_says_once_why_it_runs_eager(digits, monkeypatch, capsys):
    monkeypatch.setattr(E, "compile_unavailable", lambda device: "this torch has no inductor")
    ds, pre = digits
    distiller = Distiller(resolve_config("digits", "smoke", device="cpu", engine="auto"), ds, pre)
    assert distiller.engine.name == "eager"
    assert "note: engine=eager: this torch has no inductor" in capsys.readouterr().err


# -- a whole run with the compiled engine -------------------------------------------------------
def test_compiled_run_resumes_bit_identically(digits, tmp_path):
    ds, pre = digits
    # augmentation off: fewer graphs to compile (the float64 test covers both augmentations)
    config = resolve_config(
        "digits", "smoke", device="cpu", engine="compiled", steps=4, checkpoint_every=2, eval_models=0, augment=False
    )
    whole = distill(config, ds, tmp_path / "whole", progress=False, preprocessor=pre)
    distill(config.replace(steps=2), ds, tmp_path / "part", progress=False, preprocessor=pre)
    resumed = distill(config, ds, tmp_path / "part", resume=True, progress=False, preprocessor=pre)
    assert torch.equal(whole.artifact.poster, resumed.artifact.poster)
    final = json.loads((tmp_path / "whole" / "final.json").read_text())
    assert final["result"]["engine"] == "compiled"
    assert final["provenance"]["hyperparameters"]["engine"] == "compiled"
    # and the compiled trajectory is the eager one up to float rounding
    eager = distill(config.replace(engine="eager"), ds, tmp_path / "eager", progress=False, preprocessor=pre)
    torch.testing.assert_close(whole.artifact.poster, eager.artifact.poster, rtol=1e-3, atol=1e-4)


def test_the_compile_cache_is_persistent_unless_the_user_chose_one(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("PODD_COMPILE_CACHE", str(tmp_path / "podd-cache"))
    for before in (None, default_cache_dir()):  # unset, or inductor's own default
        if before is None:
            monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
        else:
            monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", before)
        E.use_persistent_cache()
        assert E.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "podd-cache")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    E.use_persistent_cache()
    assert E.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


def test_a_compiler_error_at_a_later_step_also_falls_back_but_other_errors_propagate(monkeypatch):
    from torch._inductor.exc import InductorError

    said = []
    engine = E.FallbackSteps(E.CompiledSteps(CPU), on_fallback=said.append)
    engine._proven = True  # as after a first step that compiled and ran
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a bug, not the compiler")
        raise InductorError(RuntimeError("a later graph broke"), None)

    monkeypatch.setattr(engine.compiled, "outer_loss_and_grads", failing)
    args = _case("fixed", 0, 2)
    with pytest.raises(ValueError, match="a bug"):
        engine.outer_loss_and_grads(*args)
    assert engine.name == "compiled" and said == []
    loss, grads = engine.outer_loss_and_grads(*args)
    assert engine.name == "eager" and len(said) == 1 and "InductorError" in said[0]
    assert torch.equal(grads[0], outer_loss_and_grads(*args)[1][0])

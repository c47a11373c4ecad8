"""How one RaT-BPTT outer step is executed: ``eager`` or ``compiled`` (config ``engine``).

The maths of a step is :mod:`podd.ratbptt`; this module only decides how it runs.

* ``eager`` is :func:`podd.ratbptt.outer_loss_and_grads`: autograd records the whole unrolled
  window and differentiates it. Every inner step costs hundreds of small operator calls: where
  each call is cheap arithmetic (a small network, or a GPU where each call is a kernel launch)
  the step pays for its operator count rather than for its arithmetic.
* ``compiled`` runs the same step as three fixed-shape pieces, each compiled once with
  :func:`torch.compile` and called many times:

  - ``train_step``: one inner Adam step (forward, gradient w.r.t. the weights, Adam), used for
    the truncated steps and for the window's forward pass, which keeps only each step's
    (weights, Adam moments);
  - ``real_loss``: the adapted network's cross-entropy on the real batch and its gradient
    w.r.t. the adapted weights;
  - ``step_vjp``: the vector-Jacobian product of one inner step, pulling (dL/dw, dL/dm, dL/dv)
    back to the step's inputs and to the patches and labels it trained on. The window's
    backward walks the steps in reverse with it: the recompute route of
    ``outer_loss_and_grads(recompute_window=True)``, whose gradients equal the unrolled graph's.

  Why pieces and not one compiled window: a compiled function cannot be differentiated again
  through ``autograd.grad(..., create_graph=True)`` (torch.compile fails on it), while
  ``torch.func.vjp`` of a step written with ``torch.func.grad`` compiles. Why not the whole
  outer step as one graph: the window start changes every epoch, and a graph per start would
  compile dozens of times. A step's randomness (augmentations, Adam's bias corrections) is drawn
  on the host before the loop and passed in as tensors, so every call has the same shapes and
  the same Python arguments: no recompilation, and on a GPU no host synchronisation inside the
  inner loop. On CUDA the pieces run as CUDA graphs (``mode="reduce-overhead"``).

  Tensors stay NCHW: channels_last patches and real images were no faster on the CPU in a
  side-by-side test (inductor picks the convolutions' layout itself). The patch extraction and
  the learned labels stay eager: they run once per outer step, and their backward is one
  ``autograd.grad`` from the accumulated patch and label gradients.

What the compiled engine cannot remove: the window's VJP is a second-order derivative (reverse
over reverse) and recomputes its step's forward and backward first, so each window step costs
about four inner steps' arithmetic in either engine. On a CPU at the quick profile's widths the
convolutions and the normalisation kernels of that VJP, not the operator calls, take most of the
step; ``benchmarks/bench_engine.py`` measures where the time goes.

When ``compiled`` cannot run (no C++ compiler for the CPU backend, a torch without inductor, an
operator the compiler rejects), :func:`make_engine` or the first step falls back to ``eager``
and says why in one line. The float64 finite-difference tests check the eager engine; the
compiled one is checked against it (tests/test_engine.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from podd.augment import apply_flip_rotate, draw_flip_rotate
from podd.choices import ENGINES
from podd.models import convnet_forward
from podd.notes import note_once
from podd.ratbptt import (
    ADAM_BETAS,
    ADAM_EPS,
    TRUNCATED_DTYPES,
    StepPlan,
    outer_loss_and_grads,
    real_batch,
    soft_cross_entropy,
)


def resolve_engine(name: str, device: torch.device) -> tuple[str, str | None]:
    """(the engine that will run, why it is not the one asked for or None).

    ``auto`` is ``compiled`` wherever torch.compile can run, else ``eager``.
    """
    if name not in ENGINES:
        raise ValueError(f"engine={name!r}: choose one of {', '.join(ENGINES)}")
    if name == "eager":
        return "eager", None
    problem = compile_unavailable(device)
    if problem is None:
        return "compiled", None
    return "eager", problem


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot run here, or None when it can (as far as can be told without
    compiling: an operator the compiler rejects is only found at the first step)."""
    if sys.platform == "win32":
        return "torch.compile's inductor backend is not supported on this platform"
    try:
        import torch._inductor  # noqa: F401
    except Exception as error:  # a build without inductor, or a broken one
        return f"this torch has no working inductor backend ({type(error).__name__}: {error})"
    use_persistent_cache()
    if device.type == "cpu" and not _cpp_compiler():
        return "no C++ compiler found (torch.compile needs one on the CPU; set CXX or install g++)"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "Triton is not installed (torch.compile needs it on a GPU)"
    return None


def _cpp_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def use_persistent_cache() -> None:
    """Keep compiled kernels between processes (inductor's FX-graph and autotune caches) in
    ``$PODD_COMPILE_CACHE``, else ``~/.cache/podd/inductor``, unless the user has chosen a cache
    directory already: a second run of the same shapes then starts in seconds (inductor's own
    default, a folder in /tmp, is wiped on many machines and cluster nodes)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    # importing parts of inductor writes its default into the variable: that is no choice
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        root = os.environ.get("PODD_COMPILE_CACHE") or os.path.join(
            os.path.expanduser("~"), ".cache", "podd", "inductor"
        )
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = root


# --------------------------------------------------------------------------------------------
# the pieces, as pure functions of tensors (traced and compiled by CompiledSteps)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlatLayout:
    """How the flat parameter vector splits into the ConvNet's tensors (named_parameters
    order)."""

    sizes: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, params: dict[str, torch.Tensor]) -> FlatLayout:
        return cls(tuple(p.numel() for p in params.values()), tuple(tuple(p.shape) for p in params.values()))

    def forward(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        pieces = [piece.view(shape) for piece, shape in zip(w.split(self.sizes), self.shapes)]
        return convnet_forward(pieces, x)


def _augmented(x: torch.Tensor, op: str, values: torch.Tensor) -> torch.Tensor:
    return x if op == "none" else apply_flip_rotate(x, op, values)


def _adam(w, g, m, v, scale):
    """The inner Adam step of :func:`podd.ratbptt._adam`, with its bias corrections given as a
    tensor ``scale`` = (lr / (1 − β1ᵗ), 1 / (1 − β2ᵗ)) so that the step count is data, not a
    Python number the compiler would specialise on."""
    b1, b2 = ADAM_BETAS
    m = torch.lerp(m, g, 1 - b1)
    v = torch.lerp(v, g * g, 1 - b2)
    denom = torch.sqrt(v * scale[1] + ADAM_EPS**2)
    return w - scale[0] * m / denom, m, v


def _make_pieces(layout: FlatLayout):
    """The three pieces of a compiled step (see the module docstring) for one network layout."""

    def inner_loss(w, patches, labels, index, values, op):
        x = _augmented(patches[index], op, values)
        return soft_cross_entropy(layout.forward(w, x), labels[index])

    def train_step(w, m, v, patches, labels, index, values, scale, op, dtype):
        if dtype == "float32":
            g = torch.func.grad(inner_loss)(w, patches, labels, index, values, op)
        else:
            with torch.autocast(w.device.type, dtype=TRUNCATED_DTYPES[dtype]):
                g = torch.func.grad(inner_loss)(w, patches, labels, index, values, op)
        return _adam(w, g, m, v, scale)

    def step_vjp(w, m, v, patches, labels, index, values, scale, gw, gm, gv, op):
        def step(w, m, v, patches, labels):
            return train_step(w, m, v, patches, labels, index, values, scale, op, "float32")

        _, pull_back = torch.func.vjp(step, w, m, v, patches, labels)
        return pull_back((gw, gm, gv))  # (dw, dm, dv, dpatches, dlabels)

    def real_loss(w, x, y):
        def summed(w):
            return F.cross_entropy(layout.forward(w, x), y, reduction="sum")

        grad, loss = torch.func.grad_and_value(summed)(w)
        return loss, grad

    return train_step, step_vjp, real_loss


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
@dataclass
class _StepInputs:
    """A step's randomness as device tensors, drawn once before its inner loop: per inner step
    its patch indices, augmentation values and Adam scales, each its own allocation (a row view
    of one big tensor can start off the alignment the compiled code was built for, which makes
    it compile again)."""

    ops: list[str]  # per inner step: "flip", "rotate" or "none"
    index: list[torch.Tensor]  # (batch,) patch indices
    values: list[torch.Tensor]  # (batch,) flip mask (bool) or rotation degrees
    scales: list[torch.Tensor]  # (2,) Adam bias corrections


_COMPILED: dict[tuple[FlatLayout, bool], tuple] = {}


class CompiledSteps:
    """The compiled engine: ``outer_loss_and_grads`` with the signature and the results (up to
    float rounding) of :func:`podd.ratbptt.outer_loss_and_grads`."""

    name = "compiled"

    def __init__(self, device: torch.device):
        self.device = device
        self.graphs = device.type == "cuda"  # CUDA graphs: one launch per piece
        self.ops_seen: set[str] = set()  # augmentations run so far (each is its own graph)
        self.last_phases: dict[str, float] = {}  # seconds per phase of the last step
        # Each piece compiles once per (network layout, augmentation, precision); past dynamo's
        # default limit of 8 per function the next compile would fail (fullgraph=True).
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        use_persistent_cache()

    def _pieces(self, layout: FlatLayout):
        key = (layout, self.graphs)
        if key not in _COMPILED:
            # One set of compiled pieces per layout in a process, shared by every engine: a
            # new set would trace and compile again (and count against dynamo's limit).
            options = dict(fullgraph=True, dynamic=False)
            if self.graphs:
                options["mode"] = "reduce-overhead"
            _COMPILED[key] = tuple(torch.compile(f, **options) for f in _make_pieces(layout))
            _say_once(
                "engine=compiled: the first steps compile the inner step for these shapes "
                "(a minute or two on a CPU, the first time); later runs reuse the cache in "
                f"{os.environ['TORCHINDUCTOR_CACHE_DIR']}"
            )
        return _COMPILED[key]

    @contextlib.contextmanager
    def _phase(self, name: str):
        start = time.perf_counter()
        with torch.profiler.record_function(f"podd.{name}"):
            yield
        self.last_phases[name] = time.perf_counter() - start

    def _keep(self, tensors):
        """CUDA-graph outputs are overwritten by the next replay: copy what must outlive it."""
        return tuple(t.clone() for t in tensors) if self.graphs else tuple(tensors)

    def _draw(self, plan: StepPlan, lr: float, augment: bool, dtype: torch.dtype) -> _StepInputs:
        steps, batch = plan.batch_index.shape
        ops, drawn = [], []
        for t in range(steps):
            op, values = "none", torch.zeros(batch, dtype=torch.float64)
            if augment:
                op, values = draw_flip_rotate(batch, torch.Generator().manual_seed(plan.aug_seeds[t]))
            ops.append(op)
            drawn.append(values.to(torch.float64))  # a flip mask as 0/1, degrees as drawn
        b1, b2 = ADAM_BETAS
        scales = torch.tensor(
            [[lr / (1 - b1 ** (t + 1)), 1 / (1 - b2 ** (t + 1))] for t in range(steps)], dtype=torch.float64
        )
        # one host-to-device copy of each, then a tensor of its own per step (copy=True: even
        # where no conversion is needed)
        drawn, scales = torch.stack(drawn).to(self.device), scales.to(self.device)
        return _StepInputs(
            ops,
            [plan.batch_index[t].clone() for t in range(steps)],
            [drawn[t] != 0 if op == "flip" else drawn[t].to(dtype, copy=True) for t, op in enumerate(ops)],
            [scales[t].to(dtype, copy=True) for t in range(steps)],
        )

    def outer_loss_and_grads(
        self,
        net,
        poster,
        label_params,
        plan: StepPlan,
        source,
        x_real,
        y_real,
        inner_lr: float,
        augment: bool = True,
        real_chunk: int | None = None,
        recompute_window: bool = False,
        truncated_dtype: str = "float32",
    ):
        """(outer loss, gradients w.r.t. [poster, label parameters]) of one step.

        ``recompute_window`` is accepted and ignored: this engine always keeps one step's
        graph at a time. ``real_chunk`` splits the real batch as in the eager engine.
        """
        del recompute_window
        layout = FlatLayout.of(plan.params)
        train_step, step_vjp, real_loss = self._pieces(layout)
        leaves = [poster] + ([label_params] if label_params is not None else [])
        patches, labels = source.patches(poster), source.labels(label_params)
        P, L = patches.detach(), labels.detach()
        inputs = self._draw(plan, inner_lr, augment, P.dtype)
        self.ops_seen.update(inputs.ops)

        def step(t, w, m, v, dtype="float32"):
            return self._keep(
                train_step(w, m, v, P, L, inputs.index[t], inputs.values[t], inputs.scales[t], inputs.ops[t], dtype)
            )

        # The phases are named for a torch.profiler trace, and their host wall times kept in
        # ``last_phases`` (on a GPU only launch time, as nothing waits for the device).
        w = torch.cat([p.detach().reshape(-1) for p in plan.params.values()])
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        with self._phase("truncated_steps"):
            for t in range(plan.start):
                w, m, v = step(t, w, m, v, truncated_dtype)
        states = []
        with self._phase("window_forward"):
            for t in range(plan.start, plan.start + plan.window):
                states.append((w, m, v))
                w, m, v = step(t, w, m, v)

        with self._phase("real_loss"):
            x, y = real_batch(plan, x_real, y_real, augment)
            n = x.shape[0]
            loss, grad_w = torch.zeros((), dtype=w.dtype, device=w.device), torch.zeros_like(w)
            for xs, ys in zip(x.split(real_chunk or n), y.split(real_chunk or n)):
                part_loss, part_grad = self._keep(real_loss(w, xs, ys))
                loss, grad_w = loss + part_loss / n, grad_w + part_grad / n

        grad_m, grad_v = torch.zeros_like(w), torch.zeros_like(w)
        grad_P, grad_L = torch.zeros_like(P), torch.zeros_like(L)
        with self._phase("window_backward"):
            for t in reversed(range(plan.start, plan.start + plan.window)):
                w_t, m_t, v_t = states[t - plan.start]
                grad_w, grad_m, grad_v, dP, dL = self._keep(
                    step_vjp(
                        w_t,
                        m_t,
                        v_t,
                        P,
                        L,
                        inputs.index[t],
                        inputs.values[t],
                        inputs.scales[t],
                        grad_w,
                        grad_m,
                        grad_v,
                        inputs.ops[t],
                    )
                )
                grad_P, grad_L = grad_P + dP, grad_L + dL

        outputs, upstream = [patches], [grad_P]
        if labels.requires_grad:
            outputs, upstream = [patches, labels], [grad_P, grad_L]
        return loss, torch.autograd.grad(outputs, leaves, upstream, allow_unused=True, materialize_grads=True)


class EagerSteps:
    """The eager engine: :func:`podd.ratbptt.outer_loss_and_grads` as it is."""

    name = "eager"

    @staticmethod
    def outer_loss_and_grads(*args, **kwargs):
        return outer_loss_and_grads(*args, **kwargs)


class FallbackSteps:
    """The compiled engine that falls back to eager, for good, when compiling fails: at its
    first step for any error (an operator the compiler rejects, a compiler that breaks), later
    for the compiler's own errors (a graph compiled later, e.g. when the other augmentation
    first comes up). The failed step is recomputed eagerly, so a run is never lost to the
    compiler; running out of memory is not a compiler failure and is raised as it is."""

    def __init__(self, compiled: CompiledSteps, on_fallback=None):
        self.compiled, self.on_fallback = compiled, on_fallback
        self.active = compiled
        self._proven = False
        self.reason: str | None = None

    @property
    def name(self) -> str:
        return self.active.name

    def outer_loss_and_grads(self, *args, **kwargs):
        if self.active is not self.compiled:
            return self.active.outer_loss_and_grads(*args, **kwargs)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the compiler's own chatter
                result = self.compiled.outer_loss_and_grads(*args, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - a compiler failure means: run eagerly
            if self._proven and not _is_compiler_error(error):
                raise
            self.reason = f"torch.compile failed ({type(error).__name__}: {_first_line(error)})"
            self.active = EagerSteps()
            if self.on_fallback is not None:
                self.on_fallback(self.reason)
            return self.active.outer_loss_and_grads(*args, **kwargs)
        self._proven = True
        return result


def _is_compiler_error(error: BaseException) -> bool:
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import InductorError

    return isinstance(error, (TorchDynamoException, InductorError))


def _say_once(message: str) -> None:
    note_once(message, file=sys.stderr, prefix="")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


def make_engine(name: str, device: torch.device, on_fallback=None):
    """The engine for config ``engine=name`` on ``device``; ``on_fallback(reason)`` is called
    (once) when ``compiled`` was asked for or chosen by ``auto`` but eager must run instead."""
    chosen, reason = resolve_engine(name, device)
    if chosen == "eager":
        if reason is not None and on_fallback is not None:
            on_fallback(reason)
        return EagerSteps()
    return FallbackSteps(CompiledSteps(device), on_fallback)

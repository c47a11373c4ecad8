"""One distillation on several processes (``torchrun``; NCCL on GPUs, gloo on CPU).

Two variants, chosen with ``--distributed`` (``podd distill``) or :func:`from_env`:

``tasks``
    Every rank trains its own fresh inner network on its own patch batches, augmentations and
    real batch: per outer step, all ranks draw the same ``world_size``
    :class:`~podd.ratbptt.StepPlan`\\ s from the one shared generator (which therefore stays
    identical everywhere) and rank ``r`` runs plan ``r``. The window's START is shared as the
    config schedules it: under ``start_schedule="epoch"`` (the presets') it is redrawn once per
    epoch over the real data, so the tasks of one step usually train the same window; with
    ``"step"`` every task draws its own.
    The meta-gradients (and the losses) are averaged with one all-reduce before the clipping and
    the outer Adam step, so N ranks give N tasks per outer step: a lower-variance meta-gradient,
    a different trajectory from one process. World size 1 draws one plan per step: bit-identical
    to a run without this module.

``real-batch``
    Every rank runs the SAME plan (same network, window, patches) and only the real batch of the
    outer loss is split across ranks; each rank's gradient is weighted by its share of the batch
    and summed. The trajectory is one process's, up to float summation order. It pays only where
    the real batch's forward/backward dominates a step (the window is computed on every rank).

Both keep every rank's state identical (same poster, optimizer, generator), so a checkpoint
written by rank 0 alone resumes at any world size (``real-batch``: one that divides
``real_batch``). The engine calls only :meth:`Parallel.plan` and :meth:`Parallel.reduce`;
:data:`SINGLE` makes both the identity.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import torch

from podd.choices import VARIANTS
from podd.devices import resolve_device

#: Seconds a rank waits for the others in a collective (rank 0 alone evaluates the poster during
#: a run, which can take long on a paper-size configuration); ``PODD_DIST_TIMEOUT_S`` overrides.
DEFAULT_TIMEOUT_S = 4 * 3600


class Parallel:
    """The distributed side of one run: rank, world size, variant and the collectives."""

    def __init__(
        self, variant: str = "tasks", rank: int = 0, world_size: int = 1, group: Any = None, object_group: Any = None
    ):
        if variant not in VARIANTS:
            raise ValueError(f"distributed variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world size {world_size})")
        self.variant, self.rank, self.world_size = variant, rank, world_size
        self.group, self.object_group = group, object_group

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files, shows progress and evaluates."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        return {"variant": self.variant, "world_size": self.world_size}

    def check(self, config) -> None:
        """Refuse a configuration this world size cannot split."""
        if self.variant == "real-batch" and config.real_batch % self.world_size:
            raise ValueError(
                f"--distributed real-batch splits real_batch={config.real_batch} "
                f"across {self.world_size} processes: use a world size that divides "
                f"it (or --set real_batch=N with N a multiple of {self.world_size})"
            )

    # -- the two calls the engine makes -------------------------------------------------------
    def plan(self, draw: Callable[[], Any]):
        """This rank's plan of the next outer step; ``draw`` draws one from the shared stream."""
        if self.world_size == 1:
            return draw()
        if self.variant == "tasks":
            plans = [draw() for _ in range(self.world_size)]  # every rank advances alike
            return plans[self.rank]
        plan = draw()
        n = int(plan.real_index.shape[0])
        bounds = [n * r // self.world_size for r in range(self.world_size + 1)]
        plan.real_part = (bounds[self.rank], bounds[self.rank + 1], n)
        return plan

    def reduce(self, loss: torch.Tensor, grads, plan=None):
        """(loss, grads) averaged over the tasks, or summed over the real-batch shares."""
        if self.world_size == 1:
            return loss, grads
        import torch.distributed as dist

        if self.variant == "tasks":
            weight = 1.0 / self.world_size
        else:
            start, stop, n = plan.real_part
            weight = (stop - start) / n
        grads = list(grads)
        flat = torch.cat([loss.detach().reshape(1)] + [g.reshape(-1) for g in grads])
        # A short last batch of an epoch can leave a rank no real image: its loss is a mean over
        # nothing (NaN), and its share of the sum is zero.
        flat = flat * weight if weight else torch.zeros_like(flat)
        dist.all_reduce(flat, group=self.group)
        pieces = flat[1:].split([g.numel() for g in grads])
        return flat[0], [p.view_as(g) for p, g in zip(pieces, grads)]

    # -- objects from rank 0 -----------------------------------------------------------------
    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (e.g. a checkpoint read by rank 0 alone)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.object_group)
        return box[0]

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank; every rank calls it at the same point. A job's
        warning signal reaches the ranks at different moments (a step apart, or on one node
        only): this makes them all stop after the same step. One CPU all-reduce (gloo), no
        GPU sync."""
        if self.world_size == 1:
            return bool(flag)
        import torch.distributed as dist

        box = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(box, op=dist.ReduceOp.MAX, group=self.object_group)
        return bool(box.item())

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier(group=self.object_group)


#: One process: every call is the identity.
SINGLE = Parallel()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def from_env(variant: str | None, device: str = "auto") -> Parallel:
    """The :class:`Parallel` of this process from torchrun's variables (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL when the run uses
    CUDA (each rank on GPU ``LOCAL_RANK``), gloo otherwise. Without torchrun: world size 1.
    ``variant=None`` under torchrun with more than one process is refused (N copies of the same
    run would write the same directory)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and variant is None:
        raise ValueError(
            f"started by torchrun with {world_size} processes: choose how they share "
            f"the work with --distributed tasks (N tasks per outer step) or "
            f"--distributed real-batch (one process's trajectory, real batch split)"
        )
    variant = variant or "tasks"
    if world_size == 1:
        return Parallel(variant)
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = resolve_device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    timeout = datetime.timedelta(seconds=float(os.environ.get("PODD_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout)
    # Pickled objects (a checkpoint) travel over gloo even when the gradients use NCCL.
    object_group = dist.new_group(backend="gloo", timeout=timeout) if use_cuda else None
    return Parallel(variant, rank, world_size, object_group=object_group)


def shutdown(finished: Parallel | None = None) -> None:
    """Leave the process group. Given the :class:`Parallel` of a run that ``finished``, every
    rank first waits at a barrier for the others: rank 0 still writes the run's files after the
    last step, and a rank that tore its gloo connections down meanwhile once aborted at exit in
    CI (SIGABRT, "terminate called without an active exception"). After a failure there is no
    barrier (the other ranks may never come); torchrun stops them."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if finished is not None:
        finished.barrier()
    dist.destroy_process_group()

"""A run as a Slurm job that survives its time limit and preemption (submitit's checkpointing).

:class:`ResumableJob` wraps a function that runs one distillation in a run directory
(``fn(*args, out_dir=…, resume=…, stop=…)``) as a callable with a ``checkpoint`` method, the
protocol submitit uses for checkpointable jobs. What happens on a cluster:

1. Slurm sends the warning signal (``USR2``, submitit's ``--signal`` a little before the time
   limit, or on preemption). While the job runs, podd's handler only sets the run's ``stop``
   event: the run finishes the step in progress, writes a checkpoint of it and stops
   (:class:`podd.run_loop.RunStopped`); the job then hands the signal to submitit's own handler.
2. submitit calls :meth:`ResumableJob.checkpoint`, which returns the same job with
   ``resume=True`` (when the run directory holds a checkpoint), requeues the job and exits.
3. The requeued job continues the run from that checkpoint: the same poster as an
   uninterrupted run (on CPU bit for bit).

When the run cannot reach a step boundary within :data:`STOP_GRACE_S` (loading data, a long
evaluation), submitit's handler runs at once: the job is still requeued and continues from the
last periodic checkpoint (``checkpoint_every``).

One run on several processes (``--distributed`` with ``--executor slurm``) is ONE job of
``nodes x tasks_per_node`` submitit tasks, each running the same pickled job as one rank
(:func:`export_torch_env` gives it torchrun's variables). Slurm signals every task; the ranks
agree on the step to stop after (:meth:`podd.parallel.Parallel.any_rank`), rank 0 writes the
checkpoint, and submitit's handler in task 0 requeues the whole job (the others return quietly).
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from podd.run_loop import RunStopped
from podd.rundir import CHECKPOINT

#: seconds the run has to reach a step boundary after the warning signal before the job is
#: requeued without a new checkpoint (submitit's signal comes 90 s before Slurm's time limit)
STOP_GRACE_S = 30.0


class ResumableJob:
    """``fn(*args, out_dir=out_dir, resume=…, stop=…, **kwargs)`` as a checkpointable submitit
    job (see the module's doc). ``resume``: whether the first attempt continues a run already in
    ``out_dir``; a requeued attempt resumes whenever ``out_dir`` holds a checkpoint."""

    def __init__(self, fn: Callable, out_dir, *args, resume: bool = False, **kwargs):
        self.fn, self.out_dir, self.args, self.kwargs = fn, str(out_dir), args, kwargs
        self.resume = resume

    def __call__(self):
        with WarningSignal() as warning:
            try:
                return self.fn(*self.args, out_dir=self.out_dir, resume=self.resume, stop=warning.stop, **self.kwargs)
            except RunStopped as stopped:
                warning.hand_over()  # submitit: checkpoint() below, requeue, exit
                if _other_task():
                    # Task 0 of this job requeues it (submitit's handler does nothing in the
                    # other tasks). Exiting with an error here could make srun end the job
                    # before it does (KillOnBadExit): this task returns instead.
                    return {"out_dir": self.out_dir, "stopped_at": stopped.step}
                raise  # not under submitit: the error says how to resume

    def checkpoint(self, *args, **kwargs):
        """Called by submitit before it requeues the job: the same run, resumed."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self.requeued())

    def requeued(self) -> ResumableJob:
        """This job as it starts again: resuming when its run directory holds a checkpoint (a
        job stopped before its first checkpoint starts over)."""
        resume = (Path(self.out_dir) / CHECKPOINT).is_file()
        return ResumableJob(self.fn, self.out_dir, *self.args, resume=resume, **self.kwargs)

    def __repr__(self) -> str:
        return f"ResumableJob({getattr(self.fn, '__qualname__', self.fn)}, {self.out_dir!r})"


def _other_task() -> bool:
    """Whether this process is a task other than the first of a multi-task submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return False
    from submitit import JobEnvironment

    return JobEnvironment().global_rank > 0


def export_torch_env() -> dict[str, str]:
    """In one task of a multi-task submitit job: set torchrun's variables (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) so
    that :func:`podd.parallel.from_env` treats it as a rank, and return them.

    submitit's :class:`~submitit.helpers.TorchDistributedEnvironment` reads them from Slurm's
    (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, …): the rendezvous is the first host
    of the job's node list, at a port drawn from the job id (or ``$MASTER_PORT``), so every
    task, and the requeued job, finds the same one. ``CUDA_VISIBLE_DEVICES`` is left as Slurm
    set it (from_env pins the rank to GPU ``LOCAL_RANK`` among those), and values inherited from
    the submitting shell (sbatch exports its environment) are overwritten: inside the job,
    Slurm's task layout is the truth.
    """
    from submitit.helpers import TorchDistributedEnvironment

    env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return {
        "RANK": str(env.rank),
        "WORLD_SIZE": str(env.world_size),
        "LOCAL_RANK": str(env.local_rank),
        "LOCAL_WORLD_SIZE": str(env.local_world_size),
        "MASTER_ADDR": env.master_addr,
        "MASTER_PORT": str(env.master_port),
    }


def warning_signal() -> signal.Signals | None:
    """The signal submitit uses for time limits and preemption (``$SUBMITIT_PREEMPT_SIGNAL``,
    default USR2); None where the platform has no such signal."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


class WarningSignal:
    """Within the block, the warning signal sets ``stop`` instead of running the handler that
    was installed (submitit's); :meth:`hand_over` runs that handler afterwards. If the signal
    arrives again, or ``grace_s`` pass without a hand-over, the handler runs at once. Outside
    the main thread (where no handler can be installed) nothing changes."""

    def __init__(self, grace_s: float = STOP_GRACE_S):
        self.stop = threading.Event()
        self.grace_s = grace_s
        self.signum = warning_signal()
        self.previous = None
        self._installed = False
        self._closed = threading.Event()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> WarningSignal:
        if self.signum is not None and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(self.signum, self._on_signal)
            self._installed = True
        return self

    def __exit__(self, *exc_info) -> None:
        self._close()
        if self._installed:
            signal.signal(self.signum, self.previous)
            self._installed = False

    def _on_signal(self, signum, frame) -> None:
        if self._closed.is_set():
            return
        if not self.stop.is_set():
            self.stop.set()
            self._timer = threading.Timer(self.grace_s, self._grace_over)
            self._timer.daemon = True
            self._timer.start()
            return
        self.hand_over(frame)  # again, or the grace is over: no more waiting

    def _grace_over(self) -> None:
        if not self._closed.is_set():
            _thread.interrupt_main(self.signum)  # runs _on_signal in the main thread

    def _close(self) -> None:
        self._closed.set()
        if self._timer is not None:
            self._timer.cancel()

    def hand_over(self, frame=None) -> None:
        """Run the handler the block replaced (submitit's: it checkpoints, requeues and exits);
        nothing when there was none."""
        self._close()
        if callable(self.previous):
            self.previous(self.signum, frame)

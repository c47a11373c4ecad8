"""Where the runs of a sweep execute: ``make_executor(kind, ...)`` returns an object whose
``submit(fn, *args, **kwargs)`` gives a future (``.result()`` waits for the value).

* ``local`` (default): in this process, one run after the other, when submitted (the notebooks'
  behaviour before executors existed); ``workers=N`` > 1: a pool of N local processes
  (:class:`concurrent.futures.ProcessPoolExecutor`, spawned; each gets ``threads`` CPU threads).
* ``slurm``: one Slurm job per run through `submitit <https://github.com/facebookincubator/submitit>`_
  (``submitit.AutoExecutor``): submitit writes the sbatch script, pickles the call, and brings the
  result (or the remote traceback) back. Settings from the arguments, else from the environment:
  ``PODD_SLURM_PARTITION``, ``PODD_SLURM_TIME_MIN``, ``PODD_SLURM_GPUS`` (per node),
  ``PODD_SLURM_CPUS`` (per task), ``PODD_SLURM_MEM_GB`` (per node), ``PODD_SLURM_ACCOUNT``,
  ``PODD_SLURM_QOS``, ``PODD_SLURM_CONSTRAINT``, ``PODD_SLURM_FOLDER`` (logs and pickles; default
  ``runs/slurm/%j``). One run on several processes (:func:`rank_parameters`: ``nodes`` x
  ``tasks_per_node`` tasks, see :mod:`podd.jobs`) is asked for per run, never from the
  environment: a sweep's single-process jobs must not be copied onto N tasks.
  :meth:`SubmititExecutor.script` shows the sbatch script without submitting anything.
* ``debug`` / ``submitit-local``: submitit's own debug executor (in this process, at
  ``.result()``) and local executor (a subprocess per job): the slurm code path without a
  cluster, for tests and for a dry run before a sweep.

Scheduling is submitit's and Slurm's; podd only chooses the settings.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable
from typing import Any

from podd.choices import EXECUTORS

KINDS = EXECUTORS

#: option name -> (environment variable, type, submitit parameter)
SLURM_OPTIONS = {
    "partition": ("PODD_SLURM_PARTITION", str, "slurm_partition"),
    "time_min": ("PODD_SLURM_TIME_MIN", int, "timeout_min"),
    "gpus": ("PODD_SLURM_GPUS", int, "gpus_per_node"),
    "cpus": ("PODD_SLURM_CPUS", int, "cpus_per_task"),
    "mem_gb": ("PODD_SLURM_MEM_GB", float, "mem_gb"),
    "account": ("PODD_SLURM_ACCOUNT", str, "slurm_account"),
    "qos": ("PODD_SLURM_QOS", str, "slurm_qos"),
    "constraint": ("PODD_SLURM_CONSTRAINT", str, "slurm_constraint"),
}
DEFAULT_FOLDER = os.path.join("runs", "slurm", "%j")


class InlineExecutor:
    """Runs each call when it is submitted, in this process; returns a finished future (an
    exception is kept in it and raised by ``.result()``, as a pool would)."""

    kind, in_process = "local", True

    def submit(self, fn: Callable, *args, **kwargs) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - handed to the caller by .result()
            future.set_exception(error)
        return future


#: how often a pool worker checks that the process that started it is still alive (seconds)
PARENT_POLL_S = 1.0


def _init_worker(threads: int) -> None:
    """Initialiser of every local pool worker: ``threads`` torch threads, and a watch on the
    parent. A worker outlives a parent that is killed (``kill``, a scheduler's time limit, an
    out-of-memory kill): without the watch it would finish its run, up to hours of CPU,
    writing into run directories that somebody may already be deleting."""
    import threading

    import torch

    torch.set_num_threads(threads)
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="podd-parent-watch").start()


def _exit_when_orphaned(parent: int) -> None:
    # An orphan is re-parented (to init or a subreaper), so its parent id changes.
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


class PoolExecutor:
    """``local`` with ``workers`` > 1: a pool of spawned processes (not forked: torch's threads)."""

    kind = "local"

    def __init__(self, workers: int, threads: int | None = None):
        import multiprocessing

        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(threads,)
        )

    def submit(self, fn: Callable, *args, **kwargs) -> concurrent.futures.Future:
        return self.pool.submit(fn, *args, **kwargs)

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.pool.shutdown()


class SubmititExecutor:
    """submitit's ``AutoExecutor`` (``cluster`` = slurm, debug or local) behind ``submit``."""

    def __init__(self, kind: str, folder: str | None = None, name: str = "podd", **options):
        import submitit

        self.kind = kind
        cluster = {"slurm": "slurm", "debug": "debug", "submitit-local": "local"}[kind]
        folder = folder or os.environ.get("PODD_SLURM_FOLDER") or DEFAULT_FOLDER
        try:
            self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        except RuntimeError as error:
            raise RuntimeError(
                f"executor {kind!r}: {error} Submit from a Slurm login node "
                f"(sbatch and srun on PATH); executor='submitit-local' runs the "
                f"same submitit path on this machine"
            ) from None
        self.folder = os.path.abspath(folder)  # where submitit keeps each job's files
        self.parameters = slurm_parameters(**options)
        self.name = name
        self.executor.update_parameters(name=name, **self.parameters)

    def submit(self, fn: Callable, *args, **kwargs):
        return self.submit_as(self.name, fn, *args, **kwargs)

    def script(self) -> str:
        """The sbatch script that :meth:`submit` would hand to ``sbatch`` (``slurm`` only): a dry
        run, nothing is pickled or submitted. submitit has no public dry run, so this asks its
        Slurm executor for the text it writes at submission (``_make_submission_file_text``):
        the same function, so the same script, checked by the tests against a captured one."""
        if self.kind != "slurm":
            raise ValueError(f"executor {self.kind!r} writes no sbatch script: a dry run is for executor 'slurm'")
        slurm = self.executor._executor  # the submitit.SlurmExecutor AutoExecutor wraps
        return slurm._make_submission_file_text(slurm._submitit_command_str, "dry-run")

    def submit_as(self, name: str, fn: Callable, *args, **kwargs):
        """``submit`` under the job name ``name`` (a sweep names each job after its cell)."""
        self.executor.update_parameters(name=name)
        return self.executor.submit(fn, *args, **kwargs)  # a submitit Job: .result(), .done()


def slurm_parameters(**options) -> dict[str, Any]:
    """submitit parameters from podd's option names (arguments win over ``PODD_SLURM_*``)."""
    unknown = sorted(set(options) - set(SLURM_OPTIONS) - {"extra"})
    if unknown:
        raise ValueError(
            f"unknown Slurm setting(s) {unknown}; podd knows {sorted(SLURM_OPTIONS)} "
            f"(anything else: extra={{'slurm_<name>': value}}, passed to submitit)"
        )
    parameters: dict[str, Any] = {}
    for name, (variable, kind, key) in SLURM_OPTIONS.items():
        value = options.get(name)
        if value is None and os.environ.get(variable):
            try:
                value = kind(os.environ[variable])
            except ValueError:
                raise ValueError(
                    f"{variable}={os.environ[variable]!r}: must be {'a whole number' if kind is int else 'a number'}"
                ) from None
        if value is not None:
            parameters[key] = value
    parameters.update(options.get("extra") or {})
    return parameters


def rank_parameters(nodes: int = 1, tasks_per_node: int = 1) -> dict[str, int]:
    """submitit parameters of ONE job whose ``nodes`` x ``tasks_per_node`` tasks are the ranks of
    one distributed run (each task runs the same pickled call; :func:`podd.jobs.export_torch_env`
    makes it a rank). Why tasks and not ``srun torchrun`` in an sbatch script: Slurm's warning
    signal (USR2) goes to every process of the job step; a torchrun agent dies of it (or, told to
    handle it, shuts its workers down), so no rank could finish its step and checkpoint, and the
    requeue would have to be scripted by hand. As submitit tasks, every rank has submitit's
    handler installed and task 0 requeues the job exactly as for one process. What torchrun adds
    (restarting failed workers, elastic membership) a requeue from the checkpoint covers."""
    for name, value in (("nodes", nodes), ("tasks_per_node", tasks_per_node)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: a distributed job needs a whole number >= 1")
    return {"nodes": nodes, "tasks_per_node": tasks_per_node}


def make_executor(
    kind: str = "local", *, workers: int = 1, threads: int | None = None, folder: str | None = None, **slurm_options
):
    """An executor of ``kind`` (see the module's doc): ``submit(fn, *args, **kwargs)`` → future."""
    if kind not in KINDS:
        raise ValueError(f"executor {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == "local":
        if slurm_options:
            raise ValueError(f"Slurm settings {sorted(slurm_options)} need executor='slurm'")
        return InlineExecutor() if workers <= 1 else PoolExecutor(workers, threads)
    return SubmititExecutor(kind, folder=folder, **slurm_options)


def gather(futures) -> list[Any]:
    """The results of ``futures``, in their order (the first failure is raised)."""
    return [future.result() for future in futures]

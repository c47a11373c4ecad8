"""Runs as jobs (:mod:`podd.executors`): submitted, then gathered in order.

A sweep's runs execute in this process, in local worker processes, or elsewhere (Slurm,
submitit). With a folder, every cell (one run) has its own run directory in it, ``FOLDER/CELL``,
so that running the sweep again collects the cells that finished, continues from its last
checkpoint a cell that stopped (:class:`podd.jobs.ResumableJob`), and runs only the others. Runs
that execute elsewhere always have one, and a manifest, ``sweep.json`` (cell → job id → run
directory), so that a second session also waits for the Slurm jobs still queued or running.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from podd.display import save_poster_png
from podd.executors import gather, make_executor
from podd.experiments.data import data_of, request_for
from podd.experiments.run import RunOutcome, distill_and_evaluate, outcome_of_run, preprocessor_for, real_reference
from podd.io import write_json
from podd.jobs import ResumableJob
from podd.modes import check_class_order
from podd.provenance import git_commit
from podd.rundir import ARTIFACT, CHECKPOINT, CONFIG, FINAL, PNG, RESUMABLE_CHANGES, finished_run

MANIFEST = "sweep.json"
#: where sweeps keep their cells when no folder is given: $PODD_SWEEPS, else runs/sweeps
SWEEPS_ENV, DEFAULT_SWEEPS = "PODD_SWEEPS", os.path.join("runs", "sweeps")
#: Slurm states of a job that will still run (or is running): a sweep waits for it
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "CONFIGURING",
        "COMPLETING",
        "RESIZING",
        "SUSPENDED",
        "SIGNALING",
        "STAGE_OUT",
    }
)


def _distill_job(
    config,
    data,
    row_extra: dict,
    *,
    out_dir=None,
    resume: bool = False,
    stop=None,
    progress: bool = False,
    poster_png=None,
) -> RunOutcome:
    """One cell: distil and evaluate; ``poster_png``: also save the poster there as an image."""
    made_at = git_commit()  # the code as the job starts
    ds = data_of(data)
    outcome = distill_and_evaluate(
        config, ds, out_dir=out_dir, progress=progress, resume=resume, stop=stop, **row_extra
    )
    outcome.made_at = made_at
    if poster_png is not None:
        save_poster_png(poster_png, outcome.artifact.poster, preprocessor_for(ds, config.zca))
    return outcome


def _reference_job(config, data, images_per_class: int, subset_seed: int) -> RunOutcome:
    return real_reference(data_of(data), config, images_per_class, subset_seed)


class Sweep:
    """Runs submitted to an executor and gathered in the order submitted.

    ``executor``: ``"local"`` (default: each run in this process when submitted; with
    ``workers=N``: N local worker processes), ``"slurm"`` (one job per run via submitit),
    ``"debug"``/``"submitit-local"`` (submitit without a cluster), or an object from
    :func:`podd.executors.make_executor`; ``executor_options``: its settings (``workers``,
    ``threads``, ``partition``, ``time_min``, ``gpus`` …; see :mod:`podd.executors`). A job
    elsewhere receives the :class:`~podd.experiments.data.DataRequest` of ``data`` (when
    :func:`~podd.experiments.data.load_data` made it) and loads the data itself; the runs are
    deterministic, so the results are the same as in this process::

        sweep = Sweep(data, executor, name="table1-cifar10-paper")
        for ipc in ipcs:
            sweep.distill(run_config(data, profile, ipc=ipc))
        outcomes = sweep.gather()

    ``name`` names the jobs (``podd-NAME-CELL``) and the sweep's folder ``out_dir`` (default
    ``$PODD_SWEEPS/NAME``, else ``runs/sweeps/NAME``). ``run_dirs``: whether each cell runs in its
    own directory ``out_dir/CELL`` (default: when ``out_dir`` is given, and always for runs
    outside this process). Delete the folder (or a cell's directory) to run it again from
    scratch: a finished cell is collected, not distilled again; one made with other settings is
    refused. ``reattach=False`` instead starts every cell again, its directory emptied first.
    ``posters``: save each cell's poster as ``out_dir/CELL.png`` too; ``progress``: show each
    run's progress. As a context manager the sweep shuts down the worker processes it started.
    """

    def __init__(
        self,
        data,
        executor: Any = "local",
        *,
        name: str | None = None,
        out_dir: str | os.PathLike | None = None,
        run_dirs: bool | None = None,
        reattach: bool = True,
        posters: bool = False,
        progress: bool = False,
        **executor_options,
    ):
        self._owns_executor = isinstance(executor, str)
        self.executor = make_executor(executor, **executor_options) if self._owns_executor else executor
        self.data = data
        self.name = _safe(name or "sweep")
        self._payload = self._payload_for(data)
        if run_dirs is None:
            run_dirs = out_dir is not None or not getattr(self.executor, "in_process", False)
        if run_dirs and out_dir is None:
            out_dir = Path(os.environ.get(SWEEPS_ENV) or DEFAULT_SWEEPS) / self.name
        self.folder = Path(out_dir).absolute() if run_dirs else None
        self.reattach, self.posters, self.progress = reattach, posters, progress
        self.futures: list[Any] = []
        self.cells: list[str] = []

    def __enter__(self) -> Sweep:
        return self

    def __exit__(self, *exc_info) -> None:
        close = getattr(self.executor, "__exit__", None)
        if self._owns_executor and close is not None:
            close(*exc_info)

    def _payload_for(self, data):
        """What a job receives: the data itself when it runs in this process (or when no request
        is known for it), else the request, so a job elsewhere loads the images itself."""
        request = request_for(data)
        inline = getattr(self.executor, "in_process", False)
        return data if inline or request is None else request

    def distill(self, config, cell: str | None = None, continue_from=None, **row_extra):
        """Submit :func:`~podd.experiments.run.distill_and_evaluate` of ``config`` (``row_extra``
        goes into its row). Its class order is resolved first: missing CLIP weights stop the
        sweep here, before any of its runs. ``cell``: the run's name in the sweep (default
        ``MODE-ipcR``; give one when several runs share mode and IPC). ``continue_from``: an
        earlier run directory the cell copies and goes on from to ``config.steps`` (on the CPU
        bit-identical to running that long at once), instead of starting again; a run made
        with other settings is refused when it resumes (:func:`podd.rundir.resume_config`)."""
        check_class_order(config, self.data.class_names, tuple(self.data.image_shape))
        if self.folder is None:
            if continue_from is not None:
                raise ValueError("continue_from needs run directories: give the sweep an out_dir")
            options = {"progress": True} if self.progress else {}
            future = self.executor.submit(_distill_job, config, self._payload, row_extra, **options)
        else:
            future = self._cell_future(
                _safe(cell or f"{config.mode}-ipc{config.ipc:g}"), config, row_extra, continue_from
            )
        self.futures.append(future)
        return future

    def reference(self, config, images_per_class: int = 1, subset_seed: int = 0):
        """Submit :func:`~podd.experiments.run.real_reference` (random real images, evaluated
        like the posters)."""
        future = self._submit(
            f"reference-{images_per_class}", _reference_job, config, self._payload, images_per_class, subset_seed
        )
        self.futures.append(future)
        return future

    def gather(self) -> list[RunOutcome]:
        """Every submitted run's :class:`RunOutcome`, in submission order (waits for them)."""
        return gather(self.futures)

    # -- cells with a run directory --------------------------------------------------------------
    def _cell_future(self, cell: str, config, row_extra: dict, continue_from=None):
        """A finished cell's outcome, the job still running it, or a new (resumed) job."""
        if cell in self.cells:
            raise ValueError(f"sweep {self.name}: two runs named {cell!r}; give each its own cell=NAME")
        self.cells.append(cell)
        run_dir = self.folder / cell
        resume = False
        if self.reattach:
            _check_same_run(run_dir, config, cell)
            if finished_run(run_dir, config) is not None:
                print(f"{self.name}/{cell}: finished earlier, collected from {run_dir}")
                return _done(outcome_of_run(run_dir, config, row_extra))
            entry = _read_manifest(self.folder).get(cell)
            job = _active_job(entry, getattr(self.executor, "kind", None))
            if job is not None:
                print(f"{self.name}/{cell}: job {entry['job_id']} is still {str(job.state).lower()}; waiting for it")
                return job
            resume = (run_dir / CHECKPOINT).is_file()
            if resume:
                print(f"{self.name}/{cell}: continues from its checkpoint in {run_dir}")
        if not resume and (continue_from is not None or not self.reattach) and run_dir.exists():
            shutil.rmtree(run_dir)  # a fresh start (or from a copy of the earlier run)
        if not resume and continue_from is not None:
            # Without the earlier run's finished files: until it reaches the new step count the
            # copy is a run stopped at its last checkpoint, so a continuation cut off resumes (it
            # is not taken for a run finished at the earlier step count).
            shutil.copytree(continue_from, run_dir, ignore=shutil.ignore_patterns(FINAL, ARTIFACT, PNG))
            resume = True
        options = {"progress": True} if self.progress else {}
        if self.posters:
            options["poster_png"] = str(self.folder / f"{cell}.png")
        return self._submit(
            cell,
            ResumableJob(_distill_job, run_dir, config, self._payload, row_extra, resume=resume, **options),
            run_dir=run_dir,
        )

    def _submit(self, cell: str, fn, *args, run_dir: Path | None = None):
        """Submit ``fn(*args)`` as the job ``podd-NAME-CELL``; recorded in the manifest."""
        submit_as = getattr(self.executor, "submit_as", None)
        if submit_as is None:
            return self.executor.submit(fn, *args)
        job = submit_as(f"podd-{self.name}-{cell}", fn, *args)
        if self.folder is not None and run_dir is not None:
            _record(
                self.folder,
                cell,
                {
                    "job_id": str(getattr(job, "job_id", "")),
                    "run_dir": str(run_dir),
                    "executor": self.executor.kind,
                    "jobs_folder": str(self.executor.folder),
                    "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
            )
        return job


def _safe(name: str) -> str:
    """A name fit for a folder and a Slurm job name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.") or "cell"


def _done(value) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_result(value)
    return future


def _check_same_run(run_dir: Path, config, cell: str) -> None:
    """Refuse a cell whose directory holds a run with other settings (the sweep's parameters
    changed, not its name): continuing or collecting it would mix two experiments."""
    try:
        saved = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
        run = type(config).from_dict(saved)
    except (OSError, ValueError, TypeError):
        return
    different = [
        name
        for name in saved
        if name not in RESUMABLE_CHANGES and hasattr(config, name) and getattr(config, name) != getattr(run, name)
    ]
    if different:
        pairs = ", ".join(f"{n}: run has {getattr(run, n)!r}, asked {getattr(config, n)!r}" for n in different[:3])
        raise ValueError(
            f"sweep cell {cell}: {run_dir} holds a run with other settings ({pairs}"
            f"{', …' if len(different) > 3 else ''}); delete that directory to run "
            f"the cell again with the new settings, or give the sweep another name"
        )


def _read_manifest(folder: Path) -> dict:
    try:
        cells = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("cells")
    except (OSError, ValueError, AttributeError):
        return {}
    return cells if isinstance(cells, dict) else {}


def _record(folder: Path, cell: str, entry: dict) -> None:
    cells = _read_manifest(folder)
    cells[cell] = entry
    write_json(folder / MANIFEST, {"cells": cells})


def _active_job(entry: dict | None, kind: str | None):
    """The Slurm job of a manifest entry when it is still queued or running (a job of an
    earlier session of this sweep), else None."""
    if not entry or entry.get("executor") != "slurm" or kind != "slurm" or not entry.get("job_id"):
        return None
    job = slurm_job(entry["jobs_folder"], entry["job_id"])
    try:
        state = str(job.state).upper()
    except Exception:  # noqa: BLE001 - sacct unavailable: treat the job as lost
        return None
    return job if state in ACTIVE_STATES else None


def slurm_job(folder: str, job_id: str):
    """submitit's handle of an existing Slurm job (its ``.result()`` waits for it)."""
    import submitit

    return submitit.SlurmJob(folder=folder, job_id=job_id)

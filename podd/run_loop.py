"""A whole distillation run: outer steps with logging, evaluation, checkpoints and resume.

:func:`distill` drives a :class:`podd.distiller.Distiller` for ``config.steps`` outer steps and
keeps the run directory of :mod:`podd.rundir` up to date: metrics, checkpoints, the final poster.
It adds what a long run needs around the engine: a progress bar and a one-time estimate of the
remaining time, resuming bit-identically from the last checkpoint, a clear message on Ctrl-C
(:class:`RunInterrupted`), on NaN/inf and on running out of GPU memory, and the bookkeeping of
a distributed run (:mod:`podd.parallel`); experiment trackers (TensorBoard, W&B:
:mod:`podd.tracking`) get what ``metrics.jsonl`` gets. The engine itself (:mod:`podd.distiller`,
:mod:`podd.ratbptt`) knows nothing of run directories.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from podd import rundir, tracking
from podd.config import DistillConfig
from podd.data.dataset import check_fingerprint
from podd.distiller import Distiller, NonFiniteLossError
from podd.io import write_json
from podd.modes import validate
from podd.notes import note_once
from podd.parallel import SINGLE


@dataclass
class DistillResult:
    artifact: Any  # podd.artifacts.PosterArtifact
    history: list[dict] = field(default_factory=list)
    out_dir: Path | None = None
    evaluation: Any = None  # podd.evaluate.EvalResult of the final poster, if evaluated
    wall_time_s: float = 0.0


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says where the last checkpoint is and how to resume."""


class RunStopped(Exception):
    """The run's ``stop`` event was set (a job's warning signal, :mod:`podd.jobs`): the step in
    progress was finished, a checkpoint written, and ``resume=True`` continues from it."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step


# --------------------------------------------------------------------------------------------
# starting and resuming
# --------------------------------------------------------------------------------------------
def distill(
    config: DistillConfig,
    dataset=None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    preprocessor=None,
    parallel=None,
    stop=None,
    log=None,
    log_image_every: int | None = None,
) -> DistillResult:
    """Run ``config.steps`` outer steps, evaluating, logging and checkpointing as configured.

    With ``out_dir`` a run directory is written (see podd.rundir); ``resume=True`` continues the
    run found there from its last checkpoint — on CPU bit-identically to an uninterrupted run.
    The directory is locked while the run writes into it (a second run there is refused).
    A NaN/inf loss stops the run with the step number; the last good checkpoint stays.

    ``parallel`` (:func:`podd.parallel.from_env`): this process is one rank of several. Only
    rank 0 touches the run directory, shows progress and evaluates; the others receive the
    checkpoint to resume from rank 0 and return a result without evaluation.

    ``stop`` (a :class:`threading.Event`, set e.g. by a signal handler): once set, the run ends
    after the step in progress with a checkpoint of that step and raises :class:`RunStopped`.
    The ranks of a distributed run (each with its own ``stop``) all end after the first step
    at which any rank's was set; rank 0 writes the checkpoint.

    ``log`` (:mod:`podd.tracking`): ``"tensorboard"``, ``"wandb"`` or both (a list) also log the
    run's scalars, and its poster every ``log_image_every`` steps (default
    :data:`podd.tracking.DEFAULT_IMAGE_EVERY`), into the run directory; a resume without ``log``
    continues what the run tracked. A backend whose package is missing is refused before any data
    is loaded (:class:`podd.tracking.TrackingUnavailable`). Rank 0 alone tracks.
    """
    parallel = parallel or SINGLE
    if out_dir is None and resume:
        raise ValueError("resume=True needs the run directory (out_dir / --out) to resume")
    # every rank checks the packages (the same environment): none waits for a rank that failed
    track = tracking.plan(log, log_image_every, out_dir, resume)
    if out_dir is None:
        return _distill(config, dataset, None, False, progress and parallel.is_main, preprocessor, parallel, stop)
    if not parallel.is_main:
        return _distill(config, dataset, None, resume, False, preprocessor, parallel, stop)
    run = rundir.RunDir(out_dir)
    validate(config)  # impossible settings: refused before the directory is made
    if resume:
        if not run.path.is_dir():
            run.load_checkpoint()  # says that there is nothing to resume
    else:
        run.check_target()
        run.check_new()
    with run.locked():
        return _distill(config, dataset, run, resume, progress, preprocessor, parallel, stop, track)


def _distill(
    config: DistillConfig,
    dataset,
    run,
    resume: bool,
    progress: bool,
    preprocessor,
    parallel,
    stop=None,
    track: tracking.TrackingPlan | None = None,
) -> DistillResult:
    """:func:`distill` in a run directory already held (``run``), or without one (also every
    rank but 0 of a distributed run, ``run=None``, which gets a resumed run's state from rank 0).
    ``track``: what to track (:func:`podd.tracking.plan`), in ``run`` only.
    """
    history: list[dict] = []
    wall_before = 0.0
    state = None
    if resume:
        if run is not None:
            checkpoint = run.load_checkpoint()
            config = rundir.resume_config(checkpoint["config"], config)
            state, history = checkpoint["distiller"], checkpoint["history"]
            rundir.check_resume_steps(config, int(state["step"]), run.path)
            run.restore_config_file(checkpoint)
            wall_before = float(checkpoint.get("wall_time_s", 0.0))
        config, state, history, wall_before = parallel.from_main((config, state, history, wall_before))
    elif run is not None:
        run.check_new()
    distiller = Distiller(config, dataset, preprocessor, parallel)  # fails before any file
    if run is not None and not resume:
        run.begin(distiller.config)
    if state is not None:
        if run is not None:  # data replaced since the run began: refused, not silently mixed
            check_fingerprint(
                state.get("data_fingerprint"),
                distiller.dataset,
                f"--resume {run.path}",
                "restore the data the run began with to continue it, or start a new "
                "run on the new data in another --out",
            )
        distiller.load_state_dict(state)
        if run is not None:
            run.rewrite_metrics(history)
    if run is not None and (parallel.world_size > 1 or run.file("distributed.json").exists()):
        _record_parallel(run, parallel, distiller.step_count)
    tracker = None
    if run is not None and track is not None:
        tracker = tracking.open_tracking(
            track, run.path, distiller.config.to_dict(), distiller.preprocessor, distiller.step_count, resume
        )
    try:
        if tracker is not None and not resume:
            tracker.log_poster(0, distiller.poster)  # where the poster starts
        return _train(distiller, run, history, wall_before, progress, stop, tracker)
    except KeyboardInterrupt:
        raise RunInterrupted(_interrupted_message(distiller, run)) from None
    finally:
        if tracker is not None:
            tracker.close()


def _record_parallel(run, parallel, step: int) -> None:
    """Append (from which step, variant, world size) to the run's ``distributed.json``: the
    ``tasks`` variant's trajectory depends on the world size. A distributed run resumed in one
    process gets a segment too (variant None, world size 1), so the file never claims more
    processes than ran."""
    path = run.file("distributed.json")
    segments = json.loads(path.read_text()) if path.exists() else []
    where = parallel.describe() if parallel.world_size > 1 else {"variant": None, "world_size": 1}
    segments.append({"from_step": int(step), **where})
    write_json(path, segments)


# --------------------------------------------------------------------------------------------
# the outer steps
# --------------------------------------------------------------------------------------------
def _train(
    distiller: Distiller, run, history: list[dict], wall_before: float, progress: bool, stop=None, tracker=None
) -> DistillResult:
    """The outer steps, evaluation and final files of :func:`distill` (after its setup)."""
    cfg = distiller.config
    bar = _Bar(cfg, distiller.step_count, progress, history)
    t0 = time.perf_counter()

    def elapsed() -> float:
        return wall_before + time.perf_counter() - t0

    try:
        _outer_steps(distiller, run, history, bar, elapsed, stop, tracker)
        end_state = _select_best(distiller, run, history, tracker)  # None without best_every
    except NonFiniteLossError as error:
        raise _non_finite_error(error, cfg, run) from None
    except torch.cuda.OutOfMemoryError as error:
        raise RuntimeError(_oom_message(cfg)) from error
    finally:
        bar.close()

    evaluation = _final_evaluation(distiller, run, history, tracker)
    artifact = distiller.artifact()
    if tracker is not None:
        tracker.log_poster(distiller.step_count, artifact.poster)  # the final (chosen) poster
    wall = elapsed()
    if run is not None:
        # the checkpoint is where the trajectory ended (to resume from), not the chosen poster
        run.save_checkpoint(end_state or distiller.state_dict(), cfg, history, wall)
        run.finish(artifact, distiller, history, evaluation, wall)
    return DistillResult(artifact, history, run.path if run is not None else None, evaluation, wall)


def _outer_steps(
    distiller: Distiller, run, history: list[dict], bar: _Bar, elapsed: Callable[[], float], stop=None, tracker=None
) -> None:
    """Step until ``config.steps``; log every ``log_every``, evaluate every ``eval_every`` and
    score for the best poster every ``best_every`` (rank 0 only), and checkpoint every
    ``checkpoint_every`` steps, and when ``stop`` is set (:class:`RunStopped`). ``tracker``
    (:mod:`podd.tracking`) gets each record and, when due, the poster."""
    cfg = distiller.config
    main = distiller.parallel.is_main  # rank 0 alone reports and evaluates
    log = _LossLog(distiller.step_count)
    estimate = _TimeEstimate(cfg, distiller.device)
    estimate.done = not main
    while distiller.step_count < cfg.steps:
        log.add(distiller.step())
        step = distiller.step_count
        estimate.after_step(step)
        record = None
        if step % cfg.log_every == 0 or step == cfg.steps:
            record = log.record(distiller)
        if (
            main
            and cfg.eval_every
            and cfg.eval_models
            and distiller.can_evaluate
            and step % cfg.eval_every == 0
            and step < cfg.steps
        ):
            result = distiller.evaluate()
            record = (record or {"step": step}) | {"eval_accuracy": result.mean(), "eval_std": result.std()}
            log.restart_clock()  # evaluation time is not distillation speed
        if main and cfg.best_every and step % cfg.best_every == 0 and step < cfg.steps:
            record = (record or {"step": step}) | {"train_accuracy": distiller.consider_best()}
            log.restart_clock()
        if record is not None:
            history.append(record)
            _write(run, tracker, record, distiller)
            bar.show(record)
        if tracker is not None and tracker.image_due(step) and step < cfg.steps:
            tracker.log_poster(step, distiller.poster)
        bar.update()
        if run is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            run.save_checkpoint(distiller.state_dict(), cfg, history, elapsed())
        if (
            stop is not None and step < cfg.steps and distiller.parallel.any_rank(stop.is_set())
        ):  # the same step on every rank
            _stop_here(distiller, run, history, elapsed())
    distiller.check_finite()


def _write(run, tracker, record: dict, distiller: Distiller) -> None:
    """One record to ``metrics.jsonl`` and to the trackers (with the learning rates)."""
    if run is not None:
        run.append_metrics(record)
    if tracker is not None:
        tracker.log_scalars(record["step"], tracking.scalars(record, _learning_rates(distiller)))


def _learning_rates(distiller: Distiller) -> dict[str, float]:
    """The outer Adam's learning rates (poster, labels when learned) and the inner one."""
    groups = distiller.optimizer.param_groups
    rates = {"lr/outer": float(groups[0]["lr"]), "lr/inner": float(distiller.config.inner_lr)}
    if len(groups) > 1:
        rates["lr/label"] = float(groups[1]["lr"])
    return rates


def _stop_here(distiller: Distiller, run, history: list[dict], wall: float) -> None:
    """End the run at this step boundary, its state saved (unless the step just saved it)."""
    distiller.check_finite()  # never a checkpoint of a NaN poster
    step, cfg = distiller.step_count, distiller.config
    if run is None:
        raise RunStopped(step, f"stopped at step {step} of {cfg.steps} on request (no run directory: nothing was kept)")
    if run.checkpoint_step() != step:
        run.save_checkpoint(distiller.state_dict(), cfg, history, wall)
    raise RunStopped(
        step,
        f"stopped at step {step} of {cfg.steps} on request; the checkpoint "
        f"is {run.file(rundir.CHECKPOINT)}: resume=True (podd distill --resume "
        f"--out {run.path}) continues the run",
    )


class _LossLog:
    """The mean outer loss and the speed (steps/s) since the last logged step. The losses stay
    device tensors until a step is logged: one host sync per log line, not per step."""

    def __init__(self, step: int):
        self.losses: list[torch.Tensor] = []
        self.time, self.step = time.perf_counter(), step

    def add(self, loss: torch.Tensor) -> None:
        self.losses.append(loss)

    def record(self, distiller: Distiller) -> dict:
        distiller.check_finite()
        now, step = time.perf_counter(), distiller.step_count
        loss = float(torch.stack(self.losses).mean())
        self.losses = []
        record = {
            "step": step,
            "loss": loss,
            "epoch": distiller.epoch,
            "steps_per_s": (step - self.step) / max(now - self.time, 1e-9),
        }
        self.time, self.step = now, step
        return record

    def restart_clock(self) -> None:
        self.time = time.perf_counter()


class _Bar:
    """The progress bar (nothing when ``enabled`` is false), showing loss, speed and the last
    evaluated accuracy."""

    def __init__(self, cfg: DistillConfig, initial: int, enabled: bool, history: list[dict]):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=cfg.steps, initial=initial, desc=f"distill {cfg.dataset}", unit="step", dynamic_ncols=True
            )
        self.last_acc = next((h["eval_accuracy"] for h in reversed(history) if "eval_accuracy" in h), None)

    def show(self, record: dict) -> None:
        self.last_acc = record.get("eval_accuracy", self.last_acc)
        if self.bar is None:
            return
        postfix = {"loss": f"{record.get('loss', float('nan')):.3f}", "it/s": f"{record.get('steps_per_s', 0):.1f}"}
        if self.last_acc is not None:
            postfix["acc"] = f"{self.last_acc:.1f}"
        self.bar.set_postfix(postfix, refresh=False)

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _select_best(distiller: Distiller, run, history: list[dict], tracker=None) -> dict | None:
    """With ``best_every`` (rank 0): score the last poster too, then put the best-scoring one
    in place for the final evaluation and the artifact, and record which it was. Returns the
    state where the trajectory ended (for the checkpoint), or None without selection."""
    cfg, step = distiller.config, distiller.step_count
    if not cfg.best_every or not distiller.parallel.is_main:
        return None
    scored = any(h.get("step") == step and "train_accuracy" in h for h in history)
    if not scored:  # the loop scores before the last step only
        record = {"step": step, "train_accuracy": distiller.consider_best()}
        history.append(record)
        _write(run, tracker, record, distiller)
    end_state = distiller.state_dict()
    distiller.restore_best()
    best = distiller.best
    record = {"step": step, "best_step": best["step"], "best_train_accuracy": best["train_accuracy"]}
    history.append(record)
    _write(run, tracker, record, distiller)
    return end_state


def _final_evaluation(distiller: Distiller, run, history: list[dict], tracker=None):
    """Evaluate the final poster (rank 0, when configured and possible) and record it."""
    cfg = distiller.config
    if not distiller.parallel.is_main or not cfg.eval_models:
        return None
    if not distiller.can_evaluate:
        note_once(
            f"{cfg.dataset} has no test images (a train-only npz): the poster is saved "
            f"without a test evaluation; add x_test and y_test to evaluate it"
        )
        return None
    try:
        evaluation = distiller.evaluate()
    except torch.cuda.OutOfMemoryError as error:
        raise RuntimeError(_oom_message(cfg)) from error
    record = {
        "step": distiller.step_count,
        "eval_accuracy": evaluation.mean(),
        "eval_std": evaluation.std(),
        "final": True,
    }
    history.append(record)
    _write(run, tracker, record, distiller)
    return evaluation


# --------------------------------------------------------------------------------------------
# what a user is told when a run stops early
# --------------------------------------------------------------------------------------------
def _non_finite_error(error: NonFiniteLossError, cfg: DistillConfig, run) -> NonFiniteLossError:
    where = ""
    if run is not None:
        kept = run.checkpoint_step()
        where = (
            f"; the last good checkpoint (step {kept}) is kept in {run.path}"
            if kept is not None
            else f"; no checkpoint had been written yet in {run.path}"
        )
    return NonFiniteLossError(
        error.step,
        f"the outer loss or poster gradient became NaN/inf at outer step "
        f"{error.step}{where}; lower outer_lr={cfg.outer_lr} or "
        f"inner_lr={cfg.inner_lr}",
    )


def _oom_message(config: DistillConfig) -> str:
    savers = {}  # the memory savers not yet in use: same gradient, less memory
    if not config.recompute_window:
        savers["recompute_window"] = True
    current = config.real_chunk or config.real_batch
    if current > 64:
        savers["real_chunk"] = current // 4
    first = ""
    if savers:
        cli = " ".join(f"--set {k}={str(v).lower()}" for k, v in savers.items())
        python = ", ".join(f"{k}={v}" for k, v in savers.items())
        first = (
            f"first try the memory savers, which keep the gradient the same: {cli} (resolve_config(..., {python})); "
        )
    return (
        f"the GPU ran out of memory; {first}otherwise lower the batch sizes: "
        f"distill_batch={config.distill_batch}, real_batch={config.real_batch}, "
        f"window={config.window} (e.g. --set real_batch={max(1, config.real_batch // 2)}, "
        f"in Python resolve_config(..., real_batch={max(1, config.real_batch // 2)}), or a "
        f"smaller --profile)"
    )


def _interrupted_message(distiller: Distiller, run) -> str:
    import shlex

    cfg = distiller.config
    where = f"interrupted at step {distiller.step_count} of {cfg.steps}"
    if run is None:
        return where
    kept = run.checkpoint_step()
    if kept is None:
        return (
            f"{where}, before the first checkpoint (checkpoint_every={cfg.checkpoint_every}); "
            f"there is nothing to resume in {run.path}: run the same command again to start "
            f"over"
        )
    return (
        f"{where}; the last checkpoint (step {kept}) is {run.file(rundir.CHECKPOINT)}. "
        f"Continue the run with:\n  podd distill --resume --out {shlex.quote(str(run.path))}"
    )


# --------------------------------------------------------------------------------------------
# the time estimate
# --------------------------------------------------------------------------------------------
#: The time estimate: measured over the steps after the first (warm-up) one, printed once after
#: ETA_FIRST_STEPS of them (or ETA_FIRST_S seconds), and only when the rest takes ETA_MIN_S or
#: more; on a CPU, beyond ETA_LONG_ON_CPU_S, with a hint (profile quick, a GPU, --threads).
ETA_FIRST_STEPS, ETA_FIRST_S, ETA_MIN_S, ETA_LONG_ON_CPU_S = 3, 10.0, 60.0, 3600.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class _TimeEstimate:
    """Says, once, how long the remaining steps will take (see :data:`ETA_FIRST_STEPS`)."""

    def __init__(self, config: DistillConfig, device: torch.device):
        self.config, self.device = config, device
        self.start: tuple[float, int] | None = None
        self.done = False

    def after_step(self, step: int) -> None:
        if self.done:
            return
        now = time.perf_counter()
        if self.start is None:  # the first step pays for warm-up: measure from its end
            self.start = (now, step)
            return
        t_start, s_start = self.start
        measured = step - s_start
        if measured < ETA_FIRST_STEPS and now - t_start < ETA_FIRST_S:
            return
        self.done = True
        per_step = (now - t_start) / measured
        remaining = per_step * (self.config.steps - step)
        if remaining >= ETA_MIN_S:
            from tqdm import tqdm

            for line in self._lines(step, per_step, remaining):
                tqdm.write(line, file=sys.stderr)

    def _lines(self, step: int, per_step: float, remaining: float) -> list[str]:
        cfg = self.config
        lines = [
            f"estimated time: {_duration(remaining)} for the remaining {cfg.steps - step} "
            f"steps ({per_step:.3g} s per step on {self.device.type}, evaluations not "
            f"counted)"
        ]
        if self.device.type == "cpu" and remaining > ETA_LONG_ON_CPU_S:
            # Only the paper profile is sized for a GPU; a long quick run (CIFAR-size data on
            # a busy CPU) needs no advice to switch to the profile it already uses.
            smaller = (
                "--profile quick finishes in minutes on a CPU"
                if cfg.profile == "paper"
                else "fewer --steps are quicker"
            )
            hint = (
                f"hint: {cfg.steps} outer steps of profile {cfg.profile!r} take long on a "
                f"CPU; {smaller} (or run where torch sees a CUDA GPU: the default device "
                "'auto' then uses it)"
            )
            if torch.get_num_threads() > 1:
                hint += f"; on a busy machine --threads 1 can be much faster than {torch.get_num_threads()} threads"
            lines.append(hint)
        return lines

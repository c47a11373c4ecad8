"""``make demo``: distil the bundled digits into posters and compare them with real images.

Distils scikit-learn's digits (all 1797 images: the data layer's stratified train/test split)
three ways — PoDD at 0.5 and 1 IPC, and the RaT-BPTT baseline at 1 IPC (one non-overlapping
image per class) — then trains fresh ConvNets on each result and on a random real 1-IPC subset,
and prints a table of test accuracy (mean ± std over the evaluation models). Posters go to
``runs/demo/`` as PNG files (with the full run directories beside them).

The paper's claim to look for: PoDD at 1 IPC beats both the real subset and the baseline, and
PoDD at 0.5 IPC (half the pixels) still matches the real 1-IPC subset.

``python -m podd.demo [--out DIR] [--seed S] [--eval-models M] [--profile quick|paper|smoke]
[--workers N]``: the three distillations (and the real subset) run in N single-threaded
processes, by default one per distillation (at most two per CPU core).
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from podd.modes import check_class_order

DATA_LABEL = "digits (sklearn, full 1797 images)"

# (method label, mode, ipc) — the rows the paper's comparison needs on digits.
METHODS = (("PoDD", "podd", 0.5), ("PoDD", "podd", 1.0), ("RaT-BPTT baseline", "baseline", 1.0))


def compare_on_digits(profile: str = "quick", seeds=(0,), eval_models: int | None = None,
                      eval_steps=None, out_dir: str | Path | None = "runs/demo",
                      progress: bool = True, dataset=None, methods=METHODS, workers: int = 1,
                      **overrides) -> dict[str, Any]:
    """The demo's comparison: :func:`compare_methods` on scikit-learn's digits."""
    from podd.data import load_dataset

    ds = dataset if dataset is not None else load_dataset("digits")
    return compare_methods(ds, "digits", DATA_LABEL, profile, seeds=seeds,
                           eval_models=eval_models, eval_steps=eval_steps, out_dir=out_dir,
                           progress=progress, methods=methods, workers=workers, **overrides)


def compare_methods(ds, preset: str, data_label: str, profile: str = "quick", seeds=(0,),
                    eval_models: int | None = None, eval_steps=None,
                    out_dir: str | Path | None = None, progress: bool = True, methods=METHODS,
                    workers: int = 1, continue_from: dict[str, str] | None = None,
                    resume: bool = False, **overrides) -> dict[str, Any]:
    """Distil ``ds`` with each of ``methods`` for each seed, evaluate, and return rows + settings.

    ``preset`` names the dataset whose settings the runs take (:func:`podd.presets.resolve_config`
    with ``like=preset``: e.g. ``"cifar10"`` for an ``npz:`` file of CIFAR-10 images);
    ``data_label`` says in words what the data is (a subset? a stand-in?) for the table.

    Each row: method, mode, ipc (effective, from the poster's pixels), pixels, seeds, per-model
    accuracies (all seeds pooled), mean and std. The random-real row evaluates one random
    1-IPC subset per seed (subset seed = distillation seed) with the same protocol.
    ``methods``: a subset of METHODS; ``overrides``: DistillConfig values for every distillation
    (e.g. ``steps=600``).

    ``continue_from`` ({run name: earlier run directory}, e.g. an earlier report's ``runs``):
    those distillations copy the earlier run into ``out_dir`` and go on from its last checkpoint
    to this config's ``steps``, instead of starting again. On the CPU that is bit-identical to
    a run that went there at once, so more outer steps cost only the new steps; a run made with
    other settings is refused (:func:`podd.runs.resume_config`).

    ``resume=True`` keeps what ``out_dir`` already holds from an interrupted (or failed)
    comparison with the same settings: a finished distillation is taken as it is (its
    evaluation from ``final.json``), one stopped after a checkpoint goes on from it, and only
    the others start again; a run directory made with other settings is refused. The report's
    ``made_at`` names the commit each distillation was made at (for one taken finished, the
    commit its ``final.json`` was written at), and ``taken_finished`` the runs taken as they were.

    ``workers`` > 1 runs the jobs (one per distillation, plus the real subsets) in that many
    single-threaded processes. These networks are too small for a second torch thread to help
    (measured: 2 threads gain ~20 %, and stall on a busy machine), but independent
    distillations use every core fully. Each job is seeded and single-threaded either way, so
    the results do not depend on ``workers``.
    """
    t0 = time.perf_counter()
    base = _base_config(ds, preset, profile, overrides)
    eval_models = eval_models or base.eval_models
    eval_steps = tuple(eval_steps or base.eval_steps)
    out_dir = Path(out_dir) if out_dir is not None else None
    if continue_from and out_dir is None:
        raise ValueError("continue_from needs out_dir: the earlier runs are copied there")
    if resume and out_dir is None:
        raise ValueError("resume needs out_dir: the run directories to go on from")
    jobs = [_Job("random real", "real", 1.0, seed) for seed in seeds]
    jobs += [_Job(method, mode, ipc, seed) for method, mode, ipc in methods for seed in seeds]
    for _, mode, ipc in methods:   # missing CLIP weights: said now, not after other runs
        check_class_order(job_config(ds, profile, mode, ipc, seeds[0], eval_models, eval_steps,
                                     overrides, preset), ds.class_names, tuple(ds.image_shape))
    shared = dict(ds=ds, preset=preset, profile=profile, overrides=overrides,
                  eval_models=eval_models, eval_steps=eval_steps, out_dir=out_dir,
                  continue_from=dict(continue_from or {}), resume=resume)
    outcomes = _run_jobs(jobs, shared, workers, progress)

    rows, runs, made_at = [], {}, {}
    for method, mode, ipc in (("random real", "real", 1.0), *methods):
        done = [outcomes[job] for job in jobs if (job.method, job.mode, job.ipc) == (method, mode, ipc)]
        accuracy = torch.cat([o["accuracy"] for o in done])
        rows.append(_row(method, mode, done[-1]["ipc"], done[-1]["pixels"], seeds, accuracy))
        runs.update({o["name"]: o["run_dir"] for o in done if o["name"] is not None})
        made_at.update({o["name"]: o["commit"] for o in done if o["name"] is not None})

    return {"dataset": data_label, "data_source": getattr(ds, "source", "full"),
            "profile": profile, "seeds": list(seeds), "eval_models_per_seed": eval_models,
            "eval_steps": eval_steps[-1], "settings": base.to_dict(), "overrides": overrides,
            "rows": rows, "runs": runs, "made_at": made_at,
            "taken_finished": sorted(o["name"] for o in outcomes.values() if o.get("taken")),
            "workers": workers,
            "wall_time_s": round(time.perf_counter() - t0, 1)}


@dataclass(frozen=True)
class _Job:
    """One independent unit of the comparison: a distillation (or a real subset) and its
    evaluation."""

    method: str
    mode: str       # "real" | "podd" | "baseline"
    ipc: float
    seed: int

    def label(self) -> str:
        return f"{self.method} {self.ipc:g} IPC, seed {self.seed}"


def _run_jobs(jobs: list[_Job], shared: dict, workers: int, progress: bool) -> dict:
    """Run every job, inline (workers = 1) or in ``workers`` single-threaded processes; return
    {job: outcome}. Long jobs are started first so the processes finish together."""
    if workers < 1:
        raise ValueError(f"workers={workers}: must be at least 1")
    # PoDD runs (the longest: every patch in every inner step), then the baselines, then the
    # real subsets (no distillation); a stable sort keeps the given order within each.
    order = sorted(jobs, key=lambda job: (job.mode == "real", job.mode == "baseline"))
    outcomes = {}
    if workers == 1:
        for job in order:
            outcomes[job] = _announce(_run_job(job, shared, progress), job, progress)
        return outcomes
    from concurrent.futures import as_completed

    from podd.executors import PoolExecutor

    if progress:
        print(f"running {len(jobs)} jobs ({sum(job.mode != 'real' for job in jobs)} "
              f"distillations) in {min(workers, len(jobs))} single-threaded processes; each "
              f"reports when it is done", flush=True)
    with PoolExecutor(min(workers, len(jobs)), threads=1) as pool:
        futures = {pool.submit(_run_job, job, shared, False): job for job in order}
        for future in as_completed(futures):
            job = futures[future]
            outcomes[job] = _announce(future.result(), job, progress)
    return outcomes


def _announce(outcome: dict, job: _Job, progress: bool) -> dict:
    if progress:
        print(f"done: {job.label()}: {float(outcome['accuracy'].double().mean()):.1f} % "
              f"({outcome['seconds']:.0f} s)", flush=True)
    return outcome


def _base_config(ds, preset: str, profile: str, overrides: dict):
    """The comparison's shared settings (evaluation, preprocessing): ``preset``'s settings as
    :func:`podd.presets.resolve_config` resolves them for this data."""
    from podd.presets import resolve_config

    return resolve_config(ds.name, profile, like=preset, num_classes=ds.num_classes,
                          image_shape=tuple(ds.image_shape), **overrides)


def job_config(ds, profile: str, mode: str, ipc: float, seed: int, eval_models: int,
               eval_steps, overrides: dict | None = None, preset: str = "digits"):
    """The config of one distillation of the comparison: :func:`podd.presets.resolve_config`,
    the same as ``podd distill --dataset DS --like PRESET --ipc IPC --mode MODE --seed SEED``
    with the comparison's evaluation settings."""
    from podd.presets import resolve_config

    return resolve_config(ds.name, profile, like=preset, mode=mode, ipc=ipc,
                          num_classes=ds.num_classes, image_shape=tuple(ds.image_shape),
                          **{**(overrides or {}), "seed": seed, "eval_models": eval_models,
                             "eval_steps": tuple(eval_steps)})


def _run_job(job: _Job, shared: dict, progress: bool) -> dict[str, Any]:
    """Distil (unless the job is a real subset) and evaluate, through the notebooks' path
    (:mod:`podd.experiments.run`); returns the per-model accuracy."""
    from podd.display import save_poster_png
    from podd.experiments.run import distill_and_evaluate, preprocessor_for
    from podd.provenance import git_commit
    from podd.runs import ARTIFACT, CHECKPOINT, FINAL, PNG

    t0, made_at = time.perf_counter(), git_commit()     # the code as the job starts
    ds, profile, overrides = shared["ds"], shared["profile"], shared["overrides"]
    eval_models, eval_steps, out_dir = shared["eval_models"], shared["eval_steps"], shared["out_dir"]
    (_, h, w), K = ds.image_shape, ds.num_classes
    if job.mode == "real":
        accuracy = random_real_accuracy(ds, _base_config(ds, shared["preset"], profile, overrides),
                                        eval_models, eval_steps, job.seed)
        return {"accuracy": accuracy[:, -1], "ipc": 1.0, "pixels": K * h * w,
                "name": None, "run_dir": None, "commit": None, "seconds": time.perf_counter() - t0}
    config = job_config(ds, profile, job.mode, job.ipc, job.seed, eval_models, eval_steps,
                        overrides, preset=shared["preset"])
    name = f"{job.mode}-ipc{job.ipc:g}-seed{job.seed}"
    run_dir = out_dir / name if out_dir is not None else None
    about = {"name": name, "run_dir": str(run_dir) if run_dir is not None else None}
    earlier = shared.get("continue_from", {}).get(name)
    stopped_here = False      # run_dir holds this run, cut off after a checkpoint
    if shared.get("resume") and run_dir.exists():
        finished = finished_run(run_dir, config)
        if finished is not None:
            return {**finished, **about, "taken": True, "seconds": time.perf_counter() - t0}
        stopped_here = (run_dir / CHECKPOINT).exists()
    if run_dir is not None and run_dir.exists() and not stopped_here:
        shutil.rmtree(run_dir)  # a fresh start (or from a copy of the earlier run)
    if earlier is not None and not stopped_here:
        # Without the earlier run's finished files: until it reaches the new step count the copy
        # is a run stopped at its last checkpoint, so a continuation cut off resumes (it is not
        # taken for a run finished at the earlier step count).
        shutil.copytree(earlier, run_dir, ignore=shutil.ignore_patterns(FINAL, ARTIFACT, PNG))
    outcome = distill_and_evaluate(config, ds, out_dir=run_dir, progress=progress,
                                   resume=stopped_here or earlier is not None)
    geometry = outcome.artifact.geometry
    if out_dir is not None:
        save_poster_png(out_dir / f"{name}.png", outcome.artifact.poster,
                        preprocessor_for(ds, config.zca))
    return {"accuracy": outcome.evaluation.accuracy[:, -1], "ipc": geometry.ipc,
            "pixels": geometry.pixels, "commit": made_at, **about,
            "seconds": time.perf_counter() - t0}


def finished_run(run_dir: Path, config) -> dict[str, Any] | None:
    """The outcome of the finished run in ``run_dir`` (accuracy per model at the last evaluated
    step, IPC, pixels, the commit it was made at), or None where it has not finished; a run
    made with other settings than ``config`` is refused."""
    import json

    from podd.runs import ARTIFACT, FINAL

    if not ((run_dir / FINAL).exists() and (run_dir / ARTIFACT).exists()):
        return None
    final = json.loads((run_dir / FINAL).read_text(encoding="utf-8"))
    then, now = final["provenance"]["hyperparameters"], json.loads(json.dumps(config.to_dict()))
    if then != now:
        changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
        raise ValueError(f"{run_dir} holds a finished run made with other settings ({changed}); "
                         f"move it away or write the runs elsewhere")
    result = final["result"]
    return {"accuracy": torch.tensor(result["evaluation"]["accuracy"])[:, -1],
            "ipc": result["ipc"], "pixels": result["pixels"],
            "commit": final["provenance"]["git_commit"]}


def random_real_accuracy(ds, settings, eval_models: int, eval_steps, seed: int) -> torch.Tensor:
    """The random-real row of one seed: one random real image per class (subset seed = ``seed``),
    trained with the posters' protocol (``settings``' evaluation, all K images in every step)
    on the CPU; accuracy (%) per model and evaluation step."""
    from podd.experiments.run import real_reference

    config = settings.replace(eval_models=eval_models, eval_steps=tuple(eval_steps), seed=seed,
                              device="cpu")
    return real_reference(ds, config, images_per_class=1, subset_seed=seed).evaluation.accuracy


def _row(method, mode, ipc, pixels, seeds, accuracy: torch.Tensor) -> dict[str, Any]:
    accuracy = accuracy.double()
    return {"method": method, "mode": mode, "ipc": round(float(ipc), 3), "pixels": int(pixels),
            "seeds": list(seeds), "accuracies": [round(float(a), 2) for a in accuracy],
            "mean": float(accuracy.mean()),
            "std": float(accuracy.std()) if accuracy.numel() > 1 else 0.0}


def format_table(report: dict[str, Any]) -> str:
    """A markdown table of the comparison with its data label and protocol."""
    lines = [f"Test accuracy on {report['dataset']}: {len(report['seeds'])} seed(s) × "
             f"{report['eval_models_per_seed']} evaluation ConvNets × {report['eval_steps']} "
             f"steps each (profile `{report['profile']}`"
             + "".join(f", {k}={v}" for k, v in sorted(report.get("overrides", {}).items()))
             + "); mean ± std over all models.",
             "",
             "| method | IPC | pixels | accuracy (%) |",
             "|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['method']} | {row['ipc']:.2f} | {row['pixels']} | "
                     f"{row['mean']:.1f} ± {row['std']:.1f} |")
    return "\n".join(lines)


def default_workers(num_distillations: int) -> int:
    """One process per distillation, up to twice the CPU cores this process may use.

    The jobs differ in length (a baseline run costs ~60 % of a PoDD run on digits), so one
    process per core leaves a core idle at the end; one per distillation lets the OS balance
    them. Measured for ``make demo`` on 2 cores: 60 s with 2 processes, 54 s with 3.
    """
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(num_distillations, 2 * cores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podd.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/demo", help="where posters and runs go")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-models", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes running the distillations side by side, one torch thread "
                             "each (default: one per distillation, at most 2 per CPU core)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads when --workers 1 (default 1: these tiny "
                             "convolutions gain little from a second thread, and oversubscribed "
                             "threads slow to a crawl on a busy machine)")
    args = parser.parse_args(argv)
    workers = args.workers if args.workers is not None else default_workers(len(METHODS))
    if workers < 1:
        parser.error(f"--workers {workers}: must be at least 1")
    torch.set_num_threads(args.threads)
    report = compare_on_digits(args.profile, seeds=(args.seed,), eval_models=args.eval_models,
                               out_dir=args.out, progress=not args.no_progress, workers=workers)
    print()
    print(format_table(report))
    print(f"\nposters: {', '.join(sorted(str(p) for p in Path(args.out).glob('*.png')))}")
    print(f"total time: {report['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

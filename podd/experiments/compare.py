"""Methods compared on one dataset: each distilled for each seed and evaluated, beside random real
images evaluated the same way; the rows of ``make demo`` and of the quality benchmarks.

The runs are the cells of a :class:`~podd.experiments.sweep.Sweep`: in this process, or side by
side in single-threaded local processes (``workers``), each in its own run directory when
``out_dir`` is given, so that a comparison cut off goes on where it stopped (``resume``) and more
outer steps go on from an earlier comparison's runs (``continue_from``).
"""

from __future__ import annotations

import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import torch

from podd.data import load_dataset
from podd.experiments.run import method_label, real_reference
from podd.experiments.sweep import Sweep
from podd.modes import check_class_order
from podd.presets import resolve_config

DIGITS_LABEL = "digits (sklearn, full 1797 images)"

#: (mode, ipc) — the rows the paper's comparison needs on digits (make demo,
#: benchmarks/quality_digits.py); the random-real row is always added.
DIGITS_METHODS = (("podd", 0.5), ("podd", 1.0), ("baseline", 1.0))


def compare_on_digits(
    profile: str = "quick",
    seeds=(0,),
    eval_models: int | None = None,
    eval_steps=None,
    out_dir: str | Path | None = "runs/demo",
    progress: bool = True,
    dataset=None,
    methods=DIGITS_METHODS,
    workers: int = 1,
    **overrides,
) -> dict[str, Any]:
    """The demo's comparison: :func:`compare_methods` on scikit-learn's digits."""
    ds = dataset if dataset is not None else load_dataset("digits")
    return compare_methods(
        ds,
        "digits",
        DIGITS_LABEL,
        profile,
        seeds=seeds,
        eval_models=eval_models,
        eval_steps=eval_steps,
        out_dir=out_dir,
        progress=progress,
        methods=methods,
        workers=workers,
        **overrides,
    )


def compare_methods(
    ds,
    preset: str,
    data_label: str,
    profile: str = "quick",
    seeds=(0,),
    eval_models: int | None = None,
    eval_steps=None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    methods=DIGITS_METHODS,
    workers: int = 1,
    continue_from: dict[str, str] | None = None,
    resume: bool = False,
    **overrides,
) -> dict[str, Any]:
    """Distil ``ds`` with each of ``methods`` ((mode, ipc) pairs) for each seed, evaluate, and
    return rows + settings.

    ``preset`` names the dataset whose settings the runs take (:func:`podd.presets.resolve_config`
    with ``like=preset``: e.g. ``"cifar10"`` for an ``npz:`` file of CIFAR-10 images);
    ``data_label`` says in words what the data is (a subset? a stand-in?) for the table.

    Each row: method (its label, :data:`~podd.experiments.run.METHOD_NAMES`), mode, ipc
    (effective, from the poster's pixels), pixels, seeds, per-model accuracies (all seeds
    pooled), mean and std. The random-real row evaluates one random 1-IPC subset per seed (subset
    seed = distillation seed) with the same protocol. ``overrides``: DistillConfig values for
    every distillation (e.g. ``steps=600``). Each run is named ``MODE-ipcR-seedS``; with
    ``out_dir`` its run directory and poster PNG go there.

    ``continue_from`` ({run name: earlier run directory}, e.g. an earlier report's ``runs``):
    those distillations copy the earlier run into ``out_dir`` and go on from its last checkpoint
    to this config's ``steps``, instead of starting again. On the CPU that is bit-identical to
    a run that went there at once, so more outer steps cost only the new steps; a run made with
    other settings is refused (:func:`podd.rundir.resume_config`).

    ``resume=True`` keeps what ``out_dir`` already holds from an interrupted (or failed)
    comparison with the same settings: a finished distillation is taken as it is (its
    evaluation from ``final.json``), one stopped after a checkpoint goes on from it, and only
    the others start again; a run directory made with other settings is refused. Without it,
    every run starts again. The report's ``made_at`` names the commit each distillation was made
    at (for one taken finished, the commit its ``final.json`` was written at), and
    ``taken_finished`` the runs taken as they were.

    ``workers`` > 1 runs the runs in that many single-threaded processes (the longest first, so
    that the processes finish together). These networks are too small for a second torch thread
    to help, but independent distillations use every core fully. Each run is seeded and
    single-threaded either way, so the results do not depend on ``workers``.
    """
    t0 = time.perf_counter()
    base = _base_config(ds, preset, profile, overrides)
    eval_models = eval_models or base.eval_models
    eval_steps = tuple(eval_steps or base.eval_steps)
    if continue_from and out_dir is None:
        raise ValueError("continue_from needs out_dir: the earlier runs are copied there")
    if resume and out_dir is None:
        raise ValueError("resume needs out_dir: the run directories to go on from")
    if workers < 1:
        raise ValueError(f"workers={workers}: must be at least 1")
    configs = {
        (mode, ipc, seed): job_config(ds, profile, mode, ipc, seed, eval_models, eval_steps, overrides, preset)
        for mode, ipc in methods
        for seed in seeds
    }
    for mode, ipc in methods:  # missing CLIP weights: said now, not after other runs
        check_class_order(configs[mode, ipc, seeds[0]], ds.class_names, tuple(ds.image_shape))
    runs = [*run_order(configs), *(("real", 1.0, seed) for seed in seeds)]
    processes = min(workers, len(runs))
    if progress and processes > 1:
        print(
            f"running {len(runs)} jobs ({len(configs)} distillations) in {processes} "
            f"single-threaded processes; each reports when it is done",
            flush=True,
        )

    futures, outcomes = {}, {}
    with Sweep(
        ds,
        "local",
        name="comparison",
        out_dir=out_dir,
        run_dirs=out_dir is not None,
        reattach=resume,
        posters=True,
        progress=progress and processes == 1,
        workers=processes,
        threads=1,
    ) as sweep:
        for run in runs:
            mode, ipc, seed = run
            if mode == "real":
                futures[run] = sweep.reference(real_config(base, eval_models, eval_steps, seed), 1, seed)
            else:
                futures[run] = sweep.distill(
                    configs[run], cell=run_name(*run), continue_from=(continue_from or {}).get(run_name(*run))
                )
            if futures[run].done():  # run in this process, or taken finished
                outcomes[run] = _announce(futures[run].result(), run, progress)
        pending = {future: run for run, future in futures.items() if run not in outcomes}
        for future in as_completed(pending):
            outcomes[pending[future]] = _announce(future.result(), pending[future], progress)

    (_, h, w), K = ds.image_shape, ds.num_classes
    rows, run_dirs, made_at = [], {}, {}
    for mode, ipc in (("real", 1.0), *methods):
        done = [outcomes[mode, ipc, seed] for seed in seeds]
        accuracy = torch.cat([o.evaluation.accuracy[:, -1] for o in done])
        geometry = done[-1].artifact.geometry if mode != "real" else None
        rows.append(
            _row(
                method_label(mode),
                mode,
                geometry.ipc if geometry else 1.0,
                geometry.pixels if geometry else K * h * w,
                seeds,
                accuracy,
            )
        )
        if mode != "real":
            for seed, outcome in zip(seeds, done):
                name = run_name(mode, ipc, seed)
                run_dirs[name] = str(Path(out_dir) / name) if out_dir is not None else None
                made_at[name] = outcome.made_at

    return {
        "dataset": data_label,
        "data_source": getattr(ds, "source", "full"),
        "profile": profile,
        "seeds": list(seeds),
        "eval_models_per_seed": eval_models,
        "eval_steps": eval_steps[-1],
        "settings": base.to_dict(),
        "overrides": overrides,
        "rows": rows,
        "runs": run_dirs,
        "made_at": made_at,
        "taken_finished": sorted(run_name(*run) for run, o in outcomes.items() if o.collected),
        "workers": workers,
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }


def run_name(mode: str, ipc: float, seed: int) -> str:
    """A comparison's name for one run, and its run directory's: ``podd-ipc0.5-seed0``."""
    return f"{mode}-ipc{ipc:g}-seed{seed}"


def run_order(runs):
    """``runs`` ((mode, ipc, seed) …), the longest first so that parallel processes finish
    together: PoDD runs (every patch in every inner step), then the baselines; a stable sort
    keeps the given order within each. The real subsets (no distillation) come after them."""
    return sorted(runs, key=lambda run: run[0] == "baseline")


def _announce(outcome, run, progress: bool):
    if progress:
        mode, ipc, seed = run
        taken = ", taken finished" if outcome.collected else ""
        print(
            f"done: {method_label(mode)} {ipc:g} IPC, seed {seed}: "
            f"{float(outcome.evaluation.accuracy[:, -1].double().mean()):.1f} % "
            f"({outcome.wall_time_s:.0f} s{taken})",
            flush=True,
        )
    return outcome


def _base_config(ds, preset: str, profile: str, overrides: dict):
    """The comparison's shared settings (evaluation, preprocessing): ``preset``'s settings as
    :func:`podd.presets.resolve_config` resolves them for this data."""
    return resolve_config(
        ds.name, profile, like=preset, num_classes=ds.num_classes, image_shape=tuple(ds.image_shape), **overrides
    )


def job_config(
    ds,
    profile: str,
    mode: str,
    ipc: float,
    seed: int,
    eval_models: int,
    eval_steps,
    overrides: dict | None = None,
    preset: str = "digits",
):
    """The config of one distillation of the comparison: :func:`podd.presets.resolve_config`,
    the same as ``podd distill --dataset DS --like PRESET --ipc IPC --mode MODE --seed SEED``
    with the comparison's evaluation settings."""
    return resolve_config(
        ds.name,
        profile,
        like=preset,
        mode=mode,
        ipc=ipc,
        num_classes=ds.num_classes,
        image_shape=tuple(ds.image_shape),
        **{**(overrides or {}), "seed": seed, "eval_models": eval_models, "eval_steps": tuple(eval_steps)},
    )


def real_config(settings, eval_models: int, eval_steps, seed: int):
    """The settings of the random-real row of one seed: ``settings``' evaluation on the CPU."""
    return settings.replace(eval_models=eval_models, eval_steps=tuple(eval_steps), seed=seed, device="cpu")


def random_real_accuracy(ds, settings, eval_models: int, eval_steps, seed: int) -> torch.Tensor:
    """The random-real row of one seed: one random real image per class (subset seed = ``seed``),
    trained with the posters' protocol (``settings``' evaluation, all K images in every step)
    on the CPU; accuracy (%) per model and evaluation step."""
    config = real_config(settings, eval_models, eval_steps, seed)
    return real_reference(ds, config, images_per_class=1, subset_seed=seed).evaluation.accuracy


def _row(method, mode, ipc, pixels, seeds, accuracy: torch.Tensor) -> dict[str, Any]:
    accuracy = accuracy.double()
    return {
        "method": method,
        "mode": mode,
        "ipc": round(float(ipc), 3),
        "pixels": int(pixels),
        "seeds": list(seeds),
        "accuracies": [round(float(a), 2) for a in accuracy],
        "mean": float(accuracy.mean()),
        "std": float(accuracy.std()) if accuracy.numel() > 1 else 0.0,
    }


def format_table(report: dict[str, Any]) -> str:
    """A markdown table of the comparison with its data label and protocol."""
    lines = [
        f"Test accuracy on {report['dataset']}: {len(report['seeds'])} seed(s) × "
        f"{report['eval_models_per_seed']} evaluation ConvNets × {report['eval_steps']} "
        f"steps each (profile `{report['profile']}`"
        + "".join(f", {k}={v}" for k, v in sorted(report.get("overrides", {}).items()))
        + "); mean ± std over all models.",
        "",
        "| method | IPC | pixels | accuracy (%) |",
        "|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(f"| {row['method']} | {row['ipc']:.2f} | {row['pixels']} | {row['mean']:.1f} ± {row['std']:.1f} |")
    return "\n".join(lines)


def default_workers(num_distillations: int) -> int:
    """One process per distillation, up to twice the CPU cores this process may use.

    The jobs differ in length (a baseline run costs less than a PoDD run), so one process per
    core leaves a core idle at the end; one per distillation lets the OS balance them
    (benchmarks/results/LOG.md has the measurement for ``make demo``).
    """
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(num_distillations, 2 * cores))

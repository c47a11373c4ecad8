"""The ``podd`` command: ``podd data``, ``podd distill``, ``podd evaluate``, ``podd show``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading

from podd.choices import DEVICES, EVAL_ARCHS, EXECUTORS, MODES, PROFILES, TRACKERS, VARIANTS

# The commands import podd's other modules where they run (each marked ``# lazy:``): ``podd --help``
# and a mistyped option answer from podd.choices alone. The engine's modules load torch (about 2 s,
# twenty times ``podd --help``); even podd.config and podd.executors (dataclasses, inspect,
# concurrent.futures, logging) would make ``podd --help`` about half again as slow.


def _cmd_data(args: argparse.Namespace) -> int:
    # lazy: see the note at the top (torch, ~2 s)
    from podd.data import load_dataset, summary

    dataset = load_dataset(args.name, root=args.root, download=not args.no_download)
    print(summary(dataset))
    return 0


def _add_data_command(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "data",
        help="load a dataset (downloading and caching it) and print its summary",
        description="Load a dataset through podd's data layer and print images per split, "
        "classes, image shape and per-class counts. NAME is one of digits, cifar10, "
        "cifar100, cub200, tinyimagenet, imagefolder:PATH or npz:PATH.",
    )
    p.add_argument("name", metavar="NAME", help="dataset name")
    p.add_argument("--root", default=None, help="data folder (default: $PODD_DATA, else ~/.cache/podd)")
    p.add_argument("--no-download", action="store_true", help="never reach the network")
    p.set_defaults(handler=_cmd_data)


# --------------------------------------------------------------------------------------------
# distill / evaluate / show (the engine)
# --------------------------------------------------------------------------------------------
def parse_set_value(text: str):
    """A --set value: JSON when it parses (numbers, lists, true/null), else the plain string, so
    that ``--set labels=learned`` needs no shell-quoted JSON (DistillConfig.validate then says
    when the value is not the field's type)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_set(items) -> dict:
    """``["KEY=VALUE", ...]`` (the --set options of podd and the benchmarks) as a dict of values
    read by :func:`parse_set_value`; an item without ``=`` is refused with an example."""
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: write KEY=VALUE, e.g. --set real_batch=128")
        overrides[key.strip()] = parse_set_value(value)
    return overrides


def _default_out(config) -> str:
    name = config.dataset.replace(":", "-").replace("/", "_").strip("_-.")
    return f"runs/{name}-{config.mode}-ipc{config.ipc:g}-seed{config.seed}"


# Settings with their own option: `--set ipc=…` would be given twice (or silently lose).
_OWN_OPTIONS = {"dataset": "--dataset NAME", "ipc": "--ipc R", "mode": "--mode MODE", "profile": "--profile NAME"}


def config_from_args(args: argparse.Namespace):
    """The run configuration ``podd distill`` would use for ``args``, without running anything.

    A new run: :func:`podd.presets.resolve_config` for ``--dataset`` (any spelling of a built-in
    name), ``--profile`` (else ``$PODD_PROFILE``, else ``paper``), ``--ipc``, ``--mode``,
    ``--like``, ``--embeddings`` and the overrides (``--steps``, ``--device``, ``--seed``,
    ``--set``). Local data (``npz:``, ``imagefolder:``) is read once here for its class count and
    image shape. ``--resume``: the saved run's config, with only the harmless changes allowed;
    any option that would change the run (``--dataset``, ``--ipc``, ``--profile``, ``--set
    window=…``) is refused unless it repeats the run's own value.

    Every setting is validated here, the poster's geometry included, so that a mistake is
    reported before any data is loaded or any step is run.
    """
    import os

    # lazy: see the note at the top (torch, ~2 s)
    from podd.config import DistillConfig
    from podd.modes import plan_geometry, validate
    from podd.presets import resolve_config
    from podd.rundir import RunDir, check_resume_steps

    overrides = parse_set(args.set)
    for item in args.set or []:
        key = item.partition("=")[0].strip()
        if key in _OWN_OPTIONS and not args.resume:
            raise ValueError(f"--set {item}: {key} has its own option, use {_OWN_OPTIONS[key]}")
    for name in ("steps", "device", "seed"):
        flag = getattr(args, name)
        if flag is None:
            continue
        if name in overrides and overrides[name] != flag:
            raise ValueError(f"--{name} {flag} and --set {name}={overrides[name]} disagree; give it once")
        overrides[name] = flag
    class_order = getattr(args, "class_order", None)
    if class_order is not None:  # --class-order SPEC is --set class_order=SPEC
        if "class_order" in overrides and overrides["class_order"] != class_order:
            raise ValueError(
                f"--class-order {class_order} and --set class_order="
                f"{json.dumps(overrides['class_order'])} disagree; give it once"
            )
        if args.embeddings is not None:
            raise ValueError(
                f"--class-order {class_order} and --embeddings {args.embeddings} both "
                f"choose the class order; give one (--embeddings FILE is PoCO on that "
                f"file)"
            )
        overrides["class_order"] = class_order
    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out RUN_DIR, the directory of the run to continue")
        checkpoint = RunDir(args.out).load_checkpoint()
        config = _resumed_config(args, DistillConfig.from_dict(checkpoint["config"]), overrides)
        check_resume_steps(config, int(checkpoint["distiller"]["step"]), args.out)  # every rank
        return validate(config)
    if args.dataset is None or args.ipc is None:
        raise ValueError("podd distill needs --dataset NAME and --ipc R (or --resume --out DIR)")
    if not args.ipc > 0 or args.ipc == float("inf"):
        raise ValueError(f"--ipc {args.ipc}: the images-per-class budget must be a positive number (e.g. --ipc 0.5)")
    # lazy: see the note at the top (torch, ~2 s)
    from podd.data import DATASET_SHAPES, canonical_name, load_dataset

    profile = args.profile or os.environ.get("PODD_PROFILE") or "paper"
    dataset = canonical_name(args.dataset)
    shape = {}
    if dataset not in DATASET_SHAPES:  # local data: its own class count and image shape
        local = load_dataset(dataset, root=overrides.get("data_root"), download=False)
        shape = dict(num_classes=local.num_classes, image_shape=tuple(local.image_shape))
    config = resolve_config(
        dataset,
        profile,
        like=args.like,
        mode=args.mode or "podd",
        ipc=args.ipc,
        embeddings=args.embeddings,
        **shape,
        **overrides,
    )
    K, image_shape = (shape["num_classes"], shape["image_shape"]) if shape else DATASET_SHAPES[dataset]
    plan_geometry(config, K, image_shape)  # validates it; an impossible poster: said now, not at step 1
    return config


def _resumed_config(args: argparse.Namespace, saved, overrides: dict):
    """The saved config with the resumable changes; any other option must repeat the run's own
    value (a different --dataset, --ipc, --profile, --mode or --set is refused, never ignored)."""
    # lazy: see the note at the top (torch, ~2 s)
    from podd.data import canonical_name
    from podd.rundir import RESUMABLE_CHANGES

    asked = {name: (f"--set {name}={json.dumps(value)}", value) for name, value in overrides.items()}
    for name in ("steps", "device", "seed"):
        if getattr(args, name) is not None:
            asked[name] = (f"--{name} {getattr(args, name)}", getattr(args, name))
    if args.dataset is not None:
        asked["dataset"] = (f"--dataset {args.dataset}", canonical_name(args.dataset))
    if args.ipc is not None:
        asked["ipc"] = (f"--ipc {args.ipc:g}", float(args.ipc))
    for name in ("profile", "mode"):
        if getattr(args, name) is not None:
            asked[name] = (f"--{name} {getattr(args, name)}", getattr(args, name))
    unknown = sorted(set(asked) - {f for f in saved.to_dict()})
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid names are {sorted(saved.to_dict())}")
    for name, (_, value) in asked.items():
        saved.check_value(name, value)
    different = [
        name
        for name, (_, value) in asked.items()
        if name not in RESUMABLE_CHANGES and getattr(saved.replace(**{name: value}), name) != getattr(saved, name)
    ]
    different += [name for name in ("like", "embeddings") if getattr(args, name) is not None]
    if different:

        def shown(name):
            return asked[name][0] if name in asked else f"--{name} {getattr(args, name)}"

        run_has = ", ".join(f"{n}={json.dumps(getattr(saved, n))}" for n in different if hasattr(saved, n))
        raise ValueError(
            f"--resume cannot change {', '.join(different)}: the run in {args.out} continues with "
            f"its own settings ({run_has or 'as it was started'}), and {', '.join(map(shown, different))} "
            f"would change its trajectory. Drop {'it' if len(different) == 1 else 'them'} to "
            f"continue the run, or start a new run with them in another --out; a resumed run may "
            f"change only {', '.join(RESUMABLE_CHANGES)}"
        )
    return saved.replace(**{n: v for n, (_, v) in asked.items() if n in RESUMABLE_CHANGES})


def _set_threads(threads: int | None) -> None:
    """--threads N: torch's CPU threads (default: torch's own choice, one per core)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads {threads}: use at least 1")
    import torch

    torch.set_num_threads(threads)


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        default=None,
        help="CPU threads for torch (default: one per core). On a machine busy with "
        "other work, --threads 1 can be many times faster than several "
        "threads competing for the same cores",
    )


def _cmd_distill(args: argparse.Namespace) -> int:
    # lazy: see the note at the top (torch, ~2 s)
    from podd import parallel as par
    from podd.run_loop import distill
    from podd.rundir import RunDir

    _set_threads(args.threads)
    main_rank = os.environ.get("RANK", "0") == "0"  # torchrun: rank 0 alone checks and prints
    if args.log:  # a missing tracker package: said before anything else
        # lazy: see the note at the top (torch, ~2 s)
        from podd.tracking import parse_backends, require

        require(parse_backends(args.log))
    if args.out and not args.resume and main_rank:
        RunDir(args.out).check_target()  # before any data is loaded
    config = config_from_args(args)
    if args.executor != "local" or args.dry_run:
        return _submit_distill(args, config)
    parallel = par.from_env(args.distributed, config.device)
    finished = None
    try:
        out = args.out or _default_out(config)
        result = distill(
            config,
            out_dir=out,
            resume=args.resume,
            progress=not args.quiet and parallel.is_main,
            parallel=parallel,
            log=args.log,
            log_image_every=args.log_image_every,
        )
        finished = parallel
    finally:
        par.shutdown(finished)
    if not parallel.is_main:
        return 0
    print(f"run directory: {result.out_dir}")
    if result.evaluation is not None:
        print(
            f"test accuracy ({result.evaluation.num_models} models, "
            f"{result.evaluation.steps[-1]} steps): {result.evaluation.mean():.1f} ± "
            f"{result.evaluation.std():.1f} %"
        )
    return 0


def _distill_job(
    config,
    threads: int | None,
    *,
    out_dir: str,
    resume: bool,
    stop=None,
    log=None,
    log_image_every: int | None = None,
    distributed: str | None = None,
) -> dict:
    """``podd distill`` as a job (``--executor``, through :class:`podd.jobs.ResumableJob`): the
    run, and a short summary back. ``distributed``: this job is one task of several, one rank
    of that variant (:func:`_job_rank`)."""
    # lazy: see the note at the top (torch, ~2 s)
    from podd.run_loop import distill

    _set_threads(threads)
    with _job_rank(distributed, config.device) as parallel:
        result = distill(
            config,
            out_dir=out_dir,
            resume=resume,
            progress=False,
            parallel=parallel,
            stop=stop,
            log=log,
            log_image_every=log_image_every,
        )
    summary = {"out_dir": str(result.out_dir), "wall_time_s": result.wall_time_s}
    if result.evaluation is not None:
        summary.update(
            accuracy=result.evaluation.mean(),
            std=result.evaluation.std(),
            models=result.evaluation.num_models,
            steps=result.evaluation.steps[-1],
        )
    return summary


def _submit_distill(args: argparse.Namespace, config) -> int:
    """--executor slurm (or submitit-local / debug): the run as one submitit job; with
    --distributed, one job of --nodes x --tasks-per-node tasks, one rank each (podd.jobs)."""
    # lazy: see the note at the top (torch, ~2 s)
    from podd.executors import make_executor
    from podd.jobs import ResumableJob

    if args.executor == "local":
        raise ValueError("--dry-run prints the sbatch script of a Slurm job: add --executor slurm")
    options = {
        name: getattr(args, name) for name in ("partition", "time_min", "gpus", "cpus", "mem_gb", "account", "qos")
    }
    ranks = _job_ranks(args, config, options)
    if ranks:
        options["extra"] = ranks
    executor = make_executor(args.executor, folder=args.jobs_folder, **options)
    if args.dry_run:
        print(executor.script(), end="")
        world = ranks and f"; its {ranks['nodes'] * ranks['tasks_per_node']} tasks are the ranks of one run"
        print(f"dry run: nothing submitted{world or ''}", file=sys.stderr)
        return 0
    out = os.path.abspath(args.out or _default_out(config))
    # checkpointable: requeued on its time limit and on preemption, resumed from a checkpoint
    job = executor.submit(
        ResumableJob(
            _distill_job,
            out,
            config,
            args.threads,
            resume=args.resume,
            distributed=args.distributed,
            log=args.log,
            log_image_every=args.log_image_every,
        )
    )
    job_id = getattr(job, "job_id", "?")
    print(f"submitted job {job_id} ({args.executor}); run directory: {out}")
    if hasattr(job, "paths"):
        print(f"job logs: {job.paths.stdout}")
    if not (args.wait or args.executor == "debug"):  # debug runs only when waited for
        print(f"follow it with: podd show {out}  (or squeue -j {job_id})")
        return 0
    summary = job.results()[0]  # rank 0's (every task returns one)
    print(f"run directory: {summary['out_dir']}")
    if "accuracy" in summary:
        print(
            f"test accuracy ({summary['models']} models, {summary['steps']} steps): "
            f"{summary['accuracy']:.1f} ± {summary['std']:.1f} %"
        )
    return 0


@contextlib.contextmanager
def _job_rank(distributed: str | None, device: str):
    """This job's :class:`podd.parallel.Parallel`: with ``distributed``, one task of a multi-task
    job made a rank (:func:`podd.jobs.export_torch_env`), else one process; leaves the group at
    the end (together after a finished or stopped run: rank 0 still writes its files)."""
    # lazy: see the note at the top (torch, ~2 s)
    from podd import parallel as par
    from podd.run_loop import RunStopped

    if distributed is None:
        yield par.SINGLE
        return
    # lazy: see the note at the top (torch, ~2 s)
    from podd.jobs import export_torch_env

    export_torch_env()
    parallel, finished = par.from_env(distributed, device), None
    try:
        yield parallel
        finished = parallel
    except RunStopped:
        finished = parallel  # every rank stopped after the same step; rank 0 saved it
        raise
    finally:
        par.shutdown(finished)


def _job_ranks(args: argparse.Namespace, config, options: dict) -> dict:
    """The submitit parameters of a --distributed job ({} without it): --nodes x --tasks-per-node
    tasks, by default one per GPU of --gpus-per-node; the world size checked against the run."""
    # lazy: see the note at the top (torch, ~2 s)
    from podd.executors import rank_parameters, slurm_parameters
    from podd.parallel import Parallel

    if not args.distributed:
        if (args.nodes or 1) > 1 or args.tasks_per_node:
            raise ValueError(
                "--nodes and --tasks-per-node spread one run over several processes: "
                "add --distributed tasks or --distributed real-batch"
            )
        return {}
    if args.executor == "debug":
        raise ValueError(
            "--executor debug runs the job in this process, one rank: use "
            "--executor submitit-local (or slurm) with --distributed"
        )
    gpus = slurm_parameters(gpus=options["gpus"]).get("gpus_per_node") or 0
    tasks = args.tasks_per_node or gpus
    if not tasks:
        raise ValueError(
            "--distributed as a job runs one process per GPU: give --gpus-per-node N "
            "(and --nodes M), or --tasks-per-node N for processes without GPUs "
            "(--device cpu)"
        )
    if gpus and tasks != gpus:
        raise ValueError(
            f"--tasks-per-node {tasks} with --gpus-per-node {gpus}: a rank uses one "
            f"GPU, so give as many processes per node as GPUs"
        )
    ranks = rank_parameters(args.nodes or 1, tasks)
    Parallel(args.distributed, 0, ranks["nodes"] * tasks).check(config)  # before submitting
    return ranks


def _load_run_parts(run_dir: str, allow_changed_data: bool = False, artifact=None):
    """artifact, config, dataset and preprocessor of a finished run; data that changed since the
    run was distilled is refused unless ``allow_changed_data``. ``artifact``: already loaded
    from it."""
    # lazy: see the note at the top (torch, ~2 s)
    from podd.config import DistillConfig
    from podd.data import load_dataset, make_preprocessor
    from podd.data.dataset import check_fingerprint
    from podd.rundir import load_run

    if artifact is None:
        artifact, _ = load_run(run_dir)
    config = DistillConfig.from_dict(artifact.config)
    dataset = load_dataset(config.dataset, root=config.data_root)
    if not allow_changed_data:
        check_fingerprint(
            artifact.config.get("data_fingerprint"),
            dataset,
            run_dir,
            "restore that data, or distil again on the new data; to evaluate this poster "
            "on the new data anyway, add --allow-changed-data",
        )
    preprocessor = make_preprocessor(dataset, zca=config.zca, root=config.data_root)
    return artifact, config, dataset, preprocessor


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    # lazy: see the note at the top (torch, ~2 s)
    from podd.architectures import check_image_size
    from podd.devices import resolve_device
    from podd.distiller import patches_and_labels
    from podd.evaluate import EvalProtocol
    from podd.io import WriteError, check_writable, write_json
    from podd.provenance import provenance
    from podd.rundir import load_run

    _set_threads(args.threads)
    if args.models < 1:
        raise ValueError(f"--models {args.models}: train at least one model")
    if args.steps and (min(args.steps) < 1 or list(args.steps) != sorted(set(args.steps))):
        raise ValueError(
            f"--steps {' '.join(map(str, args.steps))}: give increasing step counts "
            f"of at least 1, e.g. --steps 300 1000"
        )
    artifact, _ = load_run(args.run_dir)
    target = Path(args.out or args.run_dir)
    target = target / "eval.json" if target.is_dir() else target
    try:  # before any model trains: a read-only run directory is said now, not at the end
        check_writable(target)
    except WriteError as error:
        elsewhere = "" if args.out else "; give --out FILE.json to write the results elsewhere"
        raise WriteError(f"{error} (nothing was evaluated){elsewhere}") from None
    artifact, config, dataset, preprocessor = _load_run_parts(args.run_dir, args.allow_changed_data, artifact)
    if len(dataset.y_test) == 0:
        raise ValueError(
            f"{config.dataset} has no test images (a train-only npz), so there is "
            f"nothing to evaluate on; add x_test and y_test to the file"
        )
    device = resolve_device(args.device)
    images, labels = patches_and_labels(artifact)
    archs = list(dict.fromkeys(args.arch or [config.eval_arch]))  # in order, each once
    for arch in archs:  # every network takes these images: said before any model trains
        check_image_size(arch, images.shape[-1])
    steps = tuple(args.steps) if args.steps else config.eval_steps
    test_x, test_y = preprocessor(dataset.x_test).to(device), dataset.y_test.to(device)
    t0 = time.perf_counter()
    results = {}
    for arch in archs:
        protocol = EvalProtocol.from_config(
            config, num_models=args.models, steps=steps, seed=args.seed, device=device, arch=arch
        )
        results[arch] = protocol.run(images.to(device), labels.to(device), test_x, test_y, progress=not args.quiet)
    wall = time.perf_counter() - t0
    _print_evaluation(
        f"{config.dataset} ({getattr(dataset, 'source', 'full')}), {artifact.mode}, IPC {config.ipc:g}", results
    )
    out = write_json(
        target,
        {
            # "result": the first architecture's, as before cross-architecture evaluation;
            # "results": every architecture's, each with its own wall_time_s and settings
            "result": results[archs[0]].to_dict(),
            "results": {arch: result.to_dict() for arch, result in results.items()},
            "provenance": provenance(
                device=device,
                dataset=config.dataset,
                data_source=getattr(dataset, "source", "full"),
                profile=config.profile,
                hyperparameters=config.to_dict(),
                seeds={"eval": args.seed},
                eval_archs=archs,
                wall_time_s=round(wall, 3),
            ),
        },
    )
    print(f"written: {out}")
    return 0


def _print_evaluation(what: str, results: dict) -> None:
    """One architecture: a line per evaluated step; several: one line per architecture."""
    # lazy: see the note at the top (torch, ~2 s)
    from podd.architectures import ARCH_LABELS

    if len(results) == 1:
        arch, result = next(iter(results.items()))
        print(f"{what}: {result.num_models} fresh {ARCH_LABELS[arch]}s")
        for step in result.steps:
            print(f"  {step:>6} steps: {result.mean(step):5.1f} ± {result.std(step):.1f} %")
        return
    print(f"{what}: {next(iter(results.values())).num_models} fresh networks of each architecture")
    for arch, result in results.items():
        accuracies = ", ".join(f"{s} steps {result.mean(s):5.1f} ± {result.std(s):.1f} %" for s in result.steps)
        print(f"  {ARCH_LABELS[arch]:<9}  {accuracies}  ({result.wall_time_s:.0f} s)")


def _cmd_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    # lazy: see the note at the top (torch, ~2 s)
    from podd.display import save_poster_png
    from podd.rundir import PNG, load_run

    artifact, _ = load_run(args.run_dir, allow_file=True)
    state = (artifact.preprocessing or {}).get("state")
    if state is not None:  # the run stored its preprocessor: no need to load the dataset
        # lazy: see the note at the top (torch, ~2 s)
        from podd.data import Preprocessor

        preprocessor = Preprocessor.from_state_dict(state)
    else:
        _, _, _, preprocessor = _load_run_parts(args.run_dir, artifact=artifact)
    given = Path(args.run_dir)  # a run directory, or a poster file: FILE.pt → FILE.png
    png = given.with_suffix(".png") if given.is_file() else given / PNG
    path = save_poster_png(png, artifact.poster, preprocessor)
    print(path.resolve())
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def _add_engine_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "distill",
        help="distil a dataset into a poster (RaT-BPTT on a poster)",
        description="Distil a dataset into one poster with overlapping patches (PoDD), the "
        "RaT-BPTT baseline (one image per class) or one poster per class. Settings "
        "come from the dataset's preset (--profile smoke|quick|paper, --like for "
        "local data), resolved exactly as the notebooks and the demo resolve them "
        "(podd.presets.resolve_config): at another IPC than the preset's the "
        "patches keep the paper's stride. Any setting can be changed with --set "
        "KEY=VALUE. The run directory gets poster.pt, "
        "poster.png, metrics.jsonl, final.json and checkpoint.pt.",
    )
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help="digits, cifar10, cifar100, cub200, "
        "tinyimagenet (case, '-' and '_' do not matter: CIFAR-10 is cifar10), "
        "imagefolder:PATH or npz:PATH",
    )
    p.add_argument(
        "--like",
        metavar="DATASET",
        default=None,
        help="for local data: use the preset of this built-in dataset, e.g. --dataset "
        "npz:c10.npz --like cifar10 (the run still records --dataset)",
    )
    p.add_argument(
        "--embeddings",
        metavar="PATH",
        default=None,
        help="class text embeddings (.pt/.npy, one row per class) for PoCO, the "
        "class order of the paper presets; without them quick/paper compute "
        "CLIP embeddings, smoke uses the dataset order",
    )
    p.add_argument(
        "--class-order",
        metavar="SPEC",
        default=None,
        help="where the classes sit on the poster (same as --set class_order=SPEC): "
        "poco (CLIP text embeddings of the names, the paper presets' default), "
        "data (PoCO's placement on class similarities measured on the training "
        "images: no CLIP weights, any class names), identity (dataset order), "
        "random:SEED, or an embeddings file",
    )
    p.add_argument(
        "--ipc", type=float, metavar="R", help="pixel budget in images per class (e.g. 0.5; baseline mode needs 1)"
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="podd (shared poster, default), baseline (RaT-BPTT at 1 IPC), per-class",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help="preset size: smoke (seconds on digits; a real dataset is downloaded and whitened "
        "once first), quick (minutes on a CPU), paper (the "
        "authors' settings, sized for a GPU: days on a CPU; the default, unless "
        "$PODD_PROFILE says otherwise)",
    )
    p.add_argument("--steps", type=int, default=None, help="outer steps (overrides the preset)")
    p.add_argument("--out", metavar="DIR", default=None, help="run directory (default runs/DATASET-MODE-ipcR-seedS)")
    p.add_argument("--device", choices=DEVICES, default=None, help="where to run (default auto: CUDA when available)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any DistillConfig setting, e.g. --set real_batch=128 "
        "--set labels=fixed (repeatable). Out of GPU memory? --set "
        "recompute_window=true --set real_chunk=250 keep the gradients and "
        "the batch sizes and need far less memory",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--log",
        "--track",
        dest="log",
        nargs="+",
        choices=(*TRACKERS, "none"),
        default=None,
        metavar="TRACKER",
        help="also log the run's scalars (outer loss, learning rates, step time, "
        "accuracies) and its poster to tensorboard (RUN/tensorboard) and/or wandb "
        "(offline without an API key or with WANDB_MODE=offline); each is an "
        "optional extra: pip install 'podd[tensorboard]' / 'podd[wandb]'. "
        "--resume continues the run's tracking without it; --log none stops it. "
        "Under torchrun write --track (torchrun takes --log for its --log-dir)",
    )
    p.add_argument(
        "--log-image-every",
        type=int,
        default=None,
        metavar="N",
        help="with --log: the poster as an image every N outer steps (default 100; "
        "0: the first and the final poster only)",
    )
    p.add_argument(
        "--distributed",
        choices=VARIANTS,
        default=None,
        help="under torchrun (torchrun --nproc-per-node N -m podd.cli distill ...) "
        "or as one Slurm job (--executor slurm --nodes M --gpus-per-node N): "
        "'tasks' = each process trains its own inner network on its own window "
        "and the meta-gradients are averaged (N tasks per outer step); "
        "'real-batch' = one process's trajectory, only the outer loss's real "
        "batch is split (N must divide real_batch)",
    )
    jobs = p.add_argument_group(
        "as a job",
        "submit the run instead of running it here (submitit); unset settings "
        "come from PODD_SLURM_PARTITION, PODD_SLURM_TIME_MIN, PODD_SLURM_GPUS, "
        "PODD_SLURM_CPUS, PODD_SLURM_MEM_GB, PODD_SLURM_ACCOUNT, PODD_SLURM_QOS",
    )
    jobs.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local (default): run here; slurm: one Slurm job, "
        "requeued on its time limit or preemption and resumed from a checkpoint; "
        "submitit-local: a local subprocess through submitit (a dry run of the "
        "slurm path); debug: submitit's in-process debug executor",
    )
    jobs.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    jobs.add_argument("--partition", default=None, help="Slurm partition")
    jobs.add_argument("--time-min", type=int, default=None, help="job time limit in minutes")
    jobs.add_argument(
        "--gpus", "--gpus-per-node", dest="gpus", type=int, default=None, help="GPUs of the job (per node)"
    )
    jobs.add_argument(
        "--nodes", type=int, default=None, metavar="M", help="with --distributed: nodes of the job (default 1)"
    )
    jobs.add_argument(
        "--tasks-per-node",
        type=int,
        default=None,
        metavar="N",
        help="with --distributed: processes per node (default: one per GPU)",
    )
    jobs.add_argument(
        "--dry-run", action="store_true", help="print the sbatch script --executor slurm would submit; submit nothing"
    )
    jobs.add_argument("--cpus", type=int, default=None, help="CPU cores of the job (per process)")
    jobs.add_argument("--mem-gb", type=float, default=None, help="memory of the job in GB")
    jobs.add_argument("--account", default=None, help="Slurm account")
    jobs.add_argument("--qos", default=None, help="Slurm QOS")
    jobs.add_argument(
        "--jobs-folder",
        default=None,
        metavar="DIR",
        help="submitit's logs and pickles (default $PODD_SLURM_FOLDER, else runs/slurm/%%j)",
    )
    _add_threads_option(p)
    p.set_defaults(handler=_cmd_distill)

    p = commands.add_parser(
        "evaluate",
        help="train fresh ConvNets on a run's poster and report test accuracy",
        description="The evaluation protocol (§5.1): M freshly initialised ConvNets trained on "
        "the poster's patches and labels (Adam at the inner lr, flip_rotate), test "
        "accuracy mean ± std; --arch trains other architectures instead or as well "
        "(cross-architecture evaluation). Writes RUN_DIR/eval.json with provenance.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by podd distill")
    p.add_argument(
        "--arch",
        nargs="+",
        choices=EVAL_ARCHS,
        default=None,
        metavar="ARCH",
        help=f"the network(s) to train, one result each: {', '.join(EVAL_ARCHS)} "
        f"(default: the run's eval_arch, convnet unless set), e.g. --arch convnet "
        f"resnet18 vgg11 alexnet",
    )
    p.add_argument("--models", type=int, default=8, help="number of evaluation models (default 8)")
    p.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=None,
        help="training steps at which to test (default: the run's eval_steps)",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation models")
    p.add_argument(
        "--allow-changed-data",
        action="store_true",
        help="evaluate even if the run's dataset changed since it was distilled (by default that is refused)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="where to write the results: a file, or a directory for eval.json "
        "(default RUN_DIR/eval.json), e.g. for a run directory you cannot write to",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads_option(p)
    p.set_defaults(handler=_cmd_evaluate)

    p = commands.add_parser(
        "show",
        help="write a run's poster as a PNG and print its path",
        description="Render RUN_DIR/poster.pt to RUN_DIR/poster.png (undoing the "
        "preprocessing) and print the file's path; --open also opens it. A poster "
        "file may be given instead of its run directory: FILE.pt is drawn to FILE.png.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by podd distill (or a poster.pt)")
    p.add_argument("--open", action="store_true", help="open the PNG in the default viewer")
    p.set_defaults(handler=_cmd_show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podd", description="Poster Dataset Distillation: distil a dataset into one poster."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data_command(commands)
    _add_engine_commands(commands)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived (``kill``, a batch scheduler's time limit, a closing terminal)."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM stops the command the way Ctrl-C does: a run keeps its last
    checkpoint, leaves no half-written file and says how to resume (the default action would
    kill the process where it stands, lock file included). The previous handler comes back
    afterwards, so calling :func:`main` from Python leaves the process as it was."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install signal handlers
        return

    def stop(signum, frame):
        raise _Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_as_interrupt():
            code = args.handler(args)
            sys.stdout.flush()  # a closed pipe is found here, not at interpreter exit
            return code
    except BrokenPipeError:
        # The reader of stdout went away (`podd data digits | head -2`): stop quietly, as Unix
        # tools do. Exit 141 (128 + SIGPIPE) is what the shell reports for a tool that SIGPIPE
        # stopped (`seq 1000000 | head -1`), so `set -o pipefail` scripts see podd like any other
        # tool, and output cut short is not reported as success. stdout goes to /dev/null, so the
        # flush at interpreter exit does not fail again.
        _stdout_to_devnull()
        return 141
    except KeyboardInterrupt as interrupt:
        # Ctrl-C or SIGTERM: where things stand (podd.run_loop.RunInterrupted says how to
        # resume); exit 130 or 143, the shell's codes for the two signals.
        _say(f"\npodd {args.command}: {str(interrupt) or 'interrupted'}")
        return 143 if _terminated(interrupt) else 130
    except (ValueError, OSError, RuntimeError) as error:
        # Errors a user can cause carry a message that says what to do: show it, not a traceback
        # (OSError: podd.io.WriteError — no space, read-only, no permission — and missing files).
        _say(f"podd {args.command}: error: {error}")
        return 2


def _say(line: str) -> None:
    """A line for the user on stderr. Under torchrun only rank 0 says it (every rank meets the
    same mistake, and N copies of its line help nobody); another rank hands its line to
    torchrun's error file instead, so that a failure of that rank alone is still named, with
    its reason, in torchrun's summary."""
    if os.environ.get("RANK", "0") == "0":
        print(line, file=sys.stderr)
        return
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        import time

        with contextlib.suppress(OSError):
            with open(error_file, "w", encoding="utf-8") as handle:
                json.dump({"message": line.strip(), "timestamp": int(time.time())}, handle)


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured output)
        pass


def _terminated(interrupt: BaseException) -> bool:
    """Whether SIGTERM caused ``interrupt`` (the run loop re-raises it as RunInterrupted)."""
    while interrupt is not None:
        if isinstance(interrupt, _Terminated):
            return True
        interrupt = interrupt.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())

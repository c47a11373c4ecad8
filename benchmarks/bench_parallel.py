"""Benchmark: one distillation on N processes (podd.parallel), both variants, on this machine.

For each setting (world size, variant, threads per process) the script starts the processes
(gloo, a file store), builds a Distiller on real digits (bundled with scikit-learn) in each,
runs ``--warmup`` outer steps, then times ``--steps`` with a barrier before and after (the time
of the slowest rank). Reported: seconds per outer step, and the meta-gradient TASKS per second
(one fresh inner network + window + real batch per task: ``tasks`` runs world_size tasks per
step, ``real-batch`` and world size 1 run one).

Two configurations: ``window`` (the digits quick preset: the inner window dominates a step) and
``real`` (a real batch of 1024 images, window 2: the outer loss's real batch dominates), since
``real-batch`` can only save the real batch's share of a step.

    python benchmarks/bench_parallel.py --out benchmarks/results/bench_parallel_digits_cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from podd.io import write_json  # noqa: E402
from podd.provenance import provenance  # noqa: E402

CONFIGS = {
    "window": dict(),  # the digits quick preset
    "real": dict(real_batch=1024, window=2, total_window=4),  # real-batch-dominated
}


def _config(name: str, half_batch: bool = False):
    from podd.presets import resolve_config

    config = resolve_config(
        "digits", "quick", verbose=False, device="cpu", eval_models=0, start_schedule="fixed", **CONFIGS[name]
    )
    return config.replace(real_batch=config.real_batch // 2) if half_batch else config


def _rank(
    rank: int,
    world_size: int,
    variant: str,
    config_name: str,
    threads: int,
    warmup: int,
    steps: int,
    store: str,
    out: str,
    half_batch: bool,
) -> None:
    import torch.distributed as dist

    from podd.data import load_dataset, make_preprocessor
    from podd.distiller import Distiller
    from podd.parallel import Parallel

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    ds = load_dataset("digits", root=os.path.dirname(store), download=False)
    d = Distiller(
        _config(config_name, half_batch), ds, make_preprocessor(ds, zca=False), Parallel(variant, rank, world_size)
    )
    for _ in range(warmup):
        d.step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        d.step()
    d.check_finite()
    dist.barrier()
    seconds = (time.perf_counter() - t0) / steps
    if rank == 0:
        Path(out).write_text(str(seconds))
    dist.destroy_process_group()


def measure(
    world_size: int, variant: str, config_name: str, threads: int, warmup: int, steps: int, half_batch: bool = False
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store, out = os.path.join(tmp, "store"), os.path.join(tmp, "seconds")
        mp.spawn(
            _rank,
            args=(world_size, variant, config_name, threads, warmup, steps, store, out, half_batch),
            nprocs=world_size,
            join=True,
        )
        return float(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    # (world size, variant, threads per process, half batch): one process with 1 thread and
    # with all the cores, then N processes of one thread each, for both variants; last, one
    # process on HALF the real batch: a rank's work under real-batch at N=2, i.e. its best case
    # when each rank has a core (or device) to itself.
    settings = [
        (1, "tasks", 1, False),
        (1, "tasks", cores, False),
        (2, "tasks", 1, False),
        (2, "real-batch", 1, False),
        (1, "tasks", 1, True),
    ]
    load_before = os.getloadavg()
    rows = []
    for config_name in args.configs:
        cfg = _config(config_name)
        for world_size, variant, threads, half in settings:
            seconds = measure(world_size, variant, config_name, threads, args.warmup, args.steps, half)
            tasks = world_size if variant == "tasks" else 1
            row = {
                "config": config_name,
                "world_size": world_size,
                "variant": ("single, half real batch" if half else "single") if world_size == 1 else variant,
                "threads_per_process": threads,
                "s_per_step": round(seconds, 4),
                "tasks_per_step": tasks,
                "tasks_per_s": round(tasks / seconds, 3),
                "real_batch": cfg.real_batch // 2 if half else cfg.real_batch,
                "window": cfg.window,
                "start": cfg.total_window - cfg.window,
                "distill_batch": cfg.distill_batch,
                "width": cfg.width,
            }
            rows.append(row)
            print(
                f"{config_name:>6}  N={world_size} {row['variant']:<10} {threads} thr/proc: "
                f"{seconds:.3f} s/step, {row['tasks_per_s']:.2f} tasks/s",
                flush=True,
            )
    if args.out:
        write_json(
            args.out,
            provenance(
                device="cpu",
                benchmark="bench_parallel",
                command=" ".join([sys.executable] + sys.argv),
                steps=args.steps,
                warmup=args.warmup,
                cpu_count=cores,
                load_average_before=load_before,
                load_average_after=os.getloadavg(),
                rows=rows,
            ),
        )


if __name__ == "__main__":
    main()

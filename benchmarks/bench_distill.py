"""Benchmark: distillation speed (outer and inner steps/s), peak memory and FLOPs per outer step.

Times ``Distiller.step()`` (one RaT-BPTT outer step: fresh net, ``start`` inner steps without a
graph, ``window`` differentiable ones, outer loss on a real batch, backward to the poster, outer
Adam) for a preset and mode on the current device. Data: synthetic images of the preset's shape
(``podd.data.stand_in``; speed does not depend on pixel values) or, with ``--real``, the dataset
itself (must already be on disk). Warm-up steps are excluded, timing is device-synchronised.

The window start is fixed for timing (``--start mean``: the mean of RaT-BPTT's uniform draw,
(total_window − window) / 2), so every timed step does the same work. Preprocessing is plain
standardisation and the class order the identity (ZCA and PoCO run once before training and do
not change a step's cost; PoCO would need the CLIP weights).

FLOPs (``--flops``): counted with ``torch.utils.flop_counter.FlopCounterMode`` on the real model
and step, for each paper preset. Running a paper-size step on a CPU takes minutes, so the count
is taken at small sizes and extrapolated LINEARLY, which is exact here because every inner step of
a kind has the same shapes and the outer loss is per-sample: FLOPs(start, window, real_batch) =
base + a·start + b·window + r·real_batch, fitted from four small steps and checked on a fifth.
FlopCounterMode counts matrix multiplications and convolutions (forward, backward and the
double backward of the window), not elementwise ops. The achieved throughput of the timed run
(its own FLOPs × steps/s) is reported as a fraction of a torch.matmul throughput measured here.

    python benchmarks/bench_distill.py --dataset digits --profile quick
    python benchmarks/bench_distill.py --dataset cifar10 --profile paper --steps 5   # on a GPU
    python benchmarks/bench_distill.py --dataset cifar10 --profile quick --flops --out R.json
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from podd.cli import parse_set  # noqa: E402
from podd.data import make_preprocessor, stand_in  # noqa: E402
from podd.distiller import Distiller  # noqa: E402
from podd.io import write_json  # noqa: E402
from podd.presets import resolve_config  # noqa: E402
from podd.provenance import provenance  # noqa: E402

# (classes, image shape) of each dataset podd has presets for.
SHAPES = {
    "digits": (10, (1, 8, 8)),
    "cifar10": (10, (3, 32, 32)),
    "cifar100": (100, (3, 32, 32)),
    "cub200": (200, (3, 32, 32)),
    "tinyimagenet": (200, (3, 64, 64)),
}
PAPER_PRESETS = ("cifar10", "cifar100", "cub200", "tinyimagenet")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _synthetic(dataset: str, real_batch: int):
    classes, shape = SHAPES[dataset]
    per_class = max(1, math.ceil(real_batch / classes))  # at least one full real batch
    return stand_in(dataset, classes, shape, per_class, 1, seed=0)


def bench_config(dataset: str, profile: str, mode: str, start: str, overrides: dict, device: str):
    """The config that is timed: the preset with a fixed window start and no side work."""
    base = resolve_config(dataset, profile, mode=mode, **overrides)
    high = base.total_window - base.window
    fixed = {"mean": high // 2, "max": high, "min": base.min_start}[start]
    return base.replace(
        start_schedule="fixed",
        fixed_start=fixed,
        class_order="identity",
        zca=False,
        eval_every=0,
        eval_models=0,
        checkpoint_every=0,
        device=device,
    )


def make_distiller(config, data):
    return Distiller(config, dataset=data, preprocessor=make_preprocessor(data, zca=False))


def time_steps(distiller: Distiller, steps: int, warmup: int) -> dict:
    device = distiller.device
    for _ in range(warmup):
        distiller.step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        distiller.step()
    _sync(device)
    elapsed = time.perf_counter() - start
    distiller.check_finite()
    cfg = distiller.config
    inner = cfg.fixed_start + cfg.window
    out = dict(
        timed_outer_steps=steps,
        seconds=elapsed,
        outer_steps_per_s=steps / elapsed,
        inner_steps_per_outer=inner,
        inner_steps_per_s=steps * inner / elapsed,
        start=cfg.fixed_start,
        window=cfg.window,
    )
    if device.type == "cuda":
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        out["peak_memory_kind"] = "torch.cuda.max_memory_allocated during the timed steps"
    else:
        out["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["peak_memory_kind"] = "process peak RSS (ru_maxrss), whole process incl. data"
    return out


def count_flops(config, data) -> int:
    """FLOPs (matmul + conv, forward and backward) of one outer step of ``config``."""
    distiller = make_distiller(config, data)
    with FlopCounterMode(display=False) as counter:
        distiller.step()
    return int(counter.get_total_flops())


def paper_step_flops(dataset: str, device: str, small_real_batch: int = 8) -> dict:
    """FLOPs of one paper-preset outer step by linear extrapolation from small steps (see top)."""
    paper = resolve_config(dataset, "paper")
    data = _synthetic(dataset, 2 * small_real_batch)

    def at(start, window, real_batch):
        cfg = paper.replace(
            start_schedule="fixed",
            fixed_start=start,
            window=window,
            total_window=start + window,
            min_start=0,
            real_batch=real_batch,
            class_order="identity",
            zca=False,
            eval_models=0,
            device=device,
        )
        return count_flops(cfg, data)

    r0 = small_real_batch
    f0 = at(0, 1, r0)
    a = at(1, 1, r0) - f0  # one inner step without graph
    b = at(0, 2, r0) - f0  # one differentiable inner step (incl. its backward)
    r = (at(0, 1, 2 * r0) - f0) / r0  # one real image in the outer loss (fwd + bwd)
    base = f0 - b - r * r0
    predicted, measured = base + a + 2 * b + r * 2 * r0, at(1, 2, 2 * r0)
    mean_start = (paper.total_window - paper.window) / 2
    total = base + a * mean_start + b * paper.window + r * paper.real_batch
    total_max = base + a * (paper.total_window - paper.window) + b * paper.window + r * paper.real_batch
    return dict(
        dataset=dataset,
        window=paper.window,
        total_window=paper.total_window,
        real_batch=paper.real_batch,
        distill_batch=paper.distill_batch,
        width=paper.width,
        depth=paper.depth,
        flops_per_inner_step_no_graph=a,
        flops_per_window_step=b,
        flops_per_real_image=r,
        flops_base=base,
        flops_outer_step_mean_start=total,
        flops_outer_step_max_start=total_max,
        linearity_check=dict(
            predicted=predicted, measured=measured, relative_error=abs(predicted - measured) / measured
        ),
        method=f"FlopCounterMode on small steps (start 0-1, window 1-2, real batch {r0}-{2 * r0}), "
        f"extrapolated linearly to the preset's start/window/real batch",
    )


def matmul_throughput(device: torch.device, repeats: int = 5) -> dict:
    """Best-of-``repeats`` float32 torch.matmul FLOP/s on square matrices."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.matmul(a, b)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    info = dict(n=n, dtype="float32", seconds=best, flops_per_s=2 * n**3 / best)
    if device.type == "cuda":
        info["allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits", choices=sorted(SHAPES))
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    ap.add_argument("--mode", default="podd", choices=("podd", "baseline", "per-class"))
    ap.add_argument(
        "--set",
        action="extend",
        nargs="+",
        metavar="KEY=VALUE",
        help="override preset values (JSON values); repeatable",
    )
    ap.add_argument("--real", action="store_true", help="use the real dataset (already downloaded)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=5, help="timed outer steps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument(
        "--start",
        default="mean",
        choices=("mean", "max", "min"),
        help="fixed window start for timing (default: mean of the uniform draw)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--flops", action="store_true", help="FLOPs of one outer step for each paper preset")
    ap.add_argument("--flop-presets", nargs="+", default=list(PAPER_PRESETS), choices=PAPER_PRESETS)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    started = time.perf_counter()
    load_before = os.getloadavg()
    record: dict = {}

    throughput = matmul_throughput(torch.device(device))
    record["matmul"] = throughput
    print(f"matmul float32 {throughput['n']}²: {throughput['flops_per_s'] / 1e12:.3f} TFLOP/s")

    if not args.no_timing:
        config = bench_config(args.dataset, args.profile, args.mode, args.start, parse_set(args.set), device)
        if args.real:
            from podd.data import load_dataset

            data, source = load_dataset(args.dataset, download=False), "real"
        else:
            data, source = _synthetic(args.dataset, config.real_batch), "stand-in (synthetic, preset shape)"
        distiller = make_distiller(config, data)
        timing = time_steps(distiller, args.steps, args.warmup)
        flops = count_flops(config, data)
        timing.update(flops_per_outer_step=flops, achieved_flops_per_s=flops * timing["outer_steps_per_s"])
        timing["fraction_of_matmul"] = timing["achieved_flops_per_s"] / throughput["flops_per_s"]
        record["timing"] = dict(
            config=config.to_dict(), data_source=source, patches=distiller.source.num_patches, **timing
        )
        print(
            f"\n{args.dataset}/{args.profile}/{args.mode} on {device} ({source}): "
            f"{distiller.source.num_patches} patches, distill batch {distiller.distill_batch}, "
            f"real batch {config.real_batch}, start {config.fixed_start} + window {config.window}, "
            f"width {config.width}, depth {distiller.depth}"
        )
        print(
            f"{'outer steps/s':>14s} {'inner steps/s':>14s} {'peak memory':>12s} {'GFLOP/step':>11s} {'of matmul':>10s}"
        )
        print(
            f"{timing['outer_steps_per_s']:14.3f} {timing['inner_steps_per_s']:14.2f} "
            f"{timing['peak_memory_bytes'] / 2**30:10.2f}Gi {flops / 1e9:11.2f} "
            f"{100 * timing['fraction_of_matmul']:9.1f}%"
        )

    if args.flops:
        rows = []
        for name in args.flop_presets:
            print(f"counting FLOPs: {name} paper preset ...", flush=True)
            rows.append(paper_step_flops(name, device))
        record["paper_flops"] = rows
        print(
            f"\n{'preset':13s} {'start+window':>12s} {'real batch':>10s} {'TFLOP/outer step':>17s} "
            f"{'(max start)':>12s} {'lin. check':>11s}"
        )
        for r in rows:
            print(
                f"{r['dataset']:13s} {(r['total_window'] - r['window']) // 2:>5d}+{r['window']:<6d} "
                f"{r['real_batch']:10d} {r['flops_outer_step_mean_start'] / 1e12:17.2f} "
                f"{r['flops_outer_step_max_start'] / 1e12:12.2f} {r['linearity_check']['relative_error']:11.1e}"
            )

    result = provenance(
        device=device,
        benchmark="bench_distill",
        command="python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        dataset=args.dataset,
        profile=args.profile,
        mode=args.mode,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        wall_time_s=time.perf_counter() - started,
        **record,
    )
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

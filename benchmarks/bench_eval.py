"""Benchmark: training M evaluation models batched (one grouped network) vs one after another.

Both paths train the same models with the same random streams (podd.evaluate; the equality is a
test), so the only difference is how the work is laid out. Synthetic data of a dataset's shape:
speed does not depend on pixel values. Warm-up runs are excluded; timing is device-synchronised
(train_and_test synchronises before starting its clock and moves the accuracies to the host once
at the end). Repeats are interleaved (batched, sequential, batched, ...) and the minimum and the
median are reported, because a shared machine's load changes during a run.

    python benchmarks/bench_eval.py                          # CIFAR-shaped, M = 8, device auto
    python benchmarks/bench_eval.py --config digits          # the demo's small setting
    python benchmarks/bench_eval.py --threads 1 2            # CPU: intra-op threads 1 and 2
    python benchmarks/bench_eval.py --profile                # + torch.profiler top ops per path
    python benchmarks/bench_eval.py --out benchmarks/results/bench_eval_cpu.json

Writes JSON (with provenance) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_distill import matmul_throughput  # noqa: E402

from podd.evaluate import grouped_forward, train_and_test  # noqa: E402
from podd.io import write_json  # noqa: E402
from podd.models import ConvNet, init_parameters  # noqa: E402
from podd.provenance import provenance  # noqa: E402

# Shapes of the settings we care about: (channels, side, classes, images, width, depth, batch).
CONFIGS = {
    "cifar": dict(channels=3, side=32, classes=10, images=100, width=128, depth=3, batch=100, steps=8),
    "digits": dict(channels=1, side=8, classes=10, images=40, width=64, depth=2, batch=40, steps=40),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _data(cfg: dict, test_images: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    shape = (cfg["channels"], cfg["side"], cfg["side"])
    x = torch.randn(cfg["images"], *shape, generator=g)
    y = torch.arange(cfg["images"]) % cfg["classes"]
    tx = torch.randn(test_images, *shape, generator=g)
    ty = torch.arange(test_images) % cfg["classes"]
    return x, y, tx, ty


def time_training(
    cfg: dict, num_models: int, steps: int, warmup: int, repeats: int, test_images: int, device: torch.device
) -> dict:
    """Wall time of train_and_test (training loop + one test evaluation), batched vs sequential."""
    x, y, tx, ty = _data(cfg, test_images, device)
    kw = dict(
        num_models=num_models,
        lr=1e-3,
        batch_size=cfg["batch"],
        width=cfg["width"],
        depth=cfg["depth"],
        augment=True,
        seed=0,
        device=device,
    )
    times: dict[str, list[float]] = {"batched": [], "sequential": []}
    for sequential in (False, True):  # warm-up: kernels, allocator, caches
        train_and_test(x, y, tx, ty, steps=[warmup], sequential=sequential, **kw)
    accuracy = {}
    for _ in range(repeats):
        for name, sequential in (("batched", False), ("sequential", True)):
            result = train_and_test(x, y, tx, ty, steps=[steps], sequential=sequential, **kw)
            times[name].append(result.wall_time_s)
            accuracy[name] = result.accuracy[:, 0].tolist()
    row = {}
    for name, ts in times.items():
        row[name] = dict(
            times_s=ts, min_s=min(ts), median_s=statistics.median(ts), model_steps_per_s=num_models * steps / min(ts)
        )
    row["speedup_min"] = row["sequential"]["min_s"] / row["batched"]["min_s"]
    row["speedup_median"] = row["sequential"]["median_s"] / row["batched"]["median_s"]
    row["accuracy_batched"], row["accuracy_sequential"] = accuracy["batched"], accuracy["sequential"]
    return row


def count_training_flops(cfg: dict, num_models: int, steps: int, test_images: int, device: torch.device) -> float:
    """FLOPs (convolutions and matmuls, FlopCounterMode) of what time_training times: ``steps``
    training steps of the M models plus one test pass; counted at 1 and 2 steps, extrapolated
    linearly (every step has the same shapes)."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y, tx, ty = _data(cfg, test_images, device)
    kw = dict(
        num_models=num_models,
        lr=1e-3,
        batch_size=cfg["batch"],
        width=cfg["width"],
        depth=cfg["depth"],
        augment=True,
        seed=0,
        device=device,
        sequential=True,
    )
    counts = []
    for n in (1, 2):
        with FlopCounterMode(display=False) as counter:
            train_and_test(x, y, tx, ty, steps=[n], **kw)
        counts.append(counter.get_total_flops())
    per_step = counts[1] - counts[0]
    return float(counts[0] + per_step * (steps - 1))


def roofline(flops: float, row: dict, matmul_flops_per_s: float) -> dict:
    """How close the sequential path already is to the device's matmul throughput, and so the
    most ANY layout of the same FLOPs could gain: time >= FLOPs / throughput."""
    achieved = flops / row["sequential"]["min_s"]
    return dict(
        flops=flops,
        sequential_flops_per_s=achieved,
        batched_flops_per_s=flops / row["batched"]["min_s"],
        sequential_fraction_of_matmul=achieved / matmul_flops_per_s,
        max_speedup_at_matmul_throughput=matmul_flops_per_s / achieved,
    )


def time_one_step(cfg: dict, num_models: int, repeats: int, device: torch.device) -> dict:
    """One forward+backward of M models, three layouts: sequential, vmap(functional_call), grouped.

    No optimizer, no augmentation: isolates the network layout, which is what batching changes.
    """
    net = ConvNet(cfg["channels"], cfg["classes"], cfg["side"], cfg["width"], cfg["depth"]).to(device)
    inits = [init_parameters(net, torch.Generator().manual_seed(m), device) for m in range(num_models)]
    stacked = {k: torch.stack([p[k] for p in inits]) for k in inits[0]}
    b, c, s = cfg["batch"], cfg["channels"], cfg["side"]
    x = torch.randn(num_models, b, c, s, s, device=device)
    y = torch.randint(cfg["classes"], (num_models, b), device=device)

    def sequential():
        for m in range(num_models):
            p = {k: v.clone().requires_grad_() for k, v in inits[m].items()}
            F.cross_entropy(functional_call(net, p, (x[m],)), y[m]).backward()

    def vmapped():
        p = {k: v.clone().requires_grad_() for k, v in stacked.items()}
        logits = vmap(lambda q, xb: functional_call(net, q, (xb,)))(p, x)
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").backward()

    def grouped():
        p = {k: v.clone().requires_grad_() for k, v in stacked.items()}
        logits = grouped_forward(net, p, x.transpose(0, 1).reshape(b, num_models * c, s, s))
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.t().reshape(-1), reduction="sum").backward()

    fns = {"sequential": sequential, "vmap": vmapped, "grouped": grouped}
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            _sync(device)
            start = time.perf_counter()
            f()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {k: dict(times_s=v, min_s=min(v), median_s=statistics.median(v)) for k, v in times.items()}


def profile_paths(cfg: dict, num_models: int, steps: int, device: torch.device, rows: int = 12) -> dict:
    """torch.profiler: the ops that take the time in each path (self time, ms)."""
    from torch.profiler import ProfilerActivity, profile

    x, y, tx, ty = _data(cfg, 50, device)
    kw = dict(num_models=num_models, batch_size=cfg["batch"], width=cfg["width"], depth=cfg["depth"], device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    out = {}
    for name, sequential in (("batched", False), ("sequential", True)):
        train_and_test(x, y, tx, ty, steps=[1], sequential=sequential, **kw)
        with profile(activities=activities) as prof:
            train_and_test(x, y, tx, ty, steps=[steps], sequential=sequential, **kw)
        table = prof.key_averages()
        key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        top = sorted(table, key=lambda e: getattr(e, key), reverse=True)[:rows]
        total = sum(getattr(e, key) for e in table)
        out[name] = dict(
            total_self_ms=total / 1e3, top=[dict(op=e.key, self_ms=getattr(e, key) / 1e3, calls=e.count) for e in top]
        )
        print(f"\n[profile: {name}, {steps} steps]")
        print(table.table(sort_by=key, row_limit=rows))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="+", default=["cifar"], choices=sorted(CONFIGS))
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--num-models", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="timed training steps per run (default: per config)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved timed runs per path")
    ap.add_argument("--test-images", type=int, default=100)
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="torch intra-op thread counts to measure (0: torch's default)",
    )
    ap.add_argument("--no-step-bench", action="store_true", help="skip the forward+backward layout comparison")
    ap.add_argument("--profile", action="store_true", help="also run torch.profiler on each path")
    ap.add_argument("--out", default=None, help="JSON output path")
    args = ap.parse_args(argv)

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    default_threads = torch.get_num_threads()
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = {}
    throughput = {}
    for threads in args.threads:
        torch.set_num_threads(threads or default_threads)
        for config in args.config:
            cfg = CONFIGS[config]
            steps = args.steps or cfg["steps"]
            name = f"{config}@{torch.get_num_threads()}t"
            print(
                f"[{name}] {cfg}, M={args.num_models}, {steps} steps, device {device}, "
                f"{torch.get_num_threads()} threads",
                flush=True,
            )
            row = {"config": cfg, "steps": steps, "threads": torch.get_num_threads()}
            row["train_and_test"] = time_training(
                cfg, args.num_models, steps, args.warmup, args.repeats, args.test_images, device
            )
            if threads not in throughput:
                throughput[threads] = matmul_throughput(device)
            row["matmul"] = throughput[threads]
            row["roofline"] = roofline(
                count_training_flops(cfg, args.num_models, steps, args.test_images, device),
                row["train_and_test"],
                throughput[threads]["flops_per_s"],
            )
            if not args.no_step_bench:
                row["forward_backward"] = time_one_step(cfg, args.num_models, max(args.repeats, 2), device)
            if args.profile:
                row["profile"] = profile_paths(cfg, args.num_models, 2, device)
            results[name] = row
            print(f"  -> speed-up {row['train_and_test']['speedup_min']:.2f}x", flush=True)

    print(f"\n{'config':12s} {'path':11s} {'min s':>8s} {'median s':>9s} {'model-steps/s':>14s} {'speed-up':>9s}")
    for name, row in results.items():
        tt = row["train_and_test"]
        for path in ("sequential", "batched"):
            r = tt[path]
            speed = f"{tt['speedup_min']:.2f}x" if path == "batched" else ""
            print(
                f"{name:12s} {path:11s} {r['min_s']:8.2f} {r['median_s']:9.2f} "
                f"{r['model_steps_per_s']:14.2f} {speed:>9s}"
            )
        rl = row["roofline"]
        print(
            f"{'':12s} sequential runs at {100 * rl['sequential_fraction_of_matmul']:.0f}% of the "
            f"measured matmul throughput ({row['matmul']['flops_per_s'] / 1e12:.3f} TFLOP/s): no "
            f"layout of these FLOPs can be more than {rl['max_speedup_at_matmul_throughput']:.1f}x faster"
        )
        if "forward_backward" in row:
            fb = row["forward_backward"]
            print(
                f"{'':12s} one fwd+bwd of {args.num_models} models (min s): "
                + ", ".join(f"{k} {v['min_s']:.3f}" for k, v in fb.items())
            )

    record = provenance(
        device=device,
        benchmark="bench_eval",
        data_source="stand-in (synthetic Gaussian)",
        command="python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        hyperparameters=dict(
            num_models=args.num_models,
            warmup=args.warmup,
            repeats=args.repeats,
            test_images=args.test_images,
            lr=1e-3,
            augment=True,
        ),
        torch_threads=args.threads,
        cpu_count=os.cpu_count(),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        results=results,
        wall_time_s=time.perf_counter() - started,
    )
    if args.out:
        write_json(args.out, record)
        print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()

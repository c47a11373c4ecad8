"""Benchmark: peak memory of one outer step of each paper preset, with and without the savers.

What it measures: the memory one ``Distiller.step()`` needs above what the run holds anyway
(poster, outer Adam state, the network's structure, the data), for the paper presets at the
authors' patch counts, distilled batch, width, depth and image size, on THIS machine's CPU:

* each point runs in a fresh process whose glibc returns every freed block above 64 KiB to the
  kernel (``MALLOC_MMAP_THRESHOLD_``), so the resident set follows the live tensors; the peak is
  the kernel's high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the
  step) minus the resident set before it;
* every point uses the preset's FULL real batch (the outer loss's activations are alive
  together with the window's graph at the peak; at small real batches the backward's transient
  buffers hide them, so they cannot be extrapolated from small batches). The window cannot be
  run at full length here (tens of GB), so the peak is measured at windows 1 and 2 and
  extrapolated LINEARLY in the window — each differentiable inner step keeps the same tensors —
  and checked at window 3;
* variants: ``plain`` (the whole window's graph and the whole real batch at once) and
  ``savers`` (``recompute_window=True`` and ``real_chunk``): then the real-batch term is one
  chunk and the window term is three flat parameter vectors per step.

A GPU needs more than this: cuDNN workspaces, the caching allocator's rounding and
fragmentation, and the CUDA context. The numbers say which settings can fit in 40 GB; the
lent GPU's ``torch.cuda.max_memory_allocated`` (``bench_distill.py``) is the real figure.

    python benchmarks/bench_memory.py --out benchmarks/results/bench_memory_cpu.json
    python benchmarks/bench_memory.py --presets cub200 --chunk 250
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PAPER_PRESETS = ("cifar10", "cifar100", "cub200", "tinyimagenet")
GLIBC = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_ARENA_MAX": "1"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_point(dataset: str, window: int, real_batch: int, recompute_window: bool, real_chunk: int | None) -> dict:
    """In THIS process: the peak bytes of one outer step above the resident set before it."""
    import gc

    import torch
    from bench_distill import _synthetic, make_distiller

    from podd.presets import resolve_config

    config = resolve_config(dataset, "paper").replace(
        start_schedule="fixed",
        fixed_start=0,
        min_start=0,
        window=window,
        total_window=window,
        real_batch=real_batch,
        real_chunk=real_chunk,
        recompute_window=recompute_window,
        class_order="identity",
        zca=False,
        eval_models=0,
        device="cpu",
    )
    distiller = make_distiller(config, _synthetic(dataset, real_batch))
    gc.collect()
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")  # reset the high-water mark to the current resident set
    distiller.step()
    peak = _status_kib("VmHWM")
    return {
        "dataset": dataset,
        "window": window,
        "real_batch": real_batch,
        "recompute_window": recompute_window,
        "real_chunk": real_chunk,
        "patches": distiller.source.num_patches,
        "distill_batch": distiller.distill_batch,
        "width": config.width,
        "depth": distiller.depth,
        "threads": torch.get_num_threads(),
        "step_bytes": (peak - before) * 1024,
    }


def _in_fresh_process(**point) -> dict:
    env = {**os.environ, **GLIBC}
    out = subprocess.run(
        [sys.executable, __file__, "--point", json.dumps(point)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"measuring {point} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def preset_memory(dataset: str, savers: bool, chunk: int) -> dict:
    """Peak step memory of the paper preset at its full real batch: measured at windows 1 and 2,
    extrapolated linearly to the preset's window, checked at window 3 (see the module
    docstring)."""
    from podd.presets import resolve_config

    paper = resolve_config(dataset, "paper")

    def at(window):
        return _in_fresh_process(
            dataset=dataset,
            window=window,
            real_batch=paper.real_batch,
            recompute_window=savers,
            real_chunk=chunk if savers else None,
        )["step_bytes"]

    p1, p2 = at(1), at(2)
    per_window_step = p2 - p1
    predicted, measured = p1 + 2 * per_window_step, at(3)
    total = p1 + per_window_step * (paper.window - 1)
    return dict(
        dataset=dataset,
        variant="savers" if savers else "plain",
        recompute_window=savers,
        real_chunk=chunk if savers else None,
        window=paper.window,
        real_batch=paper.real_batch,
        distill_batch=paper.distill_batch,
        width=paper.width,
        depth=paper.depth,
        bytes_window_1=p1,
        bytes_per_window_step=per_window_step,
        step_bytes=total,
        linearity_check=dict(
            window=3, predicted=predicted, measured=measured, relative_error=abs(predicted - measured) / measured
        ),
        resident_data_bytes=_data_bytes(dataset),
    )


def _data_bytes(dataset: str) -> int:
    """float32 bytes of the preprocessed train + test images the Distiller keeps on the device."""
    sizes = {
        "cifar10": (50_000, 10_000, 3 * 32 * 32),
        "cifar100": (50_000, 10_000, 3 * 32 * 32),
        "cub200": (5_994, 5_794, 3 * 32 * 32),
        "tinyimagenet": (100_000, 10_000, 3 * 64 * 64),
    }
    train, test, pixels = sizes[dataset]
    return 4 * (train + test) * pixels


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=list(PAPER_PRESETS), choices=PAPER_PRESETS)
    ap.add_argument("--chunk", type=int, default=250, help="real_chunk of the 'savers' variant")
    ap.add_argument("--out", default=None)
    ap.add_argument("--point", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    args = ap.parse_args(argv)
    if args.point:
        print(json.dumps(measure_point(**json.loads(args.point))))
        return {}
    from podd.io import write_json
    from podd.provenance import provenance

    started, load_before = time.perf_counter(), os.getloadavg()
    rows = []
    for dataset in args.presets:
        for savers in (False, True):
            print(f"measuring {dataset} ({'savers' if savers else 'plain'}) ...", flush=True)
            rows.append(preset_memory(dataset, savers, args.chunk))
    gib = 2**30
    print(
        f"\n{'preset':13s} {'variant':8s} {'window 1':>9s} {'per window step':>16s} "
        f"{'step peak':>10s} {'+ data':>8s} {'lin. check':>11s}"
    )
    for r in rows:
        print(
            f"{r['dataset']:13s} {r['variant']:8s} {r['bytes_window_1'] / gib:7.2f}Gi "
            f"{r['bytes_per_window_step'] / 2**20:13.1f}MiB {r['step_bytes'] / gib:8.1f}Gi "
            f"{(r['step_bytes'] + r['resident_data_bytes']) / gib:6.1f}Gi "
            f"{r['linearity_check']['relative_error']:11.1e}"
        )
    result = provenance(
        device="cpu",
        benchmark="bench_memory",
        command="python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        method="CPU high-water mark of one step in fresh processes (glibc returning "
        "freed blocks), full real batch, windows 1-2 extrapolated linearly "
        "in the window, checked at window 3",
        glibc_env=GLIBC,
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        wall_time_s=time.perf_counter() - started,
        rows=rows,
    )
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

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
processes, by default one per distillation (at most two per CPU core). The comparison itself is
:func:`podd.experiments.compare_on_digits`, the one the benchmarks run with more seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from podd.experiments import DIGITS_METHODS, compare_on_digits, default_workers, format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podd.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/demo", help="where posters and runs go")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-models", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes running the distillations side by side, one torch thread "
        "each (default: one per distillation, at most 2 per CPU core)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads when --workers 1 (default 1: these tiny "
        "convolutions gain little from a second thread, and oversubscribed "
        "threads slow to a crawl on a busy machine)",
    )
    args = parser.parse_args(argv)
    workers = args.workers if args.workers is not None else default_workers(len(DIGITS_METHODS))
    if workers < 1:
        parser.error(f"--workers {workers}: must be at least 1")
    torch.set_num_threads(args.threads)
    report = compare_on_digits(
        args.profile,
        seeds=(args.seed,),
        eval_models=args.eval_models,
        out_dir=args.out,
        progress=not args.no_progress,
        workers=workers,
    )
    print()
    print(format_table(report))
    print(f"\nposters: {', '.join(sorted(str(p) for p in Path(args.out).glob('*.png')))}")
    print(f"total time: {report['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

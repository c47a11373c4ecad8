"""``make demo``: distil the bundled digits into posters and compare them with real images.

Distils scikit-learn's digits (all 1797 images: the data layer's stratified train/test split)
three ways — PoDD at 0.5 and 1 IPC, and the RaT-BPTT baseline at 1 IPC (one non-overlapping
image per class) — then trains fresh ConvNets on each result and on a random real 1-IPC subset,
and prints a table of test accuracy (mean ± std over the evaluation models). Posters go to
``runs/demo/`` as PNG files (with the full run directories beside them).

The paper's claim to look for: PoDD at 1 IPC beats both the real subset and the baseline, and
PoDD at 0.5 IPC (half the pixels) still matches the real 1-IPC subset.

``python -m podd.demo [--out DIR] [--seed S] [--eval-models M] [--profile quick|paper|smoke]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

DATA_LABEL = "digits (sklearn, full 1797 images)"

# (method label, mode, ipc) — the rows the paper's comparison needs on digits.
METHODS = (("PoDD", "podd", 0.5), ("PoDD", "podd", 1.0), ("RaT-BPTT baseline", "baseline", 1.0))


def compare_on_digits(profile: str = "quick", seeds=(0,), eval_models: int | None = None,
                      eval_steps=None, out_dir: str | Path | None = "runs/demo",
                      progress: bool = True, dataset=None, methods=METHODS,
                      **overrides) -> dict[str, Any]:
    """Distil digits with each of METHODS for each seed, evaluate, and return rows + settings.

    Each row: method, mode, ipc (effective, from the poster's pixels), pixels, seeds, per-model
    accuracies (all seeds pooled), mean and std. The random-real row evaluates one random
    1-IPC subset per seed (subset seed = distillation seed) with the same protocol.
    ``methods``: a subset of METHODS; ``overrides``: DistillConfig values for every distillation
    (e.g. ``steps=600``).
    """
    from podd.data import load_dataset, make_preprocessor
    from podd.distill import distill
    from podd.evaluate import random_real_subset, train_and_test
    from podd.presets import get_preset
    from podd.runs import write_png

    t0 = time.perf_counter()
    ds = dataset if dataset is not None else load_dataset("digits")
    base = get_preset("digits", profile, **overrides)
    pre = make_preprocessor(ds, zca=base.zca)
    eval_models = eval_models or base.eval_models
    eval_steps = tuple(eval_steps or base.eval_steps)
    out_dir = Path(out_dir) if out_dir is not None else None
    x_test, y_test = pre(ds.x_test), ds.y_test
    (c, h, w), K = ds.image_shape, ds.num_classes

    rows = []
    real_acc = []
    for seed in seeds:
        x, y = random_real_subset(ds, 1, seed)
        result = train_and_test(pre(x), y, x_test, y_test, num_models=eval_models,
                                steps=eval_steps, lr=base.inner_lr, batch_size=K,
                                width=base.width, depth=base.depth, augment=base.augment,
                                seed=seed, num_classes=K)
        real_acc.append(result.accuracy[:, -1])
    rows.append(_row("random real", "real", 1.0, K * h * w, seeds, torch.cat(real_acc)))

    runs = {}
    for method, mode, ipc in methods:
        accs, geometry = [], None
        for seed in seeds:
            config = get_preset("digits", profile, **{**overrides, "mode": mode, "ipc": ipc,
                                                       "seed": seed, "eval_models": eval_models,
                                                       "eval_steps": eval_steps})
            name = f"{mode}-ipc{ipc:g}-seed{seed}"
            run_dir = out_dir / name if out_dir is not None else None
            if run_dir is not None and run_dir.exists():
                import shutil

                shutil.rmtree(run_dir)  # the demo always starts fresh
            result = distill(config, ds, out_dir=run_dir, progress=progress, preprocessor=pre)
            accs.append(result.evaluation.accuracy[:, -1])
            geometry = result.artifact.geometry
            if out_dir is not None:
                write_png(out_dir / f"{name}.png", result.artifact.poster, pre, (h, w))
            runs[name] = str(run_dir) if run_dir is not None else None
        rows.append(_row(method, mode, geometry.ipc, geometry.pixels, seeds, torch.cat(accs)))

    return {"dataset": DATA_LABEL, "data_source": getattr(ds, "source", "full"),
            "profile": profile, "seeds": list(seeds), "eval_models_per_seed": eval_models,
            "eval_steps": eval_steps[-1], "settings": base.to_dict(), "overrides": overrides,
            "rows": rows, "runs": runs,
            "wall_time_s": round(time.perf_counter() - t0, 1)}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podd.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/demo", help="where posters and runs go")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-models", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: these tiny convolutions gain little "
                             "from a second thread, and oversubscribed threads slow to a crawl "
                             "on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = compare_on_digits(args.profile, seeds=(args.seed,), eval_models=args.eval_models,
                               out_dir=args.out, progress=not args.no_progress)
    print()
    print(format_table(report))
    print(f"\nposters: {', '.join(sorted(str(p) for p in Path(args.out).glob('*.png')))}")
    print(f"total time: {report['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

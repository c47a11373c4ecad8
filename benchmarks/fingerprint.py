"""Behaviour fingerprint: exact per-model accuracies of short seeded runs, for refactors.

A refactor that leaves behaviour unchanged must print the same lines before and after (the
runs are seeded and single-threaded). Digits, a few outer steps per method, fixed and learned
labels, plus the real-subset row: ``python benchmarks/fingerprint.py > before.txt``, change the
code, run it again and ``diff`` the two files.
"""

from __future__ import annotations

import torch

from podd.data.dataset import stand_in
from podd.experiments import compare_methods, compare_on_digits


def main() -> None:
    torch.set_num_threads(1)
    for labels in ("fixed", "learned"):
        result = compare_on_digits(
            "quick", seeds=(0,), eval_models=2, eval_steps=(40,), out_dir=None, progress=False, steps=12, labels=labels
        )
        for row in result["rows"]:
            accuracies = " ".join(f"{a:.6f}" for a in row["accuracies"])
            print(f"digits  {labels:8s} {row['method']:18s} ipc={row['ipc']:.4f} {accuracies}")
    # CIFAR-10's preset (ZCA, the authors' 60x153 poster) on a small CIFAR-shaped stand-in.
    ds = stand_in("cifar10", 10, (3, 32, 32), n_train_per_class=30, n_test_per_class=10, seed=0)
    result = compare_methods(
        ds,
        "cifar10",
        "stand-in",
        "quick",
        seeds=(0,),
        eval_models=2,
        eval_steps=(30,),
        out_dir=None,
        progress=False,
        steps=4,
        distill_batch=10,
        real_batch=64,
        window=2,
        total_window=4,
        width=8,
        class_order="identity",
    )
    for row in result["rows"]:
        accuracies = " ".join(f"{a:.6f}" for a in row["accuracies"])
        print(f"cifar10 fixed    {row['method']:18s} ipc={row['ipc']:.4f} {accuracies}")


if __name__ == "__main__":
    main()

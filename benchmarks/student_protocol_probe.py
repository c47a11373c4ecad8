"""Is a poor cross-architecture cell the poster's fault or the student's training settings?

Takes one run of a ``benchmarks/quality_cifar10.py`` run (by its directory name, e.g.
``podd-ipc1-seed0``) and trains ONE student of ``--arch`` on it under the run's own evaluation
protocol with one setting changed at a time (learning rate, augmentation, batch size), printing
the test accuracy after each of ``--steps`` (mean ± std over ``--models`` students). A probe for
a direction, not a result (the cross-architecture table is ``cross_arch.py``'s); with one model
per setting the differences are mostly the student's own noise.

    .venv/bin/python benchmarks/student_protocol_probe.py --quality Q.json --run podd-ipc1-seed0 \\
        --arch alexnet --steps 100 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cross_arch  # the quality run's data split and preprocessing, as the table uses them

from podd.config import DistillConfig
from podd.distiller import patches_and_labels
from podd.evaluate import EvalProtocol
from podd.provenance import git_commit
from podd.rundir import load_run

#: One change per line; "protocol" is the run's own.
SETTINGS = {
    "protocol": {},
    "lr 3e-4": {"lr": 3e-4},
    "no augmentation": {"augment": False},
    "batch 10": {"batch_size": 10},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", type=Path, required=True, help="JSON written by quality_cifar10.py")
    parser.add_argument("--run", required=True, help="a run's key in the quality JSON, e.g. podd-ipc1-seed0")
    parser.add_argument("--arch", default="alexnet")
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--models", type=int, default=1, help="students per setting")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()

    quality = json.loads(args.quality.read_text())
    if args.run not in quality["runs"]:
        parser.error(f"{args.run!r} is not a run of {args.quality}; its runs: {', '.join(quality['runs'])}")
    ds = cross_arch.load_split(quality)
    artifact, _ = load_run(quality["runs"][args.run])
    config = DistillConfig.from_dict(artifact.config)
    _, test_x = cross_arch.preprocessed(ds, config.zca)
    images, labels = patches_and_labels(artifact)
    what = f"{len(images)} training images, {args.arch}, steps {args.steps}, {args.models} model(s)"
    print(f"{args.run}: {what}, commit {git_commit()}")
    for name in args.settings:
        protocol = EvalProtocol.from_config(
            config, num_models=args.models, seed=config.seed, arch=args.arch, steps=tuple(args.steps), **SETTINGS[name]
        )
        started = time.perf_counter()
        result = protocol.run(images, labels, test_x, ds.y_test)
        shown = ", ".join(f"{result.mean(step):.1f} ± {result.std(step):.1f}" for step in args.steps)
        print(f"  {name:16s} {shown}  ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

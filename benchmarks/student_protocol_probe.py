"""Is a poor cross-architecture cell the poster's fault or the student's training settings?

Takes one poster of a ``benchmarks/quality_cifar10.py`` run (by its key, e.g. ``podd-ipc1-seed0``)
and trains ``--models`` students of ``--arch`` on it under the run's own evaluation protocol with
one setting changed at a time (learning rate, augmentation, batch size), printing the test
accuracy (mean ± std over the students) after each of ``--steps``. A probe for a direction, not
a result (the cross-architecture table is ``cross_arch.py``'s); a single student's run-to-run
noise on a poster is as large as the settings' differences, hence several.

    .venv/bin/python benchmarks/student_protocol_probe.py --quality Q.json --run podd-ipc1-seed0 \\
        --arch alexnet --steps 100 300 --models 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cross_arch  # the quality run's data split and preprocessing, as the table uses them

from podd.choices import EVAL_ARCHS
from podd.provenance import git_commit

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
    parser.add_argument("--arch", default="alexnet", choices=EVAL_ARCHS)
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--models", type=int, default=4, help="students per setting")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()

    quality = json.loads(args.quality.read_text())
    if args.run not in quality["runs"]:
        parser.error(f"{args.run!r} is not a run of {args.quality}; its runs: {', '.join(quality['runs'])}")
    ds = cross_arch.load_split(quality)
    print(f"{args.run}: {args.arch}, steps {args.steps}, {args.models} model(s), commit {git_commit()}")
    for name in args.settings:
        started = time.perf_counter()
        result, _ = cross_arch.train_students(
            quality["runs"][args.run], ds, args.arch, args.models, steps=tuple(args.steps), **SETTINGS[name]
        )
        shown = ", ".join(f"{result.mean(step):.1f} ± {result.std(step):.1f}" for step in args.steps)
        print(f"  {name:16s} {shown}  ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

"""Does ``--distributed tasks`` buy accuracy? N tasks per outer step against more outer steps.

``torchrun --distributed tasks`` gives every outer step N meta-gradient tasks (one fresh inner
network, its patch batches, augmentations and real batch per process), averaged. Whether that
reaches a given accuracy in fewer outer steps is the only reason to spend N processes on it, so
this script distils with the command a user would type and compares, per seed:

* ``1 × S``  — one process, S outer steps (the same wall-clock as the next arm, given N cores);
* ``N × S``  — N processes under ``torchrun --distributed tasks``, S outer steps (N·S tasks);
* ``1 × NS`` — one process, N·S outer steps (the same number of tasks, N times the wall-clock).

Every process runs one thread, so with N free cores the first two arms take about the same
wall-clock time. Data: digits (real, bundled with scikit-learn), the ``quick`` profile; the
engine evaluates every poster (``eval_models`` ConvNets on digits' test split) and the table
reports mean ± std over the seeds of those per-run means. Writes JSON (every run's accuracy,
wall time and command, provenance) and a markdown table.

    .venv/bin/python benchmarks/quality_tasks.py --steps 150 --seeds 0 1 2 \\
        --out benchmarks/results/quality_tasks_digits
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from podd.io import write_json  # noqa: E402
from podd.provenance import provenance  # noqa: E402


def arms(steps: int, world_size: int) -> list[tuple[str, int, int]]:
    """(name, processes, outer steps) of the three arms compared."""
    return [
        (f"1 × {steps}", 1, steps),
        (f"{world_size} × {steps} (tasks)", world_size, steps),
        (f"1 × {world_size * steps}", 1, world_size * steps),
    ]


def distill_command(
    processes: int, steps: int, seed: int, out: Path, dataset: str, profile: str, ipc: float
) -> list[str]:
    """The command line of one run, exactly as a user would type it."""
    podd = [
        "-m",
        "podd.cli",
        "distill",
        "--dataset",
        dataset,
        "--ipc",
        str(ipc),
        "--profile",
        profile,
        "--steps",
        str(steps),
        "--seed",
        str(seed),
        "--threads",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    if processes == 1:
        return [sys.executable, *podd]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    return [*torchrun, *podd, "--distributed", "tasks"]


def run_one(command: list[str], out: Path) -> dict:
    """Run one distillation (from scratch) and read its evaluation from ``final.json``."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    final = json.loads((out / "final.json").read_text())
    evaluation = final["result"]["evaluation"]
    return {
        "accuracy": evaluation["mean"][-1],
        "std": evaluation["std"][-1],
        "wall_s": round(wall, 1),
        "command": " ".join(command[1:]).replace(sys.executable, "python"),
    }


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and spread over the seeds per arm."""
    import statistics

    rows = []
    for name in dict.fromkeys(r["arm"] for r in runs):
        mine = [r for r in runs if r["arm"] == name]
        accs = [r["accuracy"] for r in mine]
        rows.append(
            {
                "arm": name,
                "processes": mine[0]["processes"],
                "outer_steps": mine[0]["steps"],
                "tasks": mine[0]["processes"] * mine[0]["steps"],
                "accuracy": round(statistics.mean(accs), 2),
                "std_over_seeds": round(statistics.pstdev(accs), 2) if len(accs) > 1 else 0.0,
                "wall_s": round(statistics.mean(r["wall_s"] for r in mine), 1),
                "per_seed": [round(a, 2) for a in accs],
            }
        )
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"`--distributed tasks` on {result['dataset']} at {result['ipc']:g} IPC "
        f"(profile {result['profile']}), seeds {result['seeds']}: mean test accuracy over the seeds (each run: "
        f"{result['eval']}), ± the spread of the per-seed means.",
        "",
        "| arm | processes | outer steps | tasks | accuracy (%) | per seed | wall (s) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['arm']} | {row['processes']} | {row['outer_steps']} | {row['tasks']} | "
            f"{row['accuracy']:.1f} ± {row['std_over_seeds']:.1f} | "
            f"{', '.join(f'{a:.1f}' for a in row['per_seed'])} | {row['wall_s']:.0f} |"
        )
    prov = result["provenance"]
    lines += [
        "",
        f"<sub>{prov['device']}; commit {prov['git_commit']}; {prov['created_utc']}; "
        f"wall: mean per run, processes single-threaded; {result['load_note']}</sub>",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--ipc", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=150, help="S: outer steps of the short arms")
    parser.add_argument("--world-size", type=int, default=2, help="N: processes of the tasks arm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs/quality_tasks"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality_tasks_digits"))
    parser.add_argument(
        "--load-note",
        default="the CPU was otherwise idle",
        help="what else ran on the machine (wall times depend on it)",
    )
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        for name, processes, steps in arms(args.steps, args.world_size):
            out = args.runs / f"seed{seed}-{processes}x{steps}"
            run = run_one(distill_command(processes, steps, seed, out, args.dataset, args.profile, args.ipc), out)
            runs.append({"arm": name, "processes": processes, "steps": steps, "seed": seed, **run})
            print(
                f"seed {seed} {name:>16}: {run['accuracy']:.1f} ± {run['std']:.1f} %  ({run['wall_s']:.0f} s)",
                flush=True,
            )
    final = json.loads((args.runs / f"seed{args.seeds[0]}-1x{args.steps}" / "final.json").read_text())
    evaluation = final["result"]["evaluation"]
    result = {
        "dataset": args.dataset,
        "profile": args.profile,
        "ipc": args.ipc,
        "seeds": args.seeds,
        "world_size": args.world_size,
        "steps": args.steps,
        "eval": f"{evaluation['num_models']} models × {evaluation['steps'][-1]} steps",
        "load_note": args.load_note,
        "runs": runs,
        "rows": summarise(runs),
        "provenance": provenance(threads=1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), result)
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

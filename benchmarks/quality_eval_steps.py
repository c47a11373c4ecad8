"""Re-evaluate a quality benchmark's posters for longer: the paper's 300, 600, 1000 and 2000 steps.

The paper's evaluation (§5.1; REFERENCE.md) tests each student at 300, 600, 1000 and 2000
training steps; the CPU profiles test at 300 only. This script takes the JSON that
``quality_cifar10.py`` wrote, loads every run's final poster from its run directory, and trains
the same evaluation models again (same seeds, learning rate, batches and augmentation, same
train/validation split) while testing them at each of ``--steps``. The random-real row is
recomputed the same way. Nothing is distilled again.

    .venv/bin/python benchmarks/quality_eval_steps.py \\
        --results benchmarks/results/quality_cifar10_width64.json \\
        --data PATH/cifar10-train-subset.npz --steps 300 600 1000 2000 \\
        --out benchmarks/results/quality_cifar10_width64_eval_steps

Every number is a result on the 10 % SUBSET of CIFAR-10 the benchmark used, and the tables say
so. A 300-step column equal to the benchmark's own table shows the protocol is the same.

Long runs (a PoDD row is hours on 2 cores): ``--models-per-job K`` splits each poster's models
into jobs of K (the same students, ``EvalProtocol.first_model``) so the workers stay busy to the
end, and every finished job is written at once to ``OUT.jobs.jsonl``; a run cut off goes on with
the same command plus ``--resume`` and redoes only the unfinished jobs. The journal is removed
once the tables are written.

``--labels fixed|area`` trains the students on other labels than the posters' own (PoDD rows
only): the fixed majority labels, or each class's share of the patch's pixels — what learned
labels are before they learn (:func:`podd.labels.area_labels`). The same poster evaluated with
its learned labels, with those it started from, and with fixed ones tells what learning the
labels contributed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from concurrent.futures import as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quality_report import report_path  # noqa: E402  (benchmarks/, the script's own folder)


def _evaluate_job(job: dict) -> dict:
    """One row-seed: train ``eval_models`` students and test them at every step (percent)."""
    from podd.config import DistillConfig
    from podd.data import load_dataset, train_val_split
    from podd.distiller import patches_and_labels
    from podd.evaluate import EvalProtocol
    from podd.experiments import preprocessor_for, random_real_accuracy
    from podd.rundir import load_run

    t0 = time.perf_counter()
    ds = train_val_split(load_dataset(f"npz:{job['data']}"), n_val=job["n_val"], seed=job["split_seed"])
    steps = tuple(job["steps"])
    if job["run_dir"] is None:  # the random-real row, as quality_cifar10 makes it
        accuracy = random_real_accuracy(
            ds, DistillConfig.from_dict(job["settings"]), job["eval_models"], steps, job["seed"]
        )
    else:
        artifact, _ = load_run(job["run_dir"])
        config = DistillConfig.from_dict(artifact.config)
        images, labels = patches_and_labels(artifact)
        labels = student_labels(artifact, labels, job.get("labels", "run"))
        protocol = EvalProtocol.from_config(
            config, num_models=job["eval_models"], steps=steps, device="cpu", first_model=job["first_model"]
        )
        test_x = preprocessor_for(ds, config.zca)(ds.x_test)
        accuracy = protocol.run(images, labels, test_x, ds.y_test).accuracy
    return {"accuracy": accuracy.tolist(), "seconds": round(time.perf_counter() - t0, 1)}


LABELS = ("run", "fixed", "area")


def student_labels(artifact, own, kind: str):
    """The labels the students train on: the poster's ``own`` (``run``), or the fixed majority
    labels or pixel-share (``area``) labels of its geometry and class order. The baseline's
    images each lie in one class, where all three are the same one-hot labels."""
    from podd.labels import area_labels, fixed_labels

    if kind not in LABELS:
        raise ValueError(f"labels={kind!r}: one of {', '.join(LABELS)}")
    if kind == "run" or artifact.mode != "podd":
        return own
    make = fixed_labels if kind == "fixed" else area_labels
    return make(artifact.class_order, artifact.geometry).to(own.dtype)


def jobs_of(
    report: dict,
    data: str,
    n_val: int,
    split_seed: int,
    steps,
    models: int | None = None,
    models_per_job: int | None = None,
    labels: str = "run",
) -> list[dict]:
    """One job per row and seed of ``report`` (a quality_cifar10 JSON), in its row order;
    ``models``: the first that many of each seed's evaluation models (default: all);
    ``models_per_job``: a poster's models in jobs of that many (the random-real row, seconds
    per seed, stays whole); ``labels``: what the PoDD rows' students train on (see
    :func:`student_labels`)."""
    models = models or report["eval_models_per_seed"]
    if models > report["eval_models_per_seed"]:
        raise ValueError(f"--models {models}: the benchmark trained {report['eval_models_per_seed']} per seed")
    if models_per_job is not None and models_per_job < 1:
        raise ValueError(f"--models-per-job {models_per_job}: give at least 1")
    jobs = []
    for row in report["rows"]:
        for seed in report["seeds"]:
            run_dir = None
            if row["mode"] != "real":
                name = next(
                    n
                    for n in report["runs"]
                    if n.startswith(f"{row['mode']}-") and n.endswith(f"-seed{seed}") and _same_ipc(n, row["ipc"])
                )
                run_dir = report["runs"][name]
            size = models if run_dir is None else (models_per_job or models)
            for first in range(0, models, size):
                jobs.append(
                    dict(
                        row=f"{row['method']} {row['ipc']:g} IPC",
                        seed=seed,
                        run_dir=run_dir,
                        data=data,
                        n_val=n_val,
                        split_seed=split_seed,
                        steps=list(steps),
                        first_model=first,
                        eval_models=min(size, models - first),
                        settings=report["settings"],
                        labels=labels,
                    )
                )
    return jobs


def job_key(job: dict) -> str:
    """What makes two jobs the same evaluation (the journal's key)."""
    key = {
        k: job[k]
        for k in ("row", "seed", "run_dir", "data", "n_val", "split_seed", "steps", "first_model", "eval_models")
    }
    if job.get("labels", "run") != "run":  # journals written before --labels stay valid
        key["labels"] = job["labels"]
    return json.dumps(key, sort_keys=True)


def read_journal(path: Path) -> dict[str, dict]:
    """Finished jobs of an earlier, cut-off run: key -> outcome (a torn last line is skipped)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                done[entry["key"]] = entry["outcome"]
    return done


def largest_first(jobs: list[dict]) -> list[int]:
    """Indices of ``jobs`` in the order to submit them, so that no long job starts last: PoDD
    rows (a batch of many patches per student step), then the baseline (K images), then random
    real (K images, no poster to load); in row order within each."""

    def rank(job):
        return 0 if job["row"].startswith("PoDD") else 2 if job["run_dir"] is None else 1

    return sorted(range(len(jobs)), key=lambda i: (rank(jobs[i]), i))


def _same_ipc(run_name: str, ipc: float) -> bool:
    """A run named ``podd-ipc0.5-seed0`` belongs to the row of effective IPC 0.497."""
    requested = float(run_name.split("-ipc")[1].split("-seed")[0])
    return abs(requested - ipc) < 0.05


def summarise(jobs: list[dict], outcomes: list[dict], steps) -> list[dict]:
    """Per row: mean and std over all seeds' models at every step."""
    import torch

    rows = {}
    for job, outcome in zip(jobs, outcomes):
        rows.setdefault(job["row"], []).append(torch.tensor(outcome["accuracy"]))
    out = []
    for name, parts in rows.items():
        acc = torch.cat(parts).double()  # (models over all seeds, steps)
        std = acc.std(0) if len(acc) > 1 else torch.zeros(len(steps))  # one model: no spread
        out.append(
            {
                "row": name,
                "steps": list(steps),
                "mean": [round(float(m), 2) for m in acc.mean(0)],
                "std": [round(float(s), 2) for s in std],
                "accuracies": acc.tolist(),
            }
        )
    return out


def markdown(summary: list[dict], steps, label: str) -> str:
    head = "| row | " + " | ".join(f"{s} steps" for s in steps) + " |"
    lines = [
        f"Test accuracy (%) on {label}, mean ± std over all evaluation models, by the "
        f"number of steps each student trained.",
        "",
        head,
        "|---|" + "---|" * len(steps),
    ]
    for row in summary:
        cells = " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(row["mean"], row["std"]))
        lines.append(f"| {row['row']} | {cells} |")
    # every PoDD row against the baseline at the same student steps: the paper's two claims
    # (1 IPC above it, below 1 IPC level with it) read off these lines
    base = next((r for r in summary if r["row"].startswith("RaT-BPTT baseline")), None)
    for podd in (r for r in summary if base and r["row"].startswith("PoDD ")):
        margins = " | ".join(f"{p - b:+.1f}" for p, b in zip(podd["mean"], base["mean"]))
        lines.append(f"| {podd['row']} − baseline | {margins} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--results", type=Path, required=True, help="a quality_cifar10 JSON whose run directories still exist"
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("PODD_CIFAR10_NPZ"),
        help="the npz the benchmark ran on (default $PODD_CIFAR10_NPZ)",
    )
    parser.add_argument("--n-val", type=int, default=1000, help="as the benchmark's run")
    parser.add_argument("--split-seed", type=int, default=0, help="as the benchmark's run")
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 600, 1000, 2000])
    parser.add_argument(
        "--models",
        type=int,
        default=None,
        help="the first N evaluation models of each seed (default: all the "
        "benchmark's; students are seeded per model, so they are the same)",
    )
    parser.add_argument(
        "--models-per-job",
        type=int,
        default=None,
        help="split each poster's models into jobs of this many (default: one "
        "job per poster), so the workers share a long row evenly",
    )
    parser.add_argument(
        "--labels",
        choices=LABELS,
        default="run",
        help="what the PoDD rows' students train on: the posters' own labels "
        "(run), the fixed majority labels, or pixel shares (area: learned "
        "labels before they learn)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="take the jobs that OUT.jobs.jsonl records as finished (from a run cut off) and do only the others",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="single-threaded processes (1: evaluate in this process)"
    )
    parser.add_argument("--out", type=Path, required=True, help="path without extension")
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("--data PATH is needed: the npz the benchmark ran on")
    if args.steps != sorted(set(args.steps)) or args.steps[0] < 1:
        parser.error(f"--steps {args.steps}: give increasing step counts of at least 1")

    from podd.executors import PoolExecutor
    from podd.io import write_json, write_text
    from podd.provenance import provenance

    t0 = time.perf_counter()
    report = json.loads(args.results.read_text())
    try:
        jobs = jobs_of(
            report, args.data, args.n_val, args.split_seed, args.steps, args.models, args.models_per_job, args.labels
        )
    except ValueError as error:
        parser.error(str(error))
    journal = report_path(args.out, ".jobs.jsonl")
    if journal.exists() and not args.resume:
        parser.error(
            f"{journal} records jobs of a run that was cut off: add --resume to go on "
            f"from it, or delete it to start again"
        )
    done = read_journal(journal) if args.resume else {}
    outcomes = {i: done[job_key(job)] for i, job in enumerate(jobs) if job_key(job) in done}
    todo = [i for i in largest_first(jobs) if i not in outcomes]
    print(
        f"{len(jobs)} evaluations of up to {max(j['eval_models'] for j in jobs)} models × "
        f"{args.steps[-1]} steps in {args.workers} processes"
        + (f"; {len(outcomes)} taken finished from {journal}" if outcomes else ""),
        flush=True,
    )
    journal.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if args.workers > 1:
            pool = stack.enter_context(PoolExecutor(args.workers, threads=1))
            futures = {pool.submit(_evaluate_job, jobs[i]): i for i in todo}
            results = ((futures[f], f.result()) for f in as_completed(futures))
        else:
            results = ((i, _evaluate_job(jobs[i])) for i in todo)
        log = stack.enter_context(journal.open("a"))
        for i, outcome in results:  # each finished job is on disk before the next
            outcomes[i] = outcome
            log.write(json.dumps({"key": job_key(jobs[i]), "outcome": outcome}) + "\n")
            log.flush()
            job = jobs[i]
            print(
                f"done: {job['row']}, seed {job['seed']}, models {job['first_model']}–"
                f"{job['first_model'] + job['eval_models'] - 1} ({outcome['seconds']:.0f} s; "
                f"{len(outcomes)}/{len(jobs)})",
                flush=True,
            )
    outcomes = [outcomes[i] for i in range(len(jobs))]
    summary = summarise(jobs, outcomes, args.steps)
    label = (
        f"the benchmark's split of {report['dataset']} (profile {report['profile']}, "
        f"overrides {report['overrides']}, {len(report['seeds'])} seeds × "
        f"{jobs[0]['eval_models']} models"
        + (f"; PoDD students trained on {args.labels} labels, not the posters' own" if args.labels != "run" else "")
        + ")"
    )
    command = "python benchmarks/quality_eval_steps.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = {
        "from": str(args.results),
        "from_commit": report["provenance"]["git_commit"],
        "dataset": report["dataset"],
        "steps": args.steps,
        "labels": args.labels,
        "rows": summary,
        "jobs": [
            {k: job[k] for k in ("row", "seed", "run_dir", "first_model", "eval_models")} | {"seconds": o["seconds"]}
            for job, o in zip(jobs, outcomes)
        ],
        "resumed_jobs": sum(job_key(job) in done for job in jobs),  # taken from the journal
        "provenance": provenance(
            dataset="cifar10 (10% subset, npz)",
            data_source="subset",
            profile=report["profile"],
            hyperparameters=report["settings"],
            seeds={"eval": report["seeds"], "split": args.split_seed},
            command=command,
            wall_time_s=round(time.perf_counter() - t0, 1),
            threads_per_worker=1,
            workers=args.workers,
            cpu_cores=os.cpu_count(),
        ),
    }
    write_json(report_path(args.out, ".json"), out)
    table = markdown(summary, args.steps, label)
    write_text(
        report_path(args.out, ".md"),
        f"{table}\n\nPosters from `{args.results}` (commit `{out['from_commit'][:7]}`), "
        f"re-evaluated by `{command}` at commit `{out['provenance']['git_commit']}`, "
        f"{out['provenance']['wall_time_s']} s on {os.cpu_count()} CPU cores.\n",
    )
    journal.unlink()  # everything it held is in the JSON now
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

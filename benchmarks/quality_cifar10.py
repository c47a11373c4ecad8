"""Quality on real CIFAR-10 pixels: PoDD vs the RaT-BPTT baseline vs random real images.

The paper's two claims, checked on real CIFAR-10 images at the profile's budget:

1. PoDD at 1 IPC beats RaT-BPTT at 1 IPC (paper Table 2);
2. PoDD below 1 IPC matches RaT-BPTT at 1 IPC (paper Table 1's criterion of success).

Data: an ``.npz`` of real CIFAR-10 training images (``x_train``, ``y_train``, ``class_names``),
e.g. the 10 % subset that this project's machines carry (5085 images). It is split, stratified
and seeded, into train / validation (default 4085 / 1000); every number is a result on that
SUBSET of CIFAR-10, never the paper's setting, and the tables say so. The data is never
committed and no test depends on it.

Rows: random real 1 IPC, RaT-BPTT baseline 1 IPC, PoDD 1 IPC, PoDD 0.5 IPC, PoDD 0.3 IPC
(``--methods`` picks some of them, or PoDD at another IPC such as ``podd-0.7``); each
over ``--seeds`` distillations × ``--eval-models`` fresh ConvNets. Settings: the CIFAR-10
preset of ``--profile`` (``podd.presets``), resolved for the npz data exactly as
``podd distill --dataset npz:PATH --like cifar10`` resolves them. Writes JSON (every per-model
accuracy, the settings, every run's directory, outer-loss curves, provenance) and a markdown
table.

    .venv/bin/python benchmarks/quality_cifar10.py --data PATH/cifar10-train-subset.npz \\
        --seeds 0 1 2 --eval-models 8 --out benchmarks/results/quality_cifar10

A run cut off (or failed at its end) loses no finished distillation: the same command with
``--resume`` takes the finished runs in ``--runs`` as they are and goes on from the checkpoints
of the others.

More outer steps without starting again: ``--continue-from EARLIER.json --steps N`` copies the
earlier run's distillations into ``--runs`` and resumes each from its checkpoint to N steps.

Class order: PoCO needs CLIP ViT-B/32 weights; ``--class-order identity`` (dataset order) runs
without them and says so in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality_probes import IPC_STEP, requested_ipc  # noqa: E402
from quality_report import report_path, write_report  # noqa: E402

from podd.devices import resolve_device  # noqa: E402
from podd.experiments import compare_methods, default_workers  # noqa: E402
from podd.provenance import provenance  # noqa: E402

#: (mode, ipc) of every row but the random-real one (their names: podd.experiments.METHOD_NAMES)
METHODS = (("baseline", 1.0), ("podd", 1.0), ("podd", 0.5), ("podd", 0.3))


def method_of(name: str) -> tuple[str, float]:
    """A ``--methods`` entry as a row of :data:`METHODS`: ``baseline-1``, ``podd-0.5``, or PoDD
    at any other IPC on the :data:`IPC_STEP` grid up to 1 (``podd-0.7``: where below one IPC
    PoDD meets the baseline)."""
    for method in METHODS:
        if name == f"{method[0]}-{method[1]:g}":
            return method
    mode, _, value = name.partition("-")
    try:
        ipc = float(value)
    except ValueError:
        ipc = None
    if mode != "podd" or ipc is None or not 0 < ipc <= 1 or abs(requested_ipc(ipc) - ipc) > 1e-9:
        known = ", ".join(f"{m[0]}-{m[1]:g}" for m in METHODS)
        raise ValueError(
            f"unknown method {name!r}: one of {known}, or podd-IPC with IPC a multiple of {IPC_STEP:g} in (0, 1]"
        )
    return ("podd", requested_ipc(ipc))


def checks(report: dict) -> dict[str, str]:
    """The issue's targets, each with its margin (positive = met); a PoDD row at another IPC
    from 0.5 up to 1 (``--methods podd-0.7``) is held to the second target too."""
    by = {(r["mode"], _ipc_of(r)): r["mean"] for r in report["rows"]}
    real, base = by[("real", 1.0)], by.get(("baseline", 1.0))
    podd1 = by.get(("podd", 1.0))
    below = sorted((ipc for mode, ipc in by if mode == "podd" and 0.5 <= ipc < 1), reverse=True)
    out = {}

    def verdict(name: str, margin: float) -> None:
        out[name] = f"{'met' if margin >= 0 else 'MISSED'} (margin {margin:+.1f} points)"

    if podd1 is not None and base is not None:
        verdict("PoDD 1 IPC beats the baseline by >= 3 points", podd1 - base - 3.0)
    for ipc in below:
        if base is not None:
            verdict(f"PoDD {ipc:g} IPC within 1 point of the baseline or above", by[("podd", ipc)] - base + 1.0)
    for ipc in ([1.0] if podd1 is not None else []) + below:
        verdict(f"PoDD {ipc:g} IPC beats random real 1 IPC", by[("podd", ipc)] - real)
    return out


def reuse_rows(report: dict, earlier_path: Path, ds) -> dict:
    """Complete ``report`` with the rows of an earlier run of this benchmark for the methods not
    run now, when nothing they depend on has changed; return what was reused and how it was checked.

    Refused unless the earlier run has the same profile, seeds, evaluation models and overrides,
    its random-real row (recomputed now) is identical model for model, and every reused run's
    ``config.json`` equals the config this commit resolves for it. Where the earlier run
    directories are gone (they live outside the repository), the check is instead that the code
    which resolves and runs a distillation (``podd/``, ``constraints.txt``) is the same now, work
    tree included, as at the earlier run's commit. So a change that touches only some rows (a
    preset rule below 1 IPC) reruns only those, and the table says which rows came from which
    commit and how they were checked.
    """
    from podd.config import DistillConfig
    from podd.experiments import job_config

    earlier = json.loads(Path(earlier_path).read_text())
    for key in ("profile", "seeds", "eval_models_per_seed", "eval_steps", "overrides"):
        if earlier[key] != report[key]:
            raise SystemExit(
                f"--reuse {earlier_path}: its {key} is {earlier[key]!r}, this run's "
                f"{report[key]!r}; rerun those rows instead"
            )
    real_check = _same_random_real_row(report, earlier, earlier_path)
    have = {(r["mode"], _ipc_of(r)) for r in report["rows"]}
    commit = earlier["provenance"]["git_commit"]
    made_at = _made_at(report)
    made_where = ", ".join("this work tree" if at is None else at[:7] for at in made_at)
    reused, gone, origins = [], [], {}
    for row in earlier["rows"]:
        if (row["mode"], _ipc_of(row)) in have:
            continue
        for seed in report["seeds"]:
            name = f"{row['mode']}-ipc{_ipc_of(row):g}-seed{seed}"
            config_path = Path(earlier["runs"][name]) / "config.json"
            report["runs"][name] = earlier["runs"][name]
            origins[name] = made_at_in(earlier, name, row)
            if not config_path.exists():
                origin = origins[name]
                if not all(same_code(origin, at) for at in made_at):
                    raise SystemExit(
                        f"--reuse: {config_path} is gone and podd/ or "
                        f"constraints.txt differ between {origin[:7]} (where it was "
                        f"made) and where this run's distillations were made "
                        f"({made_where}); rerun {row['method']} {_ipc_of(row):g} IPC"
                    )
                gone.append(name)
                continue
            now = job_config(
                ds,
                report["profile"],
                row["mode"],
                _ipc_of(row),
                seed,
                report["eval_models_per_seed"],
                (report["eval_steps"],),
                report["overrides"],
                preset="cifar10",
            ).to_dict()
            # Through DistillConfig, so a setting added since (absent from the earlier
            # config.json) counts as its default, which keeps the earlier behaviour.
            then = DistillConfig.from_dict(json.loads(config_path.read_text())).to_dict()
            now, then = json.loads(json.dumps(now)), json.loads(json.dumps(then))
            if now != then:
                changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
                raise SystemExit(
                    f"--reuse: {name} was made with other settings ({changed}); "
                    f"rerun {row['method']} {_ipc_of(row):g} IPC"
                )
        report["rows"].append(row)
        reused.append(f"{row['method']} {_ipc_of(row):g} IPC")
    report["rows"].sort(key=row_order)
    check = (
        f"same profile, seeds, models and overrides; {real_check}; "
        "each reused run's config.json equals this commit's config for it"
    )
    if gone:
        where = ", ".join(sorted({origins[name][:7] for name in gone}))
        check += (
            f" (for {', '.join(gone)}, whose run directories are gone: podd/ and "
            f"constraints.txt the same at {where} as where this run's distillations "
            f"were made ({made_where}))"
        )
    # the loss curves of runs whose metrics are gone come from the earlier report
    curves = {name: earlier["loss_curves"][name] for name in gone if name in earlier.get("loss_curves", {})}
    return {
        "rows": reused,
        "from": str(earlier_path),
        "commit": commit,
        "check": check,
        "made_at": origins,
        "loss_curves": curves,
    }


def made_at_in(earlier: dict, name: str, row: dict) -> str:
    """The commit run ``name`` (of ``row``) of an earlier report was made at.

    A report that itself reused rows holds runs made at older commits: where it says so
    (``reused.made_at``, or, for reports written before that was recorded, ``reused.commit`` for
    the rows it names as reused) that commit, else the distillation's own (``made_at``), else
    the report's. So reuse can be chained without checking the code against the wrong commit.
    """
    reused = earlier.get("reused") or {}
    if name in reused.get("made_at", {}):
        return reused["made_at"][name]
    if f"{row['method']} {_ipc_of(row):g} IPC" in reused.get("rows", []):
        return reused["commit"]
    return earlier.get("made_at", {}).get(name) or earlier["provenance"]["git_commit"]


# Training a ConvNet is chaotic in float rounding: the same code and seeds on another CPU
# (other vector kernels) move single models by tenths of a point (measured: up to 0.2 points on
# the 10 % subset's random-real row, between two of this project's machines). More than this
# means the evaluation itself changed.
REAL_ROW_TOLERANCE = 1.0


def _same_random_real_row(report: dict, earlier: dict, earlier_path) -> str:
    """The check that the evaluation is unchanged: the random-real row recomputed now equals
    the earlier run's model for model, up to float rounding between CPUs; says how it went."""
    now, then = (next(r for r in rep["rows"] if r["mode"] == "real")["accuracies"] for rep in (report, earlier))
    drift = max((abs(a - b) for a, b in zip(now, then)), default=0.0)
    if len(now) != len(then) or drift > REAL_ROW_TOLERANCE:
        raise SystemExit(
            f"--reuse {earlier_path}: the random-real row differs from the earlier "
            f"run's (by up to {drift:.1f} points per model, more than float "
            f"rounding on another CPU explains), so the evaluation changed; rerun "
            f"every row"
        )
    if drift == 0:
        return "random-real row identical"
    return (
        f"random-real row recomputed within {drift:.1f} points per model (float rounding "
        f"differs between CPUs; up to {REAL_ROW_TOLERANCE:g} allowed)"
    )


def _made_at(report: dict) -> list[str | None]:
    """The commits this run's distillations were made at (None: this work tree, as it is now)."""
    from podd.provenance import git_commit

    here = git_commit()
    made = {None if at in (None, here) else at for at in report.get("made_at", {}).values()}
    return sorted(made or {None}, key=str)


def same_code(commit: str, at: str | None = None) -> bool:
    """Whether the code that resolves and runs a distillation (``podd/``, ``constraints.txt``)
    is the same at commit ``at`` (this work tree where None) as at ``commit``; False too where
    git cannot tell (an unknown commit, a run made from a work tree with changes)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "diff", "--quiet", commit, *([at] if at else []), "--", "podd", "constraints.txt"],
        cwd=root,
        capture_output=True,
    )
    return done.returncode == 0


@contextlib.contextmanager
def _single_threaded():
    """torch at one thread while the jobs run. With ``--workers 1`` they run inline, and are
    single-threaded like the pool's workers only so (as the report says they are); two such
    runs side by side at torch's default threads oversubscribe the cores (measured on 2 cores:
    ~3x as long per outer step as at one thread each)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _ipc_of(row: dict) -> float:
    """The requested IPC of a row (its ``ipc`` is the poster's effective one, e.g. 0.497)."""
    return requested_ipc(row["ipc"])


def row_order(row: dict) -> tuple[int, float]:
    """Table order: random real, the baseline, then PoDD from the largest IPC down."""
    return ("real", "baseline", "podd").index(row["mode"]), -_ipc_of(row)


def loss_curves(report: dict) -> dict[str, list]:
    """Outer loss every ``log_every`` steps of every run (from its metrics.jsonl)."""
    curves = {}
    for name, run_dir in report["runs"].items():
        path = Path(run_dir) / "metrics.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            curves[name] = [[r["step"], round(r["loss"], 4)] for r in rows if "loss" in r]
    return curves


def best_selections(report: dict) -> dict[str, dict]:
    """With ``best_every``: which step's poster each run kept and its training-set score (from
    its final.json); empty when no run selected."""
    chosen = {}
    for name, run_dir in report["runs"].items():
        path = Path(run_dir) / "final.json"
        best = json.loads(path.read_text())["result"].get("best") if path.exists() else None
        if best is not None:
            chosen[name] = best
    return chosen


def selection_note(selections: dict[str, dict]) -> str:
    if not selections:
        return ""
    kept = ", ".join(
        f"{name} step {best['step']} ({best['train_accuracy']:.1f} % on the training images)"
        for name, best in selections.items()
    )
    return (
        f"Best-poster selection (best_every): each run ended with its poster scoring best on "
        f"the training images; kept: {kept}. "
    )


def loss_plot_title(report: dict) -> str:
    """Says what the curves were run at: the profile and any setting changed from it."""
    changed = "".join(
        f", {key}={value}" for key, value in report["overrides"].items() if key != "class_order"
    )  # the class order does not change a curve's shape
    return f"Outer loss, profile {report['profile']}{changed} — CIFAR-10 10 % subset"


def write_loss_plot(report: dict, path: Path) -> Path:
    """The outer-loss curves of every distillation, as a PNG beside the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from podd import figures
    from podd.io import atomic_path

    figures.use_style()
    fig, ax = plt.subplots(figsize=(7, 4))
    figures.plot_loss_curves(ax, report["loss_curves"])
    ax.set_title(loss_plot_title(report), fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("PODD_CIFAR10_NPZ"),
        help="npz of real CIFAR-10 training images (default $PODD_CIFAR10_NPZ)",
    )
    parser.add_argument("--n-val", type=int, default=1000, help="validation images (stratified)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-models", type=int, default=8)
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument(
        "--class-order", default="identity", help="identity (dataset order), poco (needs CLIP weights) or a file"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="distil only these (default: all of "
        + ", ".join(f"{m[0]}-{m[1]:g}" for m in METHODS)
        + "; or podd-IPC at another IPC, a multiple of 0.05); the random "
        "real row always runs",
    )
    parser.add_argument("--steps", type=int, default=None, help="outer steps (default: profile's)")
    # extend: a repeated --set adds to the earlier ones (it used to replace them silently)
    parser.add_argument(
        "--set",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="other settings for every distillation (JSON values, else strings: labels=learned); repeatable",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="single-threaded processes (default: one per distillation, at most 2 per CPU core)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        metavar="JSON",
        help="take the rows of the methods not run now from this earlier run's "
        "JSON, if their settings are unchanged (checked; see reuse_rows)",
    )
    parser.add_argument(
        "--continue-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="go on from this earlier run's distillations (copied into --runs) "
        "to --steps instead of starting again; each must have this run's "
        "settings but for its steps (checked when it resumes)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the run directories already in --runs (same settings, "
        "checked): finished distillations are taken as they are, stopped "
        "ones go on from their checkpoint",
    )
    parser.add_argument(
        "--runs", default="runs/quality_cifar10", help="where the run directories (posters, metrics) go"
    )
    parser.add_argument(
        "--out",
        default="benchmarks/results/quality_cifar10",
        help="output path without extension (.json and .md are written)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="only write the markdown and loss plot of this earlier report again",
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.render is not None:
        print(f"written: {', '.join(str(p) for p in render(args.render))}")
        return 0
    if not args.data:
        parser.error("--data PATH is needed: an npz of real CIFAR-10 training images")
    try:
        methods = (
            list(METHODS)
            if args.methods is None
            else sorted({method_of(name) for name in args.methods}, key=lambda m: (m[0] != "baseline", -m[1]))
        )
    except ValueError as error:
        parser.error(str(error))

    from podd.cli import parse_set
    from podd.data import load_dataset, train_val_split

    t0 = time.perf_counter()
    ds = train_val_split(load_dataset(f"npz:{args.data}"), n_val=args.n_val, seed=args.split_seed)
    label = (
        f"a 10 % SUBSET of CIFAR-10's training set ({len(ds.y_train) + len(ds.y_test)} real "
        f"images: {len(ds.y_train)} train / {len(ds.y_test)} validation, stratified, split "
        f"seed {args.split_seed}); not the paper's setting"
    )
    overrides = parse_set(args.set)  # the same KEY=VALUE rule as podd distill --set
    if args.steps is not None:
        overrides["steps"] = args.steps
    continued = None
    if args.continue_from is not None:
        earlier = json.loads(args.continue_from.read_text())
        if args.steps is None or args.steps <= earlier["settings"]["steps"]:
            parser.error(f"--continue-from: give --steps above the earlier run's {earlier['settings']['steps']}")
        continued = {
            "from": str(args.continue_from),
            "steps": earlier["settings"]["steps"],
            "commit": earlier["provenance"]["git_commit"],
            "runs": earlier["runs"],
        }
    workers = args.workers or default_workers(len(methods) * len(args.seeds))
    with _single_threaded():
        report = compare_methods(
            ds,
            "cifar10",
            label,
            args.profile,
            seeds=tuple(args.seeds),
            eval_models=args.eval_models,
            out_dir=args.runs,
            progress=True,
            methods=methods,
            workers=workers,
            class_order=args.class_order,
            resume=args.resume,
            continue_from=continued and continued["runs"],
            **overrides,
        )
    if continued is not None:
        report["continued"] = continued
    if args.reuse is not None:
        report["reused"] = reuse_rows(report, args.reuse, ds)
    report["checks"] = checks(report)
    report["loss_curves"] = loss_curves(report)
    report["best_selections"] = best_selections(report)
    if args.reuse is not None:  # the curves of reused runs whose metrics are gone
        report["loss_curves"] |= report["reused"].pop("loss_curves")
    command = "python benchmarks/quality_cifar10.py " + " ".join(sys.argv[1:] if argv is None else argv)
    # the device the distillations and evaluations ran on, not this (parent) process's CPU
    report["provenance"] = provenance(
        device=resolve_device(report["settings"].get("device", "auto")),
        dataset="cifar10 (10% subset, npz)",
        data_source=ds.source,
        profile=args.profile,
        hyperparameters=report["settings"],
        seeds={"distill": args.seeds, "real_subset": args.seeds, "eval": args.seeds, "split": args.split_seed},
        command=command,
        wall_time_s=round(time.perf_counter() - t0, 1),
        threads_per_worker=1,
        workers=workers,
        cpu_cores=os.cpu_count(),
    )
    paths = write_outputs(report, Path(args.out), runs_dir=args.runs)
    print(f"written: {', '.join(str(p) for p in paths)}")
    return 0


def write_outputs(report: dict, out: Path, runs_dir: str) -> tuple[Path, ...]:
    """The report's JSON, its markdown (table, verdicts, how it was made) and its loss plot."""
    verdict = "\n".join(f"- {name}: {text}" for name, text in report["checks"].items())
    reused, continued = report.get("reused"), report.get("continued")
    note = (
        ""
        if reused is None
        else (
            f"Rows {', '.join(reused['rows'])} are those of the run at commit "
            f"`{reused['commit'][:7]}` ({reused['from']}; distilled at "
            f"{', '.join(sorted({at[:7] for at in reused['made_at'].values()}))}), reused after "
            f"checking: {reused['check']}. "
        )
    )
    if continued is not None:
        note += (
            f"The distillations went on from the {continued['steps']}-step runs of "
            f"`{continued['from']}` (commit `{continued['commit'][:7]}`), resumed from their "
            f"checkpoints (on the CPU bit-identical to running this long at once). "
        )
    # named by the comparison itself, not guessed from commits (a run made here while the tree
    # was dirty has a made_at that differs from this report's commit)
    taken = report["taken_finished"]
    if taken:
        commits = sorted({report["made_at"][name][:7] for name in taken})
        note += (
            f"Distillations {', '.join(taken)} were taken finished from `{runs_dir}` "
            f"(--resume), made at commit(s) {', '.join(commits)}. "
        )
    note += selection_note(report["best_selections"])
    prov = report["provenance"]
    paths = write_report(
        report,
        out,
        verdict,
        note=f"{note}Class order: {report['settings']['class_order']}. {prov['cpu_cores']} CPU "
        f"cores, {report['workers']} single-threaded workers. ",
    )
    return (*paths, write_loss_plot(report, report_path(out, "_loss.png")))


def render(json_path: Path) -> tuple[Path, ...]:
    """Write the markdown and the loss plot of an earlier report again from its JSON alone
    (e.g. one whose other files did not come back from a lent GPU)."""
    report = json.loads(Path(json_path).read_text())
    # The JSON keeps its keys sorted; the verdicts are listed in the order checks() gives them
    # (recomputed from the rows, so they must say what the file says).
    recomputed = checks(report)
    if recomputed != report["checks"]:
        raise ValueError(f"{json_path}: its verdicts do not follow from its rows")
    report["checks"] = recomputed
    runs = {Path(d).parent for d in report["runs"].values()}
    return write_outputs(report, report_path(json_path, ""), runs_dir=", ".join(sorted(map(str, runs))))


if __name__ == "__main__":
    raise SystemExit(main())

"""Cross-architecture evaluation: do posters distilled with the ConvNet also train other networks?

DC-Bench and DD-Ranking report ConvNet → ResNet-18, VGG-11, AlexNet transfer; the PoDD paper
does not. This script takes the distillations of one ``benchmarks/quality_cifar10.py`` run (its
JSON lists every run directory: RaT-BPTT baseline, PoDD at 1 and 0.5 IPC, one per seed) and
evaluates each poster with ``--eval-models`` fresh networks of every architecture in
``--archs`` (:mod:`podd.architectures`, the evaluation protocol of the runs otherwise: steps,
learning rate, augmentation), seeded with the run's seed; beside them the random-real reference
(1 image per class, one subset per seed) on each architecture. The data is the same stratified
split of the same ``.npz`` as the quality run (a SUBSET of CIFAR-10: every number says so).

Every (run, architecture) result is written to ``OUT.partial.json`` as soon as it exists, so a
run cut off goes on where it stopped (the same command again); ``--render`` rewrites the table
from whatever is there.

    .venv/bin/python benchmarks/cross_arch.py --quality benchmarks/results/quality_cifar10_x.json \\
        --archs convnet resnet18 vgg11 alexnet --eval-models 4 --out benchmarks/results/cross_arch_cifar10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from podd.io import write_json  # noqa: E402
from podd.provenance import provenance  # noqa: E402

#: Row order and names of the table; the quality JSON's run keys start with the prefix.
METHODS = (
    ("random real (1 per class)", "real"),
    ("RaT-BPTT baseline, 1 IPC", "baseline-ipc1-"),
    ("PoDD, 1 IPC", "podd-ipc1-"),
    ("PoDD, 0.5 IPC", "podd-ipc0.5-"),
)


def load_split(quality: dict):
    """The quality run's data: its npz, split into train / validation exactly as it did."""
    from podd.data import load_dataset, train_val_split

    command = quality["provenance"]["command"].split()
    n_val = int(command[command.index("--n-val") + 1]) if "--n-val" in command else 1000  # its default
    split_seed = quality["provenance"]["seeds"]["split"]
    return train_val_split(load_dataset(quality["settings"]["dataset"]), n_val=n_val, seed=split_seed)


_PREPROCESSED: dict = {}


def preprocessed(ds, zca: bool):
    """(preprocess, preprocessed test images) of the split, fitted once per ZCA setting."""
    from podd.data import make_preprocessor

    if (id(ds), zca) not in _PREPROCESSED:
        preprocess = make_preprocessor(ds, zca=zca)
        _PREPROCESSED[id(ds), zca] = preprocess, preprocess(ds.x_test)
    return _PREPROCESSED[id(ds), zca]


def train_students(run_dir: str, ds, arch: str, num_models: int, **protocol_changes):
    """One poster's patches and labels, ``num_models`` fresh networks of ``arch`` trained on them
    under the run's own protocol (seeded with the run's seed) but for ``protocol_changes``,
    tested on the split's test images: (:class:`podd.evaluate.EvalResult`, the run's config)."""
    from podd.config import DistillConfig
    from podd.devices import resolve_device
    from podd.distiller import patches_and_labels
    from podd.evaluate import EvalProtocol
    from podd.rundir import load_run

    artifact, _ = load_run(run_dir)
    config = DistillConfig.from_dict(artifact.config)
    _, test_x = preprocessed(ds, config.zca)
    images, labels = patches_and_labels(artifact)
    protocol = EvalProtocol.from_config(config, num_models=num_models, seed=config.seed, arch=arch, **protocol_changes)
    device = resolve_device(protocol.device)
    return protocol.run(images.to(device), labels.to(device), test_x.to(device), ds.y_test.to(device)), config


def evaluate_run(run_dir: str, ds, arch: str, num_models: int, **protocol_changes) -> dict:
    """One poster, ``num_models`` fresh networks of ``arch``; accuracies in percent."""
    started = time.perf_counter()
    result, config = train_students(run_dir, ds, arch, num_models, **protocol_changes)
    return {
        "accuracies": [round(float(a), 2) for a in result.accuracy[:, -1]],
        "seed": config.seed,
        "steps": result.steps[-1],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def evaluate_real(ds, template_run: str, seed: int, arch: str, num_models: int, **protocol_changes) -> dict:
    """Random real images, 1 per class (subset ``seed``), hard labels, the posters' protocol."""
    from podd.config import DistillConfig
    from podd.evaluate import EvalProtocol, real_subset_reference
    from podd.rundir import load_run

    artifact, _ = load_run(template_run)
    config = DistillConfig.from_dict(artifact.config)
    protocol = EvalProtocol.from_config(
        config, num_models=num_models, seed=seed, arch=arch, batch_size=ds.num_classes, **protocol_changes
    )
    started = time.perf_counter()
    result = real_subset_reference(ds, preprocessed(ds, config.zca)[0], 1, protocol, subset_seed=seed)
    return {
        "accuracies": [round(float(a), 2) for a in result.accuracy[:, -1]],
        "seed": seed,
        "steps": result.steps[-1],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def cells(quality: dict, archs: list[str]) -> list[tuple[str, str, str | None, int]]:
    """(arch, run key, run directory or None for real, seed) of every evaluation to make."""
    out = []
    for arch in archs:
        for seed in quality["seeds"]:
            out.append((arch, f"real-seed{seed}", None, seed))
        for _, prefix in METHODS[1:]:
            for key, run_dir in sorted(quality["runs"].items()):
                if key.startswith(prefix) and key[len(prefix) :].startswith("seed"):
                    out.append((arch, key, run_dir, int(key.rsplit("seed", 1)[1])))
    return out


def table(partial: dict, archs: list[str]) -> list[dict]:
    """One row per method: mean ± std over every (seed, model) per architecture, seeds counted."""
    rows = []
    for name, prefix in METHODS:
        row = {"method": name}
        for arch in archs:
            done = [v for k, v in partial.items() if k.startswith(f"{arch}/{prefix}")]
            accs = [a for v in done for a in v["accuracies"]]
            row[arch] = (
                None
                if not accs
                else {
                    "mean": round(statistics.mean(accs), 2),
                    "std": round(statistics.pstdev(accs), 2),
                    "seeds": sorted(v["seed"] for v in done),
                    "models": len(accs),
                }
            )
        rows.append(row)
    return rows


def markdown(result: dict) -> str:
    archs = result["archs"]
    lines = [
        f"Cross-architecture test accuracy (%) on a SUBSET of CIFAR-10 ({result['data']}); posters "
        f"distilled with the ConvNet at {result['distilled_with']}; each cell: mean ± std over "
        f"seeds × {result['eval_models']} models ({result['eval_steps']} steps"
        + (
            ""
            if result["eval_steps"] == result["protocol_steps"]
            else f"; the runs' own protocol trains {result['protocol_steps']}"
        )
        + "), seeds in brackets.",
        "",
        "| method | " + " | ".join(archs) + " |",
        "|---|" + "---:|" * len(archs),
    ]
    for row in result["rows"]:
        cells_text = [
            "not run"
            if row[a] is None
            else f"{row[a]['mean']:.1f} ± {row[a]['std']:.1f} ({','.join(map(str, row[a]['seeds']))})"
            for a in archs
        ]
        lines.append(f"| {row['method']} | " + " | ".join(cells_text) + " |")
    prov = result["provenance"]
    lines += [
        "",
        f"<sub>evaluated at commit {prov['git_commit']} on {prov['device']}, {prov['created_utc']}; "
        f"posters from {result['quality_json']} (commit {result['posters_commit']}); "
        f"{result['wall_time_s']:.0f} s of evaluation</sub>",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", type=Path, required=True, help="JSON written by quality_cifar10.py")
    parser.add_argument("--archs", nargs="+", default=["convnet", "resnet18", "vgg11", "alexnet"])
    parser.add_argument("--eval-models", type=int, default=4)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps per model (default: the runs' own protocol; fewer are a "
        "cheaper, different protocol, and the table says so)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one) | cpu | cuda")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cross_arch_cifar10"))
    parser.add_argument("--render", action="store_true", help="only rewrite the table from OUT.partial.json")
    args = parser.parse_args()
    quality = json.loads(args.quality.read_text())
    partial_path = args.out.with_suffix(".partial.json")
    partial = json.loads(partial_path.read_text()) if partial_path.exists() else {}
    todo = [c for c in cells(quality, args.archs) if f"{c[0]}/{c[1]}" not in partial]
    if todo and not args.render:
        ds = load_split(quality)
        template = next(iter(sorted(quality["runs"].values())))
        changes = {"device": args.device, **({"steps": (args.steps,)} if args.steps else {})}
        for arch, key, run_dir, seed in todo:
            value = (
                evaluate_real(ds, template, seed, arch, args.eval_models, **changes)
                if run_dir is None
                else evaluate_run(run_dir, ds, arch, args.eval_models, **changes)
            )
            partial[f"{arch}/{key}"] = value
            write_json(partial_path, partial)
            print(
                f"{arch:>9} {key:>22}: {statistics.mean(value['accuracies']):.1f} % ({value['wall_s']:.0f} s)",
                flush=True,
            )
    settings = quality["settings"]
    steps_done = {v["steps"] for v in partial.values()}
    if len(steps_done) > 1:
        raise SystemExit(f"{partial_path} mixes evaluations of {sorted(steps_done)} steps; start a new --out")
    result = {
        "archs": args.archs,
        "eval_models": args.eval_models,
        "eval_steps": steps_done.pop() if steps_done else settings["eval_steps"][-1],
        "protocol_steps": settings["eval_steps"][-1],
        "data": f"{settings['dataset']}, the quality run's train/validation split",
        "distilled_with": f"profile {settings['profile']}, ConvNet width {settings['width']}, "
        f"{settings['steps']} outer steps, class order {settings['class_order']}",
        "quality_json": str(args.quality),
        "posters_commit": quality["provenance"]["git_commit"],
        "rows": table(partial, args.archs),
        "evaluations": partial,
        "wall_time_s": sum(v["wall_s"] for v in partial.values()),
        "provenance": provenance(threads=1),
    }
    write_json(args.out.with_suffix(".json"), result)
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

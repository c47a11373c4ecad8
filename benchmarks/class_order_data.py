"""Which class similarity, measured on the images, orders a poster's classes like CLIP would?

``class_order="data"`` feeds PoCO's placement (paper §4.2) with class distances measured on the
training images instead of CLIP text embeddings of the class names. This script compares the
candidate measures on real CIFAR-10 images by the paper's intuition for CLIP: related classes
should be close and end up adjacent. CIFAR-10 splits into vehicles (airplane, automobile, ship,
truck) and animals (the other six); for each candidate it reports

* the mean distance within a group and between the groups, and their ratio;
* the AUC: the chance that a within-group pair is closer than a between-group pair (1 = the
  distances separate the groups perfectly, 0.5 = no better than chance);
* PoCO's order on CIFAR-10's 2×5 class grid and its count of vehicle–animal neighbour pairs,
  beside the fewest and the average any placement of the groups can have;
* stability: the candidate measured on two disjoint halves of the images, the rank correlation
  (Spearman) of the two halves' distances and their AUCs;
* the wall time on one CPU thread (a network candidate's includes its training).

Candidates: class-mean pixels, uncentred and centred (``podd.data_embeddings``, what
``class_order="data"`` uses); class-mean features of an untrained ConvNet and of one trained
briefly (``--epochs`` epochs of Adam on 80 % of the images, stratified); and that network's
confusion between classes on the other 20 % (the mean softmax, symmetrised). The network
candidates are run for every ``--seeds`` seed.

Data: an ``.npz`` with ``x_train`` (uint8 N×3×32×32), ``y_train`` and ``class_names`` of real
CIFAR-10 images, e.g. the 10 % subset this project's machines carry (5085 images); every number
is a result on that SUBSET, and the outputs say so. The data is never committed and no test
depends on it.

    .venv/bin/python benchmarks/class_order_data.py --data /work/shared/data/cifar10-train-subset.npz \\
        --out benchmarks/results/class_order_data
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from podd.data_embeddings import class_distances  # noqa: E402
from podd.io import write_json, write_text  # noqa: E402
from podd.layout import default_class_grid  # noqa: E402
from podd.models import ConvNet, init_parameters  # noqa: E402
from podd.ordering import distance_matrix, poco  # noqa: E402
from podd.provenance import provenance  # noqa: E402

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
VEHICLES = ("airplane", "automobile", "ship", "truck")
CHOSEN = "pixels-centred"
BATCH, LR, HELD_OUT = 128, 1e-3, 0.2


# ------------------------------------------------------------------------------ candidates
def standardised(x: torch.Tensor) -> torch.Tensor:
    """uint8 images as float, each channel standardised over the images (the network's input)."""
    x = x.float() / 255
    return (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)


def class_means(values: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    return torch.stack([values[y == c].mean(0) for c in range(k)])


def centred_cosine(embeddings: torch.Tensor) -> torch.Tensor:
    return distance_matrix(embeddings - embeddings.mean(0, keepdim=True))


def features(net: ConvNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net.features(xb).flatten(1) for xb in x.split(512)])


def split(y: torch.Tensor, fraction: float, generator: torch.Generator):
    """A stratified split of the indices: (the rest, ``fraction`` of every class)."""
    rest, held = [], []
    for c in range(int(y.max()) + 1):
        idx = (y == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=generator)]
        cut = int(round(fraction * len(idx)))
        held.append(idx[:cut])
        rest.append(idx[cut:])
    return torch.cat(rest), torch.cat(held)


def trained_net(x: torch.Tensor, y: torch.Tensor, k: int, seed: int, epochs: int, width: int):
    """A ConvNet trained briefly on a stratified 80 %; returns it and the held-out indices."""
    generator = torch.Generator().manual_seed(seed)
    train, held = split(y, HELD_OUT, generator)
    net = ConvNet(x.shape[1], k, x.shape[-1], width=width)
    net.load_state_dict(init_parameters(net, generator, "cpu"))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=generator)]
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net, held


def candidate_pixels(x8, y, k, seed, args):
    return distance_matrix(class_means(standardised(x8).flatten(1), y, k))


def candidate_pixels_centred(x8, y, k, seed, args):
    return class_distances(x8, y, k)  # what class_order="data" uses


def candidate_random_convnet(x8, y, k, seed, args):
    net = ConvNet(x8.shape[1], k, x8.shape[-1], width=args.width)
    net.load_state_dict(init_parameters(net, torch.Generator().manual_seed(seed), "cpu"))
    return centred_cosine(class_means(features(net, standardised(x8)), y, k))


def candidate_convnet_features(x8, y, k, seed, args):
    x = standardised(x8)
    net, _ = trained_net(x, y, k, seed, args.epochs, args.width)
    return centred_cosine(class_means(features(net, x), y, k))


def candidate_convnet_confusion(x8, y, k, seed, args):
    x = standardised(x8)
    net, held = trained_net(x, y, k, seed, args.epochs, args.width)
    with torch.no_grad():
        probs = torch.cat([net(xb).softmax(1) for xb in x[held].split(512)])
    confusion = class_means(probs, y[held], k)  # row i: mean prediction on class i
    similarity = 0.5 * (confusion + confusion.T)
    similarity.fill_diagonal_(0.0)
    dist = 1.0 - similarity / similarity.max()
    dist.fill_diagonal_(0.0)
    return dist


CANDIDATES = {
    "pixels": ("class-mean pixels, uncentred, 1 − cosine", candidate_pixels, False),
    "pixels-centred": (
        "class-mean pixels minus their mean, per-channel standardised, 1 − cosine (podd.data_embeddings)",
        candidate_pixels_centred,
        False,
    ),
    "random-convnet": (
        "centred class-mean features of an untrained ConvNet, 1 − cosine",
        candidate_random_convnet,
        True,
    ),
    "convnet-features": (
        "centred class-mean features of a briefly trained ConvNet, 1 − cosine",
        candidate_convnet_features,
        True,
    ),
    "convnet-confusion": (
        "that ConvNet's confusion on held-out images, symmetrised: 1 − s / max s",
        candidate_convnet_confusion,
        True,
    ),
}


# ------------------------------------------------------------------------------ measures
def group_measures(dist: torch.Tensor, vehicle: list[bool]) -> dict:
    within, between = [], []
    for i, j in itertools.combinations(range(len(vehicle)), 2):
        (within if vehicle[i] == vehicle[j] else between).append(float(dist[i, j]))
    w, b = np.array(within), np.array(between)
    auc = float(np.mean((w[:, None] < b[None, :]) + 0.5 * (w[:, None] == b[None, :])))
    return {
        "within_mean": float(w.mean()),
        "between_mean": float(b.mean()),
        "ratio": float(b.mean() / w.mean()),
        "auc": auc,
    }


def neighbour_pairs(order: torch.Tensor) -> list[tuple[int, int]]:
    pairs = list(zip(order[:, :-1].flatten().tolist(), order[:, 1:].flatten().tolist()))
    pairs += list(zip(order[:-1].flatten().tolist(), order[1:].flatten().tolist()))
    return [(a, b) for a, b in pairs if a >= 0 and b >= 0]


def mixed_pairs(order: torch.Tensor, vehicle: list[bool]) -> int:
    return sum(vehicle[a] != vehicle[b] for a, b in neighbour_pairs(order))


def mixed_pairs_range(rows: int, cols: int, vehicle: list[bool]) -> tuple[int, float]:
    """The fewest and the mean vehicle–animal neighbour pairs over every placement of the groups."""
    k, n_vehicles = len(vehicle), sum(vehicle)
    cells = torch.arange(rows * cols).view(rows, cols)
    pairs = neighbour_pairs(torch.where(cells < k, cells, -1))
    counts = []
    for chosen in itertools.combinations(range(k), n_vehicles):
        marks = [cell in chosen for cell in range(k)]
        counts.append(sum(marks[a] != marks[b] for a, b in pairs))
    return min(counts), float(np.mean(counts))


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    iu = torch.triu_indices(len(a), len(a), 1)
    ra = a[iu[0], iu[1]].argsort().argsort().double()
    rb = b[iu[0], iu[1]].argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def measure(name, fn, x8, y, k, seed, args, vehicle, grid, class_names) -> dict:
    t0 = time.perf_counter()
    dist = fn(x8, y, k, seed, args)
    wall = time.perf_counter() - t0
    order = poco(dist, *grid)
    return {
        "seed": seed,
        "wall_s": round(wall, 3),
        **group_measures(dist, vehicle),
        "mixed_pairs": mixed_pairs(order, vehicle),
        "order": order.tolist(),
        "order_names": [[class_names[c] if c >= 0 else "" for c in row] for row in order.tolist()],
        "distances": [[round(float(v), 4) for v in row] for row in dist],
    }


def stability(fn, x8, y, k, args, vehicle) -> dict:
    half_a, half_b = split(y, 0.5, torch.Generator().manual_seed(12345))
    da = fn(x8[half_a], y[half_a], k, args.seeds[0], args)
    db = fn(x8[half_b], y[half_b], k, args.seeds[0], args)
    return {
        "spearman": round(spearman(da, db), 4),
        "auc_halves": [round(group_measures(d, vehicle)["auc"], 4) for d in (da, db)],
    }


# ------------------------------------------------------------------------------ report
def summary(runs: list[dict]) -> dict:
    out = {}
    for key in ("within_mean", "between_mean", "ratio", "auc", "mixed_pairs", "wall_s"):
        values = np.array([r[key] for r in runs], dtype=float)
        out[key] = {
            "mean": round(float(values.mean()), 4),
            "min": round(float(values.min()), 4),
            "max": round(float(values.max()), 4),
        }
    return out


def reason(candidates: dict, fewest: int) -> str:
    """Why :data:`CHOSEN`, in this run's numbers: PoCO's outcome, the AUC beside the best, the cost."""
    chosen = candidates[CHOSEN]["summary"]
    best = max(candidates, key=lambda n: candidates[n]["summary"]["auc"]["mean"])
    at_fewest = [n for n, c in candidates.items() if c["summary"]["mixed_pairs"]["max"] == fewest]
    best_auc = candidates[best]["summary"]["auc"]["mean"]
    return (
        f"PoCO on it leaves {chosen['mixed_pairs']['mean']:g} vehicle–animal neighbour pairs "
        f"(the fewest possible: {fewest}; every seed at the fewest: {', '.join(at_fewest) or 'none'}); "
        f"its AUC {chosen['auc']['mean']:.3f} beside the best, {best}'s {best_auc:.3f}; "
        f"it needs no training and no seed, and takes {chosen['wall_s']['mean']:.2f} s where the "
        f"trained network takes "
        + (
            f"{candidates['convnet-features']['summary']['wall_s']['mean']:.1f} s."
            if "convnet-features" in candidates
            else "longer (not measured in this run)."
        )
    )


def markdown(record: dict) -> str:
    prov, data = record["provenance"], record["data"]
    lo, avg = record["mixed_pairs_fewest"], record["mixed_pairs_random_mean"]
    lines = [
        "# Class order from the data: which similarity separates CIFAR-10's vehicles from its animals?",
        "",
        f"Data: **SUBSET** of CIFAR-10's training set, {data['n_images']} real images "
        f"({Path(data['path']).name}); not the full dataset. Grid {record['grid'][0]}×{record['grid'][1]}, "
        f"PoCO's zigzag. Vehicles: {', '.join(VEHICLES)}; animals: the other six. "
        f"Network candidates: ConvNet width {record['settings']['width']}, "
        f"{record['settings']['epochs']} epochs of Adam (lr {LR:g}, batch {BATCH}) on a stratified "
        f"{100 - 100 * HELD_OUT:.0f} %, seeds {record['settings']['seeds']} (mean, [min, max] over seeds). "
        f"Wall time on one CPU thread ({prov['device']}; load average at start "
        f"{record['load_average']}), of computing the distances (training included).",
        "",
        f"Vehicle–animal neighbour pairs: the fewest any placement has is {lo}, a random placement "
        f"has {avg:.2f} on average. AUC: the chance that a within-group pair is closer than a "
        f"between-group pair. Stability: the same candidate on two disjoint halves of the images.",
        "",
        "| candidate | within | between | ratio | AUC | mixed pairs | Spearman (halves) | AUC (halves) | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(stat, digits=3):
        if stat["min"] == stat["max"]:
            return f"{stat['mean']:.{digits}f}"
        return f"{stat['mean']:.{digits}f} [{stat['min']:.{digits}f}, {stat['max']:.{digits}f}]"

    for name, c in record["candidates"].items():
        s, st = c["summary"], c["stability"]
        mark = " (chosen)" if name == record["chosen"] else ""
        lines.append(
            f"| `{name}`{mark} | {cell(s['within_mean'])} | {cell(s['between_mean'])} | "
            f"{cell(s['ratio'], 2)} | {cell(s['auc'])} | {cell(s['mixed_pairs'], 1)} | "
            f"{st['spearman']:.3f} | {', '.join(f'{a:.3f}' for a in st['auc_halves'])} | "
            f"{cell(s['wall_s'], 2)} |"
        )
    lines += ["", "Candidates:", ""]
    lines += [f"- `{name}`: {c['what']}" for name, c in record["candidates"].items()]
    lines += ["", "PoCO's order per candidate (first seed):", ""]
    for name, c in record["candidates"].items():
        rows = c["runs"][0]["order_names"]
        lines.append(f"- `{name}`: " + " / ".join(", ".join(row) for row in rows))
    lines += [
        "",
        f'Chosen for `class_order="data"`: `{record["chosen"]}`. {record["why"]}',
        "",
        f"Commit {prov['git_commit']}, torch {prov['versions']['torch']}, "
        f"created {prov['created_utc']}, total wall time {prov['wall_time_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        default="/work/shared/data/cifar10-train-subset.npz",
        help="npz of real CIFAR-10 images (x_train, y_train, class_names)",
    )
    parser.add_argument("--out", default="benchmarks/results/class_order_data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the network candidates")
    parser.add_argument("--width", type=int, default=32, help="ConvNet width of the network candidates")
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    load_average = [round(v, 2) for v in os.getloadavg()]

    with np.load(args.data) as npz:
        x8 = torch.from_numpy(npz["x_train"])
        y = torch.from_numpy(npz["y_train"]).long()
        class_names = [str(n) for n in npz["class_names"]]
    if tuple(class_names) != CIFAR10:
        raise SystemExit(
            f"{args.data}: class names {class_names} are not CIFAR-10's; the vehicle/animal groups need CIFAR-10"
        )
    k = len(class_names)
    vehicle = [name in VEHICLES for name in class_names]
    grid = default_class_grid(k)
    fewest, random_mean = mixed_pairs_range(*grid, vehicle)

    candidates = {}
    for name in args.candidates:
        what, fn, seeded = CANDIDATES[name]
        seeds = args.seeds if seeded else args.seeds[:1]
        runs = [measure(name, fn, x8, y, k, seed, args, vehicle, grid, class_names) for seed in seeds]
        candidates[name] = {
            "what": what,
            "seeded": seeded,
            "runs": runs,
            "summary": summary(runs),
            "stability": stability(fn, x8, y, k, args, vehicle),
        }
        s = candidates[name]["summary"]
        print(
            f"{name:>18}: AUC {s['auc']['mean']:.3f}, ratio {s['ratio']['mean']:.2f}, mixed pairs "
            f"{s['mixed_pairs']['mean']:.1f}, {s['wall_s']['mean']:.2f} s",
            flush=True,
        )

    why = reason(candidates, fewest) if CHOSEN in candidates else "(not measured in this run)"
    record = {
        "benchmark": "class_order_data",
        "data": {"path": str(args.data), "source": "subset", "n_images": int(len(y)), "classes": class_names},
        "grid": list(grid),
        "vehicles": list(VEHICLES),
        "mixed_pairs_fewest": fewest,
        "mixed_pairs_random_mean": random_mean,
        "settings": {
            "seeds": args.seeds,
            "epochs": args.epochs,
            "width": args.width,
            "lr": LR,
            "batch": BATCH,
            "held_out": HELD_OUT,
            "threads": 1,
        },
        "load_average": load_average,
        "candidates": candidates,
        "chosen": CHOSEN,
        "why": why,
    }
    record["provenance"] = provenance(
        device="cpu",
        dataset="cifar10",
        data_source="subset",
        data_path=str(args.data),
        profile="n/a",
        seeds=args.seeds,
        hyperparameters=record["settings"],
        wall_time_s=round(time.perf_counter() - t_start, 1),
    )
    out = Path(args.out)
    write_json(out / "class_order_data.json", record)
    write_text(out / "class_order_data.md", markdown(record))
    print(f"wrote {out / 'class_order_data.json'} and {out / 'class_order_data.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

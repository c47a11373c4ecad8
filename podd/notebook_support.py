"""What the notebooks share: profiles, data per profile, embeddings per profile, run-and-evaluate.

The notebooks teach and call ``podd``; the few steps they all repeat live here so that no notebook
holds algorithm code and every notebook behaves the same way under each profile:

* ``smoke`` — CI and a first look: offline, CPU, seconds. Digits when asked for digits, otherwise a
  synthetic stand-in (:func:`podd.data.stand_in`) with the requested dataset's image shape and
  class count. Numbers measured on a stand-in are NOT results on that dataset; every notebook prints
  so, and the "measured on" column of every table repeats it.
* ``quick`` — the real dataset, scaled-down settings (minutes).
* ``paper`` — the real dataset, the authors' settings (hours of GPU for CIFAR and beyond).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import torch

# DATASET_SHAPES: the paper's datasets (and digits), class count and image shape (c, h, w) — what
# a smoke stand-in must imitate. SMOKE_ZCA_MAX_DIM and note_once: see podd.presets.resolve_config.
from podd.data.sources import DATASET_SHAPES
from podd.presets import SMOKE_ZCA_MAX_DIM, note_once  # noqa: F401  (re-exported)

PROFILES = ("smoke", "quick", "paper")
PROFILE_ENV = "PODD_PROFILE"


PRETTY_NAMES = {"digits": "digits (scikit-learn 8×8)", "cifar10": "CIFAR-10",
                "cifar100": "CIFAR-100", "cub200": "CUB200", "tinyimagenet": "Tiny-ImageNet"}


def pretty(dataset: str) -> str:
    return PRETTY_NAMES.get(dataset, dataset)


def slug(dataset: str) -> str:
    """A file-name-safe short name for a dataset spec (``npz:/data/x.npz`` → ``npz_x``)."""
    import re

    if ":" in dataset:
        scheme, path = dataset.split(":", 1)
        dataset = f"{scheme}_{os.path.splitext(os.path.basename(path.rstrip('/')))[0]}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset).strip("_") or "dataset"


def resolve_profile(profile: str | None = None) -> str:
    """``profile`` if given, else ``$PODD_PROFILE``, else ``"paper"``; checked."""
    profile = profile or os.environ.get(PROFILE_ENV) or "paper"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} "
                         f"(set it with -p profile NAME or the {PROFILE_ENV} variable)")
    return profile


def _stand_in_sizes(num_classes: int) -> tuple[int, int]:
    """Images per class (train, test) for a smoke stand-in: small, but enough per class."""
    if num_classes <= 10:
        return 60, 20
    return 12, 4


def load_for_profile(dataset: str, profile: str, *, root=None, seed: int = 0,
                     n_val: int | None = None, verbose: bool = True):
    """The dataset a notebook should use under ``profile``, with a printed note saying what it is.

    smoke: digits (real, bundled with scikit-learn) when ``dataset == "digits"``; for the paper's
    datasets a synthetic stand-in with their class count and image shape; local data
    (``npz:PATH``, ``imagefolder:PATH``) is read as it is, never downloaded. quick / paper: the real dataset
    (downloaded and cached by :func:`podd.data.load_dataset`). ``n_val``: hold out a stratified
    validation split of the training set and use it as the test set (for data with no test split,
    e.g. ``npz:`` files); the result is labelled a subset.
    """
    from podd import data

    profile = resolve_profile(profile)
    dataset = data.canonical_name(dataset)
    if profile == "smoke" and dataset in DATASET_SHAPES and dataset != "digits":
        num_classes, shape = DATASET_SHAPES[dataset]
        n_train, n_test = _stand_in_sizes(num_classes)
        ds = data.stand_in(dataset, num_classes, shape, n_train, n_test, seed)
    else:
        ds = data.load_dataset(dataset, root=root, download=(profile != "smoke"))
    if n_val:
        ds = data.train_val_split(ds, n_val=n_val, seed=seed)
    if verbose:
        print(data_note(ds, dataset, profile))
    _DATA_REQUESTS[id(ds)] = (ds, DataRequest(dataset, profile, None if root is None else
                                              str(root), seed, n_val))
    return ds


@dataclass(frozen=True)
class DataRequest:
    """How :func:`load_for_profile` made a dataset: what a job on another machine sends instead
    of the images (a Slurm job loads them itself, from the same cache or download)."""

    dataset: str
    profile: str
    root: str | None
    seed: int
    n_val: int | None

    def load(self):
        """The dataset, loaded once per process."""
        if self not in _LOADED:
            _LOADED[self] = load_for_profile(self.dataset, self.profile, root=self.root,
                                             seed=self.seed, n_val=self.n_val, verbose=False)
        return _LOADED[self]


_DATA_REQUESTS: dict[int, tuple[Any, DataRequest]] = {}   # id(ds) -> (ds kept alive, request)
_LOADED: dict[DataRequest, Any] = {}


def data_note(ds, requested: str, profile: str) -> str:
    """One honest sentence about the data behind the numbers that follow."""
    c, h, w = ds.image_shape
    size = (f"{ds.num_classes} classes, {c}×{h}×{w} images, {len(ds.y_train)} train / "
            f"{len(ds.y_test)} test")
    if ds.source == "stand-in":
        return (f"NOTE (profile {profile}): the data is a SYNTHETIC STAND-IN with "
                f"{pretty(requested)}'s shape ({size}), not {pretty(requested)} itself — the code "
                f"path is the real one, the numbers are not results on {pretty(requested)}.")
    if ds.source == "subset":
        return (f"NOTE (profile {profile}): a SUBSET of {pretty(requested)} ({size}); numbers are "
                f"results on this subset, not on the paper's full setting.")
    return f"Data (profile {profile}): {pretty(requested)}, full dataset ({size})."


def measured_on(ds, profile: str, requested: str | None = None) -> str:
    """Short text for the "measured on" column of a table."""
    name = pretty(requested or ds.name)
    kind = {"stand-in": f"synthetic stand-in with {name}'s shape",
            "subset": f"subset of {name}", "full": name}.get(ds.source, ds.source)
    return f"podd, profile {profile}, {kind}"


def class_embeddings(class_names, profile: str, *, embeddings: str | None = None,
                     seed: int = 0, dim: int = 32, verbose: bool = True
                     ) -> tuple[torch.Tensor, str]:
    """Class embeddings for PoCO and a label saying where they come from.

    ``embeddings`` (a ``.pt``/``.npy`` file) wins; otherwise quick/paper compute CLIP ViT-B/32
    text embeddings with :func:`podd.ordering.text_embeddings` (needs the weights: downloaded once
    and cached); smoke never reaches the network and uses seeded random unit vectors, clearly
    labelled "synthetic" — CLIP did not run, and the ordering is then only a code-path check.
    """
    from podd import ordering

    names = list(class_names)
    if embeddings:
        emb = ordering.load_embeddings(embeddings, num_classes=len(names))
        source = f"precomputed embeddings from {os.path.basename(str(embeddings))}"
    elif resolve_profile(profile) == "smoke":
        generator = torch.Generator().manual_seed(seed)
        emb = torch.nn.functional.normalize(torch.randn(len(names), dim, generator=generator),
                                            dim=1)
        source = (f"SYNTHETIC embeddings (seeded random unit vectors, seed {seed}) — profile smoke "
                  f"runs offline, CLIP did not run")
    else:
        emb = ordering.text_embeddings(names)
        source = "CLIP ViT-B/32 (OpenAI) text embeddings of the class names"
    if verbose:
        print(f"Class embeddings: {source}.")
    return emb, source


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` — wall time for the sidecars."""

    def __enter__(self):
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        return False


def config_dict(config) -> dict[str, Any]:
    """A run configuration as plain data (for sidecars and tables)."""
    if is_dataclass(config):
        values = asdict(config)
    else:
        values = dict(config)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


@dataclass
class RunOutcome:
    """One distillation and its evaluation, ready to become a table row."""

    config: Any
    artifact: Any
    evaluation: Any
    wall_time_s: float
    row: dict[str, Any] = field(default_factory=dict)


_PREPROCESSORS: dict[tuple[int, bool], Any] = {}


def preprocessor_for(ds, zca: bool):
    """The dataset's Preprocessor, fitted (or read from podd's disk cache) once per session."""
    from podd.data import make_preprocessor

    key = (id(ds), bool(zca))
    if key not in _PREPROCESSORS:
        _PREPROCESSORS[key] = (ds, make_preprocessor(ds, zca=zca))   # keep ds alive: id stays its
    return _PREPROCESSORS[key][1]


def profile_default(profile: str, smoke, quick, paper):
    """Pick a per-profile default (e.g. how many random orderings an ablation runs)."""
    return {"smoke": smoke, "quick": quick, "paper": paper}[resolve_profile(profile)]


def run_config(ds, profile: str, *, mode: str = "podd", ipc: float | None = None,
               embeddings: str | None = None, like: str | None = None, verbose: bool = True,
               **overrides):
    """The distillation settings a notebook uses: :func:`podd.presets.resolve_config` for
    ``ds.name`` (its class count and image shape) under ``profile``, with ``mode``, ``ipc``,
    ``like``, ``embeddings`` and ``overrides`` passed through — the same config ``podd distill``
    and :mod:`podd.demo` build for the same request. The resolver keeps the paper's patch stride
    at other budgets, caps the distilled batch at the patch count, and under ``smoke`` falls back
    from PoCO to the dataset order without ``embeddings`` and switches ZCA off for large images
    (printing a note for each). ``like``: take the preset of this dataset name instead of
    ``ds.name`` (e.g. ``"cifar10"`` for an ``npz:`` file of CIFAR-10 images); the config still
    records ``ds.name``. The device stays ``"auto"``: the engine picks CUDA when there is one.
    """
    from podd.presets import resolve_config

    return resolve_config(ds.name, resolve_profile(profile), like=like, mode=mode, ipc=ipc,
                          num_classes=ds.num_classes, image_shape=tuple(ds.image_shape),
                          embeddings=embeddings, verbose=verbose, **overrides)


def class_order_override(class_order: str | None) -> dict[str, Any]:
    """``{"class_order": …}`` for :func:`run_config` unless it is the preset's PoCO (``"poco"`` or
    None): PoCO then keeps its smoke fallback and its ``embeddings`` file."""
    return {} if class_order in (None, "poco") else {"class_order": class_order}


def patch_counts_for_strides(ds, ipc: float, stride_fractions, grid=None) -> list[tuple[int, int]]:
    """Patch counts ``(ny, nx)`` for a poster of ``ipc`` at strides of ``fraction × image side``.

    A fraction of 1 gives non-overlapping patches (at 1 IPC on an exact class grid: exactly K
    patches, the RaT-BPTT baseline); smaller fractions give more, more overlapping patches
    (the x-axis of the paper's fig 6). Duplicates are dropped, order kept.
    """
    from podd import poster

    K, shape = ds.num_classes, ds.image_shape
    size = poster.poster_size(K, shape, ipc, grid)
    counts = []
    for fraction in stride_fractions:
        stride = (max(1, round(shape[1] * fraction)), max(1, round(shape[2] * fraction)))
        pair = poster.patch_counts_from_stride(size, shape[1:], stride)
        if pair not in counts:
            counts.append(pair)
    return counts


def distill_and_evaluate(config, ds, *, out_dir=None, progress: bool = False,
                         **row_extra) -> RunOutcome:
    """Distil with ``config`` on ``ds``; the engine then evaluates the poster (§5.1 protocol:
    ``config.eval_models`` fresh ConvNets, test accuracy at ``config.eval_steps``).

    Returns the artifact, the :class:`~podd.evaluate.EvalResult` and a table row: method, nominal
    IPC, the poster's exact IPC, size, patches, and test accuracy mean and std (percent) at the
    last evaluated step. ``row_extra`` is added to the row (e.g. the ordering score).
    """
    from podd.run_loop import distill

    if not config.eval_models:
        raise ValueError("config.eval_models is 0: nothing would be evaluated; set eval_models >= 1")
    with Stopwatch() as watch:
        result = distill(config, dataset=ds, out_dir=out_dir, progress=progress,
                         preprocessor=preprocessor_for(ds, config.zca))
    evaluation = result.evaluation
    geometry = result.artifact.geometry
    method = {"podd": "PoDD", "baseline": "RaT-BPTT", "per-class": "PoDD per-class"}[config.mode]
    row = {"method": method, "ipc": float(config.ipc), "exact IPC": round(float(geometry.ipc), 3),
           "poster H×W": f"{geometry.size[0]}×{geometry.size[1]}",
           "patches": int(geometry.num_patches), "labels": result.artifact.label_mode,
           **row_extra,
           "accuracy": evaluation.mean(), "std": evaluation.std(),
           "eval": f"{evaluation.num_models} models × {evaluation.steps[-1]} steps"}
    return RunOutcome(config=config, artifact=result.artifact, evaluation=evaluation,
                      wall_time_s=watch.seconds, row=row)


def real_reference(ds, config, images_per_class: int = 1, subset_seed: int = 0) -> RunOutcome:
    """The "random real images" reference row: ``images_per_class`` real training images per
    class, hard labels, evaluated exactly like the posters (same models, steps, learning rate)."""
    from podd.evaluate import real_subset_reference

    with Stopwatch() as watch:
        evaluation = real_subset_reference(
            ds, preprocessor_for(ds, config.zca), images_per_class, subset_seed=subset_seed,
            num_models=config.eval_models, steps=tuple(config.eval_steps), lr=config.inner_lr,
            width=config.width, depth=config.depth, seed=config.seed, device=config.device)
    row = {"method": f"random real images ({images_per_class} per class)",
           "ipc": float(images_per_class), "exact IPC": float(images_per_class),
           "poster H×W": "–", "patches": images_per_class * ds.num_classes, "labels": "hard",
           "accuracy": evaluation.mean(), "std": evaluation.std(),
           "eval": f"{evaluation.num_models} models × {evaluation.steps[-1]} steps"}
    return RunOutcome(config=config, artifact=None, evaluation=evaluation,
                      wall_time_s=watch.seconds, row=row)


def runs_sidecar(ds, profile: str, outcomes, *, requested: str | None = None, **extra):
    """A provenance sidecar for results made of several runs: every run's config and seed."""
    from podd.devices import resolve_device
    from podd.figures import make_sidecar

    outcomes = list(outcomes)
    configs = [config_dict(o.config) for o in outcomes]
    return make_sidecar(dataset=requested or ds.name, data_source=ds.source, profile=profile,
                        hyperparameters={"runs": configs},
                        seeds=sorted({int(c["seed"]) for c in configs}),
                        wall_time_s=sum(o.wall_time_s for o in outcomes),
                        device=str(resolve_device(configs[0]["device"])) if configs else None,
                        data=f"{len(ds.y_train)} train / {len(ds.y_test)} test images", **extra)


def measured_and_reported(table_id: str, outcomes, ds, profile: str, requested: str,
                          like: str | None = None):
    """(measured rows, the paper's reported rows, both side by side) for one of the paper's tables.

    ``like`` names the paper dataset to compare with when ``requested`` is not one (e.g. an
    ``npz:`` copy of CIFAR-10); for data the paper does not use the reported rows are empty.
    """
    import pandas as pd

    from podd import reported

    measured = pd.DataFrame([o.row for o in outcomes])
    paper_name = reported.paper_dataset(like or requested)
    paper_rows = reported.load_reported(table_id, dataset=paper_name) if paper_name else \
        reported.load_reported(table_id).iloc[0:0]
    table = reported.side_by_side(measured, paper_rows,
                                  measured_on=measured_on(ds, profile, requested))
    return measured, paper_rows, table


PAPER_DATASETS = ("cifar10", "cifar100", "cub200", "tinyimagenet")


def poster_budget_table(ipcs=(1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3), datasets=PAPER_DATASETS):
    """Poster sizes and pixel budgets (§4.1) for the paper's datasets: geometry only, no data.

    One row per (dataset, IPC): class grid, poster H×W from :func:`podd.poster.poster_size`, its
    pixels, the pixels of ``IPC × K`` separate images, and the poster's exact IPC after rounding.
    """
    import pandas as pd

    from podd.poster import make_geometry

    rows = []
    for name in datasets:
        k, shape = DATASET_SHAPES[name]
        for ipc in ipcs:
            g = make_geometry(k, shape, ipc=ipc)
            rows.append({"dataset": pretty(name), "classes": k,
                         "image": f"{shape[0]}×{shape[1]}×{shape[2]}",
                         "grid": f"{g.grid[0]}×{g.grid[1]}", "IPC": ipc,
                         "poster H×W": f"{g.size[0]}×{g.size[1]}", "poster pixels": g.pixels,
                         "pixels of IPC·K images": round(ipc * k * shape[1] * shape[2]),
                         "exact IPC": round(g.ipc, 4)})
    return pd.DataFrame(rows)


def class_names_for(dataset: str, profile: str, *, root=None) -> list[str]:
    """The dataset's class names without loading its images where podd knows them (CIFAR, digits);
    otherwise from the dataset (smoke: the stand-in's names, "class 0", ...)."""
    from podd.data import canonical_name
    from podd.data.dataset import KNOWN_CLASS_NAMES

    dataset = canonical_name(dataset)
    if dataset in KNOWN_CLASS_NAMES:
        return list(KNOWN_CLASS_NAMES[dataset])
    return list(load_for_profile(dataset, profile, root=root, verbose=False).class_names)


# --------------------------------------------------------------------------------------------
# sweeps: a notebook's runs as jobs (podd.executors)
# --------------------------------------------------------------------------------------------
def _distill_job(config, data, row_extra: dict) -> RunOutcome:
    ds = data.load() if isinstance(data, DataRequest) else data
    return distill_and_evaluate(config, ds, **row_extra)


def _reference_job(config, data, images_per_class: int, subset_seed: int) -> RunOutcome:
    ds = data.load() if isinstance(data, DataRequest) else data
    return real_reference(ds, config, images_per_class, subset_seed)


class Sweep:
    """A notebook's runs, submitted to an executor and gathered in the order submitted.

    ``executor``: ``"local"`` (default: each run in this kernel when submitted, as before),
    ``"slurm"`` (one job per run via submitit), ``"debug"``/``"submitit-local"`` (submitit
    without a cluster), or an object from :func:`podd.executors.make_executor`;
    ``executor_options``: its settings (``workers``, ``partition``, ``time_min``, ``gpus`` …; see
    :mod:`podd.executors`). A job elsewhere receives the :class:`DataRequest` of ``data`` (when
    :func:`load_for_profile` made it) and loads the data itself; the runs are deterministic, so
    the results are the same as in this kernel::

        sweep = Sweep(data, executor)
        for ipc in ipcs:
            sweep.distill(run_config(data, profile, ipc=ipc))
        outcomes = sweep.gather()
    """

    def __init__(self, data, executor: Any = "local", **executor_options):
        from podd.executors import make_executor

        self.executor = make_executor(executor, **executor_options) \
            if isinstance(executor, str) else executor
        self.data = data
        inline = getattr(self.executor, "in_process", False)
        known = _DATA_REQUESTS.get(id(data))
        self._payload = data if inline or known is None or known[0] is not data else known[1]
        self.futures: list[Any] = []

    def distill(self, config, **row_extra):
        """Submit :func:`distill_and_evaluate` of ``config`` (``row_extra`` goes into its row)."""
        future = self.executor.submit(_distill_job, config, self._payload, row_extra)
        self.futures.append(future)
        return future

    def reference(self, config, images_per_class: int = 1, subset_seed: int = 0):
        """Submit :func:`real_reference` (random real images, evaluated like the posters)."""
        future = self.executor.submit(_reference_job, config, self._payload, images_per_class,
                                      subset_seed)
        self.futures.append(future)
        return future

    def gather(self) -> list[RunOutcome]:
        """Every submitted run's :class:`RunOutcome`, in submission order (waits for them)."""
        from podd.executors import gather

        return gather(self.futures)

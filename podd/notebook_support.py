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

PROFILES = ("smoke", "quick", "paper")
PROFILE_ENV = "PODD_PROFILE"

#: The paper's datasets (and digits): class count and image shape (c, h, w) — what a smoke
#: stand-in must imitate. CUB200 is resized to 32×32 as in the paper.
DATASET_SHAPES: dict[str, tuple[int, tuple[int, int, int]]] = {
    "digits": (10, (1, 8, 8)),
    "cifar10": (10, (3, 32, 32)),
    "cifar100": (100, (3, 32, 32)),
    "cub200": (200, (3, 32, 32)),
    "tinyimagenet": (200, (3, 64, 64)),
}

PRETTY_NAMES = {"digits": "digits (scikit-learn 8×8)", "cifar10": "CIFAR-10",
                "cifar100": "CIFAR-100", "cub200": "CUB200", "tinyimagenet": "Tiny-ImageNet"}


def pretty(dataset: str) -> str:
    return PRETTY_NAMES.get(dataset, dataset)


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

    smoke: digits (real, bundled with scikit-learn) when ``dataset == "digits"``, else a synthetic
    stand-in with ``dataset``'s class count and image shape. quick / paper: the real dataset
    (downloaded and cached by :func:`podd.data.load_dataset`). ``n_val``: hold out a stratified
    validation split of the training set and use it as the test set (for data with no test split,
    e.g. ``npz:`` files); the result is labelled a subset.
    """
    from podd import data

    profile = resolve_profile(profile)
    if profile == "smoke" and dataset != "digits":
        if dataset not in DATASET_SHAPES:
            raise ValueError(f"profile smoke has no stand-in shape for {dataset!r}; use one of "
                             f"{', '.join(DATASET_SHAPES)} or another profile")
        num_classes, shape = DATASET_SHAPES[dataset]
        n_train, n_test = _stand_in_sizes(num_classes)
        ds = data.stand_in(dataset, num_classes, shape, n_train, n_test, seed)
    else:
        ds = data.load_dataset(dataset, root=root, download=(profile != "smoke"))
    if n_val:
        ds = data.train_val_split(ds, n_val=n_val, seed=seed)
    if verbose:
        print(data_note(ds, dataset, profile))
    return ds


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
    """The dataset's Preprocessor, fitted once per (dataset object, zca) in this session."""
    from podd.data import make_preprocessor

    key = (id(ds), bool(zca))
    if key not in _PREPROCESSORS:
        _PREPROCESSORS[key] = make_preprocessor(ds, zca=zca)
    return _PREPROCESSORS[key]


def distill_and_evaluate(config, ds, *, out_dir=None, progress: bool = False,
                         **row_extra) -> RunOutcome:
    """Distil with ``config`` on ``ds`` and evaluate the poster with the §5.1 protocol.

    Returns the artifact, the :class:`~podd.evaluate.EvalResult` and a table row: method, nominal
    IPC, the poster's exact IPC, patches, test accuracy mean and std (percent) at the last step.
    """
    from podd.distill import distill, patches_and_labels
    from podd.evaluate import train_and_test

    with Stopwatch() as watch:
        result = distill(config, dataset=ds, out_dir=out_dir, progress=progress)
        images, labels = patches_and_labels(result.artifact)
        test_x = preprocessor_for(ds, config.zca)(ds.x_test)
        evaluation = train_and_test(
            images.detach(), labels.detach(), test_x, ds.y_test, num_models=config.eval_models,
            steps=tuple(config.eval_steps), lr=config.inner_lr,
            batch_size=config.distill_batch or len(images), width=config.width, depth=config.depth,
            seed=config.seed, device=config.device or "cpu")
    geometry = result.artifact.geometry
    row = {"method": "PoDD" if config.mode == "podd" else
           ("RaT-BPTT" if config.mode == "baseline" else config.mode),
           "ipc": config.ipc, "exact IPC": round(float(geometry.ipc), 3),
           "poster (H×W)": f"{geometry.size[0]}×{geometry.size[1]}",
           "patches": int(geometry.num_patches),
           "accuracy": evaluation.mean(), "std": evaluation.std(), **row_extra}
    return RunOutcome(config=config, artifact=result.artifact, evaluation=evaluation,
                      wall_time_s=watch.seconds, row=row)

"""Run one config and evaluate it, as a table row: a distilled poster, or the "random real
images" reference evaluated the same way; a finished run read back instead of run again.
Fitted preprocessors are cached per session. :data:`METHOD_NAMES` is the one table of the names
every result table gives the methods."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from podd.data import make_preprocessor
from podd.devices import resolve_device
from podd.evaluate import DEFAULT_BATCH_SIZE, EvalProtocol, EvalResult, real_subset_reference
from podd.experiments.cache import SessionCache
from podd.run_loop import distill
from podd.rundir import load_run

#: The names of the methods, by mode: (the name in the notebooks' tables, the label in the
#: comparison reports). The notebooks use the paper's names, so that a measured row meets the
#: paper's reported one (:func:`podd.reported.side_by_side` joins on it); the comparisons of
#: ``make demo`` and the quality benchmarks (:mod:`podd.experiments.compare`) keep their labels,
#: which their result files and the README's tables carry.
METHOD_NAMES = {
    "real": ("random real images", "random real"),
    "podd": ("PoDD", "PoDD"),
    "baseline": ("RaT-BPTT", "RaT-BPTT baseline"),
    "per-class": ("PoDD per-class", "PoDD per-class"),
}


def method_name(mode: str) -> str:
    """The method's name in the notebooks' tables (the paper's)."""
    return METHOD_NAMES[mode][0]


def method_label(mode: str) -> str:
    """The method's label in a comparison report (``make demo``, the quality benchmarks)."""
    return METHOD_NAMES[mode][1]


#: (id(ds), zca) -> (ds, its Preprocessor); ds is kept so its id stays its own.
PREPROCESSORS = SessionCache("preprocessors")


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
    """One distillation and its evaluation, ready to become a table row. ``made_at``: the commit
    the run was made at (set by a sweep's job as it starts; for a run collected finished, the
    commit its final.json names); ``collected``: read back from a finished run, not run now."""

    config: Any
    artifact: Any
    evaluation: Any
    wall_time_s: float
    row: dict[str, Any] = field(default_factory=dict)
    made_at: str | None = None
    collected: bool = False


def preprocessor_for(ds, zca: bool):
    """The dataset's Preprocessor, fitted (or read from podd's disk cache) once per session."""
    return PREPROCESSORS.get((id(ds), bool(zca)), lambda: (ds, make_preprocessor(ds, zca=zca)))[1]


def _eval_text(evaluation) -> str:
    return f"{evaluation.num_models} models × {evaluation.steps[-1]} steps"


def distill_and_evaluate(
    config, ds, *, out_dir=None, progress: bool = False, resume: bool = False, stop=None, **row_extra
) -> RunOutcome:
    """Distil with ``config`` on ``ds``; the engine then evaluates the poster (§5.1 protocol:
    ``config.eval_models`` fresh ConvNets, test accuracy at ``config.eval_steps``).

    Returns the artifact, the :class:`~podd.evaluate.EvalResult` and a table row: method, nominal
    IPC, the poster's exact IPC, size, patches, and test accuracy mean and std (percent) at the
    last evaluated step. ``row_extra`` is added to the row (e.g. the ordering score).
    ``resume=True`` continues the run in ``out_dir`` to ``config.steps``; ``stop``: see
    :func:`podd.run_loop.distill`.
    """
    if not config.eval_models:
        raise ValueError("config.eval_models is 0: nothing would be evaluated; set eval_models >= 1")
    with Stopwatch() as watch:
        result = distill(
            config,
            dataset=ds,
            out_dir=out_dir,
            progress=progress,
            resume=resume,
            preprocessor=preprocessor_for(ds, config.zca),
            stop=stop,
        )
    evaluation = result.evaluation
    return RunOutcome(
        config=config,
        artifact=result.artifact,
        evaluation=evaluation,
        wall_time_s=watch.seconds,
        row=_poster_row(config, result, row_extra),
    )


def outcome_of_run(run_dir, config, row_extra: dict) -> RunOutcome:
    """The :class:`RunOutcome` of a run that finished in ``run_dir`` (a sweep collecting a cell
    of an earlier session): its poster and final evaluation, read back, not computed again."""
    from types import SimpleNamespace

    artifact, final = load_run(run_dir)
    evaluation = (final or {}).get("result", {}).get("evaluation")
    if evaluation is None:
        raise ValueError(
            f"{run_dir} holds no final evaluation (its final.json is missing or "
            f"damaged); delete the directory to run it again"
        )
    result = SimpleNamespace(artifact=artifact, evaluation=EvalResult.from_dict(evaluation))
    provenance = final.get("provenance", {})
    return RunOutcome(
        config=config,
        artifact=artifact,
        evaluation=result.evaluation,
        wall_time_s=float(provenance.get("wall_time_s") or 0.0),
        row=_poster_row(config, result, row_extra),
        made_at=provenance.get("git_commit"),
        collected=True,
    )


def _poster_row(config, result, row_extra: dict) -> dict[str, Any]:
    """A distilled poster's table row; ``row_extra`` goes before the accuracy columns."""
    evaluation, geometry = result.evaluation, result.artifact.geometry
    return {
        "method": method_name(config.mode),
        "ipc": float(config.ipc),
        "exact IPC": round(float(geometry.ipc), 3),
        "poster H×W": f"{geometry.size[0]}×{geometry.size[1]}",
        "patches": int(geometry.num_patches),
        "labels": result.artifact.label_mode,
        **row_extra,
        "accuracy": evaluation.mean(),
        "std": evaluation.std(),
        "eval": _eval_text(evaluation),
    }


def real_reference(ds, config, images_per_class: int = 1, subset_seed: int = 0) -> RunOutcome:
    """The "random real images" reference row: ``images_per_class`` real training images per
    class, hard labels, evaluated exactly like the posters (same models, steps, learning rate)."""
    # The posters' protocol, on batches of up to 256 of the subset's images (all of a 1-IPC set).
    n_images = images_per_class * ds.num_classes
    protocol = EvalProtocol.from_config(config, batch_size=min(n_images, DEFAULT_BATCH_SIZE))
    with Stopwatch() as watch:
        evaluation = real_subset_reference(
            ds, preprocessor_for(ds, config.zca), images_per_class, protocol, subset_seed=subset_seed
        )
    row = {
        "method": f"{method_name('real')} ({images_per_class} per class)",
        "ipc": float(images_per_class),
        "exact IPC": float(images_per_class),
        "poster H×W": "–",
        "patches": images_per_class * ds.num_classes,
        "labels": "hard",
        "accuracy": evaluation.mean(),
        "std": evaluation.std(),
        "eval": _eval_text(evaluation),
    }
    return RunOutcome(config=config, artifact=None, evaluation=evaluation, wall_time_s=watch.seconds, row=row)


def runs_sidecar(ds, profile: str, outcomes, *, requested: str | None = None, **extra):
    """A provenance sidecar for results made of several runs: every run's config and seed."""
    # lazy: podd.figures loads matplotlib (~1 s over the engine), which the demo and sweep jobs never need
    from podd.figures import make_sidecar

    outcomes = list(outcomes)
    configs = [config_dict(o.config) for o in outcomes]
    return make_sidecar(
        dataset=requested or ds.name,
        data_source=ds.source,
        profile=profile,
        hyperparameters={"runs": configs},
        seeds=sorted({int(c["seed"]) for c in configs}),
        wall_time_s=sum(o.wall_time_s for o in outcomes),
        device=str(resolve_device(configs[0]["device"])) if configs else None,
        data=f"{len(ds.y_train)} train / {len(ds.y_test)} test images",
        **extra,
    )

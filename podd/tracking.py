"""Experiment tracking with the field's tools: a run's scalars and poster in TensorBoard and/or
Weights & Biases, beside the run directory's own ``metrics.jsonl``.

``podd distill --log tensorboard wandb`` (in Python ``distill(..., log=("tensorboard", "wandb"))``,
:func:`podd.run_loop.distill`) opens one :class:`Tracker` per backend; the run loop hands them
what it writes to ``metrics.jsonl`` (outer loss, learning rates, step time, evaluation and
best-poster accuracies, under the tags of :data:`TAGS`) and the poster as an image every
``image_every`` steps (at step 0 of a new run, and the final poster at the end)::

    RUN_DIR/
      tracking.json   the backends, the image interval and the W&B run id: --resume continues them
      tensorboard/    event files (torch.utils.tensorboard): tensorboard --logdir RUN_DIR/tensorboard
      wandb/          W&B's files (offline runs: wandb sync …), unless $WANDB_DIR says elsewhere

Each backend is an optional extra (``pip install 'podd[tensorboard]'``, ``'podd[wandb]'``),
imported only when asked for; a missing one is :class:`TrackingUnavailable`, raised before any
data is loaded. Only rank 0 of a distributed run tracks (it alone writes the run directory).

A resumed run continues the same tracking: without ``log`` it uses what ``tracking.json``
recorded; TensorBoard writes into the same directory with its steps continuing (what was logged
after the checkpoint, by the part of the run that was lost, is purged from view), and W&B resumes
the run id stored there (online, W&B keeps what it has and drops the repeated steps, as it drops
any step below its last; offline, each part is a run directory of its own, synced into one run).
W&B logs online when it has an API key (``WANDB_API_KEY``, ``wandb login``), offline when
``WANDB_MODE=offline`` says so or no key is configured (a note says which).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from podd.choices import TRACKERS
from podd.display import poster_image
from podd.io import write_json
from podd.notes import note_once

TRACKING_FILE = "tracking.json"
TENSORBOARD_DIR = "tensorboard"
#: the poster is logged every this many outer steps unless told otherwise (--log-image-every)
DEFAULT_IMAGE_EVERY = 100
#: backend → (the module it imports, the extra that installs it)
EXTRAS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}
#: metrics.jsonl keys → the scalar tags the trackers show them under
TAGS = {
    "loss": "loss/outer",
    "steps_per_s": "time/steps_per_s",
    "epoch": "progress/epoch",
    "eval_accuracy": "eval/accuracy",
    "eval_std": "eval/accuracy_std",
    "train_accuracy": "best/train_accuracy",
    "best_step": "best/chosen_step",
    "best_train_accuracy": "best/chosen_train_accuracy",
}


class TrackingUnavailable(RuntimeError):
    """A tracker was asked for whose package is not installed; the message names the extra."""


class Tracker(Protocol):
    """What the run loop calls; every backend (and :class:`Tracking`, all of them) offers it."""

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None: ...

    def log_poster(self, step: int, poster) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# what a run tracks
# --------------------------------------------------------------------------------------------
def parse_backends(log) -> tuple[str, ...]:
    """``log`` as backend names: a name, several (a list, or one string "tensorboard wandb"),
    ``"none"`` or an empty list for none. Unknown names are refused."""
    names = log.replace(",", " ").split() if isinstance(log, str) else list(log)
    chosen: list[str] = []
    for name in names:
        if name == "none":
            continue
        if name not in TRACKERS:
            raise ValueError(f"--log {name}: choose from {', '.join(TRACKERS)} (or none)")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def require(backends: Iterable[str]) -> None:
    """Import each backend's package now, or raise :class:`TrackingUnavailable` naming the extra
    that installs it (before any data is loaded or any step is run)."""
    import importlib

    for name in backends:
        module, extra = EXTRAS[name]
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise TrackingUnavailable(
                f"--log {name} needs the {module} package, which is not installed ({error}); "
                f"install it with: pip install 'podd[{extra}]' (or pip install {module}), or run "
                f"without --log {name}"
            ) from None


@dataclass(frozen=True)
class TrackingPlan:
    """What a run will track: the backends, the poster image interval, the W&B run id to resume
    (None: a new one), and what ``tracking.json`` held before (kept when rewritten)."""

    backends: tuple[str, ...] = ()
    image_every: int = DEFAULT_IMAGE_EVERY
    wandb_id: str | None = None
    saved: dict | None = None


def plan(log, image_every: int | None, run_dir: str | Path | None, resume: bool) -> TrackingPlan:
    """What a run in ``run_dir`` tracks, its packages checked (:func:`require`).

    ``log`` None on a resume: what ``tracking.json`` recorded (nothing on a new run).
    ``image_every`` None: the recorded interval, else :data:`DEFAULT_IMAGE_EVERY`; 0 logs only
    the first and the final poster."""
    saved = read_saved(run_dir) if resume and run_dir is not None else {}
    backends = parse_backends(log) if log is not None else parse_backends(saved.get("log", ()))
    if image_every is not None and not backends:
        raise ValueError(
            f"--log-image-every {image_every} sets how often a tracker gets the poster, "
            f"but no tracker is on: add --log tensorboard and/or wandb"
        )
    if image_every is None:
        image_every = saved.get("image_every", DEFAULT_IMAGE_EVERY)
    if isinstance(image_every, bool) or not isinstance(image_every, int) or image_every < 0:
        raise ValueError(
            f"--log-image-every {image_every}: give a whole number of outer steps, "
            f"or 0 for the first and the final poster only"
        )
    if backends and run_dir is None:
        raise ValueError(
            f"--log {' '.join(backends)} writes into the run directory: give one (--out DIR, in Python out_dir=…)"
        )
    require(backends)
    return TrackingPlan(backends, image_every, saved.get("wandb_id"), saved or None)


def read_saved(run_dir: str | Path) -> dict:
    """``RUN_DIR/tracking.json``, or {} where there is none (or it cannot be read)."""
    try:
        saved = json.loads((Path(run_dir) / TRACKING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def open_tracking(
    chosen: TrackingPlan, run_dir: str | Path, config: dict, preprocessor=None, step: int = 0, resume: bool = False
) -> Tracking | None:
    """Open the planned trackers for the run in ``run_dir`` (held by this process) at ``step``;
    None when nothing is tracked. Records the plan in ``tracking.json`` (a resume reads it)."""
    run_dir = Path(run_dir)
    if not chosen.backends:
        if chosen.saved is not None:  # a resume with --log none: the next one tracks nothing either
            write_json(run_dir / TRACKING_FILE, {**chosen.saved, "log": []})
        return None
    wandb_id = chosen.wandb_id  # kept while W&B sits out a part of the run
    if "wandb" in chosen.backends and wandb_id is None:
        import secrets

        wandb_id = secrets.token_hex(6)
    write_json(
        run_dir / TRACKING_FILE, {"log": list(chosen.backends), "image_every": chosen.image_every, "wandb_id": wandb_id}
    )
    trackers: list = []
    try:
        for name in chosen.backends:
            if name == "tensorboard":
                trackers.append(
                    TensorBoardTracker(
                        run_dir / TENSORBOARD_DIR, preprocessor, purge_step=_purge_step(run_dir, step, resume)
                    )
                )
            else:
                trackers.append(WandbTracker(run_dir, wandb_id, config, preprocessor))
    except BaseException:
        for tracker in trackers:
            tracker.close()
        raise
    return Tracking(trackers, chosen.image_every)


def _purge_step(run_dir: Path, step: int, resume: bool) -> int | None:
    """TensorBoard's purge step: a resumed run hides what the lost part logged after its
    checkpoint (``step``); a new run started over in a directory whose earlier attempt never
    reached a checkpoint hides all of that attempt's events."""
    if resume:
        return step + 1
    folder = run_dir / TENSORBOARD_DIR
    return 0 if folder.is_dir() and any(folder.iterdir()) else None


def scalars(record: dict, learning_rates: dict[str, float] | None = None) -> dict[str, float]:
    """A ``metrics.jsonl`` record as tracker scalars (:data:`TAGS`), with the seconds per step
    and, beside a loss, the learning rates."""
    out = {
        TAGS[key]: float(value)
        for key, value in record.items()
        if key in TAGS and isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    if record.get("steps_per_s"):
        out["time/step_s"] = 1.0 / float(record["steps_per_s"])
    if "loss" in record and learning_rates:
        out.update({tag: float(value) for tag, value in learning_rates.items()})
    return out


# --------------------------------------------------------------------------------------------
# the trackers
# --------------------------------------------------------------------------------------------
class Tracking:
    """All of a run's trackers as one :class:`Tracker`, with the poster image interval."""

    def __init__(self, trackers: list, image_every: int):
        self.trackers, self.image_every = list(trackers), image_every

    def image_due(self, step: int) -> bool:
        return bool(self.image_every) and step % self.image_every == 0

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if scalars:
            for tracker in self.trackers:
                tracker.log_scalars(step, scalars)

    def log_poster(self, step: int, poster) -> None:
        for tracker in self.trackers:
            tracker.log_poster(step, poster)

    def close(self) -> None:
        """Close every tracker (each one even when another fails), then raise the first error."""
        first = None
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as error:  # noqa: BLE001 - the others are closed all the same
                first = first or error
        if first is not None:
            raise first


def _image(poster, preprocessor):
    """The poster as ``uint8`` pixels: (H, W) for one channel, else (H, W, c)."""
    image = poster_image(poster, preprocessor)
    return image[:, :, 0] if image.shape[2] == 1 else image


class TensorBoardTracker:
    """Scalars and the poster in TensorBoard event files (``torch.utils.tensorboard``)."""

    def __init__(self, log_dir: str | Path, preprocessor=None, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir, self.preprocessor = Path(log_dir), preprocessor
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        note_once(f"TensorBoard logs go to {self.log_dir} (view them with: tensorboard --logdir {self.log_dir})")

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, global_step=step)

    def log_poster(self, step: int, poster) -> None:
        image = _image(poster, self.preprocessor)
        self.writer.add_image("poster", image, global_step=step, dataformats="HW" if image.ndim == 2 else "HWC")

    def close(self) -> None:
        self.writer.close()


def wandb_mode() -> tuple[str | None, str]:
    """(the mode to ask W&B for, None for its own choice; why). ``WANDB_MODE`` decides when set;
    otherwise online with an API key, offline without one (never a login prompt)."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return None, f"WANDB_MODE={mode}"
    if has_wandb_credentials():
        return None, "an API key is configured"
    return "offline", ("no W&B API key is configured (set WANDB_API_KEY or run `wandb login` to log online)")


def has_wandb_credentials() -> bool:
    """Whether W&B has a key to log online with: ``WANDB_API_KEY``, an identity token file, or
    the netrc entry ``wandb login`` writes for the W&B host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbTracker:
    """Scalars and the poster in a Weights & Biases run whose id the run directory keeps (a
    resumed podd run resumes it). Files go to ``$WANDB_DIR``, else the run directory; the
    project is ``$WANDB_PROJECT``, else ``podd``; the W&B run is named after the run directory."""

    def __init__(self, run_dir: str | Path, run_id: str, config: dict[str, Any], preprocessor=None):
        import wandb

        self.preprocessor, self._wandb = preprocessor, wandb
        mode, why = wandb_mode()
        options: dict[str, Any] = {
            "id": run_id,
            "resume": "allow",
            "dir": os.environ.get("WANDB_DIR") or str(run_dir),
            "project": os.environ.get("WANDB_PROJECT") or "podd",
            "name": Path(run_dir).name,
            "config": config,
            "settings": wandb.Settings(console="off", quiet=True),
        }
        if mode is not None:
            options["mode"] = mode
        try:
            self.run = wandb.init(**options)
        except Exception as error:  # noqa: BLE001 - W&B's own errors (login, network) as one line
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RuntimeError(
                f"W&B could not start run {run_id} ({why}): {detail}; check the API "
                f"key and the network, or log offline with WANDB_MODE=offline"
            ) from error
        files = Path(self.run.dir).parent if getattr(self.run, "dir", None) else None
        if getattr(self.run, "offline", False) or mode == "offline":
            note_once(
                f"W&B logs offline, because {why}: run {run_id} in {files}; upload it later with: wandb sync {files}"
            )
        elif getattr(self.run, "disabled", False):
            note_once(f"W&B is disabled ({why}): nothing is logged to it")
        else:
            note_once(f"W&B run {run_id}: {getattr(self.run, 'url', None) or files}")

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(dict(scalars), step=step)

    def log_poster(self, step: int, poster) -> None:
        image = self._wandb.Image(_image(poster, self.preprocessor), caption=f"step {step}")
        self.run.log({"poster": image}, step=step)

    def close(self) -> None:
        self.run.finish()

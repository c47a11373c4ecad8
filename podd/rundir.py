"""The run directory of a distillation: everything needed to reuse, inspect or resume it.

```
RUN_DIR/
  config.json       the full DistillConfig the run began with (for people and tools: podd never
                    reads it back; a resume refuses a hand-edited one, see RunDir.load_checkpoint)
  poster.pt         podd.artifacts.PosterArtifact: poster + labels + geometry + class order + config
  poster.png        the poster as an image (through the preprocessor's inverse)
  metrics.jsonl     one JSON object per logged step: loss, steps/s, evaluation accuracy
  final.json        results + provenance (dataset, data source, profile, hyper-parameters, seeds,
                    commit, device, library versions, wall time)
  checkpoint.pt     poster, label parameters, outer optimizer, gradient EMA, generator state,
                    epoch permutation and window start, step, history (written atomically)
  tracking.json     with --log (podd.tracking): the trackers, image interval, W&B run id
  tensorboard/      with --log tensorboard: TensorBoard's event files
  wandb/            with --log wandb: W&B's files (offline runs to `wandb sync`), unless $WANDB_DIR
```
poster.pt and checkpoint.pt carry a SHA-256 of their records (podd.io.add_file_digest), checked
before anything in them is unpickled; they are then read with ``torch.load(weights_only=True)``,
which never imports or runs code. A damaged copy is refused on load (as are NaN/inf posters),
never evaluated or resumed.
Every file is written through podd.io (temporary file + rename), so a crash never leaves a
half-written checkpoint: the previous one stays. While a run writes into RUN_DIR it holds the
lock ``RUN_DIR/.podd.lock`` (:meth:`RunDir.locked`): a second ``podd distill`` with the same
``--out`` is refused instead of interleaving its metrics and overwriting the first one's files,
and the ``.tmp`` files of a process killed mid-write are removed when the next one takes the lock.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from podd.artifacts import load_artifact, save_artifact
from podd.config import DistillConfig
from podd.display import save_poster_png
from podd.io import (
    ChecksumMismatchError,
    UnreadableFileError,
    WriteError,
    remove_orphan_tmp,
    torch_load_checked,
    torch_save,
    verify_checksum,
    write_error,
    write_json,
    write_text,
)
from podd.modes import poster_mode
from podd.notes import note_once
from podd.provenance import provenance

CHECKPOINT_FORMAT = "podd-checkpoint"
# 2: a SHA-256 of the contents is stored in the file; 3: a SHA-256 of the file's records instead,
# checked before unpickling (podd.io.add_file_digest), and the config that config.json was
# written with ("begun_with")
CHECKPOINT_VERSION = 3
READABLE_CHECKPOINT_VERSIONS = (1, 2, 3)
ARTIFACT, PNG, METRICS, FINAL, CHECKPOINT, CONFIG = (
    "poster.pt",
    "poster.png",
    "metrics.jsonl",
    "final.json",
    "checkpoint.pt",
    "config.json",
)
LOCK = ".podd.lock"


class RunDirBusyError(ValueError):
    """Another process holds the run directory's lock."""


# Settings a resumed run may change: they do not alter the poster's trajectory (the memory
# savers and the engine change only float rounding, so a run that ran out of memory can resume
# with them, and a run can move between the eager and the compiled engine).
RESUMABLE_CHANGES = (
    "steps",
    "device",
    "eval_every",
    "best_every",
    "eval_models",
    "eval_steps",
    "eval_arch",
    "checkpoint_every",
    "log_every",
    "data_root",
    "real_chunk",
    "recompute_window",
    "engine",
)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._checkpoint_step: int | None = None
        self._begun_with: dict | None = None  # what config.json was written with

    def file(self, name: str) -> Path:
        return self.path / name

    # -- the directory itself ----------------------------------------------------------------
    def check_target(self) -> None:
        """Refuse, before any work, an --out that cannot become a writable run directory: a
        file, a path under a file, or a place this user cannot write to."""
        path = self.path
        link = dangling_link(path)
        if link is not None:
            raise ValueError(
                f"--out {path}: {_dangling(link)}; remove the link (rm {link}) or "
                f"point it at a directory, or choose another --out"
            )
        if path.exists() and not path.is_dir():
            raise ValueError(
                f"--out {path} is a file, not a directory; give a directory for the run (a new or an existing one)"
            )
        ancestor = path.absolute()
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ValueError(
                f"--out {path}: cannot make a directory there because {ancestor} is a file; choose another --out"
            )

    def _make(self) -> list[Path]:
        """Create the directory (and missing parents); return those that were created."""
        self.check_target()
        missing, folder = [], self.path
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir(exist_ok=True)
            except OSError as error:
                raise _run_dir_error(self.path, error) from error
        return missing

    @contextlib.contextmanager
    def locked(self) -> Iterator[RunDir]:
        """Hold the run directory (created if needed) for the duration of the block.

        Another process holding it is a :class:`RunDirBusyError`. Orphan ``.tmp`` files of a
        killed writer are removed once the lock is held. If the block fails before the run
        wrote anything, the directories created here are removed again, so a refused run leaves
        nothing behind."""
        from filelock import FileLock, Timeout

        created = self._make()
        lock_path = self.file(LOCK)
        lock = FileLock(str(lock_path), timeout=0)
        try:
            try:
                lock.acquire()
            except Timeout:
                raise RunDirBusyError(
                    f"{self.path} is in use by another podd process (it holds {lock_path}): two "
                    f"runs in one directory would interleave their metrics and overwrite each "
                    f"other's files; wait for that run to finish (or stop it), or choose another "
                    f"--out"
                ) from None
            except OSError as error:
                raise _run_dir_error(self.path, error) from error
        except BaseException:
            self._remove_if_empty(created)
            raise
        try:
            removed = remove_orphan_tmp(self.path)
            if removed:
                note_once(
                    f"removed {len(removed)} unfinished temporary file(s) that an "
                    f"interrupted write left in {self.path} "
                    f"({', '.join(p.name for p in removed[:3])})"
                )
            yield self
        finally:
            # A signal can cut a write short before atomic_path cleans up (e.g. between mkstemp
            # creating the file and returning its name); this process still holds the lock, so
            # every .tmp file here is one of its own unfinished writes.
            remove_orphan_tmp(self.path)
            lock.release()
            lock_path.unlink(missing_ok=True)
            self._remove_if_empty(created)

    def _remove_if_empty(self, created: list[Path]) -> None:
        """Remove the directories this process created, if nothing was written into them."""
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                return

    # -- beginning and resuming ------------------------------------------------------------
    def check_new(self) -> None:
        """Refuse to start a new run over another run."""
        if self.file(CHECKPOINT).exists():
            raise ValueError(
                f"{self.path} already holds a podd run; continue it with --resume "
                f"(resume=True) or choose another --out directory"
            )
        if self.file(FINAL).exists():
            raise ValueError(
                f"{self.path} already holds a finished podd run (its {CHECKPOINT} "
                f"was removed, so it cannot be continued); start the new run in "
                f"another --out directory, or delete {self.path} to start over there"
            )

    def begin(self, config) -> None:
        """Start a new run here (config.json, empty metrics.jsonl)."""
        self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
        self._begun_with = config.to_dict()
        write_json(self.file(CONFIG), self._begun_with)
        write_text(self.file(METRICS), "")

    def load_checkpoint(self) -> dict[str, Any]:
        """The last checkpoint, or a clear error when this is not a resumable podd run.

        The file's digest is checked before anything in it is unpickled, and it is read with
        ``torch.load(weights_only=True)``; a hand-edited config.json is refused
        (:meth:`_check_config_file`)."""
        if not self.path.is_dir():
            link = dangling_link(self.path)
            if link is not None:
                raise FileNotFoundError(
                    f"--out {self.path}: {_dangling(link)}; nothing to resume "
                    f"there: point the link at the run directory, or give the "
                    f"run directory itself"
                )
            if self.path.exists():
                raise ValueError(
                    f"--out {self.path} is a file, not a run directory; give the --out directory of the run to resume"
                )
            raise FileNotFoundError(
                f"run directory {self.path} does not exist; nothing to resume (start a run without --resume)"
            )
        path = self.file(CHECKPOINT)
        if not path.exists():
            if self.file(FINAL).exists() or self.file(ARTIFACT).exists():
                raise FileNotFoundError(
                    f"{self.path} holds a finished run whose {CHECKPOINT} was removed, so it "
                    f"cannot be continued with --resume; to distil more steps, start a new run in "
                    f"another --out, or restore {CHECKPOINT} from a copy (podd show and podd "
                    f"evaluate work without it)"
                )
            raise FileNotFoundError(
                f"{self.path} has no {CHECKPOINT}: it is not a podd run directory, or the run "
                f"stopped before its first checkpoint; start it again without --resume"
            )
        advice = "restore it from a copy, or delete it to restart the run"
        try:
            checkpoint, digested = torch_load_checked(path, advice)
        except ChecksumMismatchError:
            raise
        except UnreadableFileError as error:
            raise ValueError(
                f"{path} could not be read as a podd checkpoint ({error}); delete it to restart the run"
            ) from None
        except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
            raise ValueError(
                f"{path} could not be read as a podd checkpoint "
                f"({_load_failure(error)}): it is damaged or was not written by "
                f"podd (podd unpickles only tensors and plain data); {advice}"
            ) from None
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{path} is not a podd checkpoint (no '{CHECKPOINT_FORMAT}' "
                f"marker); point --out at a directory written by podd distill"
            )
        version = checkpoint.get("version")
        if version not in READABLE_CHECKPOINT_VERSIONS:
            raise ValueError(
                f"{path} has checkpoint version {version}, this "
                f"podd reads versions {', '.join(map(str, READABLE_CHECKPOINT_VERSIONS))}"
            )
        if version >= 3 and not digested:
            raise ChecksumMismatchError(f"{path} is damaged: the checksum stored in it is missing; {advice}")
        verify_checksum(checkpoint, path, advice)  # version 2: the contents' checksum
        poster = checkpoint.get("distiller", {}).get("poster")
        if isinstance(poster, torch.Tensor) and not bool(torch.isfinite(poster).all()):
            raise ValueError(
                f"{path}: the poster in this checkpoint holds NaN/inf values; restore "
                f"the checkpoint from a copy, or delete it to restart the run"
            )
        self._check_config_file(checkpoint)
        self._checkpoint_step = int(checkpoint["distiller"]["step"])
        self._begun_with = checkpoint.get("begun_with")
        return checkpoint

    def _check_config_file(self, checkpoint: dict) -> None:
        """Refuse a config.json that differs from what podd wrote into it when the run began (the
        checkpoint keeps a copy): podd never reads it back, so a hand edit would be ignored and
        contradict final.json. Checkpoints older than that copy are compared on the settings a
        resume cannot change. A missing or unreadable config.json is written again by
        :meth:`restore_config_file`."""
        began = checkpoint.get("begun_with")
        reference = _as_json(began if began is not None else checkpoint.get("config") or {})
        try:
            on_disk = json.loads(self.file(CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(on_disk, dict):
            return
        missing = object()
        differ = [
            k
            for k in sorted(set(reference) | set(on_disk))
            if reference.get(k, missing) != on_disk.get(k, missing)
            and (began is not None or k not in RESUMABLE_CHANGES)
        ]
        if not differ:
            return

        def shown(d: dict, key: str) -> str:
            return json.dumps(d[key]) if key in d else "absent"

        pairs = ", ".join(
            f"{k}: config.json {shown(on_disk, k)}, the run "
            f"{'began with' if began is not None else 'has'} {shown(reference, k)}"
            for k in differ
        )
        resumable = [k for k in differ if k in RESUMABLE_CHANGES and k in on_disk]
        fixed = [k for k in differ if k not in RESUMABLE_CHANGES]
        ways = []
        if resumable:
            sets = " ".join(f"--set {k}={json.dumps(on_disk[k], separators=(',', ':'))}" for k in resumable)
            ways.append(f"{', '.join(resumable)} may change on resume only through options (e.g. {sets})")
        if fixed:
            ways.append(
                f"{', '.join(fixed)} cannot change on resume (start a new run with "
                f"{'it' if len(fixed) == 1 else 'them'} in another --out)"
            )
        raise ValueError(
            f"{self.file(CONFIG)} was edited after the run began ({pairs}); podd does not read "
            f"config.json back, so the edit would be ignored. Undo it (or delete config.json, "
            f"and the resume writes it again); {'; '.join(ways)}"
        )

    def restore_config_file(self, checkpoint: dict) -> None:
        """On resume (holding the lock): write config.json again when it is missing or not
        readable JSON, from the checkpoint's copy (or, for older checkpoints, its config)."""
        path = self.file(CONFIG)
        try:
            if isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                return
        except (OSError, ValueError):
            pass
        began = checkpoint.get("begun_with")
        write_json(path, began if began is not None else checkpoint["config"])
        note_once(f"{path} was missing or not readable; written again from {CHECKPOINT}")

    def checkpoint_step(self) -> int | None:
        return self._checkpoint_step

    def save_checkpoint(self, state: dict, config, history: list[dict], wall_time_s: float) -> None:
        """Plain tensors, numbers, strings, lists and dicts only, so that it loads with
        ``torch.load(weights_only=True)``; its digest goes into the file (podd.io)."""
        torch_save(
            self.file(CHECKPOINT),
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "config": config.to_dict(),
                "distiller": state,
                "history": list(history),
                "wall_time_s": wall_time_s,
                "begun_with": self._begun_with,
            },
            digest=True,
        )
        self._checkpoint_step = int(state["step"])

    # -- metrics -------------------------------------------------------------------------------
    def append_metrics(self, record: dict) -> None:
        try:
            with open(self.file(METRICS), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as error:
            raise write_error(self.file(METRICS), error) from error

    def rewrite_metrics(self, history: list[dict]) -> None:
        """On resume: the metrics up to the checkpoint (later lines belonged to the lost part)."""
        write_text(self.file(METRICS), "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))

    def read_metrics(self) -> list[dict]:
        path = self.file(METRICS)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    # -- the end of a run ------------------------------------------------------------------------
    def finish(self, artifact, distiller, history: list[dict], evaluation, wall_time_s: float) -> None:
        save_artifact(self.file(ARTIFACT), artifact)
        save_poster_png(self.file(PNG), artifact.poster, distiller.preprocessor)
        write_json(
            self.file(FINAL),
            final_record(
                artifact,
                distiller.config,
                history,
                evaluation,
                wall_time_s,
                data_source=getattr(distiller.dataset, "source", "full"),
                device=distiller.device,
                engine=distiller.engine.name,
            ),
        )


def dangling_link(path: str | Path) -> Path | None:
    """The part of ``path`` that is a symbolic link to nowhere (``ln -s`` to a path that does not
    exist, or no longer does), if any: the first part of it that does not exist, when that part
    is a link."""
    path = Path(path).absolute()
    for part in [*reversed(path.parents), path]:
        if not part.exists():
            return part if part.is_symlink() else None
    return None


def _dangling(link: Path) -> str:
    import os

    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    return f"{link} is a dangling symbolic link (it points to {target}, which does not exist)"


def _load_failure(error: BaseException) -> str:
    """The line of a ``torch.load`` error that says what went wrong (torch's weights-only refusal
    is a page of advice around one line naming the refused object)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _as_json(obj: Any) -> Any:
    """``obj`` as config.json holds it (tuples as lists, other objects as strings)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def check_resume_steps(config, step: int, path: Path) -> None:
    """Refuse to resume a run that is already past ``config.steps`` (it would end with the
    checkpoint's later poster recorded as ``steps`` = the smaller number)."""
    if config.steps < step:
        raise ValueError(
            f"--steps {config.steps}: the run in {path} is already at step {step}; "
            f"give --steps {step} or more to continue it (or leave --steps out), or "
            f"start a new run in another --out for fewer steps"
        )


def _run_dir_error(path: Path, error: OSError) -> Exception:
    """An OSError met while creating or locking the run directory, as a message about --out."""
    import errno

    if error.errno in (errno.EACCES, errno.EPERM):
        return WriteError(
            f"--out {path}: permission denied (the run directory cannot be created "
            f"or written there); choose a directory you can write to"
        )
    if error.errno == errno.EROFS:
        return WriteError(f"--out {path} is on a read-only file system; choose a writable --out")
    translated = write_error(path / LOCK, error)
    if isinstance(translated, WriteError):
        return WriteError(f"--out {path}: {translated}")
    return translated


def final_record(
    artifact, config, history, evaluation, wall_time_s, data_source="full", device=None, engine=None
) -> dict:
    geometry = artifact.geometry
    num_classes = len(artifact.class_names)
    _, h, w = geometry.image_shape
    copies = poster_mode(artifact.mode).posters(num_classes)  # per-class: K posters
    pixels = int(artifact.poster.shape[-2] * artifact.poster.shape[-1]) * copies
    result: dict[str, Any] = {
        "mode": artifact.mode,
        "label_mode": artifact.label_mode,
        "ipc": pixels / (num_classes * h * w),
        "pixels": pixels,
        "num_patches": int(geometry.num_patches) * copies,
        "geometry": geometry.to_dict(),
        "final_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
        "evaluation": None if evaluation is None else evaluation.to_dict(),
        # best_every: which step's poster this is, and its training-set score (a run resumed
        # with best_every=0 ends with its last poster, whatever an earlier part chose)
        "best": next(
            (
                {"step": h["best_step"], "train_accuracy": h["best_train_accuracy"]}
                for h in reversed(history)
                if "best_step" in h and config.best_every
            ),
            None,
        ),
        # the engine that ran the last steps (config's ``engine`` is what was asked for)
        "engine": engine,
        "files": {"artifact": ARTIFACT, "png": PNG, "metrics": METRICS, "checkpoint": CHECKPOINT},
    }
    return {
        "result": result,
        "provenance": provenance(
            device=device,
            dataset=config.dataset,
            data_source=data_source,
            profile=config.profile,
            hyperparameters=config.to_dict(),
            seeds={"distill": config.seed, "eval": config.seed},
            wall_time_s=round(wall_time_s, 3),
        ),
    }


def resume_config(saved: dict, requested=None):
    """The configuration of a resumed run: the saved one, with only harmless changes allowed."""
    config = DistillConfig.from_dict(saved)
    if requested is None:
        return config
    changes = {name: getattr(requested, name) for name in RESUMABLE_CHANGES}
    different = [
        name
        for name in saved
        if name not in RESUMABLE_CHANGES
        and hasattr(requested, name)
        and getattr(requested, name) != getattr(config, name)
    ]
    if different:
        pairs = ", ".join(f"{n}: run has {getattr(config, n)!r}, asked {getattr(requested, n)!r}" for n in different)
        raise ValueError(
            f"cannot resume with different settings ({pairs}); resume with the "
            f"run's own settings or start a new run in another directory"
        )
    return config.replace(**changes)


def load_run(path: str | Path, allow_file: bool = False):
    """(artifact, final record or None) of a finished run, with clear errors otherwise.

    A damaged final.json is not fatal: the poster and its configuration are in poster.pt, so the
    record is None and a note says what is missing. ``allow_file``: ``path`` may also be a
    poster file itself (``podd show RUN/poster.pt``); any other file is refused with the name of
    the run directory that holds it."""
    run = RunDir(path)
    if run.path.is_file():
        return _load_poster_file(run.path, allow_file)
    if not run.path.is_dir():
        link = dangling_link(run.path)
        if link is not None:
            raise FileNotFoundError(
                f"run directory {run.path}: {_dangling(link)}; point the link "
                f"at the run directory, or pass the run directory itself"
            )
        raise FileNotFoundError(
            f"run directory {run.path} does not exist; pass the --out directory of a `podd distill` run"
        )
    if not run.file(ARTIFACT).exists():
        hint = (
            f"; it has a checkpoint, so finish it with `podd distill --resume --out {run.path}`"
            if run.file(CHECKPOINT).exists()
            else "; it is not a podd run directory (made by `podd distill --out DIR`)"
        )
        raise FileNotFoundError(f"{run.path} has no {ARTIFACT}{hint}")
    try:
        artifact = load_artifact(run.file(ARTIFACT))
    except (ValueError, FileNotFoundError):
        raise
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{run.file(ARTIFACT)} could not be read as a podd poster ({error})") from error
    return artifact, _read_final(run)


def finished_run(path: str | Path, config) -> dict | None:
    """The final record (final.json) of the run that finished in ``path``, or None where none
    finished there (no final.json and poster.pt: not begun, or stopped after a checkpoint). A
    run made with other settings than ``config`` (any of them, its steps included) is refused:
    taking it would give another experiment's numbers."""
    run = RunDir(path)
    if not (run.file(FINAL).exists() and run.file(ARTIFACT).exists()):
        return None
    final = json.loads(run.file(FINAL).read_text(encoding="utf-8"))
    # Through DistillConfig, so that a setting added since counts as its default.
    then = _as_json(type(config).from_dict(final["provenance"]["hyperparameters"]).to_dict())
    now = _as_json(config.to_dict())
    if then != now:
        changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
        raise ValueError(
            f"{run.path} holds a finished run made with other settings ({changed}); "
            f"move it away or write the runs elsewhere"
        )
    return final


def _read_final(run: RunDir) -> dict | None:
    """final.json, or None (with a note) when it is damaged; None when there is none."""
    path = run.file(FINAL)
    if not path.exists():
        return None
    try:
        final = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(final, dict):
            raise ValueError(f"it holds a JSON {type(final).__name__}, not an object")
        return final
    except (OSError, ValueError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        note_once(
            f"{path} is damaged ({detail}); going on from {ARTIFACT}, which holds the "
            f"poster and its settings. Missing with final.json: the run's recorded result "
            f"(its final test accuracy, best step, engine) and provenance (commit, device, "
            f"wall time); `podd evaluate {run.path}` measures the accuracy again"
        )
        return None


def _load_poster_file(path: Path, allow_file: bool):
    """``podd show FILE``: a poster file is shown; any other file is refused, naming the run
    directory that holds it."""
    folder = path.parent
    is_run = any((folder / name).exists() for name in (ARTIFACT, FINAL, CHECKPOINT))
    if allow_file and path.suffix == ".pt" and path.name != CHECKPOINT:
        artifact = load_artifact(path)
        return artifact, (_read_final(RunDir(folder)) if path.name == ARTIFACT else None)
    takes = "a run directory or a poster file (poster.pt)" if allow_file else "a run directory"
    where = (
        f"; it belongs to the run directory {folder}: pass that directory"
        if is_run
        else "; pass the --out directory of a `podd distill` run"
    )
    raise ValueError(f"{path} is a file, not {takes}{where}")

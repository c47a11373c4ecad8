"""A distilled poster on disk: everything needed to reuse it, in one loadable file.

:func:`save_artifact` writes a :class:`PosterArtifact` (the poster, its geometry, class order,
labels and the run's configuration) as plain tensors and dicts with a format marker, a version,
a SHA-256 of its contents and a SHA-256 of the file's records (:func:`podd.io.add_file_digest`);
:func:`load_artifact` checks the latter before it unpickles anything, reads the file with
``torch.load(weights_only=True)``, which never runs code, and refuses foreign, newer or damaged
files with a message that says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from podd.io import UnreadableFileError, torch_load_checked, torch_save, verify_checksum, with_checksum
from podd.poster import PosterGeometry

__all__ = ["PosterArtifact", "save_artifact", "load_artifact"]

# The marker names the module that first wrote these files; it stays so old files still load.
_ARTIFACT_FORMAT = "podd.poster"
_ARTIFACT_VERSION = 2  # 2: a SHA-256 of the contents is stored in the file


@dataclass
class PosterArtifact:
    """Everything needed to reuse a distilled poster, saved as one loadable file.

    Attributes:
        poster: ``(c, H, W)``, or ``(K, c, H, W)`` in per-class mode.
        geometry: the :class:`PosterGeometry` (per-class mode: that of one class poster).
        class_order: ``(rows, cols)`` long class indices, ``-1`` in empty cells.
        labels: learned label parameters ``(K, rows, cols)``, or ``None`` for fixed labels.
        label_mode: ``"fixed"`` | ``"learned"`` | ``"per-class"``.
        mode: ``"podd"`` | ``"baseline"`` | ``"per-class"``.
        class_names: one name per class.
        preprocessing: how to undo the normalisation for display (the preprocessor's state).
        config: the full run configuration.
    """

    poster: torch.Tensor
    geometry: PosterGeometry
    class_order: torch.Tensor
    labels: torch.Tensor | None
    label_mode: str
    mode: str
    class_names: list[str]
    preprocessing: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def _plain(obj: Any) -> Any:
    """Reduce ``obj`` to what ``torch.load(weights_only=True)`` reads back: CPU tensors, numbers,
    strings, None and lists/tuples/dicts of them (numpy arrays become tensors, paths and any
    other object their ``str``)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj)).clone()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {(k if isinstance(k, (str, int)) else str(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, torch.dtype):
        return str(obj)
    return str(obj)


def save_artifact(path: str | os.PathLike, artifact: PosterArtifact) -> Path:
    """Write ``artifact`` to ``path`` atomically (``torch.save`` of plain tensors and dicts).

    The file carries a format marker and version so :func:`load_artifact` can refuse foreign
    files with a clear message, and a SHA-256 of its contents so that it can refuse a damaged
    copy (a flipped byte inside a tensor still unpickles). Tensors are detached and moved to the
    CPU; ``preprocessing`` and ``config`` are reduced to plain data (numpy arrays → tensors, paths and other objects →
    strings) so the file loads with ``torch.load(..., weights_only=True)``, which never runs code.
    """

    def cpu(t):
        return None if t is None else torch.as_tensor(t).detach().cpu().clone()

    payload = {
        "format": _ARTIFACT_FORMAT,
        "version": _ARTIFACT_VERSION,
        "poster": cpu(artifact.poster),
        "geometry": artifact.geometry.to_dict(),
        "class_order": cpu(artifact.class_order).long(),
        "labels": cpu(artifact.labels),
        "label_mode": str(artifact.label_mode),
        "mode": str(artifact.mode),
        "class_names": [str(n) for n in artifact.class_names],
        "preprocessing": _plain(dict(artifact.preprocessing or {})),
        "config": _plain(dict(artifact.config or {})),
    }
    return torch_save(path, with_checksum(payload), digest=True)


def load_artifact(path: str | os.PathLike) -> PosterArtifact:
    """Read a file written by :func:`save_artifact`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a podd poster artifact, was written by a newer version, is
            damaged (its contents differ from the checksum stored in it) or holds NaN/inf pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no poster artifact at {path}; pass the file written by `podd distill` (poster.pt in its run folder)"
        )
    advice = "copy it again from where it came from, or distil it again"
    try:  # the file's digest (when it has one) is checked before anything is unpickled
        payload, _ = torch_load_checked(path, advice)
    except UnreadableFileError as e:
        raise ValueError(f"{path} is not a podd poster artifact (could not be read as one: {e})") from None
    except ValueError:  # ChecksumMismatchError: damaged, says so
        raise
    except Exception as e:  # pickle errors, zip errors, disallowed globals: all mean "not ours"
        raise ValueError(
            f"{path} is not a podd poster artifact (could not be read as one: {type(e).__name__}: {e})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _ARTIFACT_FORMAT:
        raise ValueError(
            f"{path} is not a podd poster artifact (no '{_ARTIFACT_FORMAT}' format "
            f"marker); save posters with podd.artifacts.save_artifact"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > _ARTIFACT_VERSION:
        raise ValueError(
            f"{path} has poster artifact version {version!r}; this podd reads up to "
            f"version {_ARTIFACT_VERSION}: upgrade podd"
        )
    verify_checksum(payload, path, advice)
    for key in ("poster", "labels"):
        value = payload.get(key)
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"{path}: the {key} holds {bad} NaN/inf values of {value.numel()}; "
                f"it cannot be shown or evaluated. Use an earlier copy, or distil it "
                f"again (a NaN loss would have stopped the run, so the file was damaged "
                f"after it was written)"
            )
    return PosterArtifact(
        poster=payload["poster"],
        geometry=PosterGeometry.from_dict(payload["geometry"]),
        class_order=payload["class_order"],
        labels=payload["labels"],
        label_mode=payload["label_mode"],
        mode=payload["mode"],
        class_names=list(payload["class_names"]),
        preprocessing=payload.get("preprocessing") or {},
        config=payload.get("config") or {},
    )

"""Provenance: the facts that turn a number into a result.

Every result file podd writes carries a record of how it was made: git commit, library
versions, device, seeds, hyper-parameters, wall time and whether the data was the full
dataset, a subset or a stand-in (a number without provenance is not a result).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

_LIBRARIES = ("podd", "torch", "torchvision", "numpy", "open_clip_torch", "scikit-learn")


def git_commit(cwd: str | Path | None = None) -> str:
    """The current commit (with ``-dirty`` when the tree has changes), or ``"unknown"``.

    ``$PODD_GIT_COMMIT``, when set, is taken instead of asking git: a copy of the tree sent to
    another machine (a lent GPU) may come without its ``.git``, or with an older one, so git
    there names the wrong commit or none; the sender names the commit it sent."""
    if os.environ.get("PODD_GIT_COMMIT"):
        return os.environ["PODD_GIT_COMMIT"]
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_description(device: str | torch.device | None = None) -> str:
    device = torch.device(device or "cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"


def cpu_model() -> str:
    """The CPU's name and the vector instructions torch uses on it: results trained on two
    CPUs differ in float rounding (a tenth of a point per model), so a result file says which."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def provenance(*, device: str | torch.device | None = None, **facts: Any) -> dict[str, Any]:
    """A provenance record: environment facts plus whatever the caller adds.

    Callers pass at least ``dataset``, ``data_source`` ('full' | 'subset' | 'stand-in'),
    ``profile``, ``seeds``, ``hyperparameters`` and ``wall_time_s`` when they have them.
    """
    return {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "device": device_description(device),
        "versions": library_versions(),
        **facts,
    }

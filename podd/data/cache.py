"""The decoded-dataset cache: ``data_root()/cache/<name>.pt`` holds a dataset's uint8 tensors, so
the second load does not download, extract or decode anything again.

A cache file carries its format, the key of what it was built from and a checksum; one that does
not match is rebuilt, never trusted. The build (download, extraction, decoding) holds a lock file
in the data folder, so that the ranks or jobs sharing a fresh data folder build it once. The cache
is written atomically: nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from podd.data.dataset import Dataset
from podd.io import remove_orphan_tmp, torch_save, verify_checksum, with_checksum
from podd.notes import note_once

ORPHAN_TMP_AGE_S = 3600  # see _build_and_cache
CACHE_FORMAT = 1  # bump when the cache layout changes: old files are rebuilt


def cached(path: Path, key: str, build: Callable[[], Dataset], name: str | None = None) -> Dataset:
    """Return the dataset cached at ``path`` if it is valid for ``key``, else build and cache it.

    ``name`` overrides the cached name (the same file may be spelt differently on each load).
    The build (download, extraction, decoding) holds a lock file in the data folder, so that the
    ranks or jobs sharing a fresh data folder build it once: the others wait, then read the cache.
    """
    ds = _read_cache(path, key, name)
    if ds is not None:
        return ds
    with _build_lock(path, name or key):
        ds = _read_cache(path, key, name)  # built by the process this one waited for
        if ds is None:
            ds = _build_and_cache(path, key, build)
    return ds


def _read_cache(path: Path, key: str, name: str | None) -> Dataset | None:
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if (
                blob.get("format") == CACHE_FORMAT and blob.get("key") == key and verify_checksum(blob, path, "")
            ):  # a damaged cache is rebuilt
                return Dataset(
                    name or blob["name"],
                    blob["x_train"],
                    blob["y_train"],
                    blob["x_test"],
                    blob["y_test"],
                    list(blob["class_names"]),
                    blob["source"],
                    notes=list(blob.get("notes") or []),
                )
        except Exception:  # unreadable, damaged or foreign file: rebuild it rather than fail
            pass
    return None


@contextlib.contextmanager
def _build_lock(path: Path, what: str):
    """Hold ``ROOT/.NAME.lock`` for the cache file ``ROOT/cache/NAME.pt`` (waiting, with a note,
    while another process holds it). A data folder this user cannot write to is read unlocked."""
    from filelock import FileLock, Timeout

    root = path.parent.parent
    lock_path = root / f".{path.stem}.lock"
    lock: FileLock | None = FileLock(str(lock_path))
    try:
        root.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            note_once(f"waiting for another process that is preparing {what} in {root} (it holds {lock_path})")
            lock.acquire()
    except OSError:
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
            # nothing left behind (as RunDir.locked). A process still waiting holds the old
            # file and finds the cache when it gets it; only after a failed build could it
            # and a newcomer build at the same time, as every process did before this lock.
            with contextlib.suppress(OSError):
                lock_path.unlink()


def _build_and_cache(path: Path, key: str, build: Callable[[], Dataset]) -> Dataset:
    ds = build()
    # Temporary files of a process killed while writing a cache (an hour old: another process
    # may be writing its own right now).
    remove_orphan_tmp(path.parent, older_than_s=ORPHAN_TMP_AGE_S)
    try:
        torch_save(
            path,
            with_checksum(
                {
                    "format": CACHE_FORMAT,
                    "key": key,
                    "name": ds.name,
                    "x_train": ds.x_train,
                    "y_train": ds.y_train,
                    "x_test": ds.x_test,
                    "y_test": ds.y_test,
                    "class_names": list(ds.class_names),
                    "source": ds.source,
                    "notes": list(ds.notes),
                }
            ),
        )
    except OSError as error:  # a read-only data folder still lets the user load the data
        import warnings

        warnings.warn(f"could not write the dataset cache {path}: {error}", stacklevel=4)
    return ds


def file_signature(paths: Sequence[Path], base: Path) -> str:
    """A key that changes when any file is added, removed, resized or modified."""
    h = hashlib.sha256(str(base.resolve()).encode())
    for p in paths:
        st = p.stat()
        h.update(f"\0{p.relative_to(base)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]

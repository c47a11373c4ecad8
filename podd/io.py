"""Small file helpers: every file podd writes is written atomically.

A crash or Ctrl-C while writing must never leave a half-written cache, checkpoint or
figure behind, so everything goes to a temporary file in the same folder and is then
renamed over the target (rename is atomic on POSIX file systems). A process killed mid-write
(SIGKILL) leaves its temporary ``.NAME.*.tmp`` file; :func:`remove_orphan_tmp` clears them on
the next start. A write that fails for lack of space or permission is reported as a
:class:`WriteError` that says so (torch's own message is "enforce fail at inline_container.cc").
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# mkstemp creates 0600 files (private by design); a finished file should get the mode a plain
# open() would give it, so a shared results or cache folder stays readable by the group. The
# process umask can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise write_error(target, error) from error
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, target)
    except BaseException as error:
        free = free_bytes(target.parent)  # before the temporary file gives its space back
        tmp_path.unlink(missing_ok=True)
        if isinstance(error, (OSError, RuntimeError)) and not isinstance(error, WriteError):
            translated = write_error(target, error, free)
            if translated is not error:
                raise translated from error
        raise


class WriteError(OSError):
    """A file could not be written: no space left, a read-only disk, no permission."""


def check_writable(target: str | os.PathLike) -> None:
    """Raise the :class:`WriteError` that writing ``target`` later would meet (read-only disk,
    no permission, a file in the way), before the work that produces it: a temporary file is
    made where ``target`` would go (its nearest existing folder) and removed again."""
    target = Path(target)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise write_error(target, error) from error
    os.close(fd)
    os.unlink(tmp)


#: Below this many free bytes, a failed write is put down to a full disk.
LOW_SPACE_BYTES = 64 * 2**20
# What torch.save says when the disk fills up under it (no errno reaches Python).
_TORCH_WRITE_FAILURES = ("inline_container", "file write failed", "unexpected pos")


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes free to this user on the disk holding ``folder`` (None when unknown)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def write_error(target: str | os.PathLike, error: BaseException, free: int | None = None):
    """``error`` (raised while writing ``target``) as a :class:`WriteError` that says what is
    wrong and what to do, or ``error`` itself when it is none of the known causes."""
    target = Path(target)
    folder = target.parent
    code = getattr(error, "errno", None)
    torch_failure = isinstance(error, RuntimeError) and any(marker in str(error) for marker in _TORCH_WRITE_FAILURES)
    if free is None and (torch_failure or code in (errno.ENOSPC, errno.EDQUOT)):
        free = free_bytes(folder)
    if code in (errno.ENOSPC, errno.EDQUOT) or (torch_failure and free is not None and free < LOW_SPACE_BYTES):
        return WriteError(
            f"no space left on {folder} ({_size(free)} free) while writing "
            f"{target.name}; free some space there or use another directory (the "
            f"previous {target.name}, if any, is unchanged)"
        )
    if code == errno.EROFS:
        return WriteError(f"cannot write {target}: {folder} is on a read-only file system; use a writable directory")
    if code in (errno.EACCES, errno.EPERM):
        return WriteError(f"cannot write {target}: permission denied in {folder}; use a directory you can write to")
    if code in (errno.ENOTDIR, errno.EEXIST) and isinstance(error, OSError):
        return WriteError(f"cannot write {target}: a part of the path {folder} is a file, not a directory")
    if torch_failure:
        return WriteError(f"could not write {target} ({error}); check the disk holding {folder}")
    return error


def remove_orphan_tmp(folder: str | os.PathLike, older_than_s: float | None = None) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that a killed process left in ``folder`` (not
    recursive). ``older_than_s``: only those not modified for that long — for folders that
    another live process may be writing into (the data cache); ``None`` when the caller holds
    the folder's lock. Returns the removed paths."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.glob(".*.tmp"):
        try:
            if not path.is_file() or (older_than_s is not None and now - path.stat().st_mtime < older_than_s):
                continue
            path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def safe_filename(text: str, max_len: int | None = None) -> str:
    """``text`` as a file-name part: letters, digits, ``-``, ``_`` and ``.`` kept, any other
    character (``/``, ``:``, spaces…) one ``_``; cut to ``max_len`` characters when given.

    One rule for every cache file name podd derives from a user's names (datasets, files, CLIP
    weights), so the same name always maps to the same file.
    """
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))
    return safe if max_len is None else safe[:max_len]


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def torch_save(target: str | os.PathLike, obj: Any, digest: bool = False) -> Path:
    """``torch.save`` atomically; ``digest``: also store a SHA-256 of the file's records in it
    (:func:`add_file_digest`), so that :func:`torch_load_checked` can refuse a damaged copy
    before unpickling anything."""
    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
        if digest:
            add_file_digest(tmp)
    return Path(target)


# --------------------------------------------------------------------------------------------
# checksums: a flipped byte in a saved tensor must not load as a different poster
# --------------------------------------------------------------------------------------------
CHECKSUM_KEY = "sha256"


class ChecksumMismatchError(ValueError):
    """A file's contents differ from the checksum stored in it (a damaged copy)."""


def content_digest(obj: Any) -> str:
    """SHA-256 of a nested structure of tensors, numbers, strings, None, lists and dicts (the
    contents, not the pickle bytes: it is the same before saving and after loading)."""
    h = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            h.update(f"D{len(value)}".encode())
            for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
                feed(key)
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            h.update(f"L{len(value)}".encode())
            for item in value:
                feed(item)
        else:
            h.update(f"V{type(value).__name__}:{value!r};".encode())

    feed(obj)
    return h.hexdigest()


def with_checksum(payload: dict) -> dict:
    """``payload`` plus its :func:`content_digest` under :data:`CHECKSUM_KEY`."""
    body = {k: v for k, v in payload.items() if k != CHECKSUM_KEY}
    return {**body, CHECKSUM_KEY: content_digest(body)}


def verify_checksum(payload: dict, path: str | os.PathLike, advice: str) -> bool:
    """Raise ChecksumMismatchError when ``payload`` carries a checksum that its contents do not
    match; return whether it carried one (files written before checksums have none)."""
    stored = payload.get(CHECKSUM_KEY)
    if stored is None:
        return False
    actual = content_digest({k: v for k, v in payload.items() if k != CHECKSUM_KEY})
    if actual != stored:
        raise ChecksumMismatchError(
            f"{path} is damaged: its contents do not match the checksum stored in it (sha256 "
            f"{actual[:12]}…, stored {str(stored)[:12]}…), e.g. flipped or cut-off bytes from a "
            f"bad copy or disk; {advice}"
        )
    return True


# --------------------------------------------------------------------------------------------
# the file digest: checked before anything is unpickled
# --------------------------------------------------------------------------------------------
# torch.save writes a zip archive (data.pkl, the tensors' bytes, a few small records). The
# digest is one more record in that archive: the SHA-256 of every other record's name and bytes.
# It is read with zipfile, which unpickles nothing, so a flipped byte in data.pkl is refused
# before torch.load runs (zipfile also checks each record's CRC-32 while reading it). torch.load
# ignores records it does not know, so the files load as before.
DIGEST_RECORD = "podd.sha256"


def _record_name(info: zipfile.ZipInfo) -> str:
    """A record's name without the archive's folder (torch names that folder after the
    temporary file it wrote, so it differs from file to file)."""
    return info.filename.split("/", 1)[-1]


def _archive_digest(archive: zipfile.ZipFile) -> str:
    h = hashlib.sha256()
    for info in sorted(archive.infolist(), key=_record_name):
        if _record_name(info) == DIGEST_RECORD:
            continue
        h.update(f"{_record_name(info)}\0{info.file_size}\0".encode())
        with archive.open(info) as record:
            while chunk := record.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def add_file_digest(path: str | os.PathLike) -> None:
    """Append the :data:`DIGEST_RECORD` to the zip archive ``torch.save`` wrote at ``path``."""
    with zipfile.ZipFile(path, "a") as archive:
        folder = archive.infolist()[0].filename.split("/", 1)[0]
        archive.writestr(f"{folder}/{DIGEST_RECORD}", _archive_digest(archive))


class UnreadableFileError(ValueError):
    """A file is not a zip archive written by ``torch.save`` at all (a foreign or cut-off file);
    the message says so without naming the file (the caller does)."""


def check_file_digest(path: str | os.PathLike, advice: str) -> bool:
    """Check the digest that :func:`add_file_digest` stored in ``path``, unpickling nothing.

    Returns whether the file carries one (files written before digests do not). Raises
    :class:`ChecksumMismatchError` when its records differ from the digest or from their CRC-32,
    :class:`UnreadableFileError` when it is no zip archive (e.g. cut off before its end)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError) as error:
        raise UnreadableFileError(f"not a file written by torch.save, or cut off before its end ({error})") from None
    with archive:
        stored_info = next((i for i in archive.infolist() if _record_name(i) == DIGEST_RECORD), None)
        try:
            actual = _archive_digest(archive)
            stored = None if stored_info is None else archive.read(stored_info).decode("ascii", "replace")
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
            # a record whose bytes do not match its CRC-32 or header: damaged in the same way
            raise ChecksumMismatchError(
                f"{path} is damaged: its contents do not match the checksum stored in it "
                f"({error}), e.g. flipped or cut-off bytes from a bad copy or disk; "
                f"{advice}"
            ) from None
    if stored is None:
        return False
    if actual != stored.strip():
        raise ChecksumMismatchError(
            f"{path} is damaged: its contents do not match the checksum stored in it (sha256 "
            f"{actual[:12]}…, stored {stored.strip()[:12]}…), e.g. flipped or cut-off bytes from "
            f"a bad copy or disk; {advice}"
        )
    return True


def torch_load_checked(path: str | os.PathLike, advice: str) -> tuple[Any, bool]:
    """``(object, whether it carried a file digest)`` of a file written by :func:`torch_save`:
    the digest is checked first (:func:`check_file_digest`), then the file is loaded with
    ``torch.load(weights_only=True)``, which never imports or runs code."""
    digested = check_file_digest(path, advice)
    return torch.load(path, map_location="cpu", weights_only=True), digested

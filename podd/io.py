"""Small file helpers: every file podd writes is written atomically.

A crash or Ctrl-C while writing must never leave a half-written cache, checkpoint or
figure behind, so everything goes to a temporary file in the same folder and is then
renamed over the target (rename is atomic on POSIX file systems).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def torch_save(target: str | os.PathLike, obj: Any) -> Path:
    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
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
            f"bad copy or disk; {advice}")
    return True

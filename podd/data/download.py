"""Downloading and extracting the official archives, each checked by md5 before it is used.

The md5 is torchvision's ``calculate_md5`` and the extraction its ``extract_archive`` (tar, tgz,
zip, …). The download itself stays podd's own: torchvision's ``download_url`` writes straight to
the final name (a killed download leaves a partial file there), waits without a timeout and retries
a failed https URL over plain http; podd's goes through a temporary file with a timeout, over the
URL as given, and names the dataset in its error.

Downloads and extractions go to temporary names first and are renamed into place only once
complete and verified, so an interrupted or corrupted download never leaves something that a later
run would mistake for good data. torchvision is imported when a file is checked, not with podd.data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from podd.io import atomic_path


class ChecksumError(ValueError):
    """A file's checksum differs from the published one (corrupted or incomplete download)."""


def ensure_extracted(
    root: Path,
    folder: str,
    required: Sequence[str],
    archive: str,
    url: str,
    md5: str,
    download: bool,
    title: str,
    layout: str,
) -> Path:
    """Make sure ``root/folder`` holds ``required`` files: extract a local archive or download it.

    The archive is checked by md5 before it is extracted; extraction goes to a temporary folder
    that is renamed into place only when complete.
    """
    target = root / folder
    missing = [r for r in required if not (target / r).exists()]
    if not missing:
        return target
    from torchvision.datasets.utils import calculate_md5

    archive_path = root / archive
    if not archive_path.is_file():
        if not download:
            raise FileNotFoundError(
                f"{title} not found: looked in {target} (missing: {', '.join(missing)}). Expected layout:\n"
                f"{layout}\nEither allow downloading (drop --no-download / use download=True), or download "
                f"{url} yourself and put it at {archive_path} (or extract it into {root})."
            )
        download_file(url, archive_path, md5, title)
    actual = calculate_md5(archive_path)
    if actual != md5:
        raise ChecksumError(
            f"{title}: checksum mismatch for {archive_path}: md5 {actual}, expected {md5}. The file is "
            f"corrupted or incomplete; delete it and load again to download it from {url}."
        )
    _extract(archive_path, root, folder, required, title)
    return target


def _extract(archive_path: Path, root: Path, folder: str, required: Sequence[str], title: str) -> None:
    """Extract ``archive_path`` into a temporary folder under ``root``; check that it holds
    ``folder/required``, then rename ``folder`` into place (replacing an incomplete earlier one)."""
    from torchvision.datasets.utils import extract_archive

    target = root / folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{folder}-", dir=root))
    try:
        extract_archive(str(archive_path), str(tmp))
        if not (tmp / folder).is_dir():
            raise FileNotFoundError(f"{title}: archive {archive_path} does not contain the folder {folder}/")
        still_missing = [r for r in required if not (tmp / folder / r).exists()]
        if still_missing:
            raise FileNotFoundError(
                f"{title}: archive {archive_path} lacks {', '.join(still_missing)} inside {folder}/"
            )
        if target.exists():  # an incomplete earlier folder: replace it
            shutil.rmtree(target)
        os.replace(tmp / folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_file(url: str, dest: Path, md5: str, title: str) -> None:
    """Download ``url`` to ``dest`` through a temporary file; verify the md5 before renaming.

    Plain urllib (http, https and file URLs), streamed in blocks with a progress bar.
    """
    from torchvision.datasets.utils import calculate_md5

    with atomic_path(dest) as tmp:
        try:
            _stream(url, tmp, dest.name)
        except OSError as error:  # URLError, HTTPError, timeouts, disk full
            raise FileNotFoundError(
                f"{title}: downloading {url} failed ({type(error).__name__}: {error}). Download it "
                f"yourself and put it at {dest}, or check the network."
            ) from error
        actual = calculate_md5(tmp)
        if actual != md5:
            raise ChecksumError(
                f"{title}: checksum mismatch for the download from {url}: md5 {actual}, "
                f"expected {md5} (corrupted or incomplete); nothing was kept, try again."
            )


def _stream(url: str, path: Path, name: str) -> None:
    """Write the body of ``url`` to ``path`` in 1 MiB blocks, with a progress bar named ``name``."""
    import urllib.request

    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "podd"})
    with urllib.request.urlopen(request, timeout=60) as response, open(path, "wb") as out:
        total = response.headers.get("Content-Length")
        with tqdm(
            total=int(total) if total else None,
            unit="B",
            unit_scale=True,
            desc=f"downloading {name}",
            disable=None,
            leave=False,
        ) as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))

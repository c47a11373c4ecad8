"""PoCO: Poster Class Ordering (paper §4.2).

On a poster neighbouring classes share pixels, so *which* classes are neighbours matters.
PoCO places semantically related classes next to each other:

1. embed every class name with the CLIP text encoder (:func:`text_embeddings`);
2. turn the embeddings into pairwise distances, 1 − cosine similarity (:func:`distance_matrix`);
3. walk the class grid in zigzag order (:func:`zigzag`) and greedily give each cell the
   unplaced class closest (summed distance) to its already-placed 4-neighbours (:func:`poco`).

The result is a ``(rows, cols)`` LongTensor of class indices, ``-1`` in empty cells, which
the poster initialisation and the labels (PoDDL, §4.3) read.

Also here: the class-order ablation helpers (:func:`ordering_score`, :func:`random_orderings`),
one entry point that turns a config string into an order (:func:`resolve_class_order`), and
the figure helpers for the traversal (fig. 4) and a class tiling (fig. 7).

Working offline
---------------
The CLIP weights are downloaded by open_clip on first use. Without a network, open_clip's
download retries for about 45 s before failing. :func:`text_embeddings` avoids that wait: when
``HF_HUB_OFFLINE=1`` is set, or a quick (≤ 3 s) connection probe to the Hugging Face hub fails,
it looks only in the local caches and otherwise raises :class:`WeightsUnavailableError` at once,
saying how to supply the weights:

* a local checkpoint: ``text_embeddings(names, pretrained="/path/to/open_clip_pytorch_model.bin")``
  (for ViT-B-32/openai, the file of the ``timm/vit_base_patch32_clip_224.openai`` hub repository);
* or precomputed embeddings, one row per class (``.pt`` tensor / dict with ``"embeddings"``,
  or ``.npy``), given to :func:`resolve_class_order` as the spec or read by :func:`load_embeddings`.
  Every cache file :func:`text_embeddings` writes is such a file, so it can be copied from a
  machine with a network.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from podd.layout import check_fits, check_grid, identity_order, validate_class_order

__all__ = [
    "WeightsUnavailableError",
    "text_embeddings",
    "load_embeddings",
    "distance_matrix",
    "zigzag",
    "poco",
    "ordering_score",
    "ordering_scores",
    "random_orderings",
    "resolve_class_order",
    "plot_traversal",
    "plot_class_tiling",
]

# Bump when the way embeddings are computed changes, so stale cache files are not reused.
_CACHE_FORMAT = 1
_EMBEDDINGS_SUFFIXES = (".pt", ".pth", ".npy")


class WeightsUnavailableError(FileNotFoundError):
    """The CLIP weights could not be obtained (no network and nothing cached)."""


# ----------------------------------------------------------------------------------------
# Text embeddings
# ----------------------------------------------------------------------------------------


def _default_cache_dir() -> Path:
    """``podd.data.data_root() / "embeddings"``; ``$PODD_DATA`` or ``~/.cache/podd`` without podd.data."""
    try:  # imported lazily: podd.data is heavier and must not be needed to import this module
        from podd.data import data_root

        root = Path(data_root())
    except ImportError:
        root = Path(os.environ.get("PODD_DATA") or Path.home() / ".cache" / "podd").expanduser()
    return root / "embeddings"


def _prompts(class_names: Sequence[str], template: str) -> list[str]:
    if "{}" not in template:
        raise ValueError(
            f"template={template!r} has no '{{}}' placeholder for the class name; "
            "use e.g. '{}' or 'a photo of a {}.'"
        )
    return [template.format(str(name).replace("_", " ")) for name in class_names]


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_offline() -> bool:
    """True when the user asked Hugging Face to stay offline (read now, not at import time)."""
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # noqa: BLE001 - huggingface_hub missing or changed: not offline by flag
        return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub, so a machine without network fails in seconds, not ~45 s.

    Behind a proxy a direct connection may fail although downloads work, so with a proxy
    configured we do not probe and let open_clip try.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    # A thread bounds the DNS lookup too, which socket timeouts do not cover.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result["ok"]


def _cached_checkpoint(pretrained_cfg: dict, clip_cache_dir: str | None) -> str | None:
    """Path of an already-downloaded checkpoint for an open_clip tag, looking only on disk."""
    hf_hub = pretrained_cfg.get("hf_hub", "")
    if hf_hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            # open_clip's convention: 'org/repo/file' names a file, 'org/repo/' the default file
            repo_id, filename = (hf_hub[:-1], "") if hf_hub.endswith("/") else os.path.split(hf_hub)
            names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            for name in names:
                found = try_to_load_from_cache(repo_id, name, cache_dir=clip_cache_dir)
                if isinstance(found, str) and os.path.isfile(found):
                    return found
    url = pretrained_cfg.get("url", "")
    if url:  # open_clip's own URL cache: <cache_dir or ~/.cache/clip>/<file name>
        folder = clip_cache_dir or os.path.expanduser("~/.cache/clip")
        candidate = os.path.join(folder, os.path.basename(urllib.parse.urlparse(url).path))
        if os.path.isfile(candidate):
            return candidate
    return None


def _unavailable_message(model: str, pretrained: str, reason: str) -> str:
    return (
        f"CLIP weights for model={model!r}, pretrained={pretrained!r} are not available: {reason}.\n"
        "Supply them in one of these ways:\n"
        "  * a local checkpoint: text_embeddings(names, pretrained='/path/to/open_clip_pytorch_model.bin')\n"
        "    (for ViT-B-32/openai: the file from the Hugging Face repository "
        "timm/vit_base_patch32_clip_224.openai);\n"
        "  * precomputed embeddings, one row per class (.pt tensor or dict with 'embeddings', or .npy):\n"
        "    resolve_class_order('/path/to/embeddings.pt', class_names, rows, cols) or load_embeddings(path);\n"
        "    the files text_embeddings caches under <data root>/embeddings are in this format;\n"
        "  * or run once with network access (unset HF_HUB_OFFLINE) so the weights are downloaded and cached.\n"
        "Class order 'identity' needs no weights."
    )


def _openai_quick_gelu(model: str) -> bool:
    """Whether ``model``'s OpenAI weights were trained with QuickGELU (True for all OpenAI CLIPs)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model.replace("/", "-"), "openai") or {}
    return bool(cfg.get("quick_gelu", False))


def _create_clip(model: str, pretrained, quick_gelu, device, clip_cache_dir):
    """Build the open_clip model, failing fast and clearly when weights cannot be had."""
    import open_clip

    name = model.replace("/", "-")
    if name not in open_clip.list_models():
        raise ValueError(
            f"model={model!r} is not an open_clip model name; e.g. 'ViT-B-32' (see open_clip.list_models())."
        )
    if pretrained is None:
        # Random weights (tests only). Seeded so the 'embeddings' are reproducible.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return open_clip.create_model(name, pretrained=None, force_quick_gelu=bool(quick_gelu), device=device)

    pretrained = str(pretrained)
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if tag_cfg:
        if quick_gelu is None:
            quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        source = pretrained
        if _hub_offline() or not _hub_reachable():
            source = _cached_checkpoint(tag_cfg, clip_cache_dir)
            if source is None:
                reason = (
                    "HF_HUB_OFFLINE is set" if _hub_offline() else "the Hugging Face hub cannot be reached"
                ) + " and no copy is cached on this machine"
                raise WeightsUnavailableError(_unavailable_message(model, pretrained, reason))
    elif os.path.isfile(pretrained):
        # A local checkpoint: we assume it holds the OpenAI weights (the documented offline use),
        # which need QuickGELU; pass quick_gelu=False for other checkpoints.
        source = pretrained
        if quick_gelu is None:
            quick_gelu = _openai_quick_gelu(name)
    else:
        known = open_clip.list_pretrained_tags_by_model(name)
        if any(sep in pretrained for sep in ("/", os.sep, ".")):
            raise FileNotFoundError(
                f"pretrained={pretrained!r} is neither a file nor an open_clip tag of {model!r} "
                f"(tags: {known}); give an existing checkpoint path or a tag such as 'openai'."
            )
        raise ValueError(f"pretrained={pretrained!r} is not an open_clip tag of {model!r}; known tags: {known}.")
    try:
        return open_clip.create_model(
            name, pretrained=source, force_quick_gelu=bool(quick_gelu), device=device, cache_dir=clip_cache_dir
        )
    except RuntimeError as err:
        if "download" in str(err).lower() or "connect" in str(err).lower():
            raise WeightsUnavailableError(_unavailable_message(model, pretrained, f"download failed ({err})")) from err
        raise


def _cache_key(class_names, model, pretrained, template, quick_gelu) -> str:
    weights = pretrained
    if pretrained is not None and os.path.isfile(str(pretrained)):
        stat = os.stat(pretrained)  # identify a local file cheaply (hashing ~600 MB is slow)
        weights = {"file": str(Path(pretrained).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    payload = {
        "format": _CACHE_FORMAT,
        "model": model,
        "pretrained": weights,
        "template": template,
        "quick_gelu": quick_gelu,
        "names": [str(n) for n in class_names],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def text_embeddings(
    class_names: Sequence[str],
    model="ViT-B-32",
    pretrained: str | os.PathLike | None = "openai",
    template: str = "{}",
    cache_dir: str | os.PathLike | None = None,
    *,
    quick_gelu: bool | None = None,
    tokenizer=None,
    device: str | torch.device = "cpu",
    clip_cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """CLIP text embeddings of class names, one L2-normalised row per class.

    Each name becomes a prompt ``template.format(name)`` with underscores turned into spaces
    (the default template ``"{}"`` is the bare name, as the authors did). The prompts go
    through open_clip's tokenizer and ``encode_text``; we use its *pooled* output (the
    end-of-text token projected into the joint space) and L2-normalise it. This is our reading
    of the paper's "CLIP text embeddings"; the authors' code flattens the whole last hidden
    state instead.

    Args:
        class_names: the K class names in dataset order.
        model: an open_clip model name (default ``"ViT-B-32"``, the CLIP of the paper), or an
            already built model object with ``encode_text`` (then pass ``tokenizer`` too,
            unless it uses the ViT-B-32 tokenizer; nothing is cached).
        pretrained: an open_clip weights tag (default ``"openai"``), a path to a local
            checkpoint file, or ``None`` for *random weights* — for tests only: it runs the
            real architecture, tokenizer and encode path, but the distances mean nothing.
        template: prompt template with one ``{}`` for the name, e.g. ``"a photo of a {}."``.
        cache_dir: folder of the embedding cache; default ``data_root() / "embeddings"``.
        quick_gelu: activation of the text tower; ``None`` = right for the weights: the tag's
            setting, and for a local checkpoint the OpenAI setting (True), since that is the
            documented offline use. Pass False for a non-OpenAI local checkpoint.
        tokenizer: an open_clip tokenizer; default ``open_clip.get_tokenizer(model)``.
        device: where to run the encoder. The result is always float32 on CPU.
        clip_cache_dir: where open_clip / Hugging Face keep downloaded weights (their default
            when None).
        use_cache: read and write the embedding cache.

    Returns:
        Float tensor (K, D) with unit rows (D = 512 for ViT-B-32).

    Caching: results are saved (atomically) as ``<cache_dir>/<model>-<weights>-<hash>.pt``, keyed
    by a hash of model, weights (tag, or a local file's path, size and mtime), template, QuickGELU
    setting and names. The file is a dict with ``"embeddings"``, so :func:`load_embeddings` and
    :func:`resolve_class_order` read it directly: copy it to an offline machine to use PoCO there.
    Random weights (``pretrained=None``) and model objects are never cached.

    Offline: with ``HF_HUB_OFFLINE=1`` or an unreachable hub, only local caches are consulted and
    :class:`WeightsUnavailableError` is raised at once (no ~45 s retry loop) if nothing is found;
    its message says how to supply a checkpoint or precomputed embeddings.
    """
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("class_names is empty; give the K class names in dataset order.")
    prompts = _prompts(names, template)

    model_is_name = isinstance(model, str)
    cacheable = use_cache and model_is_name and pretrained is not None
    cache_file = None
    if cacheable:
        key = _cache_key(names, model, str(pretrained), template, quick_gelu)
        weights_label = Path(str(pretrained)).stem if os.path.isfile(str(pretrained)) else str(pretrained)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{model}-{weights_label}")
        cache_file = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        cache_file = cache_file / f"{safe}-{key[:16]}.pt"
        if cache_file.is_file():
            return load_embeddings(cache_file, len(names))

    import open_clip

    if model_is_name:
        clip = _create_clip(
            model, pretrained, quick_gelu, device, None if clip_cache_dir is None else str(clip_cache_dir)
        )
        tokenizer = tokenizer or open_clip.get_tokenizer(model.replace("/", "-"))
    else:
        clip = model
        tokenizer = tokenizer or open_clip.get_tokenizer("ViT-B-32")
    clip.eval()
    with torch.no_grad():
        tokens = tokenizer(prompts).to(device)
        emb = clip.encode_text(tokens).float()
        emb = torch.nn.functional.normalize(emb, dim=-1).cpu()

    if cache_file is not None:
        from podd.io import torch_save

        torch_save(
            cache_file,
            {
                "embeddings": emb,
                "class_names": names,
                "model": model,
                "pretrained": str(pretrained),
                "template": template,
                "normalised": True,
            },
        )
    return emb


def load_embeddings(path: str | os.PathLike, num_classes: int | None = None) -> torch.Tensor:
    """Read precomputed class embeddings: one row per class, in dataset order.

    Accepted files: ``.pt``/``.pth`` holding a tensor or a dict with key ``"embeddings"`` (the
    format :func:`text_embeddings` caches), or ``.npy`` holding a 2-D array. Rows need not be
    normalised (:func:`distance_matrix` normalises).

    Args:
        path: the file.
        num_classes: if given, the number of rows the file must have (K).

    Returns:
        Float32 tensor (K, D).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown suffix, not 2-D, wrong row count, or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            if "embeddings" not in obj:
                raise ValueError(
                    f"{str(path)!r} holds a dict without key 'embeddings' (keys: {sorted(map(str, obj))}); "
                    "save a tensor or {'embeddings': tensor}."
                )
            obj = obj["embeddings"]
        if isinstance(obj, np.ndarray):
            obj = torch.from_numpy(obj)
        if not isinstance(obj, torch.Tensor):
            raise ValueError(f"{str(path)!r} holds a {type(obj).__name__}, not a tensor of embeddings.")
        emb = obj.detach().float().cpu()
    elif suffix == ".npy":
        emb = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    else:
        raise ValueError(f"embeddings file {str(path)!r} has suffix {suffix!r}; use one of {_EMBEDDINGS_SUFFIXES}.")
    return _check_embeddings(emb, num_classes, where=str(path))


def _check_embeddings(emb: torch.Tensor, num_classes: int | None, where: str = "embeddings") -> torch.Tensor:
    if emb.dim() != 2:
        raise ValueError(f"{where}: embeddings must be 2-D (classes, dim), got shape {tuple(emb.shape)}.")
    if num_classes is not None and emb.shape[0] != num_classes:
        raise ValueError(
            f"{where}: embeddings have {emb.shape[0]} rows but there are {num_classes} classes; "
            "give one row per class, in dataset order."
        )
    bad = ~torch.isfinite(emb)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{where}: embeddings contain non-finite values ({int(bad.sum())} entries), "
            f"first at row {row} (class {row}), column {col}: {emb[row, col].item()}."
        )
    return emb


# ----------------------------------------------------------------------------------------
# Distances and the traversal
# ----------------------------------------------------------------------------------------


def distance_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """Pairwise class distances, 1 − cosine similarity, as a (K, K) float tensor.

    Rows are normalised here, so unnormalised embeddings work. The result is symmetric with a
    zero diagonal (up to rounding) and lies in [0, 2].
    """
    emb = torch.as_tensor(embeddings).detach().float()
    emb = _check_embeddings(emb, None)
    norms = emb.norm(dim=1)
    if (norms == 0).any():
        row = int((norms == 0).nonzero()[0])
        raise ValueError(f"embedding row {row} is all zeros; its cosine similarity is undefined.")
    unit = emb / norms[:, None]
    dist = 1.0 - unit @ unit.T
    dist = 0.5 * (dist + dist.T)  # exact symmetry despite rounding
    dist.fill_diagonal_(0.0)
    return dist


def zigzag(rows: int, cols: int, alternate: bool = True) -> torch.LongTensor:
    """Cells of a rows × cols grid in zigzag order, as a (rows·cols, 2) LongTensor of (r, c).

    The walk goes over the anti-diagonals ``r + c = 0, 1, 2, ...``.

    * ``alternate=True`` (default, the paper's zigzag of fig. 4, as in JPEG): the direction
      alternates. Odd diagonals run from the top-right end down-left (r increasing), even ones
      from the bottom-left end up-right (r decreasing); so on a square grid the walk starts
      (0,0), (0,1), (1,0), (2,0), (1,1), (0,2), (0,3), ... exactly as JPEG's coefficient order.
      On a non-square grid each diagonal is cut to the grid and keeps its parity's direction.
    * ``alternate=False`` (the authors' code): every diagonal runs the same way. We chose
      top-right → down-left (r increasing) for all of them, so the walk starts like JPEG's
      ((0,0), (0,1), (1,0), then (0,2), (1,1), (2,0), ...), and every cell after the first
      still has an already-visited 4-neighbour (its upper or left neighbour).

    Example (2 × 5, alternate)::

        0 1 4 5 8
        2 3 6 7 9
    """
    rows, cols = check_grid(rows, cols)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    diag = r + c
    # within a diagonal: r increasing, or r decreasing on even diagonals when alternating
    within = torch.where((diag % 2 == 0) & alternate, rows - 1 - r, r)
    order = torch.argsort(diag * rows + within)
    return torch.stack([r[order], c[order]], dim=1)


def _check_distances(distances) -> torch.Tensor:
    dist = torch.as_tensor(distances).detach().float()
    if dist.dim() != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"distances must be a square (K, K) matrix, got shape {tuple(dist.shape)}.")
    if not torch.isfinite(dist).all():
        bad = (~torch.isfinite(dist)).nonzero()[0].tolist()
        raise ValueError(f"distances contain non-finite values, first at {tuple(bad)}: {dist[tuple(bad)].item()}.")
    asym = (dist - dist.T).abs().max().item() if dist.numel() else 0.0
    if asym > 1e-5 * max(1.0, dist.abs().max().item()):
        raise ValueError(
            f"distances must be symmetric; max |D - D.T| = {asym:.3g}. Use distance_matrix(embeddings)."
        )
    return dist


def _neighbour_table(rows: int, cols: int) -> torch.LongTensor:
    """(rows·cols, 4) flat indices of each cell's up/down/left/right neighbours, −1 outside."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    cols_out = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nr, nc = r + dr, c + dc
        inside = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
        cols_out.append(torch.where(inside, nr * cols + nc, -1))
    return torch.stack(cols_out, dim=1)


def poco(distances, rows: int, cols: int, traversal=None) -> torch.LongTensor:
    """PoCO's greedy placement of K classes on a rows × cols grid (paper §4.2, algorithm 2).

    The cells are visited in ``traversal`` order (default :func:`zigzag` ``(rows, cols)``).
    The first cell gets class 0 (the first class in dataset order). Every next cell gets the
    unplaced class with the smallest *sum* of distances to the classes already placed in its
    4-neighbourhood; ties go to the lowest class index (a cell with no placed neighbour — only
    possible with a custom traversal — therefore gets the lowest unplaced class).

    When rows·cols > K, the last rows·cols − K cells of the traversal stay empty (−1): with the
    zigzag that is the bottom-right corner, so the classes form one connected block.

    Args:
        distances: (K, K) symmetric matrix, e.g. :func:`distance_matrix` of CLIP embeddings.
        rows, cols: the class grid, rows·cols ≥ K.
        traversal: optional (rows·cols, 2) (r, c) visiting order covering every cell once.

    Returns:
        LongTensor (rows, cols) of class indices, −1 in empty cells.
    """
    dist = _check_distances(distances)
    rows, cols = check_grid(rows, cols)
    k = dist.shape[0]
    check_fits(k, rows, cols)
    cells = zigzag(rows, cols) if traversal is None else _check_traversal(traversal, rows, cols)
    flat_cells = cells[:, 0] * cols + cells[:, 1]
    neighbours = _neighbour_table(rows, cols)

    order = torch.full((rows * cols,), -1, dtype=torch.long)
    unplaced = torch.ones(k, dtype=torch.bool)
    for step in range(k):  # one small tensor op per placed class; K <= a few hundred
        cell = flat_cells[step]
        nb = neighbours[cell]
        nb_classes = torch.where(nb >= 0, order[nb.clamp(min=0)], -1)
        placed = nb_classes >= 0
        cost = (dist[:, nb_classes.clamp(min=0)] * placed).sum(dim=1)
        cost = torch.where(unplaced, cost, torch.inf)
        choice = int(torch.argmin(cost))  # argmin returns the first minimum: ties -> lowest index
        order[cell] = choice
        unplaced[choice] = False
    return order.reshape(rows, cols)


def _check_traversal(traversal, rows: int, cols: int) -> torch.LongTensor:
    cells = torch.as_tensor(traversal, dtype=torch.long)
    if cells.shape != (rows * cols, 2):
        raise ValueError(
            f"traversal must have shape ({rows * cols}, 2) for a {rows}x{cols} grid, got {tuple(cells.shape)}."
        )
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < rows) & (cells[:, 1] >= 0) & (cells[:, 1] < cols)
    if not inside.all():
        raise ValueError(f"traversal cell {cells[~inside][0].tolist()} lies outside the {rows}x{cols} grid.")
    if torch.unique(cells[:, 0] * cols + cells[:, 1]).numel() != rows * cols:
        raise ValueError("traversal must visit every cell of the grid exactly once.")
    return cells


def ordering_score(order, distances) -> float:
    """Score of a class order: 1 / (sum of distances over all 4-neighbour class pairs).

    Each unordered pair of adjacent cells counts once (right and down neighbours); empty cells
    (−1) are skipped. Higher means semantically closer neighbours. This is the score of the
    paper's class-order ablation (§5.3), which correlates with accuracy. Returns ``inf`` when the
    sum is 0 (no neighbouring pairs, or all distances 0). For many orders at once use
    :func:`ordering_scores`.
    """
    order = torch.as_tensor(order, dtype=torch.long)
    if order.dim() != 2:
        raise ValueError(f"order must be a (rows, cols) matrix, got shape {tuple(order.shape)}.")
    return float(ordering_scores(order[None], distances)[0])


def ordering_scores(orders, distances) -> torch.Tensor:
    """:func:`ordering_score` of a batch of orders (N, rows, cols) in one go, as a float64 (N,) tensor.

    The distance matrix is checked once and all neighbour pairs are gathered with one index
    operation, so scoring thousands of random orders (the class-order ablation) is instant.
    """
    dist = _check_distances(distances).double()
    orders = torch.as_tensor(orders, dtype=torch.long)
    if orders.dim() != 3:
        raise ValueError(f"orders must be a (N, rows, cols) batch, got shape {tuple(orders.shape)}.")
    k = dist.shape[0]
    if orders.numel() and (orders.max() >= k or orders.min() < -1):
        raise ValueError(
            f"order holds class indices in [{int(orders.min())}, {int(orders.max())}], outside [-1, {k - 1}] "
            f"for a {k}-class distance matrix."
        )
    n = orders.shape[0]
    # every horizontally (right) and vertically (down) adjacent pair of cells, once
    a = torch.cat([orders[:, :, :-1].reshape(n, -1), orders[:, :-1, :].reshape(n, -1)], dim=1)
    b = torch.cat([orders[:, :, 1:].reshape(n, -1), orders[:, 1:, :].reshape(n, -1)], dim=1)
    filled = (a >= 0) & (b >= 0)
    total = (dist[a.clamp(min=0), b.clamp(min=0)] * filled).sum(dim=1)
    return torch.where(total == 0, torch.inf, 1.0 / total)


def random_orderings(num_classes: int, rows: int, cols: int, count: int, seed) -> torch.LongTensor:
    """``count`` random class orders, (count, rows, cols), reproducible from ``seed``.

    Each is a uniformly random permutation of the K classes laid out row-major; as in
    :func:`podd.layout.identity_order` the cells past K (if rows·cols > K) are −1. ``seed`` is an int or a
    ``torch.Generator``; all permutations are drawn in one call (argsort of uniform noise).
    """
    rows, cols = check_grid(rows, cols)
    check_fits(num_classes, rows, cols)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}.")
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    perms = torch.rand(count, num_classes, generator=gen).argsort(dim=1)
    pad = torch.full((count, rows * cols - num_classes), -1, dtype=torch.long)
    return torch.cat([perms, pad], dim=1).reshape(count, rows, cols)


def resolve_class_order(
    spec, class_names: Sequence[str], rows: int, cols: int, *, alternate: bool = True, **clip_kwargs
) -> torch.LongTensor:
    """Turn a class-order spec (as in a config) into a (rows, cols) LongTensor, −1 in empty cells.

    Specs:
        ``"poco"``: PoCO on CLIP text embeddings of ``class_names`` (``clip_kwargs`` go to
            :func:`text_embeddings`, e.g. ``pretrained=...``, ``template=...``, ``cache_dir=...``).
        ``"identity"``: dataset order, row-major (:func:`podd.layout.identity_order`).
        ``"random:SEED"``: one seeded random order (:func:`random_orderings`).
        a path to an embeddings file (``.pt``/``.pth``/``.npy``, one row per class): PoCO on those,
            with no network or CLIP needed.
        a (rows, cols) tensor/array: used as given after checking it is a valid order.

    ``alternate`` picks the zigzag (True, the paper) or the authors' one-direction walk (False).
    """
    k = len(class_names)
    rows, cols = check_grid(rows, cols)
    check_fits(k, rows, cols)
    if isinstance(spec, (torch.Tensor, np.ndarray, list, tuple)):
        return validate_class_order(torch.as_tensor(spec, dtype=torch.long), k, (rows, cols))
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise ValueError(
            f"class order spec {spec!r} is not understood; use 'poco', 'identity', 'random:SEED' or a path."
        )
    traversal = zigzag(rows, cols, alternate=alternate)
    if spec == "poco":
        emb = text_embeddings(class_names, **clip_kwargs)
        return poco(distance_matrix(emb), rows, cols, traversal)
    if spec == "identity":
        return identity_order(k, rows, cols)
    if spec.startswith("random:"):
        seed_text = spec.split(":", 1)[1]
        try:
            seed = int(seed_text)
        except ValueError:
            raise ValueError(f"class order {spec!r}: the seed after 'random:' must be an integer.") from None
        return random_orderings(k, rows, cols, 1, seed)[0]
    if Path(spec).is_file() or Path(spec).suffix.lower() in _EMBEDDINGS_SUFFIXES:
        emb = load_embeddings(spec, k)  # FileNotFoundError if the path is missing
        return poco(distance_matrix(emb), rows, cols, traversal)
    raise ValueError(
        f"class order spec {spec!r} is not understood; use 'poco', 'identity', 'random:SEED', "
        "or a path to an embeddings file (.pt/.npy, one row per class)."
    )


# ----------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------


def _setup_grid_axes(ax, rows: int, cols: int) -> None:
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)  # row 0 at the top, like the poster
    ax.set_aspect("equal")
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xticks([x - 0.5 for x in range(cols + 1)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(rows + 1)], minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def plot_traversal(ax, rows: int, cols: int, alternate: bool = True, traversal=None, numbers: bool = True):
    """Draw the visiting order of the class grid (paper fig. 4) on a matplotlib Axes.

    Each cell shows its step number; arrows join consecutive cells. ``traversal`` overrides the
    default :func:`zigzag` ``(rows, cols, alternate)``. Returns ``ax``.
    """
    rows, cols = check_grid(rows, cols)
    cells = zigzag(rows, cols, alternate) if traversal is None else _check_traversal(traversal, rows, cols)
    _setup_grid_axes(ax, rows, cols)
    ys, xs = cells[:, 0].tolist(), cells[:, 1].tolist()
    for i in range(len(xs) - 1):
        ax.annotate(
            "",
            xy=(xs[i + 1], ys[i + 1]),
            xytext=(xs[i], ys[i]),
            arrowprops=dict(arrowstyle="-|>", color="tab:blue", lw=1.5, shrinkA=9, shrinkB=9),
        )
    ax.scatter(xs[:1], ys[:1], s=120, color="tab:green", zorder=3, label="start")
    if numbers:
        for i, (x, y) in enumerate(zip(xs, ys)):
            ax.text(x, y, str(i), ha="center", va="center", fontsize=9, zorder=4,
                    bbox=dict(boxstyle="circle,pad=0.2", fc="white", ec="none", alpha=0.8))
    ax.set_title(f"{'zigzag' if alternate else 'anti-diagonal'} traversal, {rows}x{cols}")
    return ax


def plot_class_tiling(
    ax,
    order,
    class_names: Sequence[str],
    clusters=None,
    distances=None,
    cmap=None,
    fontsize: float | None = None,
):
    """Write each class name in its grid cell (paper fig. 7) on a matplotlib Axes.

    Args:
        order: (rows, cols) class indices, −1 for empty cells (shown grey).
        class_names: the K names (underscores shown as spaces; long names wrap).
        clusters: optional (K,) integer cluster id per class: cells are coloured by cluster.
        distances: optional (K, K) matrix: cells are coloured by the mean distance to their
            placed 4-neighbours (pale yellow = close neighbours, orange/red = far), unless
            ``clusters`` is given.
        cmap: matplotlib colormap name (default ``"tab20"`` for clusters, ``"YlOrRd"`` for distances).
        fontsize: text size in points; default fits the longest word into a cell.

    Returns ``ax``.
    """
    import matplotlib.pyplot as plt

    order = torch.as_tensor(order, dtype=torch.long)
    if order.dim() != 2:
        raise ValueError(f"order must be a (rows, cols) matrix, got shape {tuple(order.shape)}.")
    rows, cols = order.shape
    k = len(class_names)
    if order.numel() and int(order.max()) >= k:
        raise ValueError(f"order holds class index {int(order.max())} but only {k} class names were given.")

    colours = np.ones((rows, cols, 4))
    colours[order.numpy() < 0] = (0.85, 0.85, 0.85, 1.0)
    if clusters is not None:
        clusters = np.asarray(clusters)
        if clusters.shape != (k,):
            raise ValueError(f"clusters must have one entry per class ({k}), got shape {clusters.shape}.")
        cm = plt.get_cmap(cmap or "tab20")
        for r in range(rows):
            for c in range(cols):
                if order[r, c] >= 0:
                    # blended with white so black names stay readable on dark colours
                    colours[r, c] = 0.6 * np.asarray(cm(int(clusters[order[r, c]]) % cm.N)) + 0.4
    elif distances is not None:
        dist = _check_distances(distances)
        fit = _mean_neighbour_distance(order, dist)
        valid = order >= 0
        lo, hi = float(fit[valid].min()), float(fit[valid].max())
        cm = plt.get_cmap(cmap or "YlOrRd")
        norm = (fit - lo) / max(hi - lo, 1e-12)
        for r in range(rows):
            for c in range(cols):
                if valid[r, c]:
                    colours[r, c] = cm(float(norm[r, c]) * 0.7)  # avoid the darkest end: text stays readable
    ax.imshow(colours, interpolation="nearest")
    _setup_grid_axes(ax, rows, cols)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")

    labels = {}
    for r in range(rows):
        for c in range(cols):
            idx = int(order[r, c])
            labels[(r, c)] = "" if idx < 0 else str(class_names[idx]).replace("_", " ").replace(" ", "\n")
    if fontsize is None:
        fontsize = _fitting_fontsize(ax, [t for t in labels.values() if t], rows, cols)
    for (r, c), text in labels.items():
        if text:
            ax.text(c, r, text, ha="center", va="center", fontsize=fontsize, linespacing=0.9)
    return ax


def _fitting_fontsize(ax, texts: list[str], rows: int, cols: int) -> float:
    """Largest font size (4-14 pt) at which every text fits in a grid cell of ``ax``.

    Measured with the figure's renderer where it has one (Agg, the notebook default); otherwise
    estimated at about 0.5 em per character.
    """
    fig = ax.figure
    bbox = ax.get_window_extent().transformed(fig.dpi_scale_trans.inverted())
    cell_w, cell_h = 72.0 * bbox.width / cols, 72.0 * bbox.height / rows  # points
    if not texts:
        return 10.0
    lines = max(t.count("\n") + 1 for t in texts)
    words = {w for t in texts for w in t.split("\n")}
    try:
        renderer = fig.canvas.get_renderer()
        probe = ax.text(0, 0, "", fontsize=10)
        width = 0.0
        for w in words:  # at 10 pt, in points
            probe.set_text(w)
            width = max(width, probe.get_window_extent(renderer).width * 72.0 / fig.dpi)
        probe.remove()
    except Exception:  # noqa: BLE001 - a backend without a renderer: estimate instead
        width = 10 * 0.5 * max(len(w) for w in words)
    by_width = 10.0 * 0.88 * cell_w / max(width, 1e-6)
    by_height = 0.85 * cell_h / (1.1 * lines)
    return float(np.clip(min(by_width, by_height), 4.0, 14.0))


def _mean_neighbour_distance(order: torch.LongTensor, dist: torch.Tensor) -> torch.Tensor:
    """(rows, cols) mean distance of each placed cell's class to its placed 4-neighbours."""
    rows, cols = order.shape
    flat = order.reshape(-1)
    nb = _neighbour_table(rows, cols)
    nb_classes = torch.where(nb >= 0, flat[nb.clamp(min=0)], -1)
    valid = (nb_classes >= 0) & (flat[:, None] >= 0)
    d = dist[flat.clamp(min=0)[:, None], nb_classes.clamp(min=0)] * valid
    mean = d.sum(1) / valid.sum(1).clamp(min=1)
    return mean.reshape(rows, cols)

"""CLIP text embeddings of class names, the input of PoCO (paper §4.2, step 1).

:func:`text_embeddings` runs open_clip's text encoder on the class names and caches the result;
:func:`load_embeddings` reads such a cache file, or any precomputed embeddings, one row per
class. :mod:`podd.ordering` turns embeddings into a class order.

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
  or ``.npy``), given to :func:`podd.ordering.resolve_class_order` as the spec or read by
  :func:`load_embeddings`. Every cache file :func:`text_embeddings` writes is such a file, so it
  can be copied from a machine with a network.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from podd.data import data_root
from podd.io import safe_filename, torch_save

__all__ = [
    "WeightsUnavailableError",
    "EMBEDDINGS_SUFFIXES",
    "text_embeddings",
    "load_embeddings",
    "check_embeddings",
]

_CACHE_FORMAT = 1
EMBEDDINGS_SUFFIXES = (".pt", ".pth", ".npy")


class WeightsUnavailableError(FileNotFoundError):
    """The CLIP weights could not be obtained (no network and nothing cached)."""


def _default_cache_dir() -> Path:
    """``podd.data.data_root() / "embeddings"`` (``$PODD_DATA``, else ``~/.cache/podd``)."""
    return data_root() / "embeddings"


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
    # Said for every way of running podd, the command line first: most users meet it there.
    return (
        f"CLIP weights for model={model!r}, pretrained={pretrained!r} are not available: {reason}. "
        "PoCO (class_order 'poco') orders the classes by CLIP text embeddings of their names. "
        "Without the weights:\n"
        "  * podd distill: --class-order data (PoCO's placement on class similarities measured on "
        "the training images, no weights needed), --embeddings FILE (precomputed embeddings, one "
        "row per class, .pt or .npy) or --class-order identity (the dataset's order);\n"
        "  * notebooks (papermill): -p class_order data, -p embeddings FILE or -p class_order identity;\n"
        "  * Python: resolve_config(..., class_order='data'), embeddings=FILE or class_order='identity'; "
        "or a local "
        "checkpoint, text_embeddings(names, pretrained='/path/to/open_clip_pytorch_model.bin') "
        "(for ViT-B-32/openai the file of the Hugging Face repository "
        "timm/vit_base_patch32_clip_224.openai);\n"
        "  * or run once with network access (unset HF_HUB_OFFLINE): the weights are then cached, "
        "and text_embeddings caches every set of embeddings it computes under <data "
        "root>/embeddings, in the --embeddings format."
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
    :func:`podd.ordering.resolve_class_order` read it directly: copy it to an offline machine to use PoCO there.
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
        safe = safe_filename(f"{model}-{weights_label}")
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
    normalised (:func:`podd.ordering.distance_matrix` normalises).

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
        raise ValueError(f"embeddings file {str(path)!r} has suffix {suffix!r}; use one of {EMBEDDINGS_SUFFIXES}.")
    return check_embeddings(emb, num_classes, where=str(path))


def check_embeddings(emb: torch.Tensor, num_classes: int | None, where: str = "embeddings") -> torch.Tensor:
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

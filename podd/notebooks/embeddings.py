"""Class embeddings for PoCO under each profile, with a label saying where they come from."""

from __future__ import annotations

import os

import torch

from podd.notebooks.profiles import resolve_profile


def class_embeddings(
    class_names,
    profile: str,
    *,
    embeddings: str | None = None,
    seed: int = 0,
    dim: int = 32,
    verbose: bool = True,
    data=None,
) -> tuple[torch.Tensor, str]:
    """Class embeddings for PoCO and a label saying where they come from.

    ``embeddings="data"``: measured on the training images of ``data`` (a
    :class:`podd.data.Dataset`) in any profile, what ``class_order="data"`` places
    (:mod:`podd.data_embeddings`). Another ``embeddings`` (a ``.pt``/``.npy`` file) is read;
    without one quick/paper compute CLIP ViT-B/32 text embeddings with
    :func:`podd.clip_text.text_embeddings` (needs the weights: downloaded once and cached);
    smoke never reaches the network and uses seeded random unit vectors, clearly labelled
    "synthetic" — CLIP did not run, and the ordering is then only a code-path check.
    """
    from podd import clip_text

    names = list(class_names)
    if embeddings == "data":
        from podd.data_embeddings import DATA_ORDER_SOURCE, class_mean_embeddings

        if data is None:
            raise ValueError("embeddings='data' measures the classes on the training images: pass data=")
        emb = class_mean_embeddings(data.x_train, data.y_train, len(names), names)
        source = DATA_ORDER_SOURCE
    elif embeddings:
        emb = clip_text.load_embeddings(embeddings, num_classes=len(names))
        source = f"precomputed embeddings from {os.path.basename(str(embeddings))}"
    elif resolve_profile(profile) == "smoke":
        emb = _synthetic(len(names), dim, seed)
        source = (
            f"SYNTHETIC embeddings (seeded random unit vectors, seed {seed}) — profile smoke "
            f"runs offline, CLIP did not run"
        )
    else:
        emb = clip_text.text_embeddings(names)
        source = "CLIP ViT-B/32 (OpenAI) text embeddings of the class names"
    if verbose:
        print(f"Class embeddings: {source}.")
    return emb, source


def _synthetic(count: int, dim: int, seed: int) -> torch.Tensor:
    """Seeded random unit vectors: smoke's offline stand-in for CLIP."""
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(count, dim, generator=generator), dim=1)

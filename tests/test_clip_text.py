"""Tests for podd.clip_text (PoCO's input, paper §4.2): embeddings files and CLIP text embeddings.
No test touches the network."""

import time

import numpy as np
import pytest
import torch

from podd import clip_text
from podd.clip_text import WeightsUnavailableError, load_embeddings, text_embeddings
from podd.ordering import distance_matrix, poco, resolve_class_order


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every test runs as if offline, with empty caches: nothing may wait on a download."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "podd-data"))


# ---------------------------------------------------------------- embeddings files


def test_load_embeddings_formats(tmp_path):
    emb = torch.randn(5, 8)
    torch.save(emb, tmp_path / "a.pt")
    torch.save({"embeddings": emb, "class_names": list("abcde")}, tmp_path / "b.pt")
    np.save(tmp_path / "c.npy", emb.numpy())
    for name in ("a.pt", "b.pt", "c.npy"):
        loaded = load_embeddings(tmp_path / name, 5)
        assert loaded.dtype == torch.float32 and torch.allclose(loaded, emb)


def test_load_embeddings_errors(tmp_path):
    emb = torch.randn(5, 8)
    torch.save(emb, tmp_path / "five.pt")
    with pytest.raises(ValueError, match="5 rows but there are 10 classes"):
        load_embeddings(tmp_path / "five.pt", 10)
    bad = emb.clone()
    bad[3, 1] = float("nan")
    np.save(tmp_path / "nan.npy", bad.numpy())
    with pytest.raises(ValueError, match=r"row 3 \(class 3\), column 1: nan"):
        load_embeddings(tmp_path / "nan.npy", 5)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_embeddings(tmp_path / "missing.pt", 5)
    (tmp_path / "e.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="'.txt'"):
        load_embeddings(tmp_path / "e.txt")
    torch.save({"emb": emb}, tmp_path / "d.pt")
    with pytest.raises(ValueError, match="without key 'embeddings'"):
        load_embeddings(tmp_path / "d.pt")
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"2-D.*\(5,\)"):
        load_embeddings(tmp_path / "v.npy")


# ---------------------------------------------------------------- text embeddings


def test_prompts_template_and_underscores():
    assert clip_text._prompts(["maple_tree", "cat"], "{}") == ["maple tree", "cat"]
    assert clip_text._prompts(["aquarium_fish"], "a photo of a {}.") == ["a photo of a aquarium fish."]
    with pytest.raises(ValueError, match="placeholder"):
        clip_text._prompts(["cat"], "a photo")


class _FakeClip(torch.nn.Module):
    """Stands in for CLIP in the caching test: embeds a token row as its first 6 values."""

    def encode_text(self, tokens):
        return tokens[:, :6].float() + 1.0


def _fake_tokenizer(prompts):
    return torch.tensor([[len(p), sum(map(ord, p)) % 97, 1, 2, 3, 4, 5] for p in prompts])


def test_text_embeddings_cache(tmp_path, monkeypatch):
    calls = []

    def fake_create(model, pretrained, quick_gelu, device, clip_cache_dir):
        calls.append((model, pretrained))
        return _FakeClip()

    monkeypatch.setattr(clip_text, "_create_clip", fake_create)
    names = ["cat", "dog", "maple_tree"]
    kw = dict(cache_dir=tmp_path / "emb", tokenizer=_fake_tokenizer)
    first = text_embeddings(names, **kw)
    assert first.shape == (3, 6) and torch.allclose(first.norm(dim=1), torch.ones(3))
    files = list((tmp_path / "emb").glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("ViT-B-32-openai-")
    again = text_embeddings(names, **kw)
    assert torch.equal(first, again) and len(calls) == 1  # second call read the cache
    # the cache file is a precomputed-embeddings file
    assert torch.equal(load_embeddings(files[0], 3), first)
    # a different template or name list is a different key
    text_embeddings(names, template="a photo of a {}.", **kw)
    text_embeddings(names[:2], **kw)
    assert len(calls) == 3 and len(list((tmp_path / "emb").glob("*.pt"))) == 3
    # default cache location: $PODD_DATA/embeddings (set by the fixture) or podd.data's root
    text_embeddings(names, tokenizer=_fake_tokenizer)
    assert list(clip_text._default_cache_dir().glob("*.pt"))


def test_text_embeddings_offline_error_is_prompt_and_helpful(tmp_path):
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        text_embeddings(["cat", "dog"], cache_dir=tmp_path / "emb", clip_cache_dir=str(tmp_path / "hf"))
    assert time.monotonic() - start < 10  # open_clip import included; no download retries
    msg = str(info.value)
    assert "HF_HUB_OFFLINE" in msg
    assert "pretrained='/path/to/open_clip_pytorch_model.bin'" in msg
    assert "precomputed embeddings" in msg and ".npy" in msg
    # the same through the config entry point
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError):
        resolve_class_order(
            "poco", ["cat", "dog"], 1, 2, cache_dir=tmp_path / "emb", clip_cache_dir=str(tmp_path / "hf")
        )
    assert time.monotonic() - start < 10


def test_unreachable_hub_fails_fast_without_offline_flag(tmp_path, monkeypatch):
    # no HF_HUB_OFFLINE, but the connection probe fails: still an immediate, helpful error
    monkeypatch.setattr(clip_text, "_hub_offline", lambda: False)
    monkeypatch.setattr(clip_text, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
        text_embeddings(["cat"], cache_dir=tmp_path / "emb", clip_cache_dir=str(tmp_path / "hf"))


def test_hub_probe_is_bounded_in_time(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def hanging_connect(*args, **kwargs):  # a DNS lookup or connect that hangs, then fails
        time.sleep(5)
        raise OSError("simulated hang")

    monkeypatch.setattr(clip_text.socket, "create_connection", hanging_connect)
    start = time.monotonic()
    assert clip_text._hub_reachable(timeout=0.2) is False
    assert time.monotonic() - start < 2


def test_offline_uses_a_cached_checkpoint(tmp_path):
    # Hugging Face cache layout: models--org--name/refs/main -> snapshots/<commit>/<file>
    repo = tmp_path / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    weights = repo / "snapshots" / "abc123" / "open_clip_pytorch_model.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"stand-in")
    import open_clip

    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    assert clip_text._cached_checkpoint(cfg, str(tmp_path)) == str(weights)
    assert clip_text._cached_checkpoint(cfg, str(tmp_path / "empty")) is None


def test_text_embeddings_bad_pretrained(tmp_path):
    with pytest.raises(ValueError, match="'ViT-Q-99' is not an open_clip model"):
        text_embeddings(["cat"], model="ViT-Q-99", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no/such/ckpt.bin"):
        text_embeddings(["cat"], pretrained="no/such/ckpt.bin", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="not an open_clip tag"):
        text_embeddings(["cat"], pretrained="nonsense", cache_dir=tmp_path)


def test_text_embeddings_real_vit_b32_random_weights(tmp_path):
    """The real open_clip ViT-B-32 architecture, tokenizer and encode path, random weights."""
    names = ["airplane", "automobile", "maple_tree", "aquarium_fish"]
    emb = text_embeddings(names, pretrained=None, cache_dir=tmp_path)
    assert emb.shape == (4, 512) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert distance_matrix(emb).triu(1)[torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)].min() > 0
    assert not list(tmp_path.glob("*.pt"))  # random weights are never cached
    # PoCO runs on them end to end
    order = poco(distance_matrix(emb), 2, 2)
    assert sorted(order.reshape(-1).tolist()) == [0, 1, 2, 3]


def test_text_embeddings_accepts_a_model_object(tmp_path):
    emb = text_embeddings(["cat", "sea_lion"], model=_FakeClip(), tokenizer=_fake_tokenizer, cache_dir=tmp_path)
    expected = torch.nn.functional.normalize(_FakeClip().encode_text(_fake_tokenizer(["cat", "sea lion"])), dim=1)
    assert torch.allclose(emb, expected)
    assert not list(tmp_path.glob("*.pt"))  # model objects are never cached

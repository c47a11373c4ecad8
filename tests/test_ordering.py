"""Tests for PoCO (podd/ordering.py, paper §4.2). No test touches the network."""

import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from podd import ordering  # noqa: E402
from podd.layout import identity_order  # noqa: E402
from podd.ordering import (  # noqa: E402
    WeightsUnavailableError,
    distance_matrix,
    load_embeddings,
    ordering_score,
    ordering_scores,
    plot_class_tiling,
    plot_traversal,
    poco,
    random_orderings,
    resolve_class_order,
    text_embeddings,
    zigzag,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every test runs as if offline, with empty caches: nothing may wait on a download."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "podd-data"))


# ---------------------------------------------------------------- zigzag


def cells(pairs):
    return torch.tensor(pairs, dtype=torch.long)


def test_zigzag_2x5_alternating():
    # grid of visiting steps:  0 1 4 5 8
    #                          2 3 6 7 9
    expected = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3), (0, 4), (1, 4)]
    assert torch.equal(zigzag(2, 5), cells(expected))


def test_zigzag_3x3_alternating_is_jpeg_order():
    expected = [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (1, 2), (2, 1), (2, 2)]
    assert torch.equal(zigzag(3, 3), cells(expected))


def test_zigzag_2x5_one_direction():
    expected = [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (0, 3), (1, 2), (0, 4), (1, 3), (1, 4)]
    assert torch.equal(zigzag(2, 5, alternate=False), cells(expected))


def test_zigzag_3x3_one_direction():
    expected = [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (2, 0), (1, 2), (2, 1), (2, 2)]
    assert torch.equal(zigzag(3, 3, alternate=False), cells(expected))


@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 4), (4, 1), (4, 2), (10, 20), (7, 3)])
@pytest.mark.parametrize("alternate", [True, False])
def test_zigzag_visits_every_cell_once_along_antidiagonals(rows, cols, alternate):
    z = zigzag(rows, cols, alternate)
    assert z.shape == (rows * cols, 2) and z.dtype == torch.long
    assert torch.unique(z[:, 0] * cols + z[:, 1]).numel() == rows * cols
    diag = z.sum(1)
    assert torch.all(diag[1:] >= diag[:-1])
    # consecutive cells on one diagonal are diagonal steps
    same = diag[1:] == diag[:-1]
    assert torch.all((z[1:, 0] - z[:-1, 0]).abs()[same] == 1)


def test_zigzag_bad_grid():
    with pytest.raises(ValueError, match="rows=0"):
        zigzag(0, 3)


# ---------------------------------------------------------------- distances


def test_distance_matrix_is_one_minus_cosine_and_normalises():
    emb = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0], [1.0, 1.0]])
    d = distance_matrix(emb)
    expected = torch.tensor(
        [
            [0.0, 1.0, 2.0, 1 - 2**-0.5],
            [1.0, 0.0, 1.0, 1 - 2**-0.5],
            [2.0, 1.0, 0.0, 1 + 2**-0.5],
            [1 - 2**-0.5, 1 - 2**-0.5, 1 + 2**-0.5, 0.0],
        ]
    )
    assert torch.allclose(d, expected, atol=1e-6)
    assert torch.equal(d, d.T)


def test_distance_matrix_nan_names_the_row():
    emb = torch.randn(4, 8)
    emb[2, 5] = float("nan")
    with pytest.raises(ValueError, match="row 2"):
        distance_matrix(emb)


# ---------------------------------------------------------------- PoCO


def two_cluster_distances():
    """10 classes, cluster A = even indices, B = odd ones (interleaved, so dataset order mixes them)."""
    cluster = torch.arange(10) % 2
    same = cluster[:, None] == cluster[None, :]
    d = torch.where(same, 0.1, 1.0)
    d.fill_diagonal_(0.0)
    return d, cluster


def test_poco_puts_each_cluster_together():
    d, cluster = two_cluster_distances()
    order = poco(d, 2, 5)
    assert sorted(order.reshape(-1).tolist()) == list(range(10))
    assert order[0, 0] == 0  # first cell gets the first class
    # cluster A (class 0's cluster) fills the first five cells of the zigzag, B the rest
    visited = order[zigzag(2, 5)[:, 0], zigzag(2, 5)[:, 1]]
    assert torch.all(cluster[visited[:5]] == 0) and torch.all(cluster[visited[5:]] == 1)
    # every class has a 4-neighbour from its own cluster (each cluster is one region)
    for r in range(2):
        for c in range(5):
            nbs = [order[rr, cc] for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                   if 0 <= rr < 2 and 0 <= cc < 5]
            assert any(cluster[n] == cluster[order[r, c]] for n in nbs)
    # and PoCO beats dataset order on the ablation score
    assert ordering_score(order, d) > ordering_score(identity_order(10, 2, 5), d)


def test_poco_exact_result_on_two_clusters():
    d, _ = two_cluster_distances()
    # zigzag cells get 0, 2, 4, 6, 8 (ties inside the cluster -> lowest index), then 1, 3, 5, 7, 9
    assert poco(d, 2, 5).tolist() == [[0, 2, 8, 1, 7], [4, 6, 3, 5, 9]]


def test_poco_ties_go_to_lowest_index():
    k = 9
    d = torch.ones(k, k) - torch.eye(k)
    for alternate in (True, False):
        z = zigzag(3, 3, alternate)
        order = poco(d, 3, 3, traversal=z)
        assert torch.equal(order[z[:, 0], z[:, 1]], torch.arange(k))


def test_poco_minimises_summed_distance_to_placed_neighbours():
    # 1-D chain of points on a line: PoCO on a 1 x K grid must walk to the nearest unplaced point
    x = torch.tensor([0.0, 5.0, 1.0, 9.0, 2.5])
    d = (x[:, None] - x[None, :]).abs()
    assert poco(d, 1, 5).tolist() == [[0, 2, 4, 1, 3]]


def test_poco_pads_with_minus_one_in_last_traversal_cells():
    k = 7
    g = torch.Generator().manual_seed(0)
    d = distance_matrix(torch.randn(k, 16, generator=g))
    order = poco(d, 3, 3)
    z = zigzag(3, 3)
    visited = order[z[:, 0], z[:, 1]]
    assert torch.all(visited[:k] >= 0) and torch.all(visited[k:] == -1)
    assert sorted(visited[:k].tolist()) == list(range(k))


def test_poco_custom_traversal_row_major():
    d, _ = two_cluster_distances()
    row_major = torch.stack(torch.meshgrid(torch.arange(2), torch.arange(5), indexing="ij"), -1).reshape(-1, 2)
    order = poco(d, 2, 5, traversal=row_major)
    assert order[0].tolist() == [0, 2, 4, 6, 8]


@pytest.mark.parametrize(
    "dist,rows,cols,match",
    [
        (torch.zeros(10, 10), 3, 3, "3x3 has 9 cells"),
        (torch.zeros(4, 5), 2, 2, r"square.*\(4, 5\)"),
        (torch.tensor([[0.0, 1.0], [2.0, 0.0]]), 1, 2, "symmetric"),
        (torch.tensor([[0.0, float("nan")], [float("nan"), 0.0]]), 1, 2, "non-finite"),
    ],
)
def test_poco_bad_input(dist, rows, cols, match):
    with pytest.raises(ValueError, match=match):
        poco(dist, rows, cols)


def test_poco_bad_traversal():
    d = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="exactly once"):
        poco(d, 2, 2, traversal=[[0, 0], [0, 0], [1, 0], [1, 1]])


# ---------------------------------------------------------------- ablation helpers


def test_ordering_score_by_hand():
    d = torch.full((4, 4), 10.0)
    d.fill_diagonal_(0)
    for a, b, v in ((0, 1, 1.0), (2, 3, 2.0), (0, 2, 3.0), (1, 3, 4.0)):
        d[a, b] = d[b, a] = v
    # [[0, 1], [2, 3]]: pairs 0-1, 2-3 (horizontal), 0-2, 1-3 (vertical): 1 + 2 + 3 + 4 = 10
    assert ordering_score(torch.tensor([[0, 1], [2, 3]]), d) == pytest.approx(0.1)
    # empty cell skipped: pairs 0-1, 0-2 only
    assert ordering_score([[0, 1], [2, -1]], d) == pytest.approx(1 / 4)
    # [[0, 3], [1, 2]]: 0-3, 1-2, 0-1, 3-2 = 10 + 10 + 1 + 2
    assert ordering_score([[0, 3], [1, 2]], d) == pytest.approx(1 / 23)


def test_ordering_scores_batch_matches_single():
    g = torch.Generator().manual_seed(1)
    d = distance_matrix(torch.randn(7, 5, generator=g))
    orders = random_orderings(7, 3, 3, count=50, seed=2)
    batch = ordering_scores(orders, d)
    assert batch.shape == (50,)
    assert torch.allclose(batch, torch.tensor([ordering_score(o, d) for o in orders], dtype=torch.float64))
    assert ordering_score([[0]], torch.zeros(1, 1)) == float("inf")  # no pairs


def test_ordering_score_rejects_foreign_class():
    with pytest.raises(ValueError, match="outside"):
        ordering_score([[0, 5]], torch.zeros(2, 2))


def test_random_orderings_seeded_permutations():
    a = random_orderings(10, 2, 5, count=20, seed=3)
    b = random_orderings(10, 2, 5, count=20, seed=3)
    c = random_orderings(10, 2, 5, count=20, seed=4)
    assert a.shape == (20, 2, 5) and a.dtype == torch.long
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a.reshape(20, -1).sort(dim=1).values, torch.arange(10).expand(20, 10))
    assert len({tuple(o.reshape(-1).tolist()) for o in a}) > 15  # they differ from each other


def test_random_orderings_pad_with_minus_one():
    o = random_orderings(7, 3, 3, count=5, seed=0).reshape(5, -1)
    assert torch.all(o[:, 7:] == -1)
    assert torch.equal(o[:, :7].sort(dim=1).values, torch.arange(7).expand(5, 7))


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


# ---------------------------------------------------------------- resolve_class_order


def test_resolve_class_order_specs(tmp_path):
    names = [f"class_{i}" for i in range(10)]
    assert torch.equal(resolve_class_order("identity", names, 2, 5), identity_order(10, 2, 5))
    assert torch.equal(resolve_class_order("random:7", names, 2, 5), random_orderings(10, 2, 5, 1, 7)[0])
    # an embeddings file: PoCO on it, no CLIP involved
    emb = torch.cat([torch.tensor([[1.0, 0.0]]).expand(5, 2), torch.tensor([[0.0, 1.0]]).expand(5, 2)])
    emb = emb + 0.01 * torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "emb.npy", emb.numpy())
    order = resolve_class_order(str(tmp_path / "emb.npy"), names, 2, 5)
    assert torch.equal(order, poco(distance_matrix(emb), 2, 5))
    assert torch.equal(resolve_class_order(tmp_path / "emb.npy", names, 2, 5, alternate=False),
                       poco(distance_matrix(emb), 2, 5, zigzag(2, 5, alternate=False)))
    # an explicit order is checked and passed through
    assert torch.equal(resolve_class_order(order, names, 2, 5), order)


def test_resolve_class_order_errors(tmp_path):
    names = [f"c{i}" for i in range(10)]
    with pytest.raises(ValueError, match="'zigzag' is not understood"):
        resolve_class_order("zigzag", names, 2, 5)
    with pytest.raises(ValueError, match="'random:abc'"):
        resolve_class_order("random:abc", names, 2, 5)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        resolve_class_order(str(tmp_path / "nope.pt"), names, 2, 5)
    with pytest.raises(ValueError, match="too few for 10"):
        resolve_class_order("identity", names, 3, 3)
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(9, 4)))
    with pytest.raises(ValueError, match="9 rows but there are 10 classes"):
        resolve_class_order(str(tmp_path / "emb.npy"), names, 2, 5)
    with pytest.raises(ValueError, match="exactly once"):
        resolve_class_order(torch.zeros(2, 5, dtype=torch.long), names, 2, 5)


# ---------------------------------------------------------------- text embeddings


def test_prompts_template_and_underscores():
    assert ordering._prompts(["maple_tree", "cat"], "{}") == ["maple tree", "cat"]
    assert ordering._prompts(["aquarium_fish"], "a photo of a {}.") == ["a photo of a aquarium fish."]
    with pytest.raises(ValueError, match="placeholder"):
        ordering._prompts(["cat"], "a photo")


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

    monkeypatch.setattr(ordering, "_create_clip", fake_create)
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
    assert list(ordering._default_cache_dir().glob("*.pt"))


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
        resolve_class_order("poco", ["cat", "dog"], 1, 2, cache_dir=tmp_path / "emb",
                            clip_cache_dir=str(tmp_path / "hf"))
    assert time.monotonic() - start < 10


def test_unreachable_hub_fails_fast_without_offline_flag(tmp_path, monkeypatch):
    # no HF_HUB_OFFLINE, but the connection probe fails: still an immediate, helpful error
    monkeypatch.setattr(ordering, "_hub_offline", lambda: False)
    monkeypatch.setattr(ordering, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
        text_embeddings(["cat"], cache_dir=tmp_path / "emb", clip_cache_dir=str(tmp_path / "hf"))


def test_hub_probe_is_bounded_in_time(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def hanging_connect(*args, **kwargs):  # a DNS lookup or connect that hangs, then fails
        time.sleep(5)
        raise OSError("simulated hang")

    monkeypatch.setattr(ordering.socket, "create_connection", hanging_connect)
    start = time.monotonic()
    assert ordering._hub_reachable(timeout=0.2) is False
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
    assert ordering._cached_checkpoint(cfg, str(tmp_path)) == str(weights)
    assert ordering._cached_checkpoint(cfg, str(tmp_path / "empty")) is None


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


# ---------------------------------------------------------------- figures


def test_plot_traversal_and_class_tiling():
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    plot_traversal(axes[0], 2, 5)
    assert [t.get_text() for t in axes[0].texts if t.get_text()] == [str(i) for i in range(10)]
    plot_traversal(axes[1], 3, 3, alternate=False)
    d, cluster = two_cluster_distances()
    order = poco(d, 2, 5)
    names = [f"class_{i}" for i in range(10)]
    plot_class_tiling(axes[2], order, names, clusters=cluster)
    shown = {t.get_text() for t in axes[2].texts}
    assert shown == {f"class\n{i}" for i in range(10)}
    assert all(t.get_fontsize() >= 4 for t in axes[2].texts)
    fig2, ax = plt.subplots()
    padded = poco(d[:7, :7], 3, 3)
    plot_class_tiling(ax, padded, names[:7], distances=d[:7, :7])
    assert len(ax.texts) == 7
    plt.close(fig)
    plt.close(fig2)

"""Tests for PoCO (podd/ordering.py, paper §4.2). No test touches the network."""

import numpy as np
import pytest
import torch

from podd.layout import identity_order
from podd.ordering import (
    distance_matrix,
    ordering_score,
    ordering_scores,
    poco,
    random_orderings,
    resolve_class_order,
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
            nbs = [
                order[rr, cc]
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                if 0 <= rr < 2 and 0 <= cc < 5
            ]
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
    assert torch.equal(
        resolve_class_order(tmp_path / "emb.npy", names, 2, 5, alternate=False),
        poco(distance_matrix(emb), 2, 5, zigzag(2, 5, alternate=False)),
    )
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

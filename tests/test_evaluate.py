"""The evaluation protocol (§5.1): batched training equals one-after-another, it learns, it is seeded."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch.func import functional_call, vmap

from podd.augment import horizontal_flip, rotate
from podd.evaluate import (
    EvalProtocol,
    EvalResult,
    _train_and_test,
    batched_flip_rotate,
    full_dataset_reference,
    grouped_forward,
    random_real_subset,
    real_subset_reference,
    train_and_test,
)
from podd.models import ConvNet, init_parameters

K = 4


@pytest.fixture(autouse=True)
def _one_thread():
    # These tensors are tiny: intra-op threads only add synchronisation, and on a shared 2-core CI
    # machine spinning OpenMP threads made this file 15× slower (measured: 38 s vs 2.6 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(dtype=torch.float64, n=20, n_test=24, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, side, side, generator=g, dtype=dtype)
    tx = torch.randn(n_test, 3, side, side, generator=g, dtype=dtype)
    return x, torch.arange(n) % K, tx, torch.arange(n_test) % K


def _run(x, y, tx, ty, **kw):
    args = dict(
        num_models=3,
        steps=[4, 8],
        lr=1e-2,
        batch_size=8,
        width=16,
        depth=None,
        augment=True,
        seed=1,
        device="cpu",
        progress=False,
        num_classes=None,
        test_batch_size=64,
        sequential=False,
    )
    args.update(kw)
    options = {k: args.pop(k) for k in ("progress", "num_classes", "test_batch_size", "sequential")}
    return _train_and_test(x, y, tx, ty, EvalProtocol(**args), **options)


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("batch_size", [8, 64])  # sampled batches / all N every step
def test_batched_equals_sequential_per_model(batch_size):
    x, y, tx, ty = _data()
    soft = torch.softmax(torch.randn(len(y), K, generator=torch.Generator().manual_seed(3), dtype=torch.float64), -1)
    batched, p_batched = _run(x, soft, tx, ty, batch_size=batch_size)
    sequential, p_sequential = _run(x, soft, tx, ty, batch_size=batch_size, sequential=True)
    assert _max_diff(p_batched, p_sequential) < 1e-9
    assert torch.equal(batched.accuracy, sequential.accuracy)


def test_model_result_does_not_depend_on_number_of_models():
    x, y, tx, ty = _data()
    _, three = _run(x, y, tx, ty, num_models=3)
    _, one = _run(x, y, tx, ty, num_models=1)
    assert _max_diff({k: v[:1] for k, v in three.items()}, one) < 1e-9


def test_a_slice_of_the_models_trains_the_same_students():
    """first_model=1, num_models=2 are models 1 and 2 of a three-model evaluation (how one
    evaluation is split across processes); a different seed would give other students."""
    x, y, tx, ty = _data()
    all_three, params_three = _run(x, y, tx, ty, num_models=3)
    tail, params_tail = _run(x, y, tx, ty, num_models=2, first_model=1)
    assert _max_diff({k: v[1:] for k, v in params_three.items()}, params_tail) < 1e-9
    assert torch.equal(all_three.accuracy[1:], tail.accuracy)
    assert tail.settings["first_model"] == 1
    _, params_head = _run(x, y, tx, ty, num_models=2)
    assert _max_diff({k: v[:2] for k, v in params_three.items()}, params_head) < 1e-9
    assert _max_diff(params_head, params_tail) > 1e-3  # the slice moved: other students
    with pytest.raises(ValueError, match="first_model"):
        _run(x, y, tx, ty, first_model=-1)


def test_grouped_forward_equals_vmap_of_the_convnet():
    net = ConvNet(3, K, 8, width=8).double()
    inits = [init_parameters(net, torch.Generator().manual_seed(m)) for m in range(3)]
    params = {k: torch.stack([p[k] for p in inits]) for k in inits[0]}
    x = torch.randn(3, 5, 3, 8, 8, dtype=torch.float64)
    expected = vmap(lambda p, xb: functional_call(net, p, (xb,)))(params, x)  # (M, B, K)
    got = grouped_forward(net, params, x.transpose(0, 1).reshape(5, 9, 8, 8))  # (B, M, K)
    torch.testing.assert_close(got.transpose(0, 1), expected)
    shared = grouped_forward(net, params, x[0], shared_input=True)
    torch.testing.assert_close(shared.transpose(0, 1), vmap(lambda p: functional_call(net, p, (x[0],)))(params))


def test_batched_flip_rotate_matches_flip_and_rotate():
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    rotate_op = torch.tensor([True, True, True, False, False, False])
    value = torch.tensor([10.0, -15.0, 0.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    got = batched_flip_rotate(x, rotate_op, value)
    torch.testing.assert_close(got[:3], rotate(x[:3], value[:3]))
    torch.testing.assert_close(got[3:], horizontal_flip(x[3:], value[3:] < 0))


def test_learns_an_easy_separable_task():
    # class k = bright channel k (flip/rotation invariant), plus noise; chance is 33 %
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.arange(n) % 3
        x = 0.5 * torch.randn(n, 3, 8, 8, generator=g)
        x[torch.arange(n), y] += 1.0
        return x, y

    x, y = make(30)
    tx, ty = make(90)
    result = train_and_test(x, y, tx, ty, num_models=2, steps=[30], lr=1e-2, batch_size=10, width=8)
    assert result.mean() > 85.0


def test_one_hot_soft_labels_equal_hard_labels():
    x, y, tx, ty = _data()
    hard, p_hard = _run(x, y, tx, ty)
    soft, p_soft = _run(x, torch.nn.functional.one_hot(y, K).double(), tx, ty)
    assert _max_diff(p_hard, p_soft) < 1e-9
    assert torch.equal(hard.accuracy, soft.accuracy)


def test_seeds_reproduce_and_differ():
    x, y, tx, ty = _data(torch.float32)
    a = train_and_test(x, y, tx, ty, num_models=2, steps=[3], width=8, batch_size=8, seed=5)
    b = train_and_test(x, y, tx, ty, num_models=2, steps=[3], width=8, batch_size=8, seed=5)
    assert torch.equal(a.accuracy, b.accuracy)
    _, pa = _run(x, y, tx, ty, seed=5)
    _, pb = _run(x, y, tx, ty, seed=5)
    _, pc = _run(x, y, tx, ty, seed=6)
    assert _max_diff(pa, pb) == 0.0 and _max_diff(pa, pc) > 1e-3


def test_accuracy_recorded_at_exactly_the_requested_steps():
    x, y, tx, ty = _data()
    several, _ = _run(x, y, tx, ty, steps=[1, 3, 7])
    assert several.steps == [1, 3, 7] and several.accuracy.shape == (3, 3)
    for j, step in enumerate([1, 3, 7]):
        alone, _ = _run(x, y, tx, ty, steps=[step])
        assert torch.equal(alone.accuracy[:, 0], several.accuracy[:, j])
    assert ((several.accuracy >= 0) & (several.accuracy <= 100)).all()


def test_eval_result_summary():
    r = EvalResult(steps=[10, 20], accuracy=torch.tensor([[10.0, 50.0], [30.0, 70.0]]), num_models=2, wall_time_s=1.0)
    assert r.mean() == 60.0 and r.std() == 10.0 and r.mean(10) == 20.0
    d = r.to_dict()
    assert d["mean"] == [20.0, 60.0] and d["std"] == [10.0, 10.0] and d["accuracy"][1] == [30.0, 70.0]
    with pytest.raises(ValueError, match="not evaluated"):
        r.mean(15)


@dataclass
class _TinyDataset:  # the fields of podd.data.Dataset that evaluate uses
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list
    source: str = "stand-in"

    @property
    def num_classes(self):
        return len(self.class_names)


def _tiny_dataset(per_class=(5, 7, 6)):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    x = torch.arange(len(y), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    return _TinyDataset(x, y, x[:9].clone(), y[:9].clone(), ["a", "b", "c"])


def test_random_real_subset_is_stratified_and_seeded():
    ds = _tiny_dataset()
    x, y = random_real_subset(ds, 3, seed=0)
    assert x.dtype == torch.uint8 and y.dtype == torch.long
    assert torch.bincount(y, minlength=3).tolist() == [3, 3, 3]
    rows = x[:, 0, 0, 0].long()  # each image encodes its training index
    assert torch.equal(ds.y_train[rows], y) and len(set(rows.tolist())) == 9
    again, _ = random_real_subset(ds, 3, seed=0)
    assert torch.equal(again, x)
    others = {tuple(random_real_subset(ds, 3, seed=s)[0][:, 0, 0, 0].tolist()) for s in range(1, 6)}
    assert len(others - {tuple(rows.tolist())}) >= 1
    with pytest.raises(ValueError, match="class 0 .* only 5"):
        random_real_subset(ds, 6, seed=0)
    with pytest.raises(ValueError, match="positive integer"):
        random_real_subset(ds, 0, seed=0)


def test_reference_rows_run():
    ds = _tiny_dataset()
    preprocess = lambda u: u.float() / 255.0  # noqa: E731
    sub = real_subset_reference(ds, preprocess, 2, EvalProtocol(num_models=2, steps=[2], width=8))
    full = full_dataset_reference(ds, preprocess, EvalProtocol(num_models=1, steps=[2], width=8, batch_size=4))
    assert sub.accuracy.shape == (2, 1) and full.accuracy.shape == (1, 1)
    assert sub.settings["reference"] == "random real 2 IPC" and full.settings["batch_size"] == 4


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(labels=torch.arange(19) % K), "one row per image"),
        (dict(steps=[5, 5]), "strictly increasing"),
        (dict(steps=[10, 5]), "strictly increasing"),
        (dict(steps=[]), "non-empty"),
        (dict(num_models=0), "num_models"),
        (dict(test_y=torch.arange(23) % K), "one label per test image"),
        (dict(labels=torch.ones(20, K)[:, :3].double(), num_classes=K), "num_classes"),
        (dict(batch_size=0), "batch_size"),
        (dict(images=torch.zeros(20, 3, 8, 4)), "square"),
    ],
)
def test_bad_input_gives_clear_errors(change, message):
    x, y, tx, ty = _data()
    args = dict(images=x, labels=y, test_x=tx, test_y=ty, steps=[1], width=8)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        train_and_test(args.pop("images"), args.pop("labels"), args.pop("test_x"), args.pop("test_y"), **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_cuda_without_cuda_is_a_clear_error():
    x, y, tx, ty = _data()
    with pytest.raises(ValueError, match="CUDA is not available"):
        train_and_test(x, y, tx, ty, steps=[1], width=8, device="cuda")


def test_protocol_runs_like_train_and_test_and_follows_the_config():
    """EvalProtocol.run is train_and_test; from_config takes the run's evaluation settings, and
    batch_size=None trains on all images in every step (the engine's distill_batch=None)."""
    from podd.config import DistillConfig

    x, y, tx, ty = _data()
    protocol = EvalProtocol(num_models=2, steps=(3,), lr=1e-2, batch_size=8, width=8, seed=4)
    a = protocol.run(x, y, tx, ty)
    b = train_and_test(x, y, tx, ty, num_models=2, steps=[3], lr=1e-2, batch_size=8, width=8, seed=4)
    assert torch.equal(a.accuracy, b.accuracy) and a.settings == b.settings

    config = DistillConfig(
        eval_models=3, eval_steps=(5, 9), inner_lr=0.02, distill_batch=None, width=16, depth=2, augment=False, seed=7
    )
    assert EvalProtocol.from_config(config, seed=1) == EvalProtocol(
        num_models=3, steps=(5, 9), lr=0.02, batch_size=None, width=16, depth=2, augment=False, seed=1, device="auto"
    )
    many = torch.randn(300, 3, 8, 8, dtype=torch.float64)
    settings = EvalProtocol(num_models=1, steps=(1,), width=8).run(many, torch.arange(300) % K, tx, ty).settings
    assert settings["batch_size"] == 300
    assert (
        train_and_test(many, torch.arange(300) % K, tx, ty, num_models=1, steps=[1], width=8).settings["batch_size"]
        == 256
    )

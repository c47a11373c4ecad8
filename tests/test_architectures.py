"""Cross-architecture evaluation (podd.architectures): ResNet-18, VGG-11 and AlexNet beside the
ConvNet — shapes, the batched forward, seeded initialisation, learning, the protocol and `podd
evaluate --arch`. The networks are the standard ones where their size is the point (parameter
counts) and narrow ones (``width=``) where only the wiring is, so each test takes seconds."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from cli_support import TINY, cli
from torch.func import functional_call, vmap

from podd.architectures import VGG11, AlexNet, ResNet18, build, check_image_size, grouped_forward
from podd.choices import EVAL_ARCHS
from podd.config import DistillConfig
from podd.evaluate import EvalProtocol, _train_and_test, across_architectures
from podd.models import init_parameters, stacked_parameters

NARROW = {
    "resnet18": lambda c, k, s: ResNet18(c, k, s, width=8),
    "vgg11": lambda c, k, s: VGG11(c, k, s, width=8),
    "alexnet": lambda c, k, s: AlexNet(c, k, s, width=8),
}


DIGIT_SIDE = {"resnet18": 16, "vgg11": 32, "alexnet": 8}
LEARNING_RATE = {"resnet18": 1e-3, "vgg11": 1e-3, "alexnet": 1e-2}  # AlexNet, without norm, starts slower


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()  # tiny tensors: extra threads only add waiting
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch, parameters", [("resnet18", 11_173_962), ("vgg11", 9_231_114), ("alexnet", 1_872_202)])
def test_standard_networks_have_the_literature_size(arch, parameters):
    """CIFAR-10 (3×32×32, 10 classes): the parameter counts of DC's ResNet18 / VGG11 / AlexNet
    (instance norm has as many affine parameters as batch norm)."""
    assert sum(p.numel() for p in build(arch, 3, 10, 32).parameters()) == parameters


@pytest.mark.parametrize("arch", list(NARROW))
@pytest.mark.parametrize("channels, side", [(1, 8), (1, 28), (3, 32), (3, 64)])
def test_output_shapes_on_every_supported_size(arch, channels, side):
    if arch in ("vgg11", "resnet18") and side == 8:  # 8×8 digits: too small for these two
        with pytest.raises(
            ValueError,
            match=rf"{arch} .*32, 64, \.\.\.\); these images are 8×8: "
            r"evaluate them with convnet or alexnet",
        ):
            NARROW[arch](channels, 7, side)
        return
    net = NARROW[arch](channels, 7, side)
    assert net(torch.randn(2, channels, side, side)).shape == (2, 7)


@pytest.mark.parametrize("arch", list(NARROW))
def test_grouped_forward_equals_vmap(arch):
    """M stacked models as one grouped network = each model on its own (training and test layout)."""
    net = NARROW[arch](3, 5, 32).double()
    params = stacked_parameters(net, 3, torch.Generator().manual_seed(0))
    x = torch.randn(3, 4, 3, 32, 32, dtype=torch.float64)
    expected = vmap(lambda p, xb: functional_call(net, p, (xb,)))(params, x)  # (M, B, K)
    got = grouped_forward(net, params, x.transpose(0, 1).reshape(4, 9, 32, 32))  # (B, M, K)
    torch.testing.assert_close(got.transpose(0, 1), expected)
    shared = grouped_forward(net, params, x[0], shared_input=True)
    torch.testing.assert_close(shared.transpose(0, 1), vmap(lambda p: functional_call(net, p, (x[0],)))(params))


@pytest.mark.parametrize("arch", list(NARROW))
def test_initialisation_is_seeded(arch):
    net = NARROW[arch](3, 10, 32)
    a, b, c = (init_parameters(net, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    convs = [k for k in a if k.endswith("weight") and a[k].dim() == 4]
    assert all(not torch.equal(a[k], c[k]) for k in convs)
    norms = [k for k in a if a[k].dim() == 1 and k.endswith("weight")]
    assert all(torch.equal(a[k], torch.ones_like(a[k])) for k in norms)  # instance norm starts at 1, 0


@pytest.mark.parametrize("arch", list(NARROW))
def test_a_few_steps_lower_the_loss_on_digits(arch, digits):
    """Two models trained together (the evaluation's batched path) on 64 digits, upsampled to the
    smallest side the architecture takes (8×8 is too small for ResNet-18 and VGG-11)."""
    ds, preprocess = digits
    x, y = preprocess(ds.x_train[:64]), ds.y_train[:64]
    x = F.interpolate(x, size=DIGIT_SIDE[arch], mode="bilinear", align_corners=False)
    net = NARROW[arch](1, 10, x.shape[-1])
    params = {k: v.requires_grad_() for k, v in stacked_parameters(net, 2, torch.Generator().manual_seed(0)).items()}
    optimizer = torch.optim.Adam(list(params.values()), lr=LEARNING_RATE[arch])
    xb = x.repeat(1, 2, 1, 1)  # (B, M·c, h, w)

    def loss():
        return F.cross_entropy(grouped_forward(net, params, xb).flatten(0, 1), y.repeat_interleave(2))

    first = loss().item()
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.9 * first


def _data(side, channels=1, n=8, n_test=8, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, channels, side, side, generator=g),
        torch.arange(n) % k,
        torch.randn(n_test, channels, side, side, generator=g),
        torch.arange(n_test) % k,
    )


@pytest.mark.parametrize("arch, side", [("resnet18", 16), ("vgg11", 28), ("alexnet", 8)])
def test_the_protocol_is_deterministic_under_a_seed(arch, side):
    """Standard networks through EvalProtocol: same seed, same students; another seed, others."""
    x, y, tx, ty = _data(side)

    def run(seed):
        protocol = EvalProtocol(num_models=2, steps=(1,), lr=1e-3, batch_size=4, seed=seed, arch=arch)
        return _train_and_test(x, y, tx, ty, protocol)

    (a, pa), (b, pb), (_, pc) = run(3), run(3), run(4)
    assert torch.equal(a.accuracy, b.accuracy) and a.accuracy.shape == (2, 1)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert any(not torch.equal(pa[k], pc[k]) for k in pa)
    assert a.settings["arch"] == arch and a.wall_time_s > 0


def test_batched_equals_one_model_after_another():
    """The grouped training path trains exactly the students of the plain single-model path."""
    x, y, tx, ty = (t.double() if t.is_floating_point() else t for t in _data(8))
    protocol = EvalProtocol(num_models=2, steps=(1, 2), lr=1e-3, batch_size=4, arch="alexnet")
    batched, p_batched = _train_and_test(x, y, tx, ty, protocol)
    sequential, p_sequential = _train_and_test(x, y, tx, ty, protocol, sequential=True)
    assert max((p_batched[k] - p_sequential[k]).abs().max().item() for k in p_batched) < 1e-9
    assert torch.equal(batched.accuracy, sequential.accuracy)


def test_across_architectures_runs_each_that_fits_and_says_why_not_the_others():
    """On 8×8 images ConvNet and AlexNet students train (each exactly its own protocol's run);
    ResNet-18 and VGG-11 are skipped with the size message, not an error."""
    x, y, tx, ty = _data(8)
    protocol = EvalProtocol(num_models=2, steps=(1,), lr=1e-3, batch_size=4, seed=5)
    results, skipped = across_architectures(x, y, tx, ty, protocol, EVAL_ARCHS)
    assert list(results) == ["convnet", "alexnet"] and sorted(skipped) == ["resnet18", "vgg11"]
    assert all("8×8" in why for why in skipped.values())
    alone = protocol.replace(arch="alexnet").run(x, y, tx, ty)
    assert torch.equal(results["alexnet"].accuracy, alone.accuracy)
    assert results["convnet"].settings["arch"] == "convnet"


def test_protocol_follows_the_config_and_refuses_clearly():
    config = DistillConfig(eval_arch="alexnet")
    assert EvalProtocol.from_config(config).arch == "alexnet"
    assert EvalProtocol.from_config(DistillConfig()).arch == "convnet"
    with pytest.raises(ValueError, match="eval_arch='resnet50': choose one of convnet, resnet18, vgg11, alexnet"):
        DistillConfig(eval_arch="resnet50").validate()
    x, y, tx, ty = _data(8)
    with pytest.raises(ValueError, match="unknown evaluation architecture 'resnet50'"):
        EvalProtocol(num_models=1, steps=(1,), arch="resnet50").run(x, y, tx, ty)
    with pytest.raises(ValueError, match="vgg11 pools five times"):
        EvalProtocol(num_models=1, steps=(1,), arch="vgg11").run(x, y, tx, ty)
    with pytest.raises(ValueError, match=r"alexnet .*divisible by 4 .*30×30"):
        check_image_size("alexnet", 30)
    for arch in EVAL_ARCHS:  # every architecture takes CIFAR-sized and MNIST-sized images
        check_image_size(arch, 32)
        check_image_size(arch, 28)


def test_distill_refuses_an_eval_arch_that_cannot_take_the_images(tmp_path, capsys, monkeypatch):
    """Said before step 1, not after the whole run."""
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))
    code, _, err = cli(
        ["distill", "--dataset", "digits", "--ipc", "1", "--out", tmp_path / "run", *TINY, "--set", "eval_arch=vgg11"],
        capsys,
    )
    assert code == 2 and "vgg11 pools five times" in err and "8×8" in err
    assert not (tmp_path / "run").exists()


def test_cli_evaluate_several_architectures(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))
    run = tmp_path / "run"
    assert cli(["distill", "--dataset", "digits", "--ipc", "1", "--out", run, *TINY], capsys)[0] == 0
    evaluate = ["evaluate", run, "--models", "1", "--steps", "2", "--quiet", "--device", "cpu", "--threads", "1"]

    code, out, err = cli([*evaluate, "--arch", "alexnet", "convnet"], capsys)
    assert code == 0, err
    assert "1 fresh networks of each architecture" in out
    lines = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert lines == ["AlexNet", "ConvNet"]
    written = json.loads((run / "eval.json").read_text())
    assert list(written["results"]) == ["alexnet", "convnet"]
    assert written["result"] == written["results"]["alexnet"]
    assert all(r["settings"]["arch"] == a and r["wall_time_s"] > 0 for a, r in written["results"].items())
    assert written["provenance"]["eval_archs"] == ["alexnet", "convnet"]

    code, out, _ = cli([*evaluate, "--arch", "alexnet"], capsys)  # one architecture: a line per step
    assert code == 0 and "1 fresh AlexNets" in out and "     2 steps:" in out

    (run / "eval.json").unlink()
    code, _, err = cli([*evaluate, "--arch", "alexnet", "resnet18"], capsys)  # checked before training
    assert code == 2 and "resnet18 halves the side three times" in err and "8×8" in err
    assert not (run / "eval.json").exists()
    with pytest.raises(SystemExit):
        cli([*evaluate, "--arch", "resnet50"], capsys)
    assert "invalid choice: 'resnet50'" in capsys.readouterr().err
